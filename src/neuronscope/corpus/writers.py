"""Writers for NeuroX parallel files and CoNLL-U; every file is written atomically.

Every file goes through :func:`neuronscope.io.atomic_write_text` (temporary file in the same
folder, fsync, rename), so readers never see a half-written corpus.
"""

from __future__ import annotations

from collections.abc import Mapping

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.corpus.readers import CONLLU_COLUMN_LAYERS, LABEL_PREFIX, PathLike
from neuronscope.errors import CorpusFormatError, NeuronscopeError
from neuronscope.io import atomic_write_text

__all__ = ["atomic_write_text", "write_conllu", "write_parallel"]


def _has_space(value: str) -> bool:
    return value == "" or any(c.isspace() for c in value)


def write_parallel(
    corpus: Corpus, text_path: PathLike, label_paths: Mapping[str, PathLike] | None = None
) -> None:
    """Write NeuroX parallel files: the words, and one label file per requested layer.

    Args:
        corpus: the corpus to write.
        text_path: receives one sentence per line, words separated by single spaces.
        label_paths: layer name -> file receiving that layer, one label per word.

    Raises:
        NeuronscopeError: an unknown layer, or an empty sentence.
        CorpusFormatError: a word or label that is empty or contains whitespace (it could not
            be read back); the message names the sentence and position.
    """
    label_paths = dict(label_paths or {})
    layers = {layer: corpus.layer(layer) for layer in label_paths}  # clear error if missing
    # Validate everything before writing anything, so a failure leaves no partial set of files.
    for i, words in enumerate(corpus.sentences):
        if not words:
            raise NeuronscopeError(f"sentence {i} is empty; parallel files cannot hold it")
        for j, word in enumerate(words):
            if _has_space(word):
                raise CorpusFormatError(
                    f"sentence {i}, word {j}: word {word!r} is empty or contains whitespace",
                    str(text_path),
                )
        for layer, per_sentence in layers.items():
            for j, label in enumerate(per_sentence[i]):
                if _has_space(label):
                    raise CorpusFormatError(
                        f"layer {layer!r}, sentence {i}, word {j}: label {label!r} is empty "
                        "or contains whitespace",
                        str(label_paths[layer]),
                    )
    atomic_write_text(text_path, "".join(" ".join(s) + "\n" for s in corpus.sentences))
    for layer, path in label_paths.items():
        atomic_write_text(path, "".join(" ".join(s) + "\n" for s in layers[layer]))


def _check_field(value: str, what: str, forbidden: str = "") -> str:
    """A value that can stand in a CoNLL-U column; raise when it cannot."""
    if value == "" or "\t" in value or "\n" in value or "\r" in value:
        raise CorpusFormatError(f"{what}: {value!r} cannot be written to CoNLL-U")
    for ch in forbidden:
        if ch in value:
            raise CorpusFormatError(f"{what}: {value!r} contains {ch!r}")
    return value


def _key_values(pairs: list[tuple[str, str]], what: str, prefix: str = "") -> list[str]:
    return [
        f"{prefix}{_check_field(k, what, '|= ')}={_check_field(v, what, '|')}" for k, v in pairs
    ]


def write_conllu(corpus: Corpus, path: PathLike) -> None:
    """Write a corpus as CoNLL-U.

    Columns: FORM from the words; UPOS, XPOS, LEMMA, DEPREL from layers of those (lowercase)
    names, HEAD from a ``head`` layer, each ``_`` when the layer is absent. FEATS holds the
    layers whose names start with an uppercase letter (``Number=Sing|Tense=Past``, keys sorted,
    :data:`NO_LABEL` values skipped). The remaining layers go to MISC as ``label.NAME=VALUE``
    and sentence-level labels to ``# label.NAME = VALUE`` comments, which :func:`read_conllu`
    reads back, so a round trip keeps every layer.

    Raises:
        CorpusFormatError: a value that CoNLL-U cannot hold (empty, tabs or newlines; ``|`` or
            ``=`` inside FEATS/MISC keys, ``|`` in their values).
    """
    column_layers = {c: corpus.labels.get(c) for c in CONLLU_COLUMN_LAYERS}
    head = corpus.labels.get("head")
    feat_layers = sorted(
        (k for k in corpus.labels if k[:1].isupper()), key=lambda k: (k.lower(), k)
    )
    misc_layers = [
        k for k in corpus.labels
        if k not in column_layers and k != "head" and k not in feat_layers
    ]
    out: list[str] = []
    for i, words in enumerate(corpus.sentences):
        if not words:
            raise NeuronscopeError(f"sentence {i} is empty; CoNLL-U cannot hold it")
        out.append(f"# sent_id = {i + 1}")
        text = corpus.texts[i] if corpus.texts and corpus.texts[i] else " ".join(words)
        if "\n" not in text and "\r" not in text:
            out.append(f"# text = {text}")
        for key, values in corpus.sentence_labels.items():
            what = f"sentence {i}, sentence label {key!r}"
            k = _check_field(key, what, "= ")
            out.append(f"# {LABEL_PREFIX}{k} = {_check_field(values[i].strip(), what)}")
        for j, word in enumerate(words):
            where = f"sentence {i}, word {j}"
            col = {
                c: NO_LABEL if v is None else _check_field(v[i][j], f"{where}, layer {c!r}")
                for c, v in column_layers.items()
            }
            feats = _key_values(
                [(k, corpus.labels[k][i][j]) for k in feat_layers
                 if corpus.labels[k][i][j] != NO_LABEL],
                f"{where}, FEATS",
            )
            misc = _key_values(
                [(k, corpus.labels[k][i][j]) for k in misc_layers
                 if corpus.labels[k][i][j] != NO_LABEL],
                f"{where}, MISC",
                LABEL_PREFIX,
            )
            head_value = NO_LABEL if head is None else _check_field(head[i][j], f"{where}, head")
            out.append(
                "\t".join(
                    [
                        str(j + 1),
                        _check_field(word, f"{where}, FORM"),
                        col["lemma"],
                        col["upos"],
                        col["xpos"],
                        "|".join(feats) or NO_LABEL,
                        head_value,
                        col["deprel"],
                        NO_LABEL,
                        "|".join(misc) or NO_LABEL,
                    ]
                )
            )
        out.append("")
    atomic_write_text(path, "\n".join(out) + ("\n" if out else ""))
