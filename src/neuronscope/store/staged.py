"""Writing a new file from consecutive pieces: staged in reused buffers, handed to the disk by
a second thread, with ``O_DIRECT`` where the file system takes it.

Why (issue #16, MiniLM extraction on a 2-core VM): a buffered ``write`` of 440 MB of chunk
files cost 0.35-1.0 s of CPU, nearly all of it faulting in fresh page-cache pages (new
memory is slow to touch on this VM), against 0.02 s of CPU and 0.26 s of waiting with
``O_DIRECT``, which moves the bytes from the caller's pages to the disk and takes no page
cache. The extraction pays every CPU cycle of its writer out of the forward pass.

How: the caller fills a piece directly into one of two page-aligned staging buffers
(:meth:`StagedFile.reserve` then :meth:`StagedFile.push`); the disk thread sums the file's
CRC-32C over it and writes its whole pages while the caller fills the other buffer. Bytes
after the last whole page move to the head of the next buffer, so every direct write starts
and ends on a page boundary; the file's last partial page is written without ``O_DIRECT`` when
the file is closed. Where ``O_DIRECT`` is missing or refused (tmpfs, macOS, some network file
systems), the same pieces are written with plain ``pwrite``. Readers see the same bytes
either way: the kernel keeps direct and buffered I/O of one file coherent.
"""

from __future__ import annotations

import errno
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np

from neuronscope.store.fastread import pwrite_full

#: Direct I/O needs offsets, lengths and memory aligned to the device's logical block; a
#: page is a multiple of every common one.
PAGE = mmap.PAGESIZE
#: Bytes a staging buffer holds besides a whole piece: the carried partial page and the
#: small pieces (CRC bytes, a shard index) appended after it.
_SLACK = 4 * PAGE


class Stages:
    """Two page-aligned staging buffers of ``piece_bytes`` (plus slack), reused by every file
    written through them: their pages are touched once, not once per file."""

    def __init__(self, piece_bytes: int) -> None:
        self.piece_bytes = int(piece_bytes)
        size = -(-(self.piece_bytes + _SLACK) // PAGE) * PAGE
        self.buffers = [np.frombuffer(mmap.mmap(-1, size), dtype=np.uint8) for _ in range(2)]


class StagedFile:
    """A new file written from consecutive pieces (see the module docstring).

    Use as a context manager; :attr:`size` and :attr:`crc` (the whole file's CRC-32C) are set
    when it closes without an error. Pieces larger than ``stages.piece_bytes`` must be pushed
    in parts.
    """

    def __init__(self, path: Path, stages: Stages) -> None:
        self.path, self.stages = Path(path), stages
        self.size = 0
        self.crc = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        self._direct = _set_direct(self._fd, True)
        self._disk = ThreadPoolExecutor(1)
        self._jobs: list[Future[int] | None] = [None, None]
        self._current = 0
        self._fill = 0  # bytes in the current buffer
        self._summed = 0  # of them, the ones the CRC already covers (the carried ones)
        self._offset = 0  # the file offset of the current buffer's first byte

    def reserve(self, nbytes: int) -> np.ndarray:
        """A writable ``uint8`` view of the next ``nbytes`` of the file: fill it, then
        :meth:`push`."""
        buf = self.stages.buffers[self._current]
        if self._fill + nbytes > len(buf):
            if self._fill > self._summed:
                self._hand_over()
            if self._fill + nbytes > len(buf):
                raise ValueError(f"a piece of {nbytes} bytes is larger than the staging "
                                 f"buffer ({self.stages.piece_bytes} bytes plus slack)")
        return buf[self._fill : self._fill + nbytes]

    def push(self, nbytes: int, *, small: bool = False) -> None:
        """The ``nbytes`` reserved last are filled. ``small`` pieces (a few bytes) only join
        the buffer; the next large one takes them to the disk."""
        self._fill += nbytes
        self.size += nbytes
        if not small:
            self._hand_over()

    def write(self, data: np.ndarray, *, small: bool = False) -> None:
        """Copy an array in (C order) as the next piece(s), a slab of rows at a time: a
        broadcast array (a fill value) is never made whole."""
        if not data.size:
            return
        rows = data.reshape(len(data), -1)
        step = max(1, self.stages.piece_bytes // max(1, rows[:1].nbytes))
        for at in range(0, len(rows), step):
            slab = rows[at : at + step]
            self.reserve(slab.nbytes).view(slab.dtype).reshape(slab.shape)[...] = slab
            self.push(slab.nbytes, small=small)

    def _hand_over(self) -> None:
        """Give the current buffer's whole pages to the disk thread; carry the rest over."""
        buf = self.stages.buffers[self._current]
        whole = self._fill - self._fill % PAGE
        self._jobs[self._current] = self._disk.submit(
            self._write, buf, self._summed, self._fill, whole, self._offset)
        nxt = 1 - self._current
        pending = self._jobs[nxt]
        if pending is not None:
            pending.result()  # the other buffer is free once its bytes are on their way
            self._jobs[nxt] = None
        rest = self._fill - whole
        self.stages.buffers[nxt][:rest] = buf[whole : self._fill]
        self._current, self._fill, self._summed = nxt, rest, rest
        self._offset += whole

    def _write(self, buf: np.ndarray, summed: int, fill: int, whole: int, offset: int) -> int:
        # On the disk thread, in order: the CRC runs over the bytes as they reach the file.
        self.crc = int(google_crc32c.extend(self.crc, buf[summed:fill]))
        if whole:
            try:
                pwrite_full(self._fd, buf[:whole], offset)
            except OSError as err:
                if not (self._direct and err.errno == errno.EINVAL):
                    raise
                # The file system took the flag but not the write: write it buffered.
                self._direct = _set_direct(self._fd, False)
                pwrite_full(self._fd, buf[:whole], offset)
        return whole

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            if kind is not None:
                return  # the caller's error is the one to raise; the file is discarded
            buf = self.stages.buffers[self._current]
            self._jobs[self._current] = self._disk.submit(
                self._write, buf, self._summed, self._fill, 0, self._offset)
            for job in self._jobs:
                if job is not None:
                    job.result()
            if self._fill:
                # The last partial page: not a whole block, so not direct.
                self._direct = _set_direct(self._fd, False)
                pwrite_full(self._fd, buf[: self._fill], self._offset)
        finally:
            self._disk.shutdown(wait=True)  # no write may outlive the file descriptor
            os.close(self._fd)


def _set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; whether it is on."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        import fcntl

        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
    except OSError:
        return False
    return on
