"""Integrity of an activation store: a manifest of its chunks, a metadata schema, the checks.

Every file Zarr writes into a store (chunks and array metadata) goes through
:class:`ChunkStore`, which records the file's size and CRC-32C. The writer saves these in
``manifest.json`` before it records progress in ``neuronscope.json``, so every row a store
claims to hold is listed. Readers then check:

- on open, cheaply: the metadata against a schema and against the arrays' shapes, the
  manifest covers every chunk of the rows written, every listed file exists with its size;
- on read: each chunk Zarr reads has its listed size and checksum. CRC-32C runs at several
  GB/s (``google-crc32c``, a dependency of Zarr), which keeps the cost small next to the read;
- :func:`verify` (``neuronscope verify``): everything above for every file, plus the words
  table (sentence ids and positions).

A chunk that is missing, truncated or altered is therefore an error that names it, never the
fill value (NaN, empty words, sentence 0) Zarr would silently return. CRC-32C detects
accidental damage (disk, copy, truncation, bit flips), not deliberate tampering.

Rows beyond ``progress.words_done`` of an interrupted store may be rewritten when it is
resumed; chunks that hold any such row are checked for existence and size only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.storage import LocalStore

from neuronscope.errors import DamagedStoreError, NeuronscopeError
from neuronscope.store import faults
from neuronscope.store.dtypes import BFLOAT16_ATTR
from neuronscope.store.meta import read_meta
from neuronscope.store.names import NeuronLayout

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "neuronscope-chunk-manifest"
HASH = "crc32c"

#: key (path relative to the store) -> [size in bytes, CRC-32C]
Entries = dict[str, list[int]]


def checksum(data: np.ndarray) -> int:
    """CRC-32C of a byte array."""
    return int(google_crc32c.extend(0, np.ascontiguousarray(data)))


class ChunkStore(LocalStore):
    """A Zarr ``LocalStore`` that records every file written and checks every file read.

    Args:
        root: the store directory.
        read_only: open read-only.
        entries: the manifest, updated in place by writes.
        check: None for a writer (reads unchecked: a resumed writer re-reads chunks it is
            about to rewrite), else ``key -> bool``: whether to compare the checksum of a
            listed file on read (size and existence are always compared).
    """

    def __init__(self, root: Path | str, *, read_only: bool = False,
                 entries: Entries | None = None,
                 check: Callable[[str], bool] | None = None) -> None:
        super().__init__(root, read_only=read_only)
        self.entries: Entries = entries if entries is not None else {}
        self.check = check

    def with_read_only(self, read_only: bool = False) -> ChunkStore:
        # Zarr may reopen a store read-only; the copy shares the manifest.
        return ChunkStore(self.root, read_only=read_only, entries=self.entries, check=self.check)

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        buf = await super().get(key, prototype, byte_range)
        if self.check is not None and byte_range is None:
            entry = self.entries.get(key)
            if entry is not None:
                await asyncio.to_thread(self._check, key, buf, entry)
        return buf

    def _check(self, key: str, buf: Buffer | None, entry: list[int]) -> None:
        where = f"store {self.root}"
        if buf is None:
            raise DamagedStoreError(f"{where} is damaged: file {key} is missing")
        data = buf.as_numpy_array()
        if len(data) != entry[0]:
            raise DamagedStoreError(f"{where} is damaged: file {key} has {len(data)} bytes, "
                                    f"the manifest says {entry[0]} (truncated or replaced)")
        if self.check is not None and self.check(key) and checksum(data) != entry[1]:
            raise DamagedStoreError(f"{where} is damaged: file {key} fails its checksum "
                                    "(its content changed after it was written)")

    async def set(self, key: str, value: Buffer) -> None:
        data = value.as_numpy_array()
        crc = await asyncio.to_thread(checksum, data)
        await super().set(key, value)
        self.entries[key] = [int(data.nbytes), crc]
        faults.checkpoint("write:chunk")

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await super().set_if_not_exists(key, value)
        data = np.fromfile(self.root / key, dtype=np.uint8)
        self.entries[key] = [int(data.nbytes), checksum(data)]

    async def delete(self, key: str) -> None:
        await super().delete(key)
        self.entries.pop(key, None)

    async def delete_dir(self, prefix: str) -> None:
        await super().delete_dir(prefix)
        for key in [k for k in self.entries if k.startswith(prefix.rstrip("/") + "/")]:
            del self.entries[key]


def array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a store's group (a clear error if it is a group instead)."""
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise DamagedStoreError(f"store {group.store} is damaged: {name} is not an array")
    return node


