"""The fast read path: a store's chunk files read directly into one preallocated array.

Reading through ``zarr.Array.__getitem__`` runs at a few hundred MB/s on a page-cached store:
Zarr decodes every chunk into its own buffer, assembles them in an intermediate array and
then the caller casts that to float32. This module reads the same files itself, for the
layouts neuronscope writes (regular chunks, optionally inside Zarr v3 shards; a ``bytes``
serializer, optionally Zstandard or Blosc compression and a CRC-32C per inner chunk):

- each file is memory-mapped (the page cache is the source, no read buffer) and each needed
  chunk is decoded (or, uncompressed, viewed in place) and copied **once**, cast to float32,
  into its place in the caller's output array;
- files are processed in parallel on a small thread pool (numpy copies, the CRC and the
  decompressors release the GIL);
- checksums are compared as on the Zarr path: the manifest's CRC-32C of a whole chunk file,
  or, inside a shard, the CRC-32C Zarr stores after every inner chunk.

Anything else (another codec, big-endian data, a store that is not a local folder) is
reported as unsupported by :func:`plan_for`, and callers keep Zarr's path. Results are
bitwise equal to Zarr's (tests compare both).
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.metadata import ArrayV3Metadata

from neuronscope.errors import DamagedStoreError
from neuronscope.store.dtypes import BFLOAT16_ATTR, decode_into

#: Threads reading chunk files; more than the cores buys nothing for memory copies.
THREADS = max(1, min(8, os.cpu_count() or 1))
_NO_CHUNK = 2**64 - 1  # a shard index entry of an inner chunk that was never written

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="neuronscope-read")
        return _pool


@dataclass(frozen=True)
class Plan:
    """How an array's chunk files are laid out, as far as the fast path needs to know."""

    root: Path  # the array's folder
    shape: tuple[int, int]
    file_shape: tuple[int, int]  # a chunk file: the chunk, or the shard
    chunk_shape: tuple[int, int]  # a decoded chunk (inside a shard: the inner chunk)
    dtype: np.dtype  # stored element type (uint16 for bfloat16 bits)
    bfloat16: bool
    compressor: Any  # a numcodecs codec, or None
    inner_crc: bool  # a CRC-32C after every chunk (inside shards)
    sharded: bool
    index_crc: bool
    key_of: Callable[[tuple[int, ...]], str]

    @property
    def chunk_nbytes(self) -> int:
        return int(np.prod(self.chunk_shape)) * self.dtype.itemsize

    @property
    def inner_grid(self) -> tuple[int, int]:
        return (self.file_shape[0] // self.chunk_shape[0],
                self.file_shape[1] // self.chunk_shape[1])


def _codec_chain(codecs: tuple[Any, ...]) -> tuple[Any, bool] | None:
    """``(numcodecs compressor or None, trailing crc)`` for [bytes(little), compressor?, crc?]."""
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    if codecs[0].endian is not None and codecs[0].endian.value != "little":
        return None
    rest = list(codecs[1:])
    crc = bool(rest) and isinstance(rest[-1], Crc32cCodec)
    if crc:
        rest.pop()
    if not rest:
        return None, crc
    if len(rest) != 1:
        return None
    codec = rest[0]
    if isinstance(codec, ZstdCodec):
        from numcodecs import Zstd

        return Zstd(level=codec.level), crc
    if isinstance(codec, BloscCodec):
        from numcodecs import Blosc

        return Blosc(), crc  # Blosc frames describe themselves: decoding needs no settings
    return None


def plan_for(arr: zarr.Array, root: Path | None) -> Plan | None:
    """The fast-path plan of a 2-D array of a local store folder, or None (use Zarr's path)."""
    if root is None or arr.ndim != 2 or not root.is_dir():
        return None
    meta = arr.metadata
    if not isinstance(meta, ArrayV3Metadata) or not isinstance(meta.chunk_grid,
                                                               RegularChunkGrid):
        return None
    try:
        dtype = np.dtype(meta.data_type.to_native_dtype())
    except (AttributeError, TypeError):
        return None
    if dtype.kind not in "fu" or dtype.byteorder == ">":
        return None
    file_shape = tuple(int(n) for n in meta.chunk_grid.chunk_shape)
    codecs = tuple(meta.codecs)
    shard = codecs[0] if len(codecs) == 1 else None
    sharded = isinstance(shard, ShardingCodec)
    index_crc = False
    if isinstance(shard, ShardingCodec):
        if shard.index_location.value != "end":
            return None
        index_chain = _codec_chain(tuple(shard.index_codecs))
        if index_chain is None or index_chain[0] is not None:
            return None
        index_crc = index_chain[1]
        chain = _codec_chain(tuple(shard.codecs))
        chunk_shape = tuple(int(n) for n in shard.chunk_shape)
    else:
        chain = _codec_chain(codecs)
        chunk_shape = file_shape
    if chain is None or len(file_shape) != 2 or len(chunk_shape) != 2:
        return None
    return Plan(root=root, shape=(int(arr.shape[0]), int(arr.shape[1])),
                file_shape=(file_shape[0], file_shape[1]),
                chunk_shape=(chunk_shape[0], chunk_shape[1]), dtype=dtype,
                bfloat16=bool(arr.attrs.get(BFLOAT16_ATTR, False)), compressor=chain[0],
                inner_crc=chain[1], sharded=sharded, index_crc=index_crc,
                key_of=meta.encode_chunk_key)


def read_region(plan: Plan, rows: tuple[int, int], cols: tuple[int, int], out: np.ndarray,
                entries: Mapping[str, list[int]] | None,
                check: Callable[[str], bool] | None, key_prefix: str) -> None:
    """Rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` of the array into ``out``.

    ``out`` is float32 of the region's shape (any strides: a slice of a wider array is
    filled in place). ``entries`` is the manifest (key -> [size, crc]) and ``check(key)``
    says whether a file's checksum must be compared; ``key_prefix`` is the array's path in
    the store, for both.
    """
    r0, r1 = rows
    c0, c1 = cols
    if r1 <= r0 or c1 <= c0:
        return
    fr, fc = plan.file_shape
    files = list(itertools.product(range(r0 // fr, (r1 - 1) // fr + 1),
                                   range(c0 // fc, (c1 - 1) // fc + 1)))

    def one(coords: tuple[int, int]) -> None:
        key = f"{key_prefix}/{plan.key_of(coords)}"
        _read_file(plan, coords, key, rows, cols, out, entries, check)

    if len(files) == 1:
        one(files[0])
        return
    # list() re-raises the first error of any file (a damaged chunk names itself).
    list(_executor().map(one, files))


def _read_file(plan: Plan, coords: tuple[int, int], key: str, rows: tuple[int, int],
               cols: tuple[int, int], out: np.ndarray,
               entries: Mapping[str, list[int]] | None,
               check: Callable[[str], bool] | None) -> None:
    path = plan.root / plan.key_of(coords)
    entry = entries.get(key) if entries is not None else None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if entry is not None or check is not None:
            raise DamagedStoreError(f"store file {key} is missing ({path})") from None
        _fill_nan(plan, coords, rows, cols, out)  # never written: Zarr's fill value
        return
    try:
        size = os.fstat(fd).st_size
        if entry is not None and size != entry[0]:
            raise DamagedStoreError(f"store file {key} has {size} bytes, the manifest says "
                                    f"{entry[0]} (truncated or replaced)")
        if size == 0:
            raise DamagedStoreError(f"store file {key} is empty")
        mapped = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    data = np.frombuffer(mapped, dtype=np.uint8)
    verify_file = entry is not None and check is not None and check(key)
    if verify_file and (not plan.sharded or _whole_file(plan, coords, rows, cols)):
        if int(google_crc32c.extend(0, data)) != entry[1]:  # type: ignore[index]
            raise DamagedStoreError(f"store file {key} fails its checksum (its content "
                                    "changed after it was written)")
        verify_file = False  # the inner CRCs add nothing now
    fr, fc = plan.file_shape
    cr, cc = plan.chunk_shape
    base_r, base_c = coords[0] * fr, coords[1] * fc
    # Inside shards, a file's chunks (and index) carry CRCs; compared where the manifest's
    # CRC would be (settled files), so an unsettled shard a resume will rewrite still reads.
    checked = check is not None and check(key)
    index = _shard_index(plan, data, key, checked) if plan.sharded else None
    gr, gc = plan.inner_grid
    for ir in range(gr):
        lo_r, hi_r = base_r + ir * cr, base_r + (ir + 1) * cr
        a_r, b_r = max(lo_r, rows[0]), min(hi_r, rows[1], plan.shape[0])
        if a_r >= b_r:
            continue
        for ic in range(gc):
            lo_c, hi_c = base_c + ic * cc, base_c + (ic + 1) * cc
            a_c, b_c = max(lo_c, cols[0]), min(hi_c, cols[1], plan.shape[1])
            if a_c >= b_c:
                continue
            dest = out[a_r - rows[0]:b_r - rows[0], a_c - cols[0]:b_c - cols[0]]
            if index is None:
                raw = data
            else:
                offset, nbytes = index[ir * gc + ic]
                if offset == _NO_CHUNK:
                    dest[...] = np.nan
                    continue
                if offset + nbytes > len(data):
                    raise DamagedStoreError(f"store file {key}: chunk ({ir}, {ic}) lies "
                                            "outside the shard (truncated)")
                raw = data[int(offset):int(offset + nbytes)]
            chunk = _decode(plan, raw, key, verify_crc=plan.inner_crc and (verify_file or (
                checked and entry is None)))
            decode_into(chunk[a_r - lo_r:b_r - lo_r, a_c - lo_c:b_c - lo_c], dest,
                        plan.bfloat16)


def _whole_file(plan: Plan, coords: tuple[int, int], rows: tuple[int, int],
                cols: tuple[int, int]) -> bool:
    """Whether the request needs every chunk of this file (then one CRC covers it all)."""
    fr, fc = plan.file_shape
    lo_r, lo_c = coords[0] * fr, coords[1] * fc
    hi_r, hi_c = min(lo_r + fr, plan.shape[0]), min(lo_c + fc, plan.shape[1])
    return rows[0] <= lo_r and rows[1] >= hi_r and cols[0] <= lo_c and cols[1] >= hi_c


def _shard_index(plan: Plan, data: np.ndarray, key: str, verify: bool) -> np.ndarray:
    n = plan.inner_grid[0] * plan.inner_grid[1]
    size = 16 * n + (4 if plan.index_crc else 0)
    if len(data) < size:
        raise DamagedStoreError(f"store file {key} is too short for its shard index")
    tail = data[len(data) - size:]
    if verify and plan.index_crc and int(google_crc32c.extend(0, tail[:-4])) != int(
            tail[-4:].view("<u4")[0]):
        raise DamagedStoreError(f"store file {key}: its shard index fails its checksum")
    return tail[: 16 * n].view("<u8").reshape(n, 2)


def _decode(plan: Plan, raw: np.ndarray, key: str, verify_crc: bool) -> np.ndarray:
    """One chunk's bytes -> its ``chunk_shape`` array of the stored dtype (a view if raw)."""
    if plan.inner_crc:
        if verify_crc and int(google_crc32c.extend(0, raw[:-4])) != int(
                raw[-4:].view("<u4")[0]):
            raise DamagedStoreError(f"store file {key}: a chunk fails its checksum (its "
                                    "content changed after it was written)")
        raw = raw[:-4]
    if plan.compressor is not None:
        buf = np.empty(plan.chunk_nbytes, dtype=np.uint8)
        plan.compressor.decode(raw, out=buf)
        raw = buf
    if len(raw) < plan.chunk_nbytes:
        raise DamagedStoreError(f"store file {key}: a chunk holds {len(raw)} bytes, "
                                f"expected {plan.chunk_nbytes} (truncated)")
    return raw[: plan.chunk_nbytes].view(plan.dtype).reshape(plan.chunk_shape)


def _fill_nan(plan: Plan, coords: tuple[int, int], rows: tuple[int, int],
              cols: tuple[int, int], out: np.ndarray) -> None:
    fr, fc = plan.file_shape
    a_r, b_r = max(coords[0] * fr, rows[0]), min((coords[0] + 1) * fr, rows[1])
    a_c, b_c = max(coords[1] * fc, cols[0]), min((coords[1] + 1) * fc, cols[1])
    out[a_r - rows[0]:b_r - rows[0], a_c - cols[0]:b_c - cols[0]] = np.nan
