"""Where the linear probe's rows come from: an in-memory matrix, or the store, streamed.

Training visits the training rows in shuffled minibatches many times; validation, the
standardization statistics and the start of the regularization path need ordered passes.
Both kinds of pass go through a *row source*:

* :class:`InMemoryRows` holds the selection as one C-ordered float32 matrix (a float32
  C-ordered array handed in is used as is; anything else, such as a Fortran-ordered array, a
  column selection ``x[:, cols]`` or a store, is copied once, block by block). Minibatches are
  gathered by row index into one reused buffer; a full shuffle of the rows every epoch.
* :class:`StreamingRows` reads the selection from its :class:`ActivationView` one chunk at a
  time and never holds more than ``buffer_rows + chunk_rows`` rows. An epoch visits the
  chunks in a seeded random order; their rows pass through an in-memory *mixing buffer*
  (as SAELens's activation store does): once ``buffer_rows`` rows are held, half of them,
  drawn at random, are handed out as minibatches and their slots are refilled by the next
  chunks. Memory is flat in corpus size: only per-row labels and indices (a few bytes per
  word) grow with it.

:func:`use_streaming` decides between them (``streaming="auto"``): stream when the
selection's float32 matrix would take more than half of the memory budget
(:func:`neuronscope.store.memory.memory_budget`: ``NEURONSCOPE_MEMORY_LIMIT`` or the
available memory), else load it, which is faster because every epoch then reads memory
instead of the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput, check_finite
from neuronscope.moments import RunningMoments
from neuronscope.store.memory import check_fits, memory_budget
from neuronscope.store.store import ActivationStore

# Rows per block of ordered passes (moments, evaluation): ~11 MB of float32 at 2,688 neurons.
BLOCK_ROWS = 4096
#: Mixing-buffer size of :class:`StreamingRows` when not given: this many bytes of float32
#: rows (at most a quarter of the memory budget), and never fewer than two chunks.
BUFFER_BYTES = 1 << 30

Batch = tuple[np.ndarray, torch.Tensor]


class RowSource(Protocol):
    """What the trainer reads rows from (see the module docstring)."""

    n_rows: int
    n_features: int
    streaming: bool

    def shuffled_batches(self, rows: np.ndarray, batch_size: int,
                         generator: torch.Generator) -> Iterator[Batch]:
        """``(row ids, block)`` minibatches covering ``rows`` once, in random order."""
        ...

    def blocks(self, rows: np.ndarray) -> Iterator[Batch]:
        """``(row ids, block)`` covering the sorted ``rows`` once, in order."""
        ...


class InMemoryRows:
    """Rows of a C-ordered float32 matrix (on the accelerator when it fits there)."""

    streaming = False

    def __init__(self, x: np.ndarray, device: torch.device, max_batch: int) -> None:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            raise NeuronscopeError("InMemoryRows needs a C-ordered float32 matrix")
        self.x = x
        self.n_rows, self.n_features = x.shape
        self.device = device
        self.x_device = _to_device_if_fits(x, device) if device.type != "cpu" else None
        self._buffer = np.empty((max(max_batch, BLOCK_ROWS), x.shape[1]), dtype=np.float32)

    def _gather(self, idx: np.ndarray) -> torch.Tensor:
        """Rows ``idx`` as a tensor on the device; valid until the next call."""
        if self.x_device is not None:
            return self.x_device.index_select(0, torch.from_numpy(idx).to(self.device))
        if (self.x.flags.writeable and len(idx)
                and int(idx[-1]) - int(idx[0]) == len(idx) - 1):
            # Consecutive rows (ordered passes over a whole split): no copy on the host.
            return torch.from_numpy(self.x[int(idx[0]) : int(idx[-1]) + 1]).to(self.device)
        # numpy's take into a reused buffer is several times faster than torch.index_select
        # for row gathers on CPU, and allocates nothing.
        block = self._buffer[: len(idx)]
        np.take(self.x, idx, axis=0, out=block)
        return torch.from_numpy(block).to(self.device)

    def shuffled_batches(self, rows: np.ndarray, batch_size: int,
                         generator: torch.Generator) -> Iterator[Batch]:
        order = rows[torch.randperm(len(rows), generator=generator).numpy()]
        for start in range(0, len(order), batch_size):
            # Sorted rows within a batch: same gradient, friendlier memory access.
            batch = np.sort(order[start : start + batch_size])
            yield batch, self._gather(batch)

    def blocks(self, rows: np.ndarray) -> Iterator[Batch]:
        for start in range(0, len(rows), BLOCK_ROWS):
            batch = rows[start : start + BLOCK_ROWS]
            yield batch, self._gather(batch)


class StreamingRows:
    """Rows of an activation view, read chunk by chunk through a mixing buffer.

    Args:
        data: the method's input (its view is read; nothing is loaded whole).
        device: where minibatches go.
        buffer_rows: rows held for mixing (``None``: :data:`BUFFER_BYTES` worth, at most a
            quarter of the memory budget). Larger mixes better.
        chunk_rows: rows per read (``None``: the store's chunk, else 8,192).
        budget: the memory budget in bytes (``None``: :func:`memory_budget`).
    """

    streaming = True

    def __init__(self, data: MethodInput, device: torch.device, buffer_rows: int | None = None,
                 chunk_rows: int | None = None, budget: int | None = None) -> None:
        self.view = data.view
        self.n_rows, self.n_features = data.n_words, data.n_neurons
        self.device = device
        store = self.view.store
        if chunk_rows is None:
            chunk_rows = (store.parent.chunk_words if hasattr(store, "parent") else
                          store.chunk_words) if isinstance(store, ActivationStore) else 8192
        self.chunk_rows = max(1, int(chunk_rows))
        row_bytes = 4 * max(self.n_features, 1)
        if buffer_rows is None:
            budget = memory_budget() if budget is None else budget
            buffer_rows = int(min(BUFFER_BYTES, budget // 4) // row_bytes)
            buffer_rows = max(buffer_rows, 2 * self.chunk_rows)
        self.buffer_rows = max(1, min(int(buffer_rows), self.n_rows))
        capacity = self.buffer_rows + self.chunk_rows
        check_fits(capacity * row_bytes * 2, f"a probe mixing buffer of {capacity} rows")
        self._buffer = np.empty((capacity, self.n_features), dtype=np.float32)
        self._row_of_slot = np.zeros(capacity, dtype=np.int64)
        self._chunk = np.empty((self.chunk_rows, self.n_features), dtype=np.float32)
        self._batch = np.empty((0, self.n_features), dtype=np.float32)

    def _chunks(self, rows: np.ndarray, order: np.ndarray) -> Iterator[tuple[np.ndarray,
                                                                             np.ndarray]]:
        """``(row ids, block)`` of the wanted rows of each chunk, chunks in ``order``."""
        for k in order.tolist():
            start = k * self.chunk_rows
            stop = min(start + self.chunk_rows, self.n_rows)
            lo, hi = np.searchsorted(rows, [start, stop])
            if lo == hi:
                continue
            block = self.view.read(start, stop, out=self._chunk[: stop - start])
            wanted = rows[lo:hi]
            if hi - lo == stop - start:
                yield wanted, block
            else:
                yield wanted, block[wanted - start]

    def _n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_rows)

    def _emit(self, slots: np.ndarray, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(slots), batch_size):
            batch = np.sort(slots[start : start + batch_size])
            if len(self._batch) < len(batch):
                self._batch = np.empty((len(batch), self.n_features), dtype=np.float32)
            block = self._batch[: len(batch)]
            np.take(self._buffer, batch, axis=0, out=block)
            yield self._row_of_slot[batch], torch.from_numpy(block).to(self.device)

    def shuffled_batches(self, rows: np.ndarray, batch_size: int,
                         generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(self._n_chunks(), generator=generator).numpy()
        free = np.arange(len(self._buffer), dtype=np.int64)
        held = np.zeros(0, dtype=np.int64)
        for ids, block in self._chunks(rows, order):
            slots, free = free[: len(ids)], free[len(ids):]
            self._buffer[slots] = block
            self._row_of_slot[slots] = ids
            held = np.concatenate([held, slots])
            if len(held) < self.buffer_rows:
                continue
            # Hand out a random half (whole minibatches); the other half stays to be mixed
            # with the next chunks, and the emitted rows' slots take those chunks' rows.
            held = held[torch.randperm(len(held), generator=generator).numpy()]
            n_out = max(batch_size, (len(held) // 2) // batch_size * batch_size)
            n_out = min(n_out, len(held))
            yield from self._emit(held[:n_out], batch_size)
            free = np.concatenate([free, held[:n_out]])
            held = held[n_out:]
        if len(held):
            held = held[torch.randperm(len(held), generator=generator).numpy()]
            yield from self._emit(held, batch_size)

    def blocks(self, rows: np.ndarray) -> Iterator[Batch]:
        for ids, block in self._chunks(rows, np.arange(self._n_chunks())):
            yield ids, torch.from_numpy(np.ascontiguousarray(block)).to(self.device)


# ---------------------------------------------------------------------- choosing and scanning
def use_streaming(data: MethodInput, setting: bool | str, budget: int | None = None) -> bool:
    """Whether to stream (``setting`` ``True``/``False``, or ``"auto"``: see the module doc;
    ``budget``: the method's memory budget in bytes, ``None`` for :func:`memory_budget`).

    A float32 C-ordered array covering every column is already in memory and never streamed.
    """
    if setting != "auto":
        return bool(setting)
    src = data.source
    if (isinstance(src, np.ndarray) and src.dtype == np.float32 and src.flags.c_contiguous
            and data.n_neurons == src.shape[1]
            and np.array_equal(data.ids, np.arange(src.shape[1]))):
        return False
    return 4 * data.n_words * data.n_neurons > (memory_budget() if budget is None
                                                else budget) // 2


def in_memory_matrix(data: MethodInput) -> np.ndarray:
    """The selected activations as one C-ordered float32 matrix, checked finite.

    A float32 C-ordered array holding every column is used as is (only read); every other
    input is copied once, by blocks of rows, so no layout (Fortran order, strided column
    views, stores) costs a slow pass.
    """
    src = data.source
    if (isinstance(src, np.ndarray) and src.dtype == np.float32 and src.flags.c_contiguous
            and data.n_neurons == src.shape[1]
            and np.array_equal(data.ids, np.arange(src.shape[1]))):
        for start in range(0, len(src), 16 * BLOCK_ROWS):
            check_finite(src[start : start + 16 * BLOCK_ROWS], start)
        return src
    check_fits(4 * data.n_words * data.n_neurons,
               f"loading {data.n_words} x {data.n_neurons} activations for the probe")
    out = np.empty((data.n_words, data.n_neurons), dtype=np.float32)
    view = data.view
    for start in range(0, data.n_words, 4 * BLOCK_ROWS):
        stop = min(start + 4 * BLOCK_ROWS, data.n_words)
        view.read(start, stop, out=out[start:stop])
    return out


class Scan:
    """One ordered pass's statistics: training-row moments and all-row health figures.

    Attributes:
        mean, scale: per neuron over the training rows (``scale`` 1 for constant neurons,
            as scikit-learn's ``StandardScaler`` does).
        count, all_mean, all_m2, max_abs: over every row (for the neuron-health report).
    """

    def __init__(self, source: RowSource, train_mask: np.ndarray) -> None:
        moments = RunningMoments(source.n_features, n_groups=2)
        max_abs = np.zeros(source.n_features, dtype=np.float32)
        for ids, block in source.blocks(np.arange(source.n_rows)):
            b = block.cpu().numpy()
            moments.update(b, (~train_mask[ids]).astype(np.int64))
            np.maximum(max_abs, np.abs(b).max(axis=0), out=max_abs)
        mean, std = moments.mean_[0].copy(), moments.std_[0].copy()
        std[std < 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
        self.mean, self.scale = mean.astype(np.float32), std.astype(np.float32)
        total = RunningMoments(source.n_features)
        for g in range(2):
            total.merge(float(moments.count_[g]), moments.mean_[g], moments.m2_[g])
        self.count = int(total.count_[0])
        self.all_mean, self.all_m2 = total.mean_[0], total.m2_[0]
        self.max_abs = max_abs.astype(np.float64)


def _to_device_if_fits(x: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The whole matrix on the accelerator when it leaves room to spare; otherwise ``None``
    (minibatches are then gathered on the host and moved one at a time)."""
    import warnings

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if x.nbytes > 0.6 * free:
            return None
    with warnings.catch_warnings():
        # A read-only input (e.g. a memory map) is fine: it is only copied.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(x).to(device)
