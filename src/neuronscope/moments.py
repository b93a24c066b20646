"""The one streaming-moments implementation: per-column (and per-class) count, mean and M2.

Blocks of rows are reduced to their own count, mean and sum of squared deviations (M2) and
merged with Chan, Golub & LeVeque's pairwise update, so a store is read once, a block at a
time, and the variance never comes from the cancelling ``E[x^2] - E[x]^2`` formula (which
loses every digit when a neuron's mean is large against its spread).

Blocks may be float32: each block is centred on its own float32 mean before squaring, and the
squares are summed in float64, without a float64 copy of the block.
"""

from __future__ import annotations

import numpy as np

from neuronscope.errors import NeuronscopeError

__all__ = ["RunningMoments"]


class RunningMoments:
    """Count, mean and M2 of every column, for one group or per group (class) of rows.

    Args:
        n_columns: columns of every block.
        n_groups: ``None`` for one set of moments over all rows; else the number of groups,
            and :meth:`update` takes each row's group code in ``0..n_groups-1``.

    Attributes:
        count_: rows seen, ``(n_groups,)`` (a 1-element array without groups).
        mean_: ``(n_groups, n_columns)`` means (0 where a group has no rows).
        m2_: ``(n_groups, n_columns)`` sums of squared deviations from the mean.
    """

    def __init__(self, n_columns: int, n_groups: int | None = None) -> None:
        self.n_columns = int(n_columns)
        self.n_groups = n_groups
        g = 1 if n_groups is None else int(n_groups)
        self.count_ = np.zeros(g)
        self.mean_ = np.zeros((g, self.n_columns))
        self.m2_ = np.zeros((g, self.n_columns))

    def update(self, block: np.ndarray, groups: np.ndarray | None = None) -> RunningMoments:
        """Merge a block of rows ``(n, n_columns)`` (with ``groups`` codes when grouped)."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.n_columns:
            raise NeuronscopeError(
                f"moments of {self.n_columns} columns got a block of shape {block.shape}")
        if (groups is None) != (self.n_groups is None):
            raise NeuronscopeError("pass group codes exactly when the moments are grouped")
        if not len(block):
            return self
        if block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float64)
        if groups is None:
            code = np.zeros(len(block), dtype=np.int64)
        else:
            code = np.asarray(groups, dtype=np.int64)
            if code.shape != (len(block),):
                raise NeuronscopeError(f"{code.shape} group codes for {len(block)} rows")
        n_g = len(self.count_)
        counts_b = np.bincount(code, minlength=n_g).astype(np.float64)
        if len(counts_b) > n_g:
            raise NeuronscopeError(f"group codes must be in 0..{n_g - 1}")
        mean_b = np.zeros((n_g, self.n_columns))
        m2_b = np.zeros((n_g, self.n_columns))
        for g in np.flatnonzero(counts_b):
            # A block of one group is used as it is (no boolean copy).
            rows = block if counts_b[g] == len(block) else block[code == g]
            mean_b[g] = rows.mean(axis=0, dtype=np.float64)
            # Centre on the rows' own mean rounded to their dtype (large offsets then cancel
            # exactly), square in that dtype, sum in float64, and correct for the rounding
            # with the shifted-data formula.
            shift = mean_b[g].astype(rows.dtype)
            centred = rows - shift
            m2_b[g] = (np.einsum("ij,ij->j", centred, centred, dtype=np.float64)
                       - counts_b[g] * (mean_b[g] - shift) ** 2)
        for g in np.flatnonzero(counts_b):
            self.merge(float(counts_b[g]), mean_b[g], np.maximum(m2_b[g], 0.0), int(g))
        return self

    def merge(self, count: float, mean: np.ndarray, m2: np.ndarray,
              group: int = 0) -> tuple[np.ndarray, float]:
        """Fold in the moments of ``count`` rows (their mean and M2) for one group.

        Returns ``(delta, weight)``: the difference of the means and ``n_old * count / n``,
        what a co-moment (Gram) matrix accumulated alongside needs for the same merge.
        """
        if count <= 0:
            return np.zeros(self.n_columns), 0.0
        n_old = float(self.count_[group])
        n = n_old + count
        delta = mean - self.mean_[group]
        weight = n_old * count / n
        self.mean_[group] += delta * (count / n)
        self.m2_[group] += m2 + weight * delta * delta
        self.count_[group] = n
        return delta, weight

    @property
    def variance_(self) -> np.ndarray:
        """Population variances ``(n_groups, n_columns)`` (0 where a group has no rows)."""
        return self.m2_ / np.maximum(self.count_, 1.0)[:, None]

    @property
    def std_(self) -> np.ndarray:
        """Population standard deviations."""
        return np.sqrt(self.variance_)
