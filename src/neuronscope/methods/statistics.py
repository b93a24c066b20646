"""Streaming per-class statistics over activation chunks (float64 accumulators).

One pass over the rows gives, for every class, the count, mean and sum of squared deviations
(M2) of each neuron, plus every neuron's minimum and maximum, from which means, variances
and mean differences follow without loading all rows. Memory is one row chunk plus
``O(classes x neurons)``, whatever the number of words.

Computation: each chunk is reduced by a compiled kernel (:func:`~neuronscope.methods.
kernels.grouped_shifted_sums`, on threads over disjoint columns) to per-class sums of
``x - shift`` and of their squares, where ``shift`` is the class's running mean (the chunk's
first rows for a class not yet seen), so the chunk's M2 ``sum d^2 - (sum d)^2 / n`` loses no
digits; the chunks are then merged with Chan's update of the project's one streaming-moments
implementation (:class:`~neuronscope.moments.RunningMoments`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput
from neuronscope.methods.budget import Memory, resolve_budget, units_within
from neuronscope.methods.hygiene import NeuronHealth
from neuronscope.methods.kernels import grouped_shifted_sums
from neuronscope.moments import RunningMoments


@dataclass
class ClassMoments:
    """Per-class counts, means and variances of each neuron, plus overall min/max."""

    classes: list[str]
    counts: np.ndarray  # (C,)
    sums: np.ndarray  # (C, D)
    m2: np.ndarray  # (C, D) sums of squared deviations from each class mean
    minimum: np.ndarray  # (D,)
    maximum: np.ndarray  # (D,)

    @property
    def means(self) -> np.ndarray:
        """``(C, D)`` mean activation of each neuron per class."""
        return self.sums / np.maximum(self.counts, 1)[:, None]

    @property
    def variances(self) -> np.ndarray:
        """``(C, D)`` population variance per class (Chan's merge: no cancellation)."""
        return self.m2 / np.maximum(self.counts, 1)[:, None]

    @property
    def total_mean(self) -> np.ndarray:
        """``(D,)`` mean over all rows."""
        return self.sums.sum(axis=0) / max(self.counts.sum(), 1)

    def rest_mean(self, index: int) -> np.ndarray:
        """``(D,)`` mean over the rows not in class ``index``."""
        n = self.counts.sum() - self.counts[index]
        return (self.sums.sum(axis=0) - self.sums[index]) / max(n, 1)

    def health(self, data: MethodInput) -> NeuronHealth:
        """The ranker-hygiene statistics of the neurons (std, rms, max ``|a|``) from these
        moments; valid when every row belongs to a class."""
        n = max(float(self.counts.sum()), 1.0)
        mean = self.total_mean
        total_m2 = self.m2.sum(0) + (self.counts[:, None] * (self.means - mean) ** 2).sum(0)
        var = total_m2 / n
        max_abs = np.maximum(np.abs(self.minimum), np.abs(self.maximum))
        return NeuronHealth(data.ids.copy(), list(data.names), np.sqrt(var),
                            np.sqrt(var + mean**2), max_abs)


def class_moments(
    data: MethodInput, classes: Sequence[str], second_moments: bool = True, *,
    memory: Memory = None, n_jobs: int | None = None,
) -> ClassMoments:
    """One streaming pass: counts, sums, squared deviations per class, minima and maxima.

    Rows whose label is not in ``classes`` count only towards min/max. ``second_moments`` is
    kept for callers: the squared deviations come at no extra pass and are always computed.
    ``memory`` bounds the row chunk (see :mod:`~neuronscope.methods.budget`).
    """
    from neuronscope._backend import active_backend

    remote = active_backend()
    if remote is not None:  # inside neuronscope.distributed.use: chunks on the workers
        return remote.class_moments(data, classes, second_moments)
    del second_moments  # always computed: the same pass gives them
    index = {c: i for i, c in enumerate(classes)}
    code = np.fromiter((index.get(v, -1) for v in data.y.tolist()), dtype=np.int32,
                       count=data.n_words)
    return grouped_moments(data, code, list(classes), memory=memory, n_jobs=n_jobs)


def grouped_moments(
    data: MethodInput, code: np.ndarray, classes: list[str], *, memory: Memory = None,
    n_jobs: int | None = None,
) -> ClassMoments:
    """:func:`class_moments` from int32 row codes ``0..len(classes)-1`` (``-1``: no class)."""
    from neuronscope.methods.column_pass import default_jobs

    d, n_cls = data.n_neurons, len(classes)
    code = np.ascontiguousarray(code, dtype=np.int32)
    # Fixed: running moments, the chunk's sums, minima/maxima; per row: the chunk (x2 for a
    # store, which may hold a read copy while assembling it).
    fixed = 8 * d * n_cls * 5 + 32 * d
    rows = units_within(resolve_budget(memory), fixed, 8 * d, data.chunk_words,
                        f"class moments of {d} neurons", "row of a chunk")
    jobs = max(1, min(n_jobs or default_jobs(), d // 64 or 1))
    bounds = np.linspace(0, d, jobs + 1).astype(np.int64)
    moments = RunningMoments(d, n_cls)
    lo = np.full(d, np.inf, np.float32)
    hi = np.full(d, -np.inf, np.float32)
    sums = np.empty((n_cls, d))
    squares = np.empty((n_cls, d))
    counts = np.empty(n_cls)
    pool = ThreadPoolExecutor(jobs) if jobs > 1 else None
    try:
        for start, stop, block in _row_chunks(data, rows):
            c = code[start:stop]
            seen = moments.count_ > 0
            shift = np.where(seen[:, None], moments.mean_,
                             block[: min(len(block), 64)].mean(0, dtype=np.float64))
            sums.fill(0.0)
            squares.fill(0.0)
            counts.fill(0.0)

            def part(j: int, block: np.ndarray = block, c: np.ndarray = c,
                     shift: np.ndarray = shift) -> None:
                grouped_shifted_sums(block, c, shift, counts, sums, squares, lo, hi,
                                     int(bounds[j]), int(bounds[j + 1]))

            if pool is None:
                part(0)
            else:
                list(pool.map(part, range(jobs)))
            if not np.isfinite(sums).all():
                _raise_not_finite(data, start, block)
            for g in np.flatnonzero(counts):
                mean, m2 = _group_moments(int(g), counts, sums, squares, shift)
                moments.merge(float(counts[g]), mean, m2, int(g))
    finally:
        if pool is not None:
            pool.shutdown()
    return ClassMoments(classes, moments.count_.copy(), moments.mean_ * moments.count_[:, None],
                        moments.m2_, lo.astype(np.float64), hi.astype(np.float64))


def chunk_class_moments(block: np.ndarray, code: np.ndarray, n_cls: int,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One row chunk's per-class ``(counts, means, m2, minimum, maximum)``, by the shifted
    sums of :func:`grouped_moments` (shift: the mean of the chunk's first rows), so that
    chunks computed apart (on Dask workers) and merged in row order with Chan's update agree
    with the single-process pass to float64 rounding. Non-finite values surface as
    non-finite means."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    d = block.shape[1]
    shift = np.repeat(block[:64].mean(0, dtype=np.float64)[None, :], n_cls, axis=0)
    counts, sums, squares = np.zeros(n_cls), np.zeros((n_cls, d)), np.zeros((n_cls, d))
    lo = np.full(d, np.inf, np.float32)
    hi = np.full(d, -np.inf, np.float32)
    grouped_shifted_sums(block, np.ascontiguousarray(code, dtype=np.int32), shift, counts,
                         sums, squares, lo, hi, 0, d)
    means, m2 = np.zeros((n_cls, d)), np.zeros((n_cls, d))
    for g in np.flatnonzero(counts):
        means[g], m2[g] = _group_moments(int(g), counts, sums, squares, shift)
    if not np.isfinite(sums).all():
        means.fill(np.nan)
    return counts, means, m2, lo.astype(np.float64), hi.astype(np.float64)


def _group_moments(g: int, counts: np.ndarray, sums: np.ndarray, squares: np.ndarray,
                   shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and squared deviations of group ``g`` from its shifted sums (the one formula of
    :func:`grouped_moments` and :func:`chunk_class_moments`)."""
    mean = sums[g] / counts[g]
    return shift[g] + mean, np.maximum(squares[g] - sums[g] * mean, 0.0)


def _row_chunks(data: MethodInput, rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Row chunks of the selected neurons; views (no copy) of a contiguous array selection
    (not checked here: the sums reveal NaN/inf), checked copies otherwise."""
    ids, src = data.ids, data.source
    contiguous = len(ids) > 0 and bool(np.all(np.diff(ids) == 1))
    if isinstance(src, np.ndarray) and src.dtype == np.float32 and contiguous:
        cols = slice(int(ids[0]), int(ids[0]) + len(ids))
        for start in range(0, data.n_words, rows):
            stop = min(start + rows, data.n_words)
            yield start, stop, src[start:stop, cols]
        return
    yield from data.view.chunks(rows)


def _raise_not_finite(data: MethodInput, start: int, block: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(block))
    r, c = (bad[0] if len(bad) else (0, 0))
    raise NeuronscopeError(
        f"activations contain NaN or inf (first at row {start + int(r)}, neuron "
        f"{data.names[int(c)]}); clean the store or choose other neurons"
    )
