"""The fast read path: a store's chunk files read directly into one preallocated array.

Reading through ``zarr.Array.__getitem__`` runs at a few hundred MB/s on a page-cached store:
Zarr decodes every chunk into its own buffer, assembles them in an intermediate array and
then the caller casts that to float32. This module reads the same files itself, for the
layouts neuronscope writes (regular chunks, optionally inside Zarr v3 shards; a ``bytes``
serializer, optionally Zstandard or Blosc compression and a CRC-32C per inner chunk):

- only the byte ranges of the chunks a request needs are read (``os.preadv``; one layer of a
  shard that groups layers reads that layer's chunks and the shard index, nothing else);
- a raw chunk whose rows are contiguous in the caller's output (one layer, float32) is read
  straight into the output; any other is read in cache-sized pieces into a per-thread
  scratch buffer and cast **once** into its place (the output may be a strided slice);
- each piece is checksummed as it is read, while in cache, so the CRC costs no pass over
  memory of its own: the manifest's CRC-32C of a whole chunk file when a request covers the
  file, else, inside a shard, the CRC-32C Zarr stores after every inner chunk (and the
  index's), as on the Zarr path. A damaged file raises ``DamagedStoreError``; what was
  already written into the output is then not to be used;
- files are processed in parallel on a small thread pool (reads, numpy copies and the
  decompressors release the GIL).

Raw chunks are not memory-mapped: measured on this project's (virtual) machines, faulting in
a mapped page cache cost several times a ``pread`` copy. Compressed chunks are (the
decompressor reads their bytes once, and a copy would cost about a tenth of decoding them).

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
from neuronscope.store.integrity import describe

#: Threads reading chunk files; more than the cores buys nothing for memory copies.
THREADS = max(1, min(8, os.cpu_count() or 1))
_NO_CHUNK = 2**64 - 1  # a shard index entry of an inner chunk that was never written
#: Bytes per read: a piece is read, checksummed and put in place while it is still in the
#: core's cache, so the data crosses memory once on its way from the page cache.
PIECE_BYTES = 1 << 19

#: A thread keeps a scratch buffer up to this size (a small model's whole chunk) for reuse.
KEEP_BYTES = 8 << 20

_local = threading.local()  # each read thread's scratch buffers

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _pool_lock:
        # A forked child inherits the pool object but not its threads: it needs its own.
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="neuronscope-read")
            _pool_pid = os.getpid()
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
            raise _damaged(plan, f"file {key} is missing") from None
        _fill_nan(plan, coords, rows, cols, out)  # never written: Zarr's fill value
        return
    try:
        size = os.fstat(fd).st_size
        if entry is not None and size != entry[0]:
            raise _damaged(plan, f"file {key} has {size} bytes, the manifest says "
                                 f"{entry[0]} (truncated or replaced)")
        if size == 0:
            raise _damaged(plan, f"file {key} is empty")
        _read_chunks(_Reader(plan, key, fd, size), coords, rows, cols, out, entry, check)
    finally:
        os.close(fd)


def _read_chunks(f: _Reader, coords: tuple[int, int], rows: tuple[int, int],
                 cols: tuple[int, int], out: np.ndarray, entry: list[int] | None,
                 check: Callable[[str], bool] | None) -> None:
    """Every chunk of one open file that the request needs, checked as Zarr checks it."""
    plan, key = f.plan, f.key
    # Inside shards, a file's chunks (and index) carry CRCs; compared where the manifest's
    # CRC would be (settled files), so an unsettled shard a resume will rewrite still reads.
    checked = check is not None and check(key)
    verify_file = entry is not None and checked
    # A whole file's manifest CRC is summed over the pieces as they are read (no pass of
    # its own); the inner CRCs add nothing then. A part of a shard checks its own chunks.
    stream = verify_file and (not plan.sharded or _whole_file(plan, coords, rows, cols))
    chunk_crc = plan.inner_crc and not stream and (verify_file or (checked and entry is None))
    index = _shard_index(f, checked, stream) if plan.sharded else None
    fr, fc = plan.file_shape
    cr, cc = plan.chunk_shape
    base_r, base_c = coords[0] * fr, coords[1] * fc
    gr, gc = plan.inner_grid
    todo = []  # (offset, nbytes, chunk rows, chunk columns, destination)
    for ir in range(gr):
        lo_r = base_r + ir * cr
        a_r, b_r = max(lo_r, rows[0]), min(lo_r + cr, rows[1], plan.shape[0])
        if a_r >= b_r:
            continue
        for ic in range(gc):
            lo_c = base_c + ic * cc
            a_c, b_c = max(lo_c, cols[0]), min(lo_c + cc, cols[1], plan.shape[1])
            if a_c >= b_c:
                continue
            dest = out[a_r - rows[0]:b_r - rows[0], a_c - cols[0]:b_c - cols[0]]
            if index is None:
                offset, nbytes = 0, f.size
            else:
                offset, nbytes = (int(n) for n in index[ir * gc + ic])
                if offset == _NO_CHUNK:
                    dest[...] = np.nan
                    continue
                if offset + nbytes > f.size:
                    raise _damaged(plan, f"file {key}: chunk ({ir}, {ic}) lies outside "
                                         "the shard (truncated)")
            todo.append((offset, nbytes, (a_r - lo_r, b_r - lo_r), (a_c - lo_c, b_c - lo_c),
                         dest))
    todo.sort(key=lambda t: t[0])  # file order: the reads, and a streamed CRC, go forward
    if stream and any(a[0] + a[1] > b[0] for a, b in itertools.pairwise(todo)):
        _check_whole(f, entry[1])  # type: ignore[index]  # overlapping chunks: one pass first
        stream = False
    f.crc, f.pos = (0 if stream else None), 0
    for offset, nbytes, crows, ccols, dest in todo:
        if stream:
            f.skip_to(offset)
        _read_chunk(f, offset, nbytes, crows, ccols, dest, stream, chunk_crc)
    if stream:
        f.skip_to(f.size)
        if f.crc != entry[1]:  # type: ignore[index]
            raise _changed(plan, key)


def pread_full(fd: int, buf: np.ndarray, offset: int) -> int:
    """Read file bytes from ``offset`` into the contiguous array ``buf`` until it is full or
    the file ends; returns the bytes read (the kernel may return fewer than asked)."""
    view, want, got = buf.data.cast("B"), buf.nbytes, 0
    while got < want:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n <= 0:  # the file's end
            break
        got += n
    return got


def pwrite_full(fd: int, data: np.ndarray, offset: int) -> None:
    """Write the contiguous array ``data`` at ``offset`` whole (the kernel may write fewer
    bytes than asked); an ``OSError`` (a full disk) is the caller's to word."""
    view = data.data.cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _changed(plan: Plan, key: str) -> DamagedStoreError:
    """The error of a whole file whose CRC-32C differs from the manifest's."""
    return _damaged(plan, f"file {key} fails its checksum (its content changed after it was "
                          "written)")


