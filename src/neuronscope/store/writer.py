"""Writing a store: atomic creation, locked writes, a manifest committed with the progress."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.array_spec import ArrayConfig

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import DamagedStoreError, StoreError
from neuronscope.store import faults
from neuronscope.store.dtypes import array_attributes, encode, zarr_dtype
from neuronscope.store.integrity import (
    MANIFEST_FILE,
    ChunkStore,
    Entries,
    array,
    describe,
    layout_of,
    manifest_json,
    meta_problems,
    open_checked,
    read_manifest,
)
from neuronscope.store.layout import (
    DEFAULT_COMPRESSION,
    activation_array_kwargs,
    check_compression,
    compressors,
)
from neuronscope.store.lock import StoreLock
from neuronscope.store.meta import (
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    now,
    read_meta,
    write_json_atomic,
)
from neuronscope.store.names import NeuronLayout
from neuronscope.store.rawwrite import RawWriter


class StoreWriter:
    """Creates a store and fills it chunk by chunk, recording progress for resumption.

    The writer holds the store's lock from :meth:`create` or :meth:`resume` until
    :meth:`finalize` or :meth:`close`.
    """

    def __init__(self, path: Path, meta: dict[str, Any], *, entries: Entries | None = None,
                 lock: StoreLock | None = None) -> None:
        self.path = path
        self.meta = meta
        self._lock = lock
        self._chunks = ChunkStore(path, entries=entries)
        self._group = zarr.open_group(store=self._chunks, mode="r+")
        # Rows of uncompressed arrays skip Zarr's encoding (see store.rawwrite).
        self._raw = RawWriter(path, self._chunks.entries)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        meta: dict[str, Any],
        corpus: Corpus,
        *,
        overwrite: bool = False,
        chunk_words: int = 4096,
        compression: str = DEFAULT_COMPRESSION,
        sharded: bool = True,
    ) -> StoreWriter:
        """Create an empty store for ``corpus`` with the components described in ``meta``.

        The store is built under a temporary name and renamed into place; an existing store
        is replaced (``overwrite``) only then, and never while another process writes it.
        ``meta["dtype"]`` is the storage dtype (float32, float16 or bfloat16);
        ``compression`` and ``sharded`` choose the activation arrays' codecs and files
        (see :mod:`neuronscope.store.layout`).
        """
        path = Path(path)
        _refuse_existing(path, overwrite)
        check_compression(compression)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create store {path}: {err.strerror} ({err.filename})"
                             ) from None
        lock = StoreLock(path).acquire()
        try:
            _clean_leftovers(path)
            _refuse_existing(path, overwrite)
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.creating-"))
            faults.checkpoint("create:tmpdir")
            try:
                meta, entries = _build(tmp, meta, corpus, chunk_words, compression, sharded)
                _swap_into_place(tmp, path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        except OSError as err:
            lock.release()
            raise StoreError(f"cannot create store {path}: {err.strerror or err} "
                             f"({err.filename}); nothing was created") from None
        except BaseException:
            lock.release()
            raise
        return cls(path, meta, entries=entries, lock=lock)

    @classmethod
    def resume(cls, path: str | os.PathLike) -> StoreWriter:
        """Reopen an interrupted store for writing (its committed rows are checked first)."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"cannot resume: {path} does not exist (a store whose creation "
                             "was interrupted is not kept: start the extraction again)")

        def refuse(meta: dict[str, Any]) -> str | None:
            if meta["complete"]:
                return f"store {path} is already complete; nothing to resume"
            if meta["format_version"] != FORMAT_VERSION:
                return (f"cannot resume {path}: it was written by an older neuronscope (no "
                        "chunk manifest); extract it again with --overwrite")
            return None

        return cls._reopen(path, refuse, clean_partial=True)

    @classmethod
    def append(cls, path: str | os.PathLike) -> StoreWriter:
        """Open a complete, intact store to add or remove arrays (e.g. a derived component).

        Create, fill or delete arrays through :attr:`group`: every file is recorded in the
        manifest, which :meth:`update_meta` saves before the metadata (so a crash leaves at
        worst an array the metadata does not list). Holds the lock until :meth:`close`.
        """
        path = Path(path)

        def refuse(meta: dict[str, Any]) -> str | None:
            if not meta["complete"] or meta["format_version"] != FORMAT_VERSION:
                return (f"cannot add to store {path}: it is incomplete or was written by an "
                        "older neuronscope (no chunk manifest)")
            return None

        return cls._reopen(path, refuse, clean_partial=False)

    @classmethod
    def _reopen(cls, path: Path, refuse: Callable[[dict[str, Any]], str | None], *,
                clean_partial: bool) -> StoreWriter:
        """Lock an existing store, check its metadata and committed chunks, and reopen it;
        ``refuse(meta)`` returns why this kind of reopening is not allowed (or None)."""
        lock = StoreLock(path).acquire()
        try:
            if clean_partial:  # temporary files of writes a crash cut short (Zarr's, ours)
                for leftover in [*path.rglob("*.partial"), *path.glob(".*.tmp")]:
                    leftover.unlink(missing_ok=True)
            meta = read_meta(path)
            if meta_problems(meta):
                raise DamagedStoreError(describe(path, meta_problems(meta)))
            reason = refuse(meta)
            if reason is not None:
                raise StoreError(reason)
            entries = read_manifest(path)
            _, problems = open_checked(path, meta, layout_of(path, meta), entries)
            if problems:
                raise DamagedStoreError(describe(path, problems))
        except BaseException:
            lock.release()
            raise
        return cls(path, meta, entries=entries, lock=lock)

    @property
    def group(self) -> zarr.Group:
        """The store's Zarr group, writable; writes and deletes are recorded in the manifest."""
        return self._group

    @property
    def words_done(self) -> int:
        """Rows already on disk."""
        return int(self.meta["progress"]["words_done"])

    def write_rows(self, component: str, start: int,
                   block: np.ndarray | Sequence[np.ndarray]) -> None:
        """Write rows ``start : start + len(block)`` of a component's activations.

        ``block`` may be a list of consecutive row blocks: written as one, and on the direct
        path (:mod:`neuronscope.store.rawwrite`) without being concatenated first.
        """
        parts = [block] if isinstance(block, np.ndarray) else list(block)
        arr = array(self._group, f"activations/{component}")
        data = [encode(p, self.meta["dtype"], arr.dtype) for p in parts]
        try:
            if not self._raw.write_files(arr, arr.path, start, data):
                rows = data[0] if len(data) == 1 else np.concatenate(data)
                arr[start : start + len(rows)] = rows
        except OSError as err:
            raise self._write_error(err) from None
        faults.checkpoint("write:rows")

    def write_sentences(self, component: str, start: int, block: np.ndarray) -> None:
        """Write pooled sentence vectors for sentences ``start : start + len(block)``."""
        arr = array(self._group, f"sentences/{component}")
        data = encode(block, self.meta["dtype"], arr.dtype)
        try:
            # A block's sentences go into a chunk of 4,096 sentences: in place, not read
            # back and rewritten whole (see store.rawwrite).
            if not self._raw.write_rows_in_place(arr, arr.path, start, data):
                arr[start : start + len(data)] = data
        except OSError as err:
            raise self._write_error(err) from None
        faults.checkpoint("write:sentences")

    def add_files(self, entries: Entries) -> None:
        """List files another process wrote into this store (e.g. a Dask worker's chunks)
        in the manifest; they count from the next :meth:`commit`."""
        self._chunks.entries.update(entries)

    def commit(self, words_done: int, sentences_done: int) -> None:
        """Record that every row below ``words_done`` is on disk."""
        self.meta["progress"] = {
            "words_done": int(words_done),
            "sentences_done": int(sentences_done),
        }
        self._save()

    def update_meta(self, **fields: Any) -> None:
        """Merge fields into the metadata and save it."""
        self.meta.update(fields)
        self._save()

    def finalize(self, **fields: Any) -> None:
        """Mark the store complete; call only after every row was written and committed."""
        n_words = int(self.meta["corpus"]["n_words"])
        if self.words_done != n_words:
            raise StoreError(
                f"cannot finalize {self.path}: {self.words_done} of {n_words} words written"
            )
        faults.checkpoint("finalize:start")
        self.meta.update(fields, complete=True, finished=now())
        self._save()
        self.close()

    def close(self) -> None:
        """Release the store's lock (the store stays resumable if it is not complete)."""
        if self._lock is not None:
            self._lock.release()

    def _save(self) -> None:
        # The manifest first: every chunk of a committed row is listed before it counts.
        try:
            write_json_atomic(self.path / MANIFEST_FILE, manifest_json(self._chunks.entries),
                              indent=None)
            faults.checkpoint("commit:manifest")
            write_json_atomic(self.path / META_FILE, self.meta)
        except OSError as err:
            raise self._write_error(err) from None
        faults.checkpoint("commit:meta")

    def _write_error(self, err: OSError) -> StoreError:
        where = f" ({err.filename})" if err.filename else ""
        return StoreError(
            f"cannot write store {self.path}: {err.strerror or err}{where}. The "
            f"{self.words_done} words committed so far are kept: free space (or raise the "
            "file-size limit), then run the same extraction with --resume"
        )


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise StoreError(
                f"output store {path} already exists; pass --overwrite to replace it "
                "or --resume to continue an interrupted extraction"
            )
        if not (path / META_FILE).exists():
            # Never delete a folder we did not write.
            raise StoreError(f"refusing to overwrite {path}: it is not a neuronscope store")


