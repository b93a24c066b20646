"""Sufficient statistics reduced on a Dask cluster, equal to the single-process ones.

Both reductions read the store on the workers (it must be on a path every worker sees) and
send back only statistics:

- :func:`class_moments_on`: per-class counts, means, squared deviations and min/max, one
  task per row chunk of the single-process stream, by the same shifted-sums kernel. The
  client merges the chunks' moments in row order with the same Chan update as
  :class:`~neuronscope.moments.RunningMoments`; the single process shifts each chunk by the
  running class means instead of the chunk's own mean, so the two agree to float64
  rounding (relative 1e-12 in the tests), not bit for bit.
- :func:`block_pass_on`: the centred co-moment (Gram) matrix behind the correlation matrix,
  one task per contiguous range of rows (as many as workers); partial matrices are merged
  with the pairwise update ``M2 = M2_a + M2_b + (n_a n_b / n) delta delta^T`` (equal to the
  single-process pass within float64 rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from neuronscope.moments import RunningMoments

if TYPE_CHECKING:
    from distributed import Client

    from neuronscope.methods.base import MethodInput
    from neuronscope.methods.statistics import ClassMoments
    from neuronscope.unsupervised.correlation import ColumnSource


def _chunk_class_moments(view: Any, start: int, stop: int, code: np.ndarray,
                         n_cls: int) -> tuple[np.ndarray, ...]:
    """On a worker: one chunk's per-class counts, means, squared deviations and min/max."""
    from neuronscope.methods.statistics import chunk_class_moments

    return chunk_class_moments(view.read(start, stop), code, n_cls)


def class_moments_on(client: Client, data: MethodInput, classes: Sequence[str],
                     second_moments: bool = True) -> ClassMoments:
    """:func:`~neuronscope.methods.statistics.class_moments` with chunks on the workers
    (``second_moments`` is accepted for the same signature: they come with the pass)."""
    from neuronscope.errors import NeuronscopeError
    from neuronscope.methods.statistics import ClassMoments

    del second_moments
    index = {c: i for i, c in enumerate(classes)}
    code = np.array([index.get(v, -1) for v in data.y.tolist()], dtype=np.int32)
    n_cls, n_dim, n = len(classes), data.n_neurons, data.n_words
    view = client.scatter(data.view, broadcast=True, hash=False)
    step = data.view.chunk_words
    futures = [client.submit(_chunk_class_moments, view, a, min(a + step, n),
                             code[a:min(a + step, n)], n_cls, pure=False)
               for a in range(0, n, step)]
    moments = RunningMoments(n_dim, n_cls)
    lo = np.full(n_dim, np.inf)
    hi = np.full(n_dim, -np.inf)
    for start, future in zip(range(0, n, step), futures, strict=True):
        counts, means, m2, part_lo, part_hi = future.result()
        future.release()
        if not np.isfinite(means).all():
            raise NeuronscopeError(
                f"activations contain NaN or inf (rows {start}-{min(start + step, n) - 1}); "
                "clean the store or choose other neurons")
        for g in np.flatnonzero(counts):  # in row order, as in one process
            moments.merge(float(counts[g]), means[g], m2[g], int(g))
        lo = np.minimum(lo, part_lo)
        hi = np.maximum(hi, part_hi)
    return ClassMoments(list(classes), moments.count_.copy(),
                        moments.mean_ * moments.count_[:, None], moments.m2_, lo, hi)


def _partial_pass(source: ColumnSource, lo: int, hi: int, precision: str,
                  rows: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """On a worker: moments and ``M2[lo:hi, lo:]`` of some rows (a contiguous range)."""
    from neuronscope.unsupervised.correlation import _block_pass

    moments, acc = _block_pass(source, lo, hi, precision, rows)
    return float(moments.count_[0]), moments.mean_[0], moments.m2_[0], acc


def block_pass_on(client: Client, source: ColumnSource, lo: int, hi: int, precision: str,
                  rows: np.ndarray | None) -> tuple[RunningMoments, np.ndarray]:
    """``_block_pass`` of the correlation matrix with the words split over the workers."""
    from neuronscope.distributed.workers import n_workers
    from neuronscope.unsupervised.correlation import _rank1_update

    all_rows = np.arange(source.n_rows) if rows is None else np.asarray(rows)
    parts = [p for p in np.array_split(all_rows, n_workers(client)) if len(p)]
    ref = client.scatter(source, broadcast=True, hash=False)
    futures = [client.submit(_partial_pass, ref, lo, hi, precision, p, pure=False)
               for p in parts]
    width = source.n_cols - lo
    moments = RunningMoments(width)
    acc = np.zeros((hi - lo, width))
    for future in futures:
        count, mean, m2, part = future.result()
        future.release()
        if count == 0:
            continue
        acc += part
        del part
        delta, weight = moments.merge(count, mean, m2)
        _rank1_update(acc, weight, delta[: hi - lo], delta)
    return moments, acc