class _Reader:
    """One open chunk file: reads into given buffers, summing a CRC-32C when asked."""

    def __init__(self, plan: Plan, key: str, fd: int, size: int) -> None:
        self.plan, self.key, self.fd, self.size = plan, key, fd, size
        self.crc: int | None = None  # the running CRC-32C of what is read, None: not summed
        self.pos = 0  # where the last read ended
        self._map: mmap.mmap | None = None

    def read(self, buf: np.ndarray, offset: int) -> None:
        """Fill ``buf`` (1-D, contiguous bytes: scratch or the destination itself)."""
        want = buf.nbytes
        got = pread_full(self.fd, buf, offset)
        if got < want:
            raise _damaged(self.plan, f"file {self.key} ends at byte {offset + got}, "
                                      f"{want - got} bytes short (truncated)")
        if self.crc is not None:  # while the piece is still in cache
            self.crc = int(google_crc32c.extend(self.crc, buf))
        self.pos = offset + want

    def mapped(self, offset: int, end: int) -> np.ndarray:
        """Bytes ``offset:end`` as a view of a memory map of the file (summed as ``read``).

        For compressed chunks: the decompressor reads them once, so a copy would cost a
        tenth of their decoding for nothing.
        """
        if end > self.size:
            raise _damaged(self.plan, f"file {self.key} ends at byte {self.size} (truncated)")
        if self._map is None:
            self._map = mmap.mmap(self.fd, 0, prot=mmap.PROT_READ)
        data = np.frombuffer(self._map, dtype=np.uint8)[offset:end]
        if self.crc is not None:
            self.crc = int(google_crc32c.extend(self.crc, data))
        self.pos = end
        return data

    def skip_to(self, offset: int) -> None:
        """Read (for the CRC only) the bytes from the last read up to ``offset``."""
        while self.pos < offset:
            self.read(_scratch(min(PIECE_BYTES, offset - self.pos)), self.pos)


