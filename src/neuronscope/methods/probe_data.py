"""Where the linear probe's rows come from: an in-memory matrix, or the store, streamed.

Training visits the training rows in shuffled minibatches many times; validation, the
standardization statistics and the start of the regularization path need ordered passes.
Both kinds of pass go through a *row source*:

* :class:`InMemoryRows` holds the selection as one C-ordered float32 matrix in a *training
  layout*: the training rows in one seeded random order, then the others. A store, a
  Fortran-ordered array or a column selection ``x[:, cols]`` is copied into it once, block
  by block; a C-ordered array handed in is copied for a path fit and used as it is for a
  single fit (:func:`in_memory_rows`). A minibatch is a run of
  tiles of consecutive layout rows, the tiles drawn in a fresh random order every epoch:
  re-mixed batches without copying a row.
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

import itertools
import warnings
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput, check_finite
from neuronscope.methods.statistics import chunk_class_moments
from neuronscope.moments import RunningMoments
from neuronscope.store.memory import check_fits, empty_matrix, memory_budget
from neuronscope.store.store import ActivationStore

#: Rows per tile of :class:`InMemoryRows`' training layout: 128 rows of 2,688 neurons
#: (1.4 MB) fit a core's 2 MB L2 cache while a product reads them. The tiles also decide
#: which rows share a batch: changing this changes every fit.
TILE_ROWS = 128
# Rows per block of ordered passes (moments, evaluation): ~11 MB of float32 at 2,688 neurons.
BLOCK_ROWS = 4096
#: Mixing-buffer size of :class:`StreamingRows` when not given: this many bytes of float32
#: rows (at most a quarter of the memory budget), and never fewer than two chunks.
BUFFER_BYTES = 1 << 30

#: ``(row ids, block)``: rows of an ordered pass.
Batch = tuple[np.ndarray, torch.Tensor]
#: ``(row ids, parts)``: a minibatch as tensors whose rows, stacked, are the rows ``ids``
#: (the tiles of :class:`InMemoryRows`, or one tensor).
TiledBatch = tuple[np.ndarray, list[torch.Tensor]]


class RowSource(Protocol):
    """What the trainer reads rows from (see the module docstring)."""

    n_rows: int
    n_features: int
    streaming: bool
    #: Whether a minibatch's parts are read where they lie in main memory (layout tiles),
    #: not gathered into one cached block: the trainer then finishes each part's products
    #: while it is in the core's cache (see ``Trainer._step``).
    parts_in_place: bool

    def shuffled_batches(self, rows: np.ndarray, batch_size: int,
                         generator: torch.Generator) -> Iterator[TiledBatch]:
        """``(row ids, parts)`` minibatches covering ``rows`` once, in random order."""
        ...

    def blocks(self, rows: np.ndarray) -> Iterator[Batch]:
        """``(row ids, block)`` covering the sorted ``rows`` once, in order."""
        ...


class InMemoryRows:
    """Rows of a float32 matrix in a *training layout* (on the accelerator when it fits).

    Layout position ``p`` holds row ``order[p]``: the training rows first, in one seeded
    random order, then the others in their order. A minibatch is a run of *tiles*
    (about :data:`TILE_ROWS` consecutive positions, i.e. random training rows), and every
    epoch visits the tiles in a fresh random order: batches are re-mixed every epoch while
    no row is copied. Gathering every row of every epoch cost as much as the products
    themselves (0.55 s of about 1.5 s per epoch on EWT train x 2,688 neurons, with
    ``np.take``; 0.24 s with :func:`gather_rows`). The trainer finishes each tile read in
    place (``parts_in_place``) before the next, so its backward product reads it from the
    core's L2 cache; gathered tiles go through the step together (see ``Trainer._step``).

    ``x`` is the matrix in the layout (``in_layout``), or an array handed in, in its row
    order (a single fit, or no room for a copy; see :func:`in_memory_rows`): each batch's
    rows are then gathered and cut into the same tiles, and ordered passes read it in row
    order, so the fit equals the copied layout's up to the summation order of the moments.
    """

    streaming = False

    def __init__(self, x: np.ndarray, device: torch.device, batch_size: int,
                 order: np.ndarray | None = None, n_train: int | None = None,
                 in_layout: bool = True) -> None:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            raise NeuronscopeError("InMemoryRows needs a C-ordered float32 matrix")
        self.n_rows, self.n_features = x.shape
        self.device = device
        self.order = np.arange(self.n_rows) if order is None else order
        self.n_train = self.n_rows if n_train is None else int(n_train)
        self.position = np.empty(self.n_rows, dtype=np.int64)
        self.position[self.order] = np.arange(self.n_rows)
        self.tiles_per_batch = -(-batch_size // TILE_ROWS)
        self.tile_rows = max(1, -(-batch_size // self.tiles_per_batch))
        self.in_layout = in_layout
        self.x = x
        self.x_device = (_to_device_if_fits(x, device) if device.type != "cpu" and in_layout
                         else None)
        self.parts_in_place = in_layout and device.type == "cpu"
        self._buffer = np.empty((max(batch_size, BLOCK_ROWS), self.n_features),
                                dtype=np.float32)

    def _span(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of ``x`` on the device (a view on the CPU, or of the copy on
        the accelerator when the matrix fits there)."""
        if self.x_device is not None:
            return self.x_device[start:stop]
        return torch.from_numpy(self.x[start:stop]).to(self.device)

    def shuffled_batches(self, rows: np.ndarray, batch_size: int,
                         generator: torch.Generator) -> Iterator[TiledBatch]:
        if len(rows) != self.n_train or not np.array_equal(
                np.sort(self.order[: self.n_train]), rows):
            raise NeuronscopeError("shuffled batches are drawn from the training rows only")
        tile = self.tile_rows
        starts = np.arange(0, self.n_train, tile)
        starts = starts[torch.randperm(len(starts), generator=generator).numpy()]
        # The epoch's layout positions, tile after tile, and where each tile and batch ends.
        lengths = np.minimum(starts + tile, self.n_train) - starts
        ends = np.cumsum(lengths)
        positions = np.repeat(starts - ends + lengths, lengths) + np.arange(self.n_train)
        ids = self.order[positions]
        tile_ends = [0, *ends.tolist()]
        batch_ends = tile_ends[:: self.tiles_per_batch]
        if batch_ends[-1] != self.n_train:
            batch_ends.append(self.n_train)
        for k in range(len(batch_ends) - 1):
            lo, hi = batch_ends[k], batch_ends[k + 1]
            cuts = tile_ends[k * self.tiles_per_batch : (k + 1) * self.tiles_per_batch + 1]
            if self.x_device is not None:
                # On an accelerator one gathered batch beats many small products.
                pos = torch.from_numpy(positions[lo:hi]).to(self.device)
                yield ids[lo:hi], [self.x_device.index_select(0, pos)]
                continue
            if self.in_layout:
                yield ids[lo:hi], [self._span(int(positions[a]), int(positions[a]) + b - a)
                                   for a, b in itertools.pairwise(cuts)]
                continue
            # Not in the layout: gather the batch's rows once, cut at the same tiles.
            block = gather_rows(self.x, ids[lo:hi], self._buffer[: hi - lo])
            yield ids[lo:hi], [torch.from_numpy(block[a - lo : b - lo]).to(self.device)
                               for a, b in itertools.pairwise(cuts)]

    def blocks(self, rows: np.ndarray) -> Iterator[Batch]:
        # Indices into ``x``: layout positions, or the rows themselves for an array in row
        # order. In the layout, blocks end where the training rows end: each holds training
        # rows or other rows, never both (the moments then need no per-row split).
        index = np.sort(self.position[rows] if self.in_layout else rows)
        cut = int(np.searchsorted(index, self.n_train)) if self.in_layout else 0
        bounds = sorted({*range(0, cut, BLOCK_ROWS), *range(cut, len(index), BLOCK_ROWS),
                         len(index)})
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            at = index[lo:hi]
            ids = self.order[at] if self.in_layout else at
            start, stop = int(at[0]), int(at[-1]) + 1
            if stop - start == len(at):
                yield ids, self._span(start, stop)
                continue
            block = self._buffer[: len(at)]
            gather_rows(self.x, at, block)
            yield ids, torch.from_numpy(block).to(self.device)


