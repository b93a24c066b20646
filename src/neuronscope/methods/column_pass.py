"""One pass over full columns for the rankers that sort each neuron (AP, IoU).

Neurons are read in column blocks holding all rows (:func:`iter_column_blocks`: for a store,
one layer's columns at a time, matching its chunks). Each block is transposed whole, the
``n_jobs`` threads each taking a share of its rows (a compiled copy in tiles of 128 rows x
32 columns), into one reused buffer of contiguous columns; then the threads rank its neurons
(the compiled kernels release the GIL), each with its own reused buffers, while the next
block is read. The kernels also return every neuron's mean, spread and largest ``|value|``
from their first pass over the column, so the ranker hygiene (dead and outlier neurons)
needs no second pass, and NaN or inf (which make those sums non-finite) need no separate
check: a block whose sums are not finite is searched for the offending row.

Memory: the block being read, the block being ranked and its transpose (``12 * n_words``
bytes per neuron of a block) plus, per thread, the sort buffers; ``block_neurons`` is
lowered to fit the memory budget, and a corpus too long for even one column per block is
refused.

A store whose column block would take more than :data:`SPILL_BYTES` is *spilled* instead
(:mod:`~neuronscope.methods.spill`): each row chunk is read once, transposed and written to
an unlinked scratch file (``TMPDIR``), and each thread reads its neuron's column back from
there. The memory held is then one row block plus, per thread, one column and its sort
buffers: flat in the number of neurons and, but for those per-thread columns, in the number
of words, where holding full column blocks grows with both.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput
from neuronscope.methods.budget import Memory, resolve_budget, units_within
from neuronscope.methods.hygiene import NeuronHealth
from neuronscope.methods.kernels import transpose_rows
from neuronscope.methods.spill import (
    ROW_BLOCK,
    SPILL_BYTES,
    ColumnReader,
    layer_groups,
    spilled_groups,
)

# Neurons handed to a thread at a time: few enough to share a block's neurons evenly
# between the threads, enough to make the pool's per-task cost negligible.
TASK_NEURONS = 4


def label_codes(y: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
    """Row codes ``0..C-1`` for the concepts, ``C`` for every other label (smallest uint)."""
    index = {c: i for i, c in enumerate(concepts)}
    other = len(concepts)
    dtype = np.uint8 if other < 2**8 else np.uint16 if other < 2**16 else np.int64
    # Lists of 65,536 labels at a time: fast lookups without a second list of every label.
    step = 1 << 16
    return np.fromiter((index.get(v, other) for a in range(0, len(y), step)
                        for v in y[a : a + step].tolist()), dtype=dtype, count=len(y))


def check_block_finite(block: np.ndarray, names: Sequence[str]) -> None:
    """Raise a clear error naming the first row and neuron (``names`` of the block's columns)
    holding NaN or inf.

    One cheap pass: NaN and inf survive a column sum, so the exact search runs only when a
    sum is not finite (which an overflow of huge finite values can also cause).
    """
    if np.isfinite(block.sum(axis=0)).all():
        return
    bad = np.argwhere(~np.isfinite(block))
    if not len(bad):
        return
    r, c = bad[0]
    raise NeuronscopeError(
        f"activations contain NaN or inf (first at row {int(r)}, neuron {names[int(c)]}); "
        "clean the store or choose other neurons"
    )


def iter_column_blocks(
    data: MethodInput, block_neurons: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(cols, block)``: all rows of the selected neurons at positions ``cols`` (of
    ``data.ids``) as a float32 ``(n_words, len(cols))`` block.

    For a store, neurons are visited in id order and blocks never straddle a (component,
    layer) boundary, so each on-disk chunk (4096 words x one layer) is read once whatever the
    order of the selection. For an array, a contiguous run of columns is a view (callers must
    not write to blocks). Blocks are *not* checked for NaN/inf: callers do it
    (:func:`check_block_finite`), or, like :func:`column_pass`, catch it on their own pass.
    """
    if block_neurons < 1:
        raise NeuronscopeError(f"block_neurons must be >= 1, got {block_neurons}")
    n = data.n_neurons
    if isinstance(data.source, np.ndarray):
        for lo in range(0, n, block_neurons):
            cols = np.arange(lo, min(lo + block_neurons, n))
            ids = data.ids[cols]
            if len(ids) > 1 and np.all(np.diff(ids) == 1):
                block = data.source[:, ids[0] : ids[-1] + 1]
            else:
                block = data.source[:, ids]
            yield cols, np.asarray(block, dtype=np.float32)
        return
    for cols in layer_groups(data.source, data.ids, block_neurons):
        yield cols, data.source.neurons(data.ids[cols])


def default_jobs() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan_blocks(n_words: int, block_neurons: int, jobs: int, memory: Memory,
                thread_bytes_per_word: int, what: str) -> int:
    """Neurons per block within the memory budget (at most ``block_neurons``).

    The working set is three blocks' worth (``12`` bytes per word and neuron: the block
    being read, the one being ranked and its transpose) plus ``thread_bytes_per_word``
    bytes of buffers per word and thread.
    """
    if block_neurons < 1:
        raise NeuronscopeError(f"block_neurons must be >= 1, got {block_neurons}")
    return units_within(resolve_budget(memory), jobs * n_words * thread_bytes_per_word,
                        12 * n_words, block_neurons, what, "neuron of a column block")


def plan_spill(n_words: int, block_neurons: int, jobs: int, memory: Memory,
               thread_bytes_per_word: int, what: str) -> int:
    """Neurons per spilled group within the memory budget (at most ``block_neurons``).

    The working set is a row block and its transpose (``8 * ROW_BLOCK`` bytes per neuron of
    the group) plus, per thread, one column and ``thread_bytes_per_word`` bytes per word.
    """
    fixed = jobs * n_words * (4 + thread_bytes_per_word)
    return units_within(resolve_budget(memory), fixed, 8 * min(ROW_BLOCK, n_words),
                        block_neurons, what, "neuron of a spilled group")


PerNeuron = Callable[[Any, np.ndarray, int, np.ndarray], None]


def column_pass(
    data: MethodInput, block_neurons: int, jobs: int, memory: Memory,
    thread_bytes_per_word: int, what: str,
    make_buffers: Callable[[], Any], per_neuron: PerNeuron,
) -> NeuronHealth:
    """Call ``per_neuron(buffers, x, col, stats)`` for every selected neuron (``x``: its
    float32 activations over all rows, contiguous; ``col``: its position in ``data.ids``) on
    ``jobs`` threads, each with its own ``make_buffers()`` (``thread_bytes_per_word`` bytes
    per word, for the memory plan); returns the neurons' health statistics. ``per_neuron``
    must write :func:`~neuronscope.methods.kernels.column_moments` of ``x`` into ``stats``
    (float64, 3; the kernels take them in their first pass). ``block_neurons`` is the
    widest block wanted, narrowed to fit ``memory``; ``what`` names the work in a refusal.

    Calls for different neurons may run concurrently: ``per_neuron`` must only write state of
    its own neuron (e.g. column ``col`` of a result array).
    """
    if block_neurons < 1:
        raise NeuronscopeError(f"block_neurons must be >= 1, got {block_neurons}")
    d, n = data.n_neurons, data.n_words
    stats = np.zeros((d, 3))
    local = threading.local()

    def buffers() -> Any:
        state = getattr(local, "buffers", None)
        if state is None:
            state = local.buffers = make_buffers()
        return state

    if not isinstance(data.source, np.ndarray) and 4 * n * min(block_neurons, d) > SPILL_BYTES:
        width = plan_spill(n, block_neurons, jobs, memory, thread_bytes_per_word, what)

        def one(read: ColumnReader, i: int, col: int) -> None:
            column = getattr(local, "column", None)
            if column is None:
                column = local.column = np.empty(n, np.float32)
            per_neuron(buffers(), read(i, column), col, stats[col])

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for cols, read in spilled_groups(data, width):  # row blocks checked finite there
                for task in [pool.submit(one, read, i, int(c)) for i, c in enumerate(cols)]:
                    task.result()
        return _health(data, stats)

    block_neurons = plan_blocks(n, block_neurons, jobs, memory, thread_bytes_per_word, what)
    transposed = np.empty((min(block_neurons, d), n), np.float32)

    def rank(cols: np.ndarray, lo: int, hi: int) -> None:
        state = buffers()
        for j in range(lo, hi):
            col = int(cols[j])
            per_neuron(state, transposed[j], col, stats[col])

    def check(cols: np.ndarray, block: np.ndarray) -> None:
        # NaN or inf make a column's sums non-finite (so can an overflow of huge finite
        # values: then the exact search finds nothing and the pass goes on).
        if not np.isfinite(stats[cols]).all():
            check_block_finite(block, [data.names[c] for c in cols])

    blocks = iter_column_blocks(data, block_neurons)
    if jobs == 1 or d <= TASK_NEURONS:
        for cols, block in blocks:
            k = len(cols)
            transpose_rows(block, transposed[:k], 0, n)
            rank(cols, 0, k)
            check(cols, block)
        return _health(data, stats)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        current = next(blocks, None)
        while current is not None:
            cols, block = current
            k = len(cols)
            # Rows in a few shares per thread (whole tiles of the transpose): a thread
            # slowed by the machine's load does not hold the other up for long.
            step = 128 * max(1, -(-n // (4 * jobs * 128)))
            for task in [pool.submit(transpose_rows, block, transposed[:k], lo,
                                     min(lo + step, n)) for lo in range(0, n, step)]:
                task.result()
            tasks = [pool.submit(rank, cols, j, min(j + TASK_NEURONS, k))
                     for j in range(0, k, TASK_NEURONS)]
            current = next(blocks, None)  # read while the threads rank
            for task in tasks:
                task.result()
            check(cols, block)
    return _health(data, stats)


def _health(data: MethodInput, stats: np.ndarray) -> NeuronHealth:
    mean, m2, max_abs = stats.T
    var = m2 / max(data.n_words, 1)
    return NeuronHealth(data.ids.copy(), list(data.names), np.sqrt(var),
                        np.sqrt(var + mean**2), max_abs.copy())
