"""One pass over full columns for the rankers that sort each neuron (AP, IoU).

Neurons are read in column blocks holding all rows (:func:`~neuronscope.methods.iou.
iter_column_blocks`: for a store, one layer's columns at a time, matching its chunks), each
block is transposed 64 neurons at a time (a compiled tiled copy) and the neurons are handed
to ``n_jobs`` threads (the compiled kernels release the GIL), each with its own reused
buffers; the next block is read while the threads work on the current one. Every neuron's
mean, spread and largest ``|value|`` are collected on the way, so the ranker hygiene (dead
and outlier neurons) needs no second pass over the data.

Memory: two blocks (``8 * n_words`` bytes per neuron of a block) plus, per thread, a
transposed sub-block and the sort buffers; ``block_neurons`` is lowered to fit the memory
budget, and a corpus too long for even one column per block is refused.

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
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput
from neuronscope.methods.budget import Memory, resolve_budget, units_within
from neuronscope.methods.hygiene import NeuronHealth
from neuronscope.methods.kernels import column_moments, transpose_into
from neuronscope.methods.spill import (
    ROW_BLOCK,
    SPILL_BYTES,
    ColumnReader,
    layer_groups,
    spilled_groups,
)

# Neurons transposed together: 64 float32 of a row are four cache lines read per visit of a
# row that may lie pages away from the last (16 took about 1.5x as long on EWT train).
SUB_BLOCK = 64


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
    not write to blocks). Every block is checked for NaN/inf.
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
            block = np.asarray(block, dtype=np.float32)
            check_block_finite(block, [data.names[c] for c in cols])
            yield cols, block
        return
    for cols in layer_groups(data.source, data.ids, block_neurons):
        block = data.source.neurons(data.ids[cols])
        check_block_finite(block, [data.names[c] for c in cols])
        yield cols, block


def default_jobs() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan_blocks(n_words: int, block_neurons: int, jobs: int, memory: Memory,
                thread_bytes_per_word: int, what: str) -> int:
    """Neurons per block within the memory budget (at most ``block_neurons``).

    The working set is two blocks (``8`` bytes per word and neuron) plus, per thread, a
    transposed sub-block (``min(SUB_BLOCK, block)`` neurons) and ``thread_bytes_per_word``
    bytes of buffers per word.
    """
    if block_neurons < 1:
        raise NeuronscopeError(f"block_neurons must be >= 1, got {block_neurons}")
    budget, threads = resolve_budget(memory), jobs * n_words
    wide = threads * (4 * SUB_BLOCK + thread_bytes_per_word) + 8 * n_words * SUB_BLOCK
    if block_neurons > SUB_BLOCK and wide <= budget:
        return units_within(budget, wide - 8 * n_words * SUB_BLOCK, 8 * n_words,
                            block_neurons, what, "neuron of a column block")
    # Narrow blocks: each thread's transposed sub-block is as narrow as the block.
    return units_within(budget, threads * thread_bytes_per_word, (8 + 4 * jobs) * n_words,
                        min(block_neurons, SUB_BLOCK), what, "neuron of a column block")


def plan_spill(n_words: int, block_neurons: int, jobs: int, memory: Memory,
               thread_bytes_per_word: int, what: str) -> int:
    """Neurons per spilled group within the memory budget (at most ``block_neurons``).

    The working set is a row block and its transpose (``8 * ROW_BLOCK`` bytes per neuron of
    the group) plus, per thread, one column and ``thread_bytes_per_word`` bytes per word.
    """
    fixed = jobs * n_words * (4 + thread_bytes_per_word)
    return units_within(resolve_budget(memory), fixed, 8 * min(ROW_BLOCK, n_words),
                        block_neurons, what, "neuron of a spilled group")


def column_pass(
    data: MethodInput, block_neurons: int, jobs: int, memory: Memory,
    thread_bytes_per_word: int, what: str,
    make_buffers: Callable[[], Any], per_neuron: Callable[[Any, np.ndarray, int], None],
) -> NeuronHealth:
    """Call ``per_neuron(buffers, x, col)`` for every selected neuron (``x``: its float32
    activations over all rows, ``col``: its position in ``data.ids``) on ``jobs`` threads,
    each with its own ``make_buffers()`` (``thread_bytes_per_word`` bytes per word, for the
    memory plan); returns the neurons' health statistics. ``block_neurons`` is the widest
    block wanted, narrowed to fit ``memory``; ``what`` names the work in a refusal.

    Calls for different neurons may run concurrently: ``per_neuron`` must only write state of
    its own neuron (e.g. column ``col`` of a result array).
    """
    if block_neurons < 1:
        raise NeuronscopeError(f"block_neurons must be >= 1, got {block_neurons}")
    d, n = data.n_neurons, data.n_words
    mean, m2, max_abs = np.zeros(d), np.zeros(d), np.zeros(d)
    local = threading.local()

    def visit(buffers: Any, x: np.ndarray, col: int) -> None:
        mean[col], m2[col], max_abs[col] = column_moments(x)
        per_neuron(buffers, x, col)

    if not isinstance(data.source, np.ndarray) and 4 * n * min(block_neurons, d) > SPILL_BYTES:
        width = plan_spill(n, block_neurons, jobs, memory, thread_bytes_per_word, what)

        def one(read: ColumnReader, i: int, col: int) -> None:
            state = getattr(local, "state", None)
            if state is None:
                state = local.state = (make_buffers(), np.empty(n, np.float32))
            visit(state[0], read(i, state[1]), col)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for cols, read in spilled_groups(data, width):
                for task in [pool.submit(one, read, i, int(c)) for i, c in enumerate(cols)]:
                    task.result()
        return _health(data, mean, m2, max_abs)

    block_neurons = plan_blocks(n, block_neurons, jobs, memory, thread_bytes_per_word, what)

    def work(block: np.ndarray, cols: np.ndarray, j: int) -> None:
        state = getattr(local, "state", None)
        if state is None:
            width = min(SUB_BLOCK, block_neurons)
            state = local.state = (make_buffers(), np.empty((width, n), np.float32))
        part = block[:, j : j + len(state[1])]
        sub = state[1][: part.shape[1]]
        transpose_into(part, sub)
        for i, x in enumerate(sub):
            visit(state[0], x, int(cols[j + i]))

    step = min(SUB_BLOCK, block_neurons)
    blocks = iter_column_blocks(data, block_neurons)
    if jobs == 1 or d <= step:
        for cols, block in blocks:
            for j in range(0, len(cols), step):
                work(block, cols, j)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            pending: list[Future] = []
            for cols, block in blocks:  # the next block is read while the pool works
                for task in pending:
                    task.result()
                pending = [pool.submit(work, block, cols, j)
                           for j in range(0, len(cols), step)]
            for task in pending:
                task.result()
    return _health(data, mean, m2, max_abs)


def _health(data: MethodInput, mean: np.ndarray, m2: np.ndarray,
            max_abs: np.ndarray) -> NeuronHealth:
    var = m2 / max(data.n_words, 1)
    return NeuronHealth(data.ids.copy(), list(data.names), np.sqrt(var),
                        np.sqrt(var + mean**2), max_abs)
