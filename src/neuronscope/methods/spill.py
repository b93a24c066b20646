"""Full neuron columns of a store without holding full column blocks: a scratch transpose.

The rankers that sort each neuron (AP, IoU) need every row of one neuron at a time, while a
store keeps rows together (chunks of ``chunk_words`` words x one layer). Holding a block of
full columns costs ``4 * n_words`` bytes per neuron, so memory grows with the corpus;
reading a narrower block per pass re-reads every chunk once per pass instead.

Here a group of neurons (at most one layer's worth) is read once, row block by row block;
each block is transposed and each neuron's piece written at its place in an unlinked
scratch file (``TMPDIR``; the operating system's page cache keeps it in memory when it can,
outside this process). Each neuron's column is then read back with one ``pread`` into a
buffer the caller owns. Memory held: one row block and its transpose (``8 * ROW_BLOCK *
group`` bytes), whatever the number of words; disk: ``4 * n_words * group`` bytes at a time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput
from neuronscope.methods.kernels import transpose_into
from neuronscope.store.fastread import pread_full, pwrite_full
from neuronscope.store.store import ActivationStore

#: Column blocks of a store larger than this are spilled (bytes of one float32 block).
SPILL_BYTES = 64 * 2**20
#: Rows read and transposed at a time while spilling (16 MiB for a 256-neuron group).
ROW_BLOCK = 16384

ColumnReader = Callable[[int, np.ndarray], np.ndarray]


def layer_groups(store: ActivationStore, ids: np.ndarray, width: int) -> Iterator[np.ndarray]:
    """Positions (of ``ids``) in id order, cut at layer boundaries and every ``width``: each
    group's columns lie in one layer's chunks, so reading the groups in turn reads every
    on-disk chunk once per group of its layer, whatever the order of ``ids``."""
    by_id = np.argsort(ids, kind="stable")
    layer = store.layout.layer_of(ids[by_id])
    lo = 0
    for i in range(1, len(by_id) + 1):
        if i == len(by_id) or layer[i] != layer[i - 1] or i - lo >= width:
            yield by_id[lo:i]
            lo = i


def _write_all(fd: int, data: np.ndarray, offset: int) -> None:
    try:
        pwrite_full(fd, data, offset)
    except OSError as err:  # e.g. a full disk: say where, not a traceback
        raise NeuronscopeError(
            f"cannot write the ranker's scratch file in {tempfile.gettempdir()} "
            f"({err.strerror or err}); it needs 4 bytes per word and neuron of one layer: "
            "free space there or point TMPDIR elsewhere") from None


def _read_all(fd: int, out: np.ndarray, offset: int) -> None:
    if pread_full(fd, out, offset) < out.nbytes:
        raise NeuronscopeError("the ranker's scratch file ended early (disk full or removed?)")


def spilled_groups(data: MethodInput, width: int) -> Iterator[tuple[np.ndarray, ColumnReader]]:
    """Yield ``(cols, read_column)`` per group of at most ``width`` neurons of one layer:
    ``read_column(i, out)`` fills ``out`` (float32, ``n_words``) with the rows of neuron
    ``cols[i]`` and returns it. Readers of one group may run on several threads; each group's
    reader is valid until the next group is yielded. Every row block is checked finite."""
    from neuronscope.methods.column_pass import check_block_finite

    store, n = data.source, data.n_words
    if isinstance(store, np.ndarray):
        raise NeuronscopeError("spilling reads a store; an array's columns are read directly")
    with tempfile.TemporaryFile(prefix="neuronscope-columns-") as scratch:
        fd = scratch.fileno()
        transposed = np.empty((max(1, width), min(ROW_BLOCK, n)), np.float32)
        for cols in layer_groups(store, data.ids, max(1, width)):
            ids = data.ids[cols]
            for start in range(0, n, ROW_BLOCK):
                stop = min(start + ROW_BLOCK, n)
                block = store.neurons(ids, slice(start, stop))
                try:
                    check_block_finite(block, [data.names[c] for c in cols])
                except NeuronscopeError as err:
                    raise NeuronscopeError(f"rows {start}-{stop - 1}: {err}") from None
                rows = transposed[: len(cols), : stop - start]
                transpose_into(block, rows)
                for i, column in enumerate(rows):
                    _write_all(fd, column, 4 * (i * n + start))

            def read_column(i: int, out: np.ndarray) -> np.ndarray:
                _read_all(fd, out[:n], 4 * i * n)
                return out[:n]

            yield cols, read_column