# ---------------------------------------------------------------------------- manifest
def manifest_json(entries: Entries) -> dict[str, Any]:
    """The manifest file's content."""
    return {"format": MANIFEST_FORMAT, "hash": HASH, "files": dict(sorted(entries.items()))}


def read_manifest(path: Path) -> Entries:
    """Read and check the manifest of the store at ``path``."""
    file = path / MANIFEST_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedStoreError(f"store {path} is damaged: {MANIFEST_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedStoreError(f"store {path} is damaged: {file}: unreadable: {err}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DamagedStoreError(f"store {path} is damaged: {file} is not a chunk manifest")
    if data.get("hash") != HASH:
        raise DamagedStoreError(f"store {path} is damaged: {file}: unknown hash "
                                f"{data.get('hash')!r} (expected {HASH!r})")
    files = data.get("files")
    if not isinstance(files, dict):
        raise DamagedStoreError(f"store {path} is damaged: {file}: no 'files' table")
    for key, entry in files.items():
        if (not isinstance(entry, list) or len(entry) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                           for x in entry)):
            raise DamagedStoreError(f"store {path} is damaged: {file}: entry {key!r} is not "
                                    "[size, checksum]")
    return files


# ---------------------------------------------------------------------------- schema
_INT, _STR, _BOOL, _DICT = "an integer", "a string", "true or false", "an object"
_SCHEMA: dict[str, Any] = {
    "format": _STR, "format_version": _INT, "complete": _BOOL, "chunk_words": _INT,
    "dtype": _STR, "aggregation": _STR, "sentence_pooling": _STR, "windows": _DICT,
    "model": {"name": _STR, "fingerprint": _STR},
    "corpus": {"name": _STR, "fingerprint": _STR, "n_sentences": _INT, "n_words": _INT},
    "progress": {"words_done": _INT, "sentences_done": _INT},
    "components": _DICT,
}
_COMPONENT = {"layers": "a list of integers", "neurons": _INT}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _DICT:
        return isinstance(value, dict)
    return (isinstance(value, list)  # a list of integers
            and all(isinstance(x, int) and not isinstance(x, bool) for x in value))


