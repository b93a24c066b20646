"""Short summaries of the non-JSON files verbs write: ``export``'s NeuroX activations (HDF5
or JSON lines) and ``annotate``'s CoNLL-U corpus.

``neuronscope show FILE`` prints them for such files, and ``export`` / ``annotate`` print
them after writing: the file kind, its shapes or counts, and its layers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from neuronscope.cli.output import Rows, key_values
from neuronscope.errors import NeuronscopeError

#: The first bytes of every HDF5 file.
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: The kinds :func:`describe_file` knows, with what ``show`` calls them.
KINDS = {
    "neurox-hdf5": "NeuroX activations (HDF5)",
    "neurox-json": "NeuroX activations (JSON lines)",
    "conllu": "CoNLL-U corpus",
}


def file_kind(path: Path) -> str | None:
    """``neurox-hdf5``, ``neurox-json`` or ``conllu`` for such a file; None for anything else
    (a JSON result, or a file ``show`` does not know)."""
    with open(path, "rb") as fh:
        head = fh.read(len(HDF5_MAGIC))
        if head == HDF5_MAGIC:
            return "neurox-hdf5"
        fh.seek(0)
        first = fh.readline(1 << 20)
    if path.suffix.lower() in (".conllu", ".conll"):
        return "conllu"
    try:
        record = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # Not a NeuroX line: the result reader names what is wrong with the file.
        return None
    if isinstance(record, dict) and "features" in record and "linex_index" in record:
        return "neurox-json"
    return None


def describe_file(path: Path, kind: str | None = None) -> list[Rows]:
    """Summary tables of a NeuroX activations file or a CoNLL-U corpus.

    Raises:
        NeuronscopeError: a file of none of these kinds, or one that cannot be read.
    """
    kind = kind or file_kind(path)
    if kind == "neurox-hdf5":
        return [_neurox_hdf5(path)]
    if kind == "neurox-json":
        return [_neurox_json(path)]
    if kind == "conllu":
        return _conllu(path)
    raise NeuronscopeError(f"{path}: not a file neuronscope show knows (a verb's JSON result, "
                           "NeuroX .hdf5/.json activations, or a CoNLL-U corpus)")


def _summary(path: Path, kind: str, items: list[tuple[str, Any]]) -> Rows:
    return key_values("file", f"{path.name}: {KINDS[kind]}",
                      [("file", str(path)), ("kind", kind), *items])


def _neurox_hdf5(path: Path) -> Rows:
    import h5py

    from neuronscope.store.neurox import ATTR_PREFIX, INDEX_DATASET

    try:
        with h5py.File(path, "r") as f:
            names = sorted((k for k in f if k.isdigit()), key=int)
            shapes = [f[k].shape for k in names]
            dtype = str(f[names[0]].dtype) if names else None
            attrs = {k[len(ATTR_PREFIX):]: (v.decode() if isinstance(v, bytes) else str(v))
                     for k, v in f.attrs.items() if k.startswith(ATTR_PREFIX)}
            indexed = INDEX_DATASET in f
    except OSError as err:
        raise NeuronscopeError(f"{path}: not a readable HDF5 file ({err})") from err
    if any(len(s) != 3 for s in shapes):
        raise NeuronscopeError(f"{path}: an HDF5 file whose datasets are not NeuroX "
                               "[layers, words, neurons] activations")
    n_layers = sorted({s[0] for s in shapes})
    neurons = sorted({s[2] for s in shapes})
    layers = json.loads(attrs["layers"]) if "layers" in attrs else list(range(n_layers[0])) \
        if len(n_layers) == 1 else None
    return _summary(path, "neurox-hdf5", [
        ("sentences", len(names)), ("words", sum(s[1] for s in shapes)),
        ("layers", layers if layers is not None else n_layers),
        ("neurons per layer", neurons[0] if len(neurons) == 1 else neurons),
        ("shape per sentence", "[layers, words, neurons]"), ("dtype", dtype),
        ("sentence_to_index", "yes" if indexed else "MISSING"),
        *((f"neuronscope {k}", v) for k, v in attrs.items() if k != "layers")])


def _neurox_json(path: Path) -> Rows:
    sentences = words = 0
    layers: list[int] = []
    neurons: set[int] = set()
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                features = record["features"]
                sentences += 1
                words += len(features)
                for feature in features[:1]:
                    if not layers:
                        layers = [int(layer["index"]) for layer in feature["layers"]]
                    neurons.update(len(layer["values"]) for layer in feature["layers"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise NeuronscopeError(f"{path}:{line_no}: not a NeuroX JSON activations "
                                       f"record ({err})") from err
    return _summary(path, "neurox-json", [
        ("sentences", sentences), ("words", words), ("layers", layers),
        ("neurons per layer", min(neurons) if len(neurons) == 1 else sorted(neurons))])


def _conllu(path: Path) -> list[Rows]:
    from neuronscope.corpus import read_conllu

    corpus = read_conllu(path)
    head = _summary(path, "conllu", [
        ("sentences", corpus.n_sentences), ("words", corpus.n_words),
        ("word label layers", list(corpus.layers)),
        ("sentence label layers", list(corpus.sentence_labels))])
    layers = Rows("layers", "label layers", ["layer", "labels", "most frequent"],
                  left={"layer", "most frequent"})
    for name in corpus.layers:
        counts = Counter(v for sentence in corpus.labels[name] for v in sentence)
        layers.add(name, len(counts), ", ".join(f"{v} ({n})" for v, n in counts.most_common(5)))
    return [head, layers]
