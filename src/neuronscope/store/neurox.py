"""Exchange activations with NeuroX (``fdalvi/NeuroX``) files.

NeuroX's ``transformers_extractor`` writes word-level activations in two formats:

* **HDF5** (``.hdf5``): one dataset per sentence, named by the sentence index as a string
  (``"0"``, ``"1"``, ...), of shape ``[n_layers, n_words, n_neurons]``, plus a dataset
  ``sentence_to_index`` of shape ``(1,)`` holding one JSON string that maps each sentence's
  text to its index string. NeuroX's ``load_activations`` walks that mapping (in insertion
  order) to find the sentences, so every sentence must appear in it. Identical texts cannot
  share a key: NeuroX's writer keeps the first occurrence under the plain text and renames
  later ones ``"<text> (Occurrence 2)"``, ``"<text> (Occurrence 3)"``, ... We do the same.
  (The older AllenNLP ELMo layout this format descends from simply overwrote the key, so
  duplicates vanished from the mapping; we import by dataset index, never by that mapping.)
* **JSON lines** (``.json``): one object per sentence,
  ``{"linex_index": i, "features": [{"token": t, "layers": [{"index": l, "values": [...]}]}]}``,
  one feature per *word* (subwords are already aggregated), values rounded to 8 decimals.

Caveats of the NeuroX side worth knowing:

* The texts NeuroX itself puts in ``sentence_to_index`` and the JSON ``token`` fields are the
  *detokenized subwords* (``"hel##lo"``, ``"Ġworld"``), not the input words, so imports align
  files with a corpus by word counts only. Exports use the corpus words joined by spaces.
* NeuroX splits input lines on single spaces and silently truncates sentences longer than the
  model's input, so its word counts can differ from a corpus; imports then fail loudly.
* Layer ``l`` of a file is the ``l``-th *kept* layer: with the default settings layer 0 is the
  embedding output, which is exactly neuronscope's ``hidden`` numbering; with
  ``--ignore_embeddings`` or ``--filter_layers`` pass ``layers=`` to :func:`import_neurox`.
* ``load_activations`` picks the format by file extension: keep ``.hdf5`` / ``.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neuronscope import __version__
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import (
    CorpusFormatError,
    FingerprintMismatchError,
    IncompleteStoreError,
    NeuronscopeError,
    StoreError,
)
from neuronscope.io import atomic_path
from neuronscope.store.integrity import array
from neuronscope.store.neurox_checks import (
    check_data_kind,
    check_size,
    reading_errors,
    values_array,
)
from neuronscope.store.store import META_FILE, ActivationStore, StoreWriter, block_bounds

DTYPES = ("float32", "float16")
SENTENCE_POOLINGS = ("mean", "none")
INDEX_DATASET = "sentence_to_index"
# Root attributes we add to exports; NeuroX ignores them, imports use them to keep layer ids.
ATTR_PREFIX = "neuronscope_"


# ---------------------------------------------------------------------------- helpers
def neurox_sentence_key(text: str, taken: dict[str, str]) -> str:
    """The ``sentence_to_index`` key NeuroX gives ``text`` when ``taken`` already has keys.

    The first occurrence keeps the plain text; repeats become ``"<text> (Occurrence N)"``
    with N counting from 2, exactly as NeuroX's ``HDF5ActivationsWriter`` does.
    """
    key, counter = text, 1
    while key in taken:
        counter += 1
        key = f"{text} (Occurrence {counter})"
    return key


def _check_dtype(dtype: str) -> np.dtype:
    if str(dtype) not in DTYPES:
        raise NeuronscopeError(f"unknown dtype {dtype!r}; valid: {DTYPES}")
    return np.dtype(dtype)


# ---------------------------------------------------------------------------- export
def export_neurox_hdf5(
    store: ActivationStore,
    path: str | os.PathLike,
    component: str = "hidden",
    dtype: str | None = None,
    *,
    block_bytes: int = 64 * 2**20,
) -> Path:
    """Write one component of a store as a NeuroX HDF5 activations file.

    Dataset ``str(i)`` holds sentence ``i`` as ``[n_layers, n_words, n_neurons]`` (layers in
    the store's order) and ``sentence_to_index`` maps each sentence's words joined by single
    spaces to ``str(i)``, repeated texts renamed ``"<text> (Occurrence N)"`` as NeuroX does.
    Rows are read a block of sentences at a time, so memory stays bounded; the file appears
    atomically (temporary file, then rename).

    Args:
        store: a complete activation store.
        path: the output file; NeuroX's loader wants the ``.hdf5`` extension.
        component: the component to export (NeuroX files hold one stack of layers).
        dtype: ``float32`` or ``float16``; default the store's dtype (exact values).
        block_bytes: memory budget of one block of rows read from the store.

    Returns:
        The path written.
    """
    if not store.complete:
        raise IncompleteStoreError(
            f"store {store.path} is incomplete; finish (resume) the extraction before exporting"
        )
    store.layout.offset(component)  # clear error for an unknown component
    comp = store.layout.components[component]
    out_dtype = _check_dtype(dtype or store.meta["dtype"])
    n_layers, n_neurons = len(comp.layers), comp.neurons
    lengths = np.bincount(store.sentence_ids(), minlength=store.n_sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    block_words = max(1, block_bytes // (4 * comp.size))
    # Word strings are read per block too; the store keeps them next to the activations.
    words_array = array(store._group, "words/word")

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        sentence_to_index: dict[str, str] = {}
        for lo, hi in block_bounds(lengths, block_words):
            r0, r1 = int(offsets[lo]), int(offsets[hi])
            rows = store.component(component, rows=slice(r0, r1))
            rows = rows.reshape(r1 - r0, n_layers, n_neurons)
            words = [str(w) for w in np.asarray(words_array[r0:r1])]
            for s in range(lo, hi):
                a, b = int(offsets[s]) - r0, int(offsets[s + 1]) - r0
                data = np.ascontiguousarray(rows[a:b].transpose(1, 0, 2), dtype=out_dtype)
                # Same call as NeuroX: contiguous, uncompressed, named by the index.
                f.create_dataset(str(s), data.shape, dtype=out_dtype, data=data)
                key = neurox_sentence_key(" ".join(words[a:b]), sentence_to_index)
                sentence_to_index[key] = str(s)
        index = f.create_dataset(INDEX_DATASET, (1,), dtype=h5py.special_dtype(vlen=str))
        index[0] = json.dumps(sentence_to_index)
        f.attrs[ATTR_PREFIX + "component"] = component
        f.attrs[ATTR_PREFIX + "layers"] = json.dumps(list(comp.layers))
        f.attrs[ATTR_PREFIX + "model"] = str(store.meta["model"]["name"])
        f.attrs[ATTR_PREFIX + "model_fingerprint"] = store.model_fingerprint
        f.attrs[ATTR_PREFIX + "corpus_fingerprint"] = store.corpus_fingerprint
        f.attrs[ATTR_PREFIX + "aggregation"] = str(store.meta["aggregation"])
    return path


# ---------------------------------------------------------------------------- readers
class _NeuroxFile:
    """Sentence-by-sentence reader of a NeuroX activations file."""

    kind: str
    n_layers: int
    n_neurons: int
    layer_ids: list[int] | None  # layer numbers stored in the file, when it says
    aggregation: str | None
    component: str | None  # the component our export wrote, when it says

    def sentences(self) -> Iterator[np.ndarray]:
        """Each sentence as float32 ``[n_layers, n_words, n_neurons]``, in index order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""


class _Hdf5File(_NeuroxFile):
    kind = "neurox-hdf5"

    def __init__(self, path: Path, corpus: Corpus) -> None:
        self.path = path
        self.f = h5py.File(path, "r")
        try:
            self._check(corpus)
        except BaseException:
            self.f.close()
            raise

    def _check(self, corpus: Corpus) -> None:
        # Sentences are the datasets named by an integer, whatever sentence_to_index says:
        # mappings of old files may have lost duplicate sentences.
        numbered = {int(k) for k in self.f.keys() if k.isdigit()}
        n = len(numbered)
        if not n:
            raise CorpusFormatError("no sentence datasets ('0', '1', ...): not a NeuroX file",
                                    str(self.path))
        missing = sorted(set(range(n)) - numbered)
        if missing:
            raise CorpusFormatError(
                f"sentence datasets are not numbered 0..{n - 1}: {missing[0]!r} is missing",
                str(self.path),
            )
        if n != corpus.n_sentences:
            raise FingerprintMismatchError(
                f"{self.path}: the file has {n} sentences, corpus {corpus.name!r} has "
                f"{corpus.n_sentences}"
            )
        # Shapes only: no activation data is read here, so checking everything is cheap and
        # a mismatch is reported before any output is written.
        first: tuple[int, int] | None = None
        for i in range(n):
            ds = self.f[str(i)]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
                shape = getattr(ds, "shape", "a group")
                raise CorpusFormatError(
                    f"sentence {i}: expected [layers, words, neurons], got {shape}", str(self.path)
                )
            check_data_kind(self.path, f"sentence {i}", ds.dtype)
            _check_words(self.path, corpus, i, int(ds.shape[1]))
            if first is None:
                first = (int(ds.shape[0]), int(ds.shape[2]))
            elif (ds.shape[0], ds.shape[2]) != first:
                raise CorpusFormatError(
                    f"sentence {i} has {ds.shape[0]} layers x {ds.shape[2]} neurons, sentence 0 "
                    f"has {first[0]} x {first[1]}",
                    str(self.path),
                )
        if first is None:  # n == 0 is refused above; keeps the type checker informed
            raise CorpusFormatError("the file holds no sentences", str(self.path))
        self.n_layers, self.n_neurons = first
        check_size(self.path, self.n_layers, self.n_neurons)
        self.n_sentences = n
        layers = self.f.attrs.get(ATTR_PREFIX + "layers")
        self.layer_ids = json.loads(layers) if layers is not None else None
        agg = self.f.attrs.get(ATTR_PREFIX + "aggregation")
        self.aggregation = str(agg) if agg is not None else None
        comp = self.f.attrs.get(ATTR_PREFIX + "component")
        self.component = str(comp) if comp is not None else None

    def sentences(self) -> Iterator[np.ndarray]:
        with reading_errors(self.path):
            for i in range(self.n_sentences):
                yield np.asarray(self.f[str(i)][()], dtype=np.float32)

    def close(self) -> None:
        self.f.close()


class _JsonFile(_NeuroxFile):
    kind = "neurox-json"
    layer_ids = None
    aggregation = None
    component = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fp = open(path, encoding="utf-8")  # closed by close()
        self._lines = self._parse_lines()
        # Peek up to the first sentence with words: it fixes the layers and neurons.
        self._head: list[np.ndarray] = []
        self._layer_index: list[int] | None = None
        self.n_layers = self.n_neurons = 0  # set by the first word parsed
        for arr in self._lines:
            self._head.append(arr)
            if arr.shape[1]:
                break
        if self._layer_index is None:
            self.close()
            raise CorpusFormatError("no words with activations in the file", str(path))
        self.n_layers = len(self._layer_index)
        check_size(path, self.n_layers, self.n_neurons)
        # NeuroX numbers the kept layers 0..n-1; the numbers are only a fallback here.
        self.layer_ids = self._layer_index

    def _parse_lines(self) -> Iterator[np.ndarray]:
        position = 0
        for line_no, line in enumerate(self.fp, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusFormatError(f"bad JSON: {err}", str(self.path), line_no) from err
            yield self._sentence(record, position, line_no)
            position += 1

    def _sentence(self, record: Any, position: int, line_no: int) -> np.ndarray:
        where = (str(self.path), line_no)
        if not isinstance(record, dict) or not isinstance(record.get("features"), list):
            raise CorpusFormatError("expected an object with a 'features' list", *where)
        # NeuroX writes "linex_index" (its docstring says "linex_idx"); accept both.
        index = record.get("linex_index", record.get("linex_idx", position))
        if index != position:
            raise CorpusFormatError(
                f"sentence index {index!r} out of order: expected {position} (one line per "
                "sentence, in corpus order)",
                *where,
            )
        words = []
        for j, feature in enumerate(record["features"]):
            layers = feature.get("layers") if isinstance(feature, dict) else None
            if not isinstance(layers, list) or not layers or not all(
                isinstance(layer, dict) for layer in layers
            ):
                raise CorpusFormatError(f"word {j}: no 'layers' list of objects", *where)
            try:
                # A missing "index" counts as the layer's position.
                ids = [int(layer.get("index", k)) for k, layer in enumerate(layers)]
            except (TypeError, ValueError) as err:
                raise CorpusFormatError(f"word {j}: bad layer index ({err})", *where) from err
            if self._layer_index is None:
                self._layer_index = ids
            elif ids != self._layer_index:
                raise CorpusFormatError(
                    f"word {j}: layers {ids} differ from the file's first word "
                    f"({self._layer_index})",
                    *where,
                )
            try:
                words.append(values_array([layer["values"] for layer in layers], self.path,
                                          line_no, j))
            except (KeyError, TypeError) as err:
                raise CorpusFormatError(
                    f"word {j}: 'values' missing or of unequal lengths ({err})", *where
                ) from err
            if not self.n_neurons:
                self.n_neurons = words[-1].shape[1]
            elif words[-1].shape[1] != self.n_neurons:
                raise CorpusFormatError(
                    f"word {j} has {words[-1].shape[1]} neurons per layer, the file's first "
                    f"word has {self.n_neurons}",
                    *where,
                )
        if not words:
            n_layers = len(self._layer_index) if self._layer_index else 0
            return np.zeros((n_layers, 0, self.n_neurons), np.float32)
        return np.stack(words, axis=1)

    def sentences(self) -> Iterator[np.ndarray]:
        for arr in self._head:
            # Sentences peeked before the layer count was known have no words: reshape them.
            yield arr if arr.shape[1] else np.zeros((self.n_layers, 0, self.n_neurons),
                                                    np.float32)
        with reading_errors(self.path):
            yield from self._lines

    def close(self) -> None:
        self.fp.close()


def _check_words(path: Path, corpus: Corpus, i: int, n_file: int) -> None:
    if i >= corpus.n_sentences:
        raise FingerprintMismatchError(
            f"{path}: the file has more sentences than corpus {corpus.name!r} "
            f"({corpus.n_sentences}); sentence {i} has no counterpart"
        )
    n_corpus = len(corpus.sentences[i])
    if n_file != n_corpus:
        raise FingerprintMismatchError(
            f"{path}: sentence {i} has {n_file} words in the file but {n_corpus} in corpus "
            f"{corpus.name!r}; NeuroX splits lines on single spaces and truncates sentences "
            "longer than the model input, so give the exact corpus the file was extracted from"
        )


def _open_neurox(path: Path, corpus: Corpus) -> _NeuroxFile:
    if not path.is_file():
        raise StoreError(f"NeuroX activations file {path} does not exist")
    with reading_errors(path):
        if h5py.is_hdf5(path):
            return _Hdf5File(path, corpus)
        return _JsonFile(path)


# ---------------------------------------------------------------------------- import
def import_neurox(
    path: str | os.PathLike,
    corpus: Corpus,
    out: str | os.PathLike,
    *,
    model_name: str = "neurox-import",
    overwrite: bool = False,
    component: str | None = None,
    dtype: str = "float32",
    layers: Sequence[int] | None = None,
    aggregation: str = "unknown",
    sentence_pooling: str = "mean",
    chunk_words: int = 4096,
    block_bytes: int = 64 * 2**20,
) -> ActivationStore:
    """Turn a NeuroX activations file (HDF5 or JSON lines) into a neuronscope store.

    Sentence ``i`` of the file must have as many words as sentence ``i`` of ``corpus``
    (words themselves are not compared: NeuroX stores detokenized subwords). The file's
    layers become one component. With no model at hand, the model fingerprint hashes the
    file name and every sentence's shape. The store is built in a temporary folder next to
    ``out`` and moved into place only when complete, so a failed import leaves ``out`` as it
    was.

    Args:
        path: a NeuroX ``.hdf5`` file or ``.json`` (one JSON object per line) file.
        corpus: the corpus the file was extracted from, same sentences in the same order.
        out: store directory to create.
        model_name: recorded as the store's model name.
        overwrite: replace an existing store at ``out``.
        component: name of the component the layers become; default the component our
            export recorded in the file (``mlp`` stays ``mlp``), else ``hidden``.
        dtype: storage dtype, ``float32`` or ``float16``.
        layers: layer numbers of the file's layers, e.g. ``range(1, 13)`` for a file written
            with ``--ignore_embeddings``; default those recorded by our export, else 0..n-1.
        aggregation: how NeuroX aggregated subwords (``first``, ``last``, ``average``), if
            known; part of the store's identity.
        sentence_pooling: ``mean`` (sentence vectors as the mean of word vectors) or ``none``.
        chunk_words: rows per Zarr chunk.
        block_bytes: memory budget of one block of rows written at once.

    Returns:
        The finished store, opened for reading.
    """
    store_dtype = str(_check_dtype(dtype))
    if sentence_pooling not in SENTENCE_POOLINGS:
        raise NeuronscopeError(
            f"unknown sentence pooling {sentence_pooling!r}; valid for imports: "
            f"{SENTENCE_POOLINGS}"
        )
    corpus.require_nonempty()
    path, out = Path(path), Path(out)
    _check_out(out, overwrite)  # before reading anything: fail fast, touch nothing
    reader = _open_neurox(path, corpus)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.import-"))
    try:
        with_ids = _layer_numbers(reader, layers, path)
        comp_size = reader.n_layers * reader.n_neurons
        block_words = int(min(16384, max(256, block_bytes // (4 * comp_size))))
        if aggregation == "unknown" and reader.aggregation:
            aggregation = reader.aggregation  # recorded by our own export
        if component is None:
            component = reader.component or "hidden"
        meta = _import_meta(
            corpus, reader, component, with_ids, model_name=model_name, aggregation=aggregation,
            sentence_pooling=sentence_pooling, dtype=store_dtype, block_words=block_words,
            source=path,
        )
        writer = StoreWriter.create(tmp, meta, corpus, chunk_words=chunk_words)
        fingerprint = _write_rows(reader, writer, corpus, component, block_words, path,
                                  sentence_pooling)
        model = dict(meta["model"], fingerprint=fingerprint)
        writer.finalize(model=model)
    except BaseException:
        reader.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    reader.close()
    _move_into_place(tmp, out)
    return ActivationStore(out)


def _check_out(out: Path, overwrite: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise StoreError(f"output store {out} already exists; pass overwrite=True "
                             "(--overwrite) to replace it")
        if not (out / META_FILE).exists():
            # Never delete a folder we did not write.
            raise StoreError(f"refusing to overwrite {out}: it is not a neuronscope store")


def _move_into_place(tmp: Path, out: Path) -> None:
    # Swap by renames so that `out` is never a half-written store.
    old = None
    if out.exists():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _layer_numbers(reader: _NeuroxFile, layers: Sequence[int] | None, path: Path) -> list[int]:
    given = list(layers) if layers is not None else reader.layer_ids
    chosen: list[int] = list(given) if given is not None else []
    if given is None or len(chosen) != reader.n_layers:
        if layers is not None:
            raise NeuronscopeError(
                f"{path} has {reader.n_layers} layers but {len(chosen)} layer numbers were given"
            )
        chosen = list(range(reader.n_layers))
    chosen = [int(x) for x in chosen]
    if len(set(chosen)) != len(chosen):
        raise NeuronscopeError(f"layer numbers must be distinct, got {chosen}")
    return chosen


def _import_meta(
    corpus: Corpus, reader: _NeuroxFile, component: str, layer_ids: list[int], *,
    model_name: str, aggregation: str, sentence_pooling: str, dtype: str, block_words: int,
    source: Path,
) -> dict[str, Any]:
    # Same shape as the extractor's metadata so every reader of stores works unchanged;
    # what only a real model could tell is None.
    return {
        "tool_version": __version__,
        "model": {
            "name": model_name,
            "gguf_file": None,
            "model_type": None,
            "config_hash": None,
            "fingerprint": None,  # set at finalize, once every shape has been seen
            "random_init": False,
            "seed": None,
            # Hidden layer k is block k's output, so the highest one counts the blocks.
            "num_layers": max(layer_ids) if component == "hidden" else len(layer_ids),
        },
        "corpus": {
            "name": corpus.name,
            "fingerprint": corpus.fingerprint,
            "n_sentences": corpus.n_sentences,
            "n_words": corpus.n_words,
        },
        "components": {
            component: {
                "layers": layer_ids,
                "neurons": reader.n_neurons,
                "head_dim": None,
                "source": reader.kind,
                "modules": {},
            }
        },
        "aggregation": aggregation,
        "sentence_pooling": sentence_pooling,
        "dtype": dtype,
        "block_words": block_words,
        "batch_size": None,
        "windows_config": None,
        "windows": {
            "sentences_windowed": 0,
            "pieces": 0,
            "words_truncated": 0,
            "words_without_subwords": 0,
            "windowed_sentence_ids_first_1000": [],
        },
        "imported_from": {"format": reader.kind, "path": str(source.resolve())},
    }


def _write_rows(
    reader: _NeuroxFile, writer: StoreWriter, corpus: Corpus, component: str, block_words: int,
    path: Path, sentence_pooling: str,
) -> str:
    """Stream the file's sentences into the store; returns the model fingerprint."""
    h = hashlib.sha256(path.name.encode("utf-8"))
    h.update(f"{reader.n_layers}x{reader.n_neurons}".encode())
    width = reader.n_layers * reader.n_neurons
    offsets = corpus.sentence_offsets()
    pending: list[np.ndarray] = []
    lo = 0  # first sentence of the pending block

    def flush(hi: int) -> None:
        nonlocal pending, lo
        block = np.concatenate(pending, axis=0) if pending else np.empty((0, width), np.float32)
        row0 = int(offsets[lo])
        writer.write_rows(component, row0, block)
        if sentence_pooling == "mean":
            pooled = np.full((hi - lo, width), np.nan, np.float32)
            for k, rows in enumerate(pending):
                if len(rows):  # an empty sentence has no mean: it stays NaN
                    pooled[k] = rows.mean(axis=0)
            writer.write_sentences(component, lo, pooled)
        writer.commit(int(offsets[hi]), hi)
        pending, lo = [], hi

    n_rows = 0
    i = -1
    for i, arr in enumerate(reader.sentences()):
        _check_words(path, corpus, i, arr.shape[1])
        h.update(f";{arr.shape[1]}".encode())
        # [layers, words, neurons] -> one row per word, layers side by side (store layout).
        pending.append(arr.transpose(1, 0, 2).reshape(arr.shape[1], width))
        n_rows += arr.shape[1]
        if n_rows >= block_words:
            flush(i + 1)
            n_rows = 0
    n_file = i + 1
    if n_file != corpus.n_sentences:
        raise FingerprintMismatchError(
            f"{path}: the file has {n_file} sentences, corpus {corpus.name!r} has "
            f"{corpus.n_sentences}"
        )
    if pending or lo < n_file:
        flush(n_file)
    return h.hexdigest()[:16]
