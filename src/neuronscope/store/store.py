"""The on-disk activation store: one Zarr v3 group per extraction, chunked along words.

Layout of a store directory::

    neuronscope.json          metadata, progress and the ``complete`` flag (atomic writes)
    manifest.json             size and CRC-32C of every file below (see ``integrity``)
    zarr.json                 the Zarr group
    activations/<component>   float32|float16|bfloat16 (n_words, n_layers * neurons), chunks
                              (C, neurons), by default in shards (C, k * neurons): see layout.py
    sentences/<component>     pooled sentence vectors (n_sentences, n_layers * neurons)
    words/word                the word strings (n_words,)
    words/sentence_id         sentence index of each row (n_words,)
    words/position            position of each row inside its sentence (n_words,)

Row ``i`` of every activation array is flat word ``i`` of the corpus. Writers only ever
write whole chunks (plus the final partial one) in increasing row order and record
``progress.words_done`` after each write, so an interrupted extraction can be resumed and
a store is only marked ``complete`` once every row is on disk.

A store is created under a hidden temporary name next to its path and renamed into place
once its metadata, manifest and words table are written: a crash during creation leaves no
store (the leftover is removed by the next creation), never a half-made one. One writer at a
time holds the store's lock (``lock.py``). Write failures (disk full, file-size limit) raise
:class:`StoreError` naming the path and leave the store resumable.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from neuronscope import __version__
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import (
    DamagedStoreError,
    FingerprintMismatchError,
    IncompleteStoreError,
    StoreError,
)
from neuronscope.store.dtypes import BFLOAT16_ATTR, decode, decode_into
from neuronscope.store.fastread import Plan, plan_for, read_region
from neuronscope.store.integrity import (
    Entries,
    array,
    describe,
    layout_of,
    meta_problems,
    open_checked,
    read_manifest,
)
from neuronscope.store.layout import DEFAULT_COMPRESSION
from neuronscope.store.meta import (  # noqa: F401  (re-exported: the store's public names)
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    read_meta,
    write_json_atomic,
)
from neuronscope.store.names import NeuronLayout
from neuronscope.store.remote import is_url, local_store, normalize_url
from neuronscope.store.writer import StoreWriter


def block_bounds(lengths: np.ndarray, block_words: int) -> list[tuple[int, int]]:
    """Split sentences into consecutive blocks of about ``block_words`` words (>= 1 sentence)."""
    bounds = []
    start, count = 0, 0
    for i, n in enumerate(lengths):
        count += int(n)
        if count >= block_words:
            bounds.append((start, i + 1))
            start, count = i + 1, 0
    if start < len(lengths):
        bounds.append((start, len(lengths)))
    return bounds


class ActivationStore:
    """Read access to an activation store.

    Args:
        path: the store directory, or a URL (``s3://``, ``gs://``, ``memory://``...: read
            through a local mirror, see :mod:`neuronscope.store.remote`).
        allow_incomplete: open an interrupted store and expose only the rows written so far.
        checksums: compare every chunk read with its CRC-32C (about 10 GB per CPU-second);
            False keeps the existence and size checks only (and ``verify`` still compares
            all checksums).
    """

    def __init__(self, path: str | os.PathLike, allow_incomplete: bool = False,
                 checksums: bool = True) -> None:
        #: The store's URL when it lives on an fsspec file system (read via a local mirror).
        self.url: str | None = normalize_url(path) if is_url(path) else None
        self.path = local_store(self.url) if self.url else Path(path)
        self.meta = read_meta(self.path)
        problems = meta_problems(self.meta)
        if problems:
            raise DamagedStoreError(describe(self.path, [f"{META_FILE}: {p}" for p in problems]))
        done = int(self.meta["progress"]["words_done"])
        if not self.meta["complete"] and not allow_incomplete:
            raise IncompleteStoreError(
                f"store {self.path} is incomplete ({done} of {self.meta['corpus']['n_words']} "
                "words written): the extraction was interrupted. Resume it with "
                "`neuronscope extract ... --resume`, or open it with allow_incomplete=True "
                "to read the rows written so far"
            )
        self.complete = bool(self.meta["complete"])
        self.n_words = int(self.meta["corpus"]["n_words"]) if self.complete else done
        self.layout = layout_of(self.path, self.meta)
        self._group = _open_group(self.path, self.meta, self.layout, checksums)
        chunks = self._group.store
        # The fast read path checks files exactly as the Zarr path does (see ``integrity``).
        self._entries: Entries | None = getattr(chunks, "entries", None)
        self._check: Callable[[str], bool] | None = getattr(chunks, "check", None)
        self._plans: dict[str, Plan | None] = {}
        #: Read chunk files directly (``fastread``) where the layout allows; False forces
        #: Zarr's own path (the reference the fast path is tested against).
        self.fast_reads = True

    @classmethod
    def open(cls, path: str | os.PathLike, allow_incomplete: bool = False,
             checksums: bool = True) -> ActivationStore:
        """Open a store (same as the constructor)."""
        return cls(path, allow_incomplete=allow_incomplete, checksums=checksums)

    # ---------------------------------------------------------------- description
    @property
    def components(self) -> list[str]:
        """Component names in store order."""
        return list(self.layout.components)

    @property
    def n_neurons(self) -> int:
        """Neurons over all components and layers."""
        return self.layout.n_neurons

    @property
    def n_sentences(self) -> int:
        """Sentences of the corpus (all of them, even in a partial view)."""
        return int(self.meta["corpus"]["n_sentences"])

    @property
    def corpus_fingerprint(self) -> str:
        """Fingerprint of the corpus the store was extracted from."""
        return str(self.meta["corpus"]["fingerprint"])

    @property
    def model_fingerprint(self) -> str:
        """Fingerprint of the model (config and weights) the store was extracted with."""
        return str(self.meta["model"]["fingerprint"])

    @property
    def fingerprint(self) -> str:
        """Identity of this store's content: model, corpus and extraction settings."""
        return f"{self.model_fingerprint}-{self.corpus_fingerprint}-{self.meta['aggregation']}"

    @property
    def chunk_words(self) -> int:
        """Rows per chunk along words."""
        return int(self.meta["chunk_words"])

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``neuronscope info --json`` prints)."""
        m = self.meta
        return {
            "path": str(self.path),
            "model": m["model"]["name"],
            "model_fingerprint": m["model"]["fingerprint"],
            "components": {
                name: {"layers": list(c.layers), "neurons": c.neurons}
                | ({"head_dim": c.head_dim} if c.head_dim else {})
                for name, c in self.layout.components.items()
            },
            "n_neurons": self.n_neurons,
            "n_sentences": self.n_sentences,
            "n_words": int(m["corpus"]["n_words"]),
            "corpus": m["corpus"]["name"],
            "corpus_fingerprint": m["corpus"]["fingerprint"],
            "aggregation": m["aggregation"],
            "sentence_pooling": m["sentence_pooling"],
            "dtype": m["dtype"],
            "compression": m.get("compression", "none"),
            "sharded": bool(m.get("sharded", False)),
            "complete": m["complete"],
            "words_done": m["progress"]["words_done"],
            "windows": m["windows"],
            "tool_version": m["tool_version"],
        }

    # ---------------------------------------------------------------- checks
    def check_corpus(self, corpus: Corpus) -> None:
        """Raise :class:`FingerprintMismatchError` unless ``corpus`` is the store's corpus."""
        if corpus.fingerprint != self.corpus_fingerprint:
            if corpus.legacy_fingerprint == self.corpus_fingerprint:
                raise FingerprintMismatchError(
                    f"store {self.path} was written by an older neuronscope whose corpus "
                    "fingerprint could collide; re-extract it (or re-import it) to use it"
                )
            raise FingerprintMismatchError(
                f"corpus {corpus.name!r} (fingerprint {corpus.fingerprint}, "
                f"{corpus.n_words} words) is not the corpus store {self.path} was extracted "
                f"from ({self.meta['corpus']['name']!r}, fingerprint {self.corpus_fingerprint}, "
                f"{self.meta['corpus']['n_words']} words)"
            )

    # ---------------------------------------------------------------- words table
    def words(self) -> list[str]:
        """The word of every row."""
        return [str(w) for w in np.asarray(array(self._group, "words/word")[: self.n_words])]

    def sentence_ids(self) -> np.ndarray:
        """The sentence index of every row."""
        return np.asarray(array(self._group, "words/sentence_id")[: self.n_words], dtype=np.int64)

    def positions(self) -> np.ndarray:
        """The position inside its sentence of every row."""
        return np.asarray(array(self._group, "words/position")[: self.n_words], dtype=np.int64)

    # ---------------------------------------------------------------- activations
    def _array(self, component: str) -> zarr.Array:
        self.layout.offset(component)  # validates the name
        return array(self._group, f"activations/{component}")

    def layer(
        self, component: str, layer: int, rows: slice | np.ndarray | None = None
    ) -> np.ndarray:
        """All neurons of one layer as a ``(n_words, neurons)`` float32 array."""
        sl = self.layout.layer_slice(component, layer)
        off = self.layout.offset(component)
        return self._read(component, rows, slice(sl.start - off, sl.stop - off))

    def component(
        self, component: str, layers: Sequence[int] | None = None, rows: slice | None = None
    ) -> np.ndarray:
        """Neurons of some (default: all) layers of a component, layers side by side."""
        self.layout.offset(component)  # the clear error for an unknown component
        comp = self.layout.components[component]
        if layers is None or list(layers) == list(comp.layers):
            return self._read(component, rows, slice(None))
        return np.concatenate([self.layer(component, layer, rows) for layer in layers], axis=1)

    def neurons(self, neurons: Iterable[str | int], rows: slice | None = None) -> np.ndarray:
        """Chosen neurons (names or global ids) as ``(n_words, k)`` float32, in the given order."""
        ids = self.layout.ids(neurons)
        out = np.empty((self._n_rows(rows), len(ids)), dtype=np.float32)
        for component in self.components:
            off, size = self.layout.offset(component), self.layout.components[component].size
            picked = np.nonzero((ids >= off) & (ids < off + size))[0]
            if not len(picked):
                continue
            if picked[-1] - picked[0] + 1 == len(picked):  # straight into place, no scatter
                self.read_into(component, rows, ids[picked] - off,
                               out[:, picked[0]:picked[-1] + 1])
            else:
                out[:, picked] = self._read(component, rows, ids[picked] - off)
        return out

    def matrix(self, rows: slice | None = None) -> np.ndarray:
        """Every neuron of every component as one float32 array. Loads it all: small stores only."""
        out = np.empty((self._n_rows(rows), self.n_neurons), dtype=np.float32)
        col = 0
        for name in self.components:  # each component straight into its columns: no concat
            size = self.layout.components[name].size
            self.read_into(name, rows, slice(None), out[:, col:col + size])
            col += size
        return out

    def dask(self, component: str | None = None) -> Any:
        """A lazy Dask array ``(n_words, neurons)`` of one component, or of all side by side."""
        import dask.array as da

        names = [component] if component is not None else self.components
        parts = []
        for c in names:
            arr = self._array(c)
            part = da.from_zarr(arr)[: self.n_words]
            if arr.attrs.get(BFLOAT16_ATTR, False):
                part = part.map_blocks(decode, True, dtype=np.float32)
            parts.append(part)
        return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=1)

    def iter_chunks(
        self, neurons: Iterable[str | int] | None = None, chunk_words: int | None = None
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(start, stop, block)`` over rows; ``block`` is float32 ``(stop-start, k)``.

        Peak memory is one block, so streaming methods work on stores larger than RAM.
        """
        step = chunk_words or self.chunk_words
        ids = None if neurons is None else list(neurons)
        for start in range(0, self.n_words, step):
            stop = min(start + step, self.n_words)
            rows = slice(start, stop)
            block = self.matrix(rows) if ids is None else self.neurons(ids, rows)
            yield start, stop, block

    def sentence_vectors(self, component: str) -> np.ndarray:
        """Pooled sentence vectors ``(n_sentences, n_layers * neurons)`` of a component."""
        key = f"sentences/{component}"
        if self.meta["sentence_pooling"] == "none" or key not in self._group:
            raise StoreError(f"store {self.path} has no sentence vectors for {component!r}")
        arr = array(self._group, key)
        return decode(arr[:], bool(arr.attrs.get(BFLOAT16_ATTR, False)))

    def _n_rows(self, rows: slice | np.ndarray | None) -> int:
        if rows is None:
            return self.n_words
        if isinstance(rows, slice):
            return len(range(*rows.indices(self.n_words)))
        return len(rows)

    def _read(self, component: str, rows: slice | np.ndarray | None, cols: Any) -> np.ndarray:
        size = self.layout.components[component].size
        width = len(range(*cols.indices(size))) if isinstance(cols, slice) else len(cols)
        out = np.empty((self._n_rows(rows), width), dtype=np.float32)
        self.read_into(component, rows, cols, out)
        return out

    def read_into(self, component: str, rows: slice | np.ndarray | None, cols: Any,
                  out: np.ndarray) -> None:
        """Rows x columns (of the component's own columns) as float32, written into ``out``.

        ``out`` may be a strided slice of a wider array (a view's or matrix's columns):
        nothing is concatenated or copied twice.
        """
        arr = self._array(component)
        if rows is None:
            rows = slice(0, self.n_words, 1)
        elif isinstance(rows, slice):
            rows = slice(*rows.indices(self.n_words))
        plan = self._plan(component, arr) if self.fast_reads else None
        if plan is not None and isinstance(rows, slice) and rows.step == 1:
            if self._fast_read(component, plan, rows, cols, out):
                return
        bf16 = bool(arr.attrs.get(BFLOAT16_ATTR, False))
        if isinstance(cols, np.ndarray) and len(cols):
            lo, hi = int(cols.min()), int(cols.max()) + 1
            if hi - lo == len(cols) and np.all(np.diff(cols) == 1):
                data: Any = arr[rows, lo:hi]  # already in order: no gather
            elif hi - lo <= 4 * len(cols):
                # Close-together columns: one contiguous read, then pick in memory. Zarr's
                # per-column orthogonal selection costs ~8x more CPU for a whole layer.
                data = np.asarray(arr[rows, lo:hi])[:, cols - lo]
            else:
                # Scattered columns: orthogonal indexing reads only the chunks holding them.
                data = arr.get_orthogonal_selection((rows, cols))
        else:
            data = arr[rows, cols]
        decode_into(np.asarray(data), out, bf16)

    def _plan(self, component: str, arr: zarr.Array) -> Plan | None:
        if component not in self._plans:
            local = self.meta["format_version"] == FORMAT_VERSION
            self._plans[component] = plan_for(
                arr, self.path / "activations" / component if local else None)
        return self._plans[component]

    def _fast_read(self, component: str, plan: Plan, rows: slice, cols: Any,
                   out: np.ndarray) -> bool:
        """Read through ``fastread``; False when the column selection is not one it takes."""
        span = (rows.start, rows.stop)
        key = f"activations/{component}"

        def region(lo: int, hi: int, dest: np.ndarray) -> None:
            read_region(plan, span, (lo, hi), dest, self._entries, self._check, key)

        if isinstance(cols, slice):
            lo, hi, step = cols.indices(plan.shape[1])
            if step != 1:
                return False
            region(lo, hi, out)
            return True
        cols = np.asarray(cols)
        if cols.ndim != 1 or not len(cols) or cols.dtype.kind not in "iu":
            return False
        lo, hi = int(cols.min()), int(cols.max()) + 1
        if hi - lo == len(cols) and np.all(np.diff(cols) == 1):
            region(lo, hi, out)
            return True
        # Scattered columns: one read per chunk column holding some, then a pick in memory.
        groups = cols // plan.chunk_shape[1]
        for g in np.unique(groups):
            where = np.flatnonzero(groups == g)
            glo, ghi = int(cols[where].min()), int(cols[where].max()) + 1
            block = np.empty((span[1] - span[0], ghi - glo), dtype=np.float32)
            region(glo, ghi, block)
            out[:, where] = block[:, cols[where] - glo]
        return True

    def __repr__(self) -> str:
        comps = ", ".join(
            f"{n}: {len(c.layers)}x{c.neurons}" for n, c in self.layout.components.items()
        )
        state = "complete" if self.complete else "PARTIAL"
        return f"ActivationStore({self.path}, {self.n_words} words, {comps}, {state})"


def _open_group(path: Path, meta: Mapping[str, Any], layout: NeuronLayout,
                checksums: bool = True) -> zarr.Group:
    """The store's Zarr group, read through the chunk checks (see ``integrity``)."""
    version = meta["format_version"]
    if version == 1:
        warnings.warn(f"store {path} was written before chunk manifests (format 1): damaged "
                      "chunks cannot be detected; re-extract it to get the checks",
                      stacklevel=3)
        return zarr.open_group(str(path), mode="r")
    if version != FORMAT_VERSION:
        raise StoreError(f"store {path} has format version {version}; this neuronscope "
                         f"reads versions 1 and {FORMAT_VERSION}")
    group, problems = open_checked(path, meta, layout, read_manifest(path), checksums=checksums)
    if problems or group is None:
        raise DamagedStoreError(describe(path, problems))
    return group


def store_from_arrays(
    path: str | os.PathLike,
    corpus: Corpus,
    components: Mapping[str, np.ndarray | tuple[np.ndarray, Sequence[int]]],
    *,
    model_name: str = "arrays",
    model_fingerprint: str | None = None,
    aggregation: str = "unknown",
    dtype: str = "float32",
    chunk_words: int = 4096,
    overwrite: bool = False,
    compression: str = DEFAULT_COMPRESSION,
    sharded: bool = True,
) -> ActivationStore:
    """Write activations computed elsewhere into a store aligned with ``corpus``.

    Args:
        path: store directory to create.
        corpus: the words the rows belong to (row ``i`` = flat word ``i``).
        components: name -> ``(n_words, n_layers * neurons)`` array, or ``(array, layers)``
            to number the layers (default ``0..n_layers-1``, one layer when a bare array).
        model_name: recorded as the model's name.
        model_fingerprint: identity of the model; by default a hash of the name and shapes.
        aggregation: how subwords were combined, recorded in the metadata.
        dtype: storage dtype, float32, float16 or bfloat16 (reads return float32).
        chunk_words: rows per Zarr chunk.
        overwrite: replace an existing store at ``path``.
        compression: ``none``, ``zstd`` or ``blosc-lz4`` (see :mod:`neuronscope.store.layout`).
        sharded: group each row block's layer chunks into one shard file.
    """
    layouts: dict[str, dict[str, Any]] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in components.items():
        array, layers = (value if isinstance(value, tuple) else (value, [0]))
        array = np.asarray(array)
        layers = [int(x) for x in layers]
        if array.ndim != 2 or array.shape[0] != corpus.n_words:
            raise StoreError(
                f"component {name!r}: expected ({corpus.n_words}, n_neurons) activations for "
                f"corpus {corpus.name!r}, got shape {array.shape}"
            )
        if array.shape[1] % len(layers):
            raise StoreError(f"component {name!r}: {array.shape[1]} columns do not split into "
                             f"{len(layers)} equal layers")
        layouts[name] = {"layers": layers, "neurons": array.shape[1] // len(layers),
                         "head_dim": None, "source": "arrays", "modules": {}}
        arrays[name] = array
    if model_fingerprint is None:
        shapes = ";".join(f"{n}:{a.shape}" for n, a in arrays.items())
        model_fingerprint = hashlib.sha256(f"{model_name}|{shapes}".encode()).hexdigest()[:16]
    meta = {
        "tool_version": __version__,
        "model": {"name": model_name, "gguf_file": None, "model_type": None, "config_hash": None,
                  "fingerprint": model_fingerprint, "random_init": False, "seed": None,
                  "num_layers": max(len(c["layers"]) for c in layouts.values())},
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint,
                   "n_sentences": corpus.n_sentences, "n_words": corpus.n_words},
        "components": layouts,
        "aggregation": aggregation, "sentence_pooling": "none", "dtype": dtype,
        "block_words": chunk_words, "batch_size": None, "windows_config": None,
        "windows": {},
    }
    writer = StoreWriter.create(path, meta, corpus, overwrite=overwrite, chunk_words=chunk_words,
                                compression=compression, sharded=sharded)
    try:
        for name, array in arrays.items():
            for start in range(0, corpus.n_words, chunk_words):
                writer.write_rows(name, start, array[start : start + chunk_words])
        writer.commit(corpus.n_words, corpus.n_sentences)
        writer.finalize()
    finally:
        writer.close()
    return ActivationStore(path)