def _read_chunk(f: _Reader, offset: int, nbytes: int, crows: tuple[int, int],
                ccols: tuple[int, int], dest: np.ndarray, stream: bool,
                chunk_crc: bool) -> None:
    """Rows ``crows`` x columns ``ccols`` of one chunk into ``dest``, its CRC compared.

    A checked chunk is read whole (the CRC covers all of it); an unchecked raw one only
    for the rows asked. Raw rows land straight in ``dest`` where its rows are the chunk's
    rows; elsewhere they go through a cache-sized scratch piece and are cast into place.
    """
    plan = f.plan
    tail = 4 if plan.inner_crc else 0
    end = offset + nbytes - tail  # the chunk's bytes; its CRC after them
    if end < offset:
        raise _damaged(plan, f"file {f.key}: a chunk holds {nbytes} bytes (truncated)")
    if chunk_crc:
        f.crc = 0
    if plan.compressor is not None:
        raw = f.mapped(offset, end)
        buf = _scratch(plan.chunk_nbytes, "decoded")
        _check_chunk(f, end, tail, stream, chunk_crc)  # before decoding damaged bytes
        plan.compressor.decode(raw, out=buf)
        chunk = buf.view(plan.dtype).reshape(plan.chunk_shape)
        decode_into(chunk[crows[0]:crows[1], ccols[0]:ccols[1]], dest, plan.bfloat16)
        return
    if end - offset < plan.chunk_nbytes:
        raise _damaged(plan, f"file {f.key}: a chunk holds {end - offset} bytes, expected "
                             f"{plan.chunk_nbytes} (truncated)")
    whole = stream or chunk_crc
    cr = plan.chunk_shape[0]
    if whole and crows[0] > 0:
        _rows(f, offset, (0, crows[0]), ccols, None)
    _rows(f, offset, crows, ccols, dest)
    if whole:
        if crows[1] < cr:
            _rows(f, offset, (crows[1], cr), ccols, None)
        f.skip_to(end)  # bytes past the chunk's data, if any: part of what the CRC covers
        _check_chunk(f, end, tail, stream, chunk_crc)


