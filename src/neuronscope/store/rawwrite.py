"""The fast write path: chunk files of uncompressed arrays written directly, not through Zarr.

Writing a block of rows through ``zarr.Array.__setitem__`` cost the extraction about a
quarter of its time on a 2-core machine (issue #16): Zarr copies every chunk into its own
buffer, compares it with the fill value, appends its CRC-32C with ``np.append`` (another
copy), assembles the shard (a third copy), and the manifest-recording store sums the file's
CRC once more; the per-sentence array's chunk (4,096 sentences x every neuron) was read back
and rewritten whole by every block. Those cycles are taken from the forward pass.

This module writes the same bytes itself, for the layouts neuronscope creates without
compression (see :mod:`neuronscope.store.layout`), which :func:`fastread.plan_for` already
describes for reading:

- **whole files** (:meth:`RawWriter.write_files`): rows that cover whole chunk files (or run
  to the array's end). A file is each inner chunk's bytes (C order; edge chunks padded with
  the fill value) followed, inside a shard, by its CRC-32C (little endian), then the shard
  index ((offset, nbytes) per inner chunk, ``2**64 - 1`` for chunks wholly outside the
  array, which Zarr never writes) and the index's CRC-32C. It is written to a ``.partial``
  file and renamed into place, as Zarr's ``LocalStore`` does: a crash leaves the old file or
  the new one (the writer's reopening removes the ``.partial`` leftovers);
- **rows in place** (:meth:`RawWriter.write_rows_in_place`): an unsharded chunk without CRC
  (the sentence vectors) is plain C-order bytes, so rows are written at their offset and
  nothing is read back. The first write to a chunk file in a process writes it whole
  (atomically, as above: rows already in the file are kept, rows after the written ones
  become the fill value); later writes only ``pwrite`` their rows. A crash can then tear
  only rows that were not committed (they come after the committed sentences, and the
  resumed run rewrites them). The file's CRC-32C for the manifest is kept incrementally:
  the CRC of the rows written so far, extended over the fill value after them.

Every file written is recorded in the manifest (size, CRC-32C of the whole file) like the
files Zarr writes through :class:`~neuronscope.store.integrity.ChunkStore`, and passes the
same ``write:chunk`` fault checkpoint. The files are bitwise equal to Zarr's
(``tests/store/test_rawwrite.py`` compares them); CRCs come from ``google_crc32c``, the
implementation Zarr's own ``crc32c`` codec uses. Anything else (compression, other layouts)
returns False and the caller writes through Zarr.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np
import zarr

from neuronscope.store import faults
from neuronscope.store.fastread import Plan, plan_for, pread_full, pwrite_full
from neuronscope.store.staged import StagedFile, Stages

_NO_CHUNK = np.uint64(2**64 - 1)  # the shard index entry of a chunk that is not stored
_FILL_PIECE_BYTES = 1 << 20  # fill-value bytes summed per CRC call
_STAGE_BYTES = 8 << 20  # a staging buffer's size (two per file being written)


@dataclass
class _Prefix:
    """Chunk file ``rows`` rows are written (of this process's writes), their CRC ``crc``."""

    rows: int
    crc: int


class RawWriter:
    """Writes rows of uncompressed arrays of one store straight into their chunk files.

    Args:
        root: the store directory.
        entries: the manifest (key -> [size, CRC-32C]), updated in place.
    """

    def __init__(self, root: Path, entries: dict[str, list[int]]) -> None:
        self.root = Path(root)
        self.entries = entries
        self._prefix: dict[str, _Prefix] = {}
        # Staging buffers (see store.staged), reused by every file; a lock, as files of one
        # store may be written from several threads.
        self._stages: list[Stages] = []
        self._stages_lock = threading.Lock()

    # ------------------------------------------------------------------ whole files
    def write_files(self, arr: zarr.Array, name: str, start: int,
                    parts: Sequence[np.ndarray]) -> bool:
        """Write rows ``start : start + n`` (every column) as whole files.

        ``parts`` are consecutive blocks of those rows (``n`` in all), in the array's stored
        elements: a block carried over from the previous write and the new one are taken
        as they are, never concatenated first. Returns False, writing nothing, unless the
        array is an uncompressed layout this module writes and the rows cover whole files
        (the last may end at the array's end).
        """
        plan = self._plan(arr)
        if plan is None or plan.inner_grid[0] != 1:
            return False
        fr = plan.file_shape[0]
        end = start + sum(len(p) for p in parts)
        if (start % fr or (end % fr and end != plan.shape[0]) or end > plan.shape[0]
                or end <= start or any(p.ndim != 2 or p.shape[1] != plan.shape[1]
                                       or p.dtype != plan.dtype for p in parts)):
            return False
        fill = _fill(arr, plan)
        rows = _Rows(parts, start)
        for fi in range(start // fr, -(-end // fr)):
            for fj in range(-(-plan.shape[1] // plan.file_shape[1])):
                self._write_file(plan, name, (fi, fj), rows, fill)
        return True

    def _write_file(self, plan: Plan, name: str, coords: tuple[int, int], rows: _Rows,
                    fill: np.ndarray) -> None:
        cr, cc = plan.chunk_shape
        r0 = coords[0] * plan.file_shape[0]
        c_base = coords[1] * plan.file_shape[1]
        row_bytes = cc * plan.dtype.itemsize

        def pieces(out: StagedFile) -> None:
            index = np.full((plan.inner_grid[1], 2), _NO_CHUNK, dtype="<u8")
            slab = max(1, _STAGE_BYTES // row_bytes)  # rows assembled at once
            at = 0
            for ic in range(plan.inner_grid[1]):
                c0 = c_base + ic * cc
                if c0 >= plan.shape[1]:
                    continue  # wholly outside the array: Zarr stores no such chunk
                inner = 0
                for s0 in range(0, cr, slab):
                    s1 = min(cr, s0 + slab)
                    room = out.reserve((s1 - s0) * row_bytes)
                    # Copied together straight into the staging buffer, summed while in cache.
                    _chunk(rows.get(r0 + s0, r0 + s1, c0, c0 + cc), (s1 - s0, cc), fill,
                           room.view(plan.dtype).reshape(s1 - s0, cc))
                    inner = int(google_crc32c.extend(inner, room))
                    out.push(room.nbytes)
                n = cr * row_bytes
                if plan.inner_crc:
                    out.write(np.array([inner], dtype="<u4"), small=True)
                    n += 4
                index[ic] = (at, n)
                at += n
            if plan.sharded:
                raw = index.view(np.uint8).reshape(-1)
                out.write(raw, small=True)
                if plan.index_crc:
                    out.write(_crc_bytes(raw), small=True)

        self._replace(f"{name}/{plan.key_of(coords)}", pieces)

    # ------------------------------------------------------------------ rows in place
    def write_rows_in_place(self, arr: zarr.Array, name: str, start: int,
                            data: np.ndarray) -> bool:
        """Write rows ``start : start + len(data)`` (every column) of an unsharded,
        uncompressed array whose chunks span every column, into their files' byte ranges.

        Returns False, writing nothing, for any other layout.
        """
        plan = self._plan(arr)
        end = start + len(data)
        if (plan is None or plan.sharded or plan.inner_crc or data.ndim != 2
                or plan.file_shape[1] < plan.shape[1] or data.shape[1] != plan.shape[1]
                or data.dtype != plan.dtype or end > plan.shape[0] or end <= start):
            return False
        fill = _fill(arr, plan)
        fr = plan.file_shape[0]
        for fi in range(start // fr, -(-end // fr)):
            a, b = max(start, fi * fr) - fi * fr, min(end, (fi + 1) * fr) - fi * fr
            rows = np.ascontiguousarray(data[fi * fr + a - start : fi * fr + b - start])
            self._rows_in_file(plan, f"{name}/{plan.key_of((fi, 0))}", (a, b), rows, fill)
        return True

    def _rows_in_file(self, plan: Plan, key: str, rows: tuple[int, int], data: np.ndarray,
                      fill: np.ndarray) -> None:
        fr, fc = plan.file_shape
        row_bytes = fc * plan.dtype.itemsize
        if fc != plan.shape[1]:  # chunks wider than the array: pad each row
            data = _chunk([data], (len(data), fc), fill)
        path = self.root / key
        prefix = self._prefix.get(key)
        if prefix is None or prefix.rows != rows[0] or not path.exists():
            # First write here (or out of order): the whole file, atomically.
            head = np.empty(rows[0] * row_bytes, dtype=np.uint8)
            if rows[0] and (not path.exists() or _read_into(path, head) < head.nbytes):
                head = np.broadcast_to(fill, (rows[0], fc)).copy().view(np.uint8).reshape(-1)
            tail = np.broadcast_to(fill, (fr - rows[1], fc))  # written slab by slab

            def pieces(out: StagedFile) -> None:
                for piece in (head, data, tail):
                    out.write(piece)

            self._replace(key, pieces)
            crc = int(google_crc32c.extend(google_crc32c.value(head), data))
            self._prefix[key] = _Prefix(rows[1], crc)
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            pwrite_full(fd, data, rows[0] * row_bytes)
        finally:
            os.close(fd)
        prefix.rows, prefix.crc = rows[1], int(google_crc32c.extend(prefix.crc, data))
        crc = _extend_fill(prefix.crc, fill, (fr - rows[1]) * fc)
        self.entries[key] = [fr * row_bytes, crc]
        faults.checkpoint("write:chunk")

    # ------------------------------------------------------------------ shared
    def _plan(self, arr: zarr.Array) -> Plan | None:
        plan = plan_for(arr, self.root / arr.path)
        return None if plan is None or plan.compressor is not None else plan

    def _replace(self, key: str, pieces: Callable[[StagedFile], None]) -> None:
        """Write a file atomically (a ``.partial`` file renamed into place), its bytes put
        in by ``pieces``, and record it in the manifest."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.partial")
        with self._stages_lock:
            stages = self._stages.pop() if self._stages else Stages(_STAGE_BYTES)
        try:
            with StagedFile(tmp, stages) as out:
                pieces(out)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            with self._stages_lock:
                self._stages.append(stages)
        self._prefix.pop(key, None)
        self.entries[key] = [out.size, out.crc]
        faults.checkpoint("write:chunk")


def _fill(arr: zarr.Array, plan: Plan) -> np.ndarray:
    """The fill value as one stored element (the bytes Zarr pads chunks with)."""
    return np.asarray(arr.metadata.fill_value).astype(plan.dtype).reshape(())


class _Rows:
    """Consecutive row blocks seen as one array's rows ``start ..`` (no concatenation)."""

    def __init__(self, parts: Sequence[np.ndarray], start: int) -> None:
        self.parts = [(start + k, p) for k, p in zip(
            np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist(), parts, strict=True)]

    def get(self, a: int, b: int, c0: int, c1: int) -> list[np.ndarray]:
        """Rows ``a:b`` (clipped to the rows held), columns ``c0:c1``, as views per block."""
        out = []
        for first, part in self.parts:
            lo, hi = max(a, first), min(b, first + len(part))
            if lo < hi:
                out.append(part[lo - first : hi - first, c0:c1])
        return out


def _chunk(parts: list[np.ndarray], shape: tuple[int, int], fill: np.ndarray,
           out: np.ndarray | None = None) -> np.ndarray:
    """Row blocks stacked into a contiguous chunk of ``shape`` (into ``out`` when given),
    padded with the fill value at the array's edges."""
    if out is None:
        if len(parts) == 1 and parts[0].shape == shape:
            return np.ascontiguousarray(parts[0])
        out = np.empty(shape, dtype=fill.dtype)
    at = 0
    for part in parts:
        out[at : at + len(part), : part.shape[1]] = part
        at += len(part)
    if at < shape[0] or (parts and parts[0].shape[1] < shape[1]):
        out[at:] = fill
        out[:at, parts[0].shape[1] if parts else 0 :] = fill
    return out


def _crc_bytes(data: np.ndarray) -> np.ndarray:
    """The CRC-32C of ``data`` as 4 little-endian bytes (Zarr's ``crc32c`` codec)."""
    return np.array([google_crc32c.value(data)], dtype="<u4").view(np.uint8)


def _extend_fill(crc: int, fill: np.ndarray, n: int) -> int:
    """``crc`` extended over ``n`` elements equal to ``fill``."""
    step = max(1, _FILL_PIECE_BYTES // fill.itemsize)
    piece = np.full(min(n, step), fill, dtype=fill.dtype)
    while n > 0:
        k = min(n, step)
        crc = int(google_crc32c.extend(crc, piece[:k]))
        n -= k
    return crc


def _read_into(path: Path, buf: np.ndarray) -> int:
    """Read the start of ``path`` into ``buf``; the bytes read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return pread_full(fd, buf, 0)
    finally:
        os.close(fd)