def _clean_leftovers(path: Path) -> None:
    """Remove what killed creations left next to ``path`` (call under the store's lock).

    ``.creating-`` folders are never a store yet. An ``.old-`` folder is a replaced store:
    garbage once the new one is in place, else (killed between the two renames of the swap)
    it is put back.
    """
    creating, old = f".{path.name}.creating-", f".{path.name}.old-"
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith((creating, old))]
    for p in leftovers:
        if p.name.startswith(creating):
            shutil.rmtree(p, ignore_errors=True)
    olds = sorted((p for p in leftovers if p.name.startswith(old)),
                  key=lambda p: p.stat().st_mtime)
    if olds and not path.exists():
        os.replace(olds.pop(), path)
    for p in olds:
        shutil.rmtree(p, ignore_errors=True)


def _swap_into_place(tmp: Path, path: Path) -> None:
    old = None
    if path.exists():
        if any(path.iterdir()):
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            faults.checkpoint("create:moved-old")
        else:
            path.rmdir()
    os.replace(tmp, path)
    faults.checkpoint("create:swapped")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(path: Path, meta: dict[str, Any], corpus: Corpus, chunk_words: int,
           compression: str, sharded: bool) -> tuple[dict[str, Any], Entries]:
    """Write a new, empty store into the (temporary) folder ``path``."""
    layout = NeuronLayout.from_meta(meta["components"])
    dtype = zarr_dtype(meta["dtype"])
    attributes = array_attributes(meta["dtype"])
    n_words, n_sent = corpus.n_words, corpus.n_sentences
    meta = dict(meta)
    meta.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        complete=False,
        created=now(),
        chunk_words=chunk_words,
        compression=compression,
        sharded=sharded,
        progress={"words_done": 0, "sentences_done": 0},
    )
    chunks = ChunkStore(path)
    group = zarr.open_group(store=chunks, mode="a")
    # Every chunk is written, even one equal to the fill value, so the manifest lists all.
    config = ArrayConfig(order="C", write_empty_chunks=True)
    for name, comp in layout.components.items():
        group.create_array(
            f"activations/{name}",
            shape=(n_words, comp.size),
            dtype=dtype,
            fill_value=_fill(dtype),
            attributes=attributes,
            config=config,
            **activation_array_kwargs(n_words, len(comp.layers), comp.neurons, dtype,
                                      chunk_words, compression, sharded),
        )
        faults.checkpoint("create:array")
        if meta["sentence_pooling"] != "none":
            group.create_array(
                f"sentences/{name}",
                shape=(n_sent, comp.size),
                chunks=(min(4096, max(n_sent, 1)), comp.size),
                dtype=dtype,
                fill_value=_fill(dtype),
                attributes=attributes,
                compressors=compressors(compression, dtype.itemsize) or None,
                config=config,
            )
    chunk = (min(65536, max(n_words, 1)),)
    columns: dict[str, tuple[Any, np.ndarray]] = {
        "word": (str, np.array(corpus.words(), dtype=object)),
        "sentence_id": ("int32", corpus.sentence_ids()),
        "position": ("int32", corpus.positions()),
    }
    for name, (kind, values) in columns.items():
        group.create_array(f"words/{name}", shape=(n_words,), chunks=chunk, dtype=kind,
                           config=config)[:] = values
        faults.checkpoint("create:words")
    write_json_atomic(path / MANIFEST_FILE, manifest_json(chunks.entries), indent=None)
    faults.checkpoint("create:manifest")
    write_json_atomic(path / META_FILE, meta)
    faults.checkpoint("create:meta")
    return meta, chunks.entries


def _fill(dtype: np.dtype) -> Any:
    """The fill value of unwritten rows: NaN (bfloat16 bits of a quiet NaN for uint16)."""
    return 0x7FC0 if dtype == np.uint16 else np.nan
