"""Streaming per-class statistics over activation chunks (float64 accumulators).

One pass over the store gives, for every class, the count, sum and (through the project's one
streaming-moments implementation, :class:`~neuronscope.moments.RunningMoments`) the sum of
squared deviations of each neuron, from which means, variances and mean differences follow
without loading all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuronscope.methods.base import MethodInput
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


def class_moments(
    data: MethodInput, classes: Sequence[str], second_moments: bool = True
) -> ClassMoments:
    """One streaming pass: counts, sums (and squared deviations) per class.

    Rows whose label is not in ``classes`` count only towards min/max. With
    ``second_moments`` the per-class means and squared deviations are merged with
    :class:`RunningMoments` (sums = mean x count); without, each chunk is summed per class by
    one float32 BLAS product, accumulated in float64, and the deviations stay zero.
    """
    from neuronscope.distributed.cluster import active_client

    client = active_client()
    if client is not None:  # inside neuronscope.distributed.connect: chunks on the workers
        from neuronscope.distributed.statistics import class_moments_on

        return class_moments_on(client, data, classes, second_moments)
    index = {c: i for i, c in enumerate(classes)}
    code = np.array([index.get(v, -1) for v in data.y.tolist()], dtype=np.int64)
    n_cls, n_dim = len(classes), data.n_neurons
    counts = np.bincount(code[code >= 0], minlength=n_cls).astype(np.float64)
    sums = np.zeros((n_cls, n_dim))
    moments = RunningMoments(n_dim, n_cls) if second_moments else None
    lo = np.full(n_dim, np.inf)
    hi = np.full(n_dim, -np.inf)
    for start, stop, block in data.chunks():
        c = code[start:stop]
        keep = c >= 0
        if moments is not None:
            if keep.any():  # the class means come with the second moments
                moments.update(block[keep], c[keep])
        else:
            # A one-hot matrix product sums rows per class in one BLAS call.
            onehot = np.zeros((n_cls, stop - start), dtype=np.float32)
            onehot[c[keep], np.nonzero(keep)[0]] = 1.0
            sums += onehot @ block
        lo = np.minimum(lo, block.min(axis=0))
        hi = np.maximum(hi, block.max(axis=0))
    if moments is not None:
        sums = moments.mean_ * moments.count_[:, None]
    m2 = moments.m2_ if moments is not None else np.zeros((n_cls, n_dim))
    return ClassMoments(list(classes), counts, sums, m2, lo, hi)