def _schema_problems(data: Mapping[str, Any], schema: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for key, kind in schema.items():
        name = f"{where}{key}"
        if key not in data:
            problems.append(f"missing key {name}")
        elif isinstance(kind, dict):
            if not isinstance(data[key], dict):
                problems.append(f"{name} must be an object, got {data[key]!r:.60}")
            else:
                problems.extend(_schema_problems(data[key], kind, name + "."))
        elif not _type_ok(data[key], kind):
            problems.append(f"{name} must be {kind}, got {data[key]!r:.60}")
    return problems


def meta_problems(meta: Mapping[str, Any]) -> list[str]:
    """Problems of a store's metadata on its own: keys, types and counts."""
    problems = _schema_problems(meta, _SCHEMA, "")
    if problems:
        return problems
    comps = meta["components"]
    if not comps:
        problems.append("components is empty")
    for name, comp in comps.items():
        if not isinstance(comp, dict):
            problems.append(f"components.{name} must be an object")
            continue
        problems.extend(_schema_problems(comp, _COMPONENT, f"components.{name}."))
        if not problems and (comp["neurons"] < 1 or not comp["layers"]):
            problems.append(f"components.{name} has no neurons or no layers")
    corpus, progress = meta["corpus"], meta["progress"]
    if corpus["n_words"] < 1 or corpus["n_sentences"] < 1:
        problems.append(f"corpus.n_words {corpus['n_words']} and corpus.n_sentences "
                        f"{corpus['n_sentences']} must be positive")
    if not 0 <= progress["words_done"] <= corpus["n_words"]:
        problems.append(f"progress.words_done {progress['words_done']} is outside "
                        f"0..{corpus['n_words']} (corpus.n_words)")
    if not 0 <= progress["sentences_done"] <= corpus["n_sentences"]:
        problems.append(f"progress.sentences_done {progress['sentences_done']} is outside "
                        f"0..{corpus['n_sentences']} (corpus.n_sentences)")
    if meta["complete"] and progress["words_done"] != corpus["n_words"]:
        problems.append(f"marked complete but progress.words_done is {progress['words_done']} "
                        f"of {corpus['n_words']}")
    if meta["dtype"] not in ("float32", "float16", "bfloat16"):
        problems.append(f"dtype must be float32, float16 or bfloat16, got {meta['dtype']!r}")
    if meta["chunk_words"] < 1:
        problems.append(f"chunk_words must be positive, got {meta['chunk_words']}")
    return problems


# ---------------------------------------------------------------------------- the checks
def layout_of(path: Path, meta: Mapping[str, Any]) -> NeuronLayout:
    """The neuron layout the metadata describes; a clear error if it cannot be built."""
    try:
        return NeuronLayout.from_meta(meta["components"])
    except (ValueError, TypeError, KeyError) as err:
        raise DamagedStoreError(describe(path, [f"neuronscope.json: components: {err}"])) from None


_FLOATS = ("float32", "float16", "uint16")  # uint16: bfloat16 bits (see ``dtypes``)


def _expected_arrays(meta: Mapping[str, Any], layout: NeuronLayout) -> dict[str, tuple]:
    """Array path -> (shape, dtype, rows settled): what the metadata says must be there."""
    n_words, n_sent = meta["corpus"]["n_words"], meta["corpus"]["n_sentences"]
    done = n_words if meta["complete"] else meta["progress"]["words_done"]
    sent_done = n_sent if meta["complete"] else meta["progress"]["sentences_done"]
    out: dict[str, tuple] = {}
    for name, comp in layout.components.items():
        # Any float: a derived component (e.g. SAE latents) may differ from the store's dtype.
        out[f"activations/{name}"] = ((n_words, comp.size), _FLOATS, done)
        # Derived components (added after extraction) have no pooled sentence vectors.
        derived = bool(meta["components"].get(name, {}).get("derived"))
        if meta["sentence_pooling"] != "none" and not derived:
            out[f"sentences/{name}"] = ((n_sent, comp.size), _FLOATS, sent_done)
    for name, dtype in (("word", None), ("sentence_id", ("int32",)), ("position", ("int32",))):
        out[f"words/{name}"] = ((n_words,), dtype, n_words)
    return out


class SettledKeys:
    """``key -> bool``: whether a file holds only final rows, so that its checksum holds.

    In an interrupted store, a chunk holding rows past ``progress.words_done`` may be
    rewritten by the resume (and sentence-vector chunks are rewritten block by block); their
    checksums are not compared, only their existence and size. A plain class, not a closure,
    so that a store can be pickled.
    """

    def __init__(self, meta: Mapping[str, Any], checksums: bool = True) -> None:
        self.complete = bool(meta["complete"])
        self.words_done = int(meta["progress"]["words_done"])
        self.chunk_words = int(meta["chunk_words"])
        self.checksums = checksums

    def __call__(self, key: str) -> bool:
        if not self.checksums:
            return False
        if self.complete:
            return True
        path, sep, coords = key.partition("/c/")
        if not sep or path.startswith("words/"):
            return True  # array metadata and the words table are final from creation
        if path.startswith("activations/"):
            return (int(coords.split("/")[0]) + 1) * self.chunk_words <= self.words_done
        return False


def open_checked(path: Path, meta: Mapping[str, Any], layout: NeuronLayout, entries: Entries,
                 *, deep: bool = False, checksums: bool = True,
                 ) -> tuple[zarr.Group | None, list[str]]:
    """Open a store's Zarr group for checked reading and list its problems.

    ``deep`` also compares the checksum of every listed file and the words table;
    ``checksums=False`` makes reads check existence and size only.
    """
    problems = []
    settled = SettledKeys(meta)
    for key, (size, crc) in entries.items():
        file = path / key
        try:
            actual = file.stat().st_size
        except OSError:
            problems.append(f"file {key} is missing")
            continue
        if actual != size:
            problems.append(f"file {key} has {actual} bytes, the manifest says {size}")
        elif deep and settled(key):
            if checksum(np.fromfile(file, dtype=np.uint8)) != crc:
                problems.append(f"file {key} fails its checksum")
    if problems:
        return None, problems
    chunks = ChunkStore(path, read_only=True, entries=entries,
                        check=SettledKeys(meta, checksums=checksums))
    try:
        group = zarr.open_group(store=chunks, mode="r")
    except Exception as err:  # zarr raises several types for broken metadata
        return None, [f"its Zarr metadata cannot be read: {err}"]
    for name, (shape, dtype, done) in _expected_arrays(meta, layout).items():
        try:
            arr = group[name]
        except Exception as err:  # a missing or unreadable array
            problems.append(f"array {name} cannot be opened: {err}")
            continue
        if not isinstance(arr, zarr.Array):
            problems.append(f"{name} is not an array")
            continue
        if tuple(arr.shape) != shape:
            problems.append(f"array {name} has shape {tuple(arr.shape)}, the metadata says "
                            f"{shape} (corpus, components, layers and neurons)")
            continue
        if dtype is not None and str(arr.dtype) not in dtype:
            problems.append(f"array {name} has dtype {arr.dtype}, expected {' or '.join(dtype)}")
        elif str(arr.dtype) == "uint16" and not arr.attrs.get(BFLOAT16_ATTR, False):
            problems.append(f"array {name} has dtype uint16 without the {BFLOAT16_ATTR} mark")
        if name.startswith("activations/"):
            comp = layout.components[name.split("/", 1)[1]]
            if arr.chunks[1] != comp.neurons:
                problems.append(f"array {name} has chunks of {arr.chunks[1]} columns, the "
                                f"metadata says {comp.neurons} neurons per layer")
        if f"{name}/zarr.json" not in entries:
            problems.append(f"{name}/zarr.json is not in the manifest")
        # Every chunk holding a committed row was written before the progress was recorded.
        # Files are chunks, or shards of chunks: the grid of files is the metadata's grid.
        grid_meta = arr.metadata.chunk_grid
        files = (tuple(int(n) for n in grid_meta.chunk_shape)
                 if isinstance(grid_meta, RegularChunkGrid) else tuple(arr.chunks))
        grid = [range(-(-done // files[0]))] + [
            range(-(-int(n) // f)) for n, f in zip(arr.shape[1:], files[1:], strict=True)]
        for coords in itertools.product(*grid):
            key = f"{name}/{arr.metadata.encode_chunk_key(coords)}"
            if key not in entries:
                problems.append(f"chunk {key} is not in the manifest (never written)")
                break
    if deep and not problems:
        problems.extend(_words_problems(group, meta))
    return group, problems


def _words_problems(group: zarr.Group, meta: Mapping[str, Any]) -> list[str]:
    """Sentence ids must count up from 0 by steps of 0 or 1; positions restart with each."""
    try:
        sid = np.asarray(array(group, "words/sentence_id")[:], dtype=np.int64)
        pos = np.asarray(array(group, "words/position")[:], dtype=np.int64)
        array(group, "words/word")[:]
    except DamagedStoreError as err:
        return [str(err)]
    n_sent = meta["corpus"]["n_sentences"]
    step = np.diff(sid)
    expected = np.zeros_like(pos)
    if len(sid):
        run = np.concatenate([[0], np.flatnonzero(step) + 1])
        expected = np.arange(len(pos)) - np.repeat(run, np.diff(np.append(run, len(pos))))
    if len(sid) and (sid[0] < 0 or sid[-1] >= n_sent or np.any(step < 0)):
        return [f"words/sentence_id is not ordered within 0..{n_sent - 1}"]
    if not np.array_equal(pos, expected):
        return ["words/position does not count words within each sentence"]
    return []


def describe(path: Path, problems: list[str], limit: int = 4) -> str:
    """One error line for a damaged store."""
    shown = "; ".join(problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return (f"store {path} is damaged: {shown}{more}. Run `neuronscope verify {path}` for the "
            "full list; re-extract it (or restore a copy)")


def verify(path: str | os.PathLike) -> list[str]:
    """Every problem of the store at ``path`` (empty when it is intact). Reads all of it."""
    path = Path(path)
    try:
        meta = read_meta(path)
    except DamagedStoreError as err:
        return [str(err).split(" is damaged: ", 1)[-1]]
    problems = meta_problems(meta)
    if problems:
        return [f"neuronscope.json: {p}" for p in problems]
    if meta["format_version"] == 1:
        return []  # written before manifests: nothing to compare the chunks with
    try:
        layout = NeuronLayout.from_meta(meta["components"])
        entries = read_manifest(path)
    except DamagedStoreError as err:
        return [str(err).split(" is damaged: ", 1)[-1]]
    except (NeuronscopeError, ValueError, TypeError, KeyError) as err:
        return [f"neuronscope.json: components: {err}"]
    _, problems = open_checked(path, meta, layout, entries, deep=True)
    return problems