def gather_rows(x: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[:] = x[rows]`` for a C-ordered float32 ``x``; returns ``out``.

    ``torch.index_select`` copies each row as one run; ``np.take(x, rows, axis=0, out=out)``
    took twice as long: 0.51 s against 0.24 s for an epoch's batches of 920 random rows of
    184,000 x 2,688, side by side, one thread. A single fit gathers every batch (see
    :class:`InMemoryRows`), so the gather once cost as much as the products.
    """
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    with warnings.catch_warnings():
        if not x.flags.writeable:
            # A read-only input (e.g. a memory map) is fine: it is only read.
            warnings.simplefilter("ignore", UserWarning)
        torch.index_select(torch.from_numpy(x), 0, index, out=torch.from_numpy(out))
    return out


def training_order(n_rows: int, train_rows: np.ndarray, seed: int) -> np.ndarray:
    """Row at each layout position: ``train_rows`` in a seeded random order, then the other
    rows in order."""
    train_rows = np.asarray(train_rows, dtype=np.int64)
    rest = np.ones(n_rows, dtype=bool)
    rest[train_rows] = False
    generator = torch.Generator().manual_seed(seed)
    shuffled = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
    return np.concatenate([shuffled, np.flatnonzero(rest)])


def in_memory_rows(data: MethodInput, device: torch.device, batch_size: int,
                   train_rows: np.ndarray, seed: int, budget: int | None = None,
                   copy_array: bool = True) -> InMemoryRows:
    """The selection in memory, in the training layout of :class:`InMemoryRows`.

    A float32 C-ordered array holding every column is copied into the layout when
    ``copy_array`` and the copy fits in half the memory ``budget`` (``None``:
    :func:`memory_budget`), else used as it is (the same tiles gathered; the fit differs
    only by the summation order of the moments); every other input (Fortran order, column
    views, stores) is read once, by blocks of rows, straight into the layout. Values are
    checked finite here, or, for an array used as it is, by the :class:`Scan` that every fit
    starts with (one pass fewer over the array).

    The copy pays for itself over many epochs only: its fresh pages cost 1-5 s per 2.2 GB on
    our VM (first touch), while gathering the batches costs about 0.24 s per epoch of EWT
    train (:func:`gather_rows`).
    """
    order = training_order(data.n_words, train_rows, seed)
    src = data.source
    if (isinstance(src, np.ndarray) and src.dtype == np.float32 and src.flags.c_contiguous
            and data.n_neurons == src.shape[1]
            and np.array_equal(data.ids, np.arange(src.shape[1]))):
        budget = memory_budget() if budget is None else budget
        if not copy_array or src.nbytes > budget // 2:
            return InMemoryRows(src, device, batch_size, order, len(train_rows),
                                in_layout=False)
        out = empty_matrix(src.shape)
        for start in range(0, len(src), BLOCK_ROWS):
            block = out[start : start + BLOCK_ROWS]
            gather_rows(src, order[start : start + BLOCK_ROWS], block)
            # Checked while the copied block is in cache; the rows are named in the
            # array's own order.
            if not np.isfinite(np.sum(block, dtype=np.float64)):
                _check_rows_finite(src)
        return InMemoryRows(out, device, batch_size, order, len(train_rows))
    check_fits(4 * data.n_words * data.n_neurons,
               f"loading {data.n_words} x {data.n_neurons} activations for the probe")
    out = empty_matrix((data.n_words, data.n_neurons))
    position = np.empty(data.n_words, dtype=np.int64)
    position[order] = np.arange(data.n_words)
    block = np.empty((min(4 * BLOCK_ROWS, data.n_words), data.n_neurons), dtype=np.float32)
    view = data.view
    for start in range(0, data.n_words, 4 * BLOCK_ROWS):
        stop = min(start + 4 * BLOCK_ROWS, data.n_words)
        # The view's read checks the values (naming the row of a NaN).
        out[position[start:stop]] = view.read(start, stop, out=block[: stop - start])
    return InMemoryRows(out, device, batch_size, order, len(train_rows))


def _check_rows_finite(x: np.ndarray) -> None:
    """Raise the clear error naming the first row of ``x`` (in its own order) with NaN/inf."""
    for start in range(0, len(x), 16 * BLOCK_ROWS):
        check_finite(x[start : start + 16 * BLOCK_ROWS], start)


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
    parts_in_place = False

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

    def _emit(self, slots: np.ndarray, batch_size: int) -> Iterator[TiledBatch]:
        for start in range(0, len(slots), batch_size):
            batch = np.sort(slots[start : start + batch_size])
            if len(self._batch) < len(batch):
                self._batch = np.empty((len(batch), self.n_features), dtype=np.float32)
            block = self._batch[: len(batch)]
            gather_rows(self._buffer, batch, block)
            yield self._row_of_slot[batch], [torch.from_numpy(block).to(self.device)]

    def shuffled_batches(self, rows: np.ndarray, batch_size: int,
                         generator: torch.Generator) -> Iterator[TiledBatch]:
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


class Scan:
    """One ordered pass's statistics: training-row moments, all-row health figures and the
    training rows' target-weighted sums (what the penalty path's start needs).

    Args:
        source: the rows.
        train_mask: which rows are training rows.
        target: every row's class code (``n_classes`` given) or float target.
        n_classes: classes, or ``None`` for a regression target.

    Attributes:
        mean, scale: per neuron over the training rows (``scale`` 1 for constant neurons,
            as scikit-learn's ``StandardScaler`` does).
        count, all_mean, all_m2, max_abs: over every row (for the neuron-health report).
        target_sums: ``(n_classes or 1, n_neurons)`` float64: each class's sum of its training
            rows (one-hot targets), or the target-weighted sum of the rows (regression).
    """

    def __init__(self, source: RowSource, train_mask: np.ndarray, target: np.ndarray,
                 n_classes: int | None) -> None:
        d = source.n_features
        # One pass of the compiled per-group kernel (statistics' chunk_class_moments) over
        # groups: each training class (one group when regressing), then every other row.
        # The class moments are the target sums (count x mean) and merge to the training
        # moments. Numpy's per-group passes (a boolean copy of each block, a float64 mean,
        # a centred copy, the squares, minima, maxima, a one-hot product) took 3.1 s of a
        # single fit on EWT train, this pass 1.5 s (side by side, load 2.5).
        other = 1 if n_classes is None else n_classes
        moments = RunningMoments(d, n_groups=other + 1)
        high = np.full(d, -np.inf)
        low = np.full(d, np.inf)
        sums = np.zeros((1, d))
        for ids, block in source.blocks(np.arange(source.n_rows)):
            b = block.cpu().numpy()
            in_train = train_mask[ids]
            code = np.where(in_train, 0 if n_classes is None else target[ids], other)
            with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf: raised below
                counts, means, m2, lo, hi = chunk_class_moments(b, code, other + 1)
            if not np.isfinite(means).all():
                # NaN/inf reach the means (an array used as it is was not checked before).
                bad = int(np.flatnonzero(~np.isfinite(b).all(axis=1))[0])
                check_finite(b[bad : bad + 1], int(ids[bad]))
            for g in np.flatnonzero(counts):
                moments.merge(float(counts[g]), means[g], m2[g], int(g))
            np.maximum(high, hi, out=high)
            np.minimum(low, lo, out=low)
            if n_classes is None and in_train.any():
                # Target-weighted sum of the training rows (other rows weigh 0: no copy).
                weights = np.where(in_train, target[ids], 0).astype(np.float32)
                sums += (torch.from_numpy(weights)[None, :] @ torch.from_numpy(b)).double(
                ).numpy()
        train = RunningMoments(d)
        for c in range(other):
            train.merge(float(moments.count_[c]), moments.mean_[c], moments.m2_[c])
        mean, std = train.mean_[0].copy(), train.std_[0].copy()
        std[std < 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
        self.mean, self.scale = mean.astype(np.float32), std.astype(np.float32)
        total = RunningMoments(d)
        total.merge(float(train.count_[0]), train.mean_[0], train.m2_[0])
        total.merge(float(moments.count_[other]), moments.mean_[other], moments.m2_[other])
        self.count = int(total.count_[0])
        self.all_mean, self.all_m2 = total.mean_[0], total.m2_[0]
        self.max_abs = (np.maximum(high, -low) if source.n_rows else np.zeros(d))
        self.train_mean = train.mean_[0].copy()
        self.target_sums = (sums if n_classes is None
                            else moments.count_[:other, None] * moments.mean_[:other])


def _to_device_if_fits(x: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The whole matrix on the accelerator when it leaves room to spare; otherwise ``None``
    (minibatches are then gathered on the host and moved one at a time)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if x.nbytes > 0.6 * free:
            return None
    with warnings.catch_warnings():
        # A read-only input (e.g. a memory map) is fine: it is only copied.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(x).to(device)