def _rows(f: _Reader, offset: int, crows: tuple[int, int], ccols: tuple[int, int],
          dest: np.ndarray | None) -> None:
    """Chunk rows ``crows`` of a raw chunk at ``offset``, piece by piece, into ``dest``.

    ``dest`` None reads them for the CRC only.
    """
    plan = f.plan
    cc = plan.chunk_shape[1]
    row_bytes = cc * plan.dtype.itemsize
    step = max(1, PIECE_BYTES // row_bytes)
    # The destination takes the file's bytes as they are: no scratch piece, no copy.
    direct = (dest is not None and not plan.bfloat16 and dest.dtype == plan.dtype
              and ccols == (0, cc) and dest.flags.c_contiguous)
    for r in range(crows[0], crows[1], step):
        k = min(step, crows[1] - r)
        at = offset + r * row_bytes
        if direct and dest is not None:
            f.read(dest[r - crows[0]:r - crows[0] + k].reshape(-1).view(np.uint8), at)
            continue
        piece = _scratch(k * row_bytes)
        f.read(piece, at)
        if dest is not None:
            decode_into(piece.view(plan.dtype).reshape(k, cc)[:, ccols[0]:ccols[1]],
                        dest[r - crows[0]:r - crows[0] + k], plan.bfloat16)


def _check_chunk(f: _Reader, end: int, tail: int, stream: bool, chunk_crc: bool) -> None:
    """Read a chunk's stored CRC: summed into the file's, or compared with the chunk's."""
    if not tail or not (stream or chunk_crc):
        return
    got = f.crc
    if chunk_crc:
        f.crc = None  # the stored CRC is not part of what it covers
    stored = np.empty(tail, dtype=np.uint8)
    f.read(stored, end)
    if chunk_crc and got != int(stored.view("<u4")[0]):
        raise _damaged(f.plan, f"file {f.key} fails its checksum (a chunk's content "
                               "changed after it was written)")


def _check_whole(f: _Reader, expect: int) -> None:
    """The manifest CRC of a whole file, in a pass of its own."""
    f.crc, f.pos = 0, 0
    f.skip_to(f.size)
    if f.crc != expect:
        raise _changed(f.plan, f.key)


def _scratch(nbytes: int, name: str = "scratch") -> np.ndarray:
    """This thread's buffer ``name`` (reused: in cache, and no new pages to fault in).

    Larger requests (big models' compressed chunks) get a new array each time: a pool of
    threads each keeping one would hold that memory for good.
    """
    if nbytes > KEEP_BYTES:
        return np.empty(nbytes, dtype=np.uint8)
    buf = getattr(_local, name, None)
    if buf is None or len(buf) < nbytes:
        buf = np.empty(max(nbytes, PIECE_BYTES), dtype=np.uint8)
        setattr(_local, name, buf)
    return buf[:nbytes]


def _whole_file(plan: Plan, coords: tuple[int, int], rows: tuple[int, int],
                cols: tuple[int, int]) -> bool:
    """Whether the request needs every chunk of this file (then one CRC covers it all)."""
    fr, fc = plan.file_shape
    lo_r, lo_c = coords[0] * fr, coords[1] * fc
    hi_r, hi_c = min(lo_r + fr, plan.shape[0]), min(lo_c + fc, plan.shape[1])
    return rows[0] <= lo_r and rows[1] >= hi_r and cols[0] <= lo_c and cols[1] >= hi_c


def _shard_index(f: _Reader, verify: bool, whole: bool) -> np.ndarray:
    """A shard's index: (offset, nbytes) per inner chunk; ``whole``: the manifest's CRC of
    the whole file is being checked, and is the one a damaged index is reported against."""
    plan = f.plan
    n = plan.inner_grid[0] * plan.inner_grid[1]
    size = 16 * n + (4 if plan.index_crc else 0)
    if f.size < size:
        raise _damaged(plan, f"file {f.key} is too short for its shard index")
    tail = np.empty(size, dtype=np.uint8)
    f.read(tail, f.size - size)
    if verify and plan.index_crc and int(google_crc32c.extend(0, tail[:-4])) != int(
            tail[-4:].view("<u4")[0]):
        raise (_changed(plan, f.key) if whole else
               _damaged(plan, f"file {f.key}: its shard index fails its checksum"))
    return tail[: 16 * n].view("<u8").reshape(n, 2)


def _damaged(plan: Plan, problem: str) -> DamagedStoreError:
    """The same error as the Zarr path's (see ``integrity.describe``)."""
    return DamagedStoreError(describe(plan.root.parent.parent, [problem]))


def _fill_nan(plan: Plan, coords: tuple[int, int], rows: tuple[int, int],
              cols: tuple[int, int], out: np.ndarray) -> None:
    fr, fc = plan.file_shape
    a_r, b_r = max(coords[0] * fr, rows[0]), min((coords[0] + 1) * fr, rows[1])
    a_c, b_c = max(coords[1] * fc, cols[0]), min((coords[1] + 1) * fc, cols[1])
    out[a_r - rows[0]:b_r - rows[0], a_c - cols[0]:b_c - cols[0]] = np.nan
