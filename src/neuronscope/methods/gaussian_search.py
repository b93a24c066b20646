"""Statistics, data passes and the greedy search behind
:class:`~neuronscope.methods.gaussian_probe.GaussianProbe` (see that module's docstring for
the model and the computation)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy.special import gammaln, logsumexp

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    MethodInput,
    check_finite,
)
from neuronscope.methods.budget import Memory
from neuronscope.methods.statistics import class_moments
from neuronscope.store.store import ActivationStore

_KAPPA0 = 0.01  # prior weight of the mean: the class mean is essentially the empirical one
_VAR_FLOOR = 1e-6  # Lambda0 floor, relative to a neuron's total variance
_CHUNK_BYTES = 2 * 2**20  # float32 working set of a candidate chunk: cache-sized is fastest
_RESID_CLIP = 1e8  # float32 residual cap in standard deviations: squares stay far from overflow
_CRITERIA = ("mi", "accuracy")
_LN2 = math.log(2.0)


@dataclasses.dataclass
class _Posterior:
    """Per-class Student-t predictive over the candidate neurons (float64 numpy)."""

    mean: np.ndarray  # (C, D) predictive location (standardized units)
    scale: np.ndarray  # (C, D, D) predictive scale matrix (standardized units)
    df: np.ndarray  # (C,) degrees of freedom
    log_prior: np.ndarray  # (C,) log class prior
    floor: np.ndarray  # (C, D) lower bound of every conditional scale (from Lambda0)
    loc: np.ndarray  # (D,) training mean: a neuron's standardized value is (x - loc) / unit
    unit: np.ndarray  # (D,) training standard deviation (> 0)

    def standardize(self, x: np.ndarray, cols: slice | np.ndarray = slice(None)) -> np.ndarray:
        """Rows of raw activations of the neurons ``cols`` in standardized units (float64)."""
        return (x.astype(np.float64) - self.loc[cols]) / self.unit[cols]

    def subset(self, sel: np.ndarray) -> _Posterior:
        """The predictive marginalised onto the neurons ``sel`` (in that order)."""
        return _Posterior(self.mean[:, sel], self.scale[:, sel][:, :, sel], self.df,
                          self.log_prior, self.floor[:, sel], self.loc[sel], self.unit[sel])

# ---------------------------------------------------------------------- data passes
def _stratified_split(
    code: np.ndarray, n_classes: int, fractions: tuple[float, float], max_rows: int,
    seed: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices of two disjoint held-out parts (validation, report), each about its
    fraction of every class (at most ``max_rows`` rows each), at least one training word per
    class left (a class of one word is never held out). The validation part is drawn first, so
    it does not depend on the report fraction; when the report part would be empty (tiny
    data), one validation word is moved to it."""
    rng = np.random.default_rng(seed)
    shares = [min(f, max_rows / len(code)) for f in fractions]
    perm = rng.permutation(len(code))
    counts = np.bincount(code, minlength=n_classes)
    parts: list[list[np.ndarray]] = [[], []]
    for c in range(n_classes):
        rows = perm[code[perm] == c]
        k_sel = min(int(round(shares[0] * counts[c])), counts[c] - 1)
        k_rep = min(int(round(shares[1] * counts[c])), counts[c] - 1 - k_sel)
        parts[0].append(rows[:k_sel])
        parts[1].append(rows[k_sel : k_sel + max(k_rep, 0)])
    select, report = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    if len(report) == 0 and len(select) > 1:  # tiny data
        moved = rng.integers(len(select))
        select, report = np.delete(select, moved), select[moved : moved + 1]
    return select, report


def _univariate_information(
    data: MethodInput, classes: list[str], is_held: np.ndarray, memory: Memory = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Univariate Gaussian information of every neuron on the training words (one streaming
    pass), in nats: ``(D,)`` for all classes, ``0.5 * (log var_j - sum_c p_c log var_cj)``,
    and ``(C, D)`` one-vs-rest, the same with the two classes "c" and "not c". Class
    variances are shrunk towards the pooled within-class variance (never zero); constant
    neurons get ``-inf``."""
    masked = data.y.astype(object)
    masked[is_held] = object()  # a label outside ``classes``: held-out words are not counted
    m = class_moments(dataclasses.replace(data, y=masked), classes, memory=memory)
    n = m.counts[:, None]
    total_n = m.counts.sum()
    mu0 = m.sums.sum(0) / total_n
    within = (n * m.variances).sum(0)
    total = (within + (n * (m.means - mu0) ** 2).sum(0)) / total_n
    lam = np.maximum(within / max(total_n - len(classes), 1), _VAR_FLOOR * total)
    cls_var = (lam + n * m.variances) / (n + 1)  # prior-shrunk, never zero
    # "Not c": the other classes pooled (total scatter minus class c's, about their mean).
    rest_n = total_n - n
    rest_mean = (m.sums.sum(0) - m.sums) / np.maximum(rest_n, 1)
    rest_scatter = (total * total_n - n * m.variances - n * (m.means - mu0) ** 2
                    - rest_n * (rest_mean - mu0) ** 2)
    rest_var = (lam + np.maximum(rest_scatter, 0)) / (rest_n + 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant neurons: log 0
        info = 0.5 * (np.log(total) - (n / total_n * np.log(cls_var)).sum(0))
        share = n / total_n
        per_class = 0.5 * (np.log(total) - share * np.log(cls_var)
                           - (1 - share) * np.log(rest_var))
    info[~(total > 0)] = -np.inf
    per_class[:, ~(total > 0)] = -np.inf
    return info, per_class


def _prefilter(info: np.ndarray, keep: int) -> np.ndarray:
    """Column positions of the ``keep`` neurons with the highest univariate information,
    in column order."""
    top = np.argsort(-info, kind="stable")[:keep]
    return np.sort(top)


def _scatter_pass(
    data: MethodInput, code: np.ndarray, is_held: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One streaming pass over the training words: per-class counts ``(C,)``, means ``(C, D)``
    and scatter matrices ``(C, D, D)`` (float64), the held-out rows ``(H, D)`` (float32) and
    which neurons vary on the training words."""
    d = data.n_neurons
    held_pos = np.cumsum(is_held) - 1
    x_held = np.empty((int(is_held.sum()), d), dtype=np.float32)
    counts = np.zeros(n_classes)
    sums = np.zeros((n_classes, d))
    outer = np.zeros((n_classes, d, d))
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    shift = None
    for start, stop, block in data.chunks():
        held = is_held[start:stop]
        x_held[held_pos[start:stop][held]] = block[held]
        train = block[~held].astype(np.float64)
        if not len(train):
            continue
        if shift is None:  # moments about a nearby point lose no digits to large means
            shift = train.mean(0)
        lo, hi = np.minimum(lo, train.min(0)), np.maximum(hi, train.max(0))
        train -= shift
        c = code[start:stop][~held]
        order = np.argsort(c, kind="stable")
        bounds = np.cumsum(np.bincount(c, minlength=n_classes))
        for k, rows in enumerate(np.split(train[order], bounds[:-1])):
            if len(rows):
                counts[k] += len(rows)
                sums[k] += rows.sum(0)
                outer[k] += rows.T @ rows  # BLAS syrk
    shifted = sums / np.maximum(counts, 1)[:, None]
    outer -= counts[:, None, None] * shifted[:, :, None] * shifted[:, None, :]
    means = shifted + (0.0 if shift is None else shift)
    return counts, means, outer, x_held, hi > lo


def _posterior(
    counts: np.ndarray, means: np.ndarray, scatter: np.ndarray, loc: np.ndarray,
    unit: np.ndarray,
) -> _Posterior:
    """Normal-Inverse-Wishart posterior predictive (Student-t) of every class, from class
    means and scatter matrices in the units of ``(x - loc) / unit``."""
    n_cls = len(counts)
    total_n = counts.sum()
    n = counts[:, None]
    mu0 = (n * means).sum(0) / total_n
    within = np.einsum("cjj->j", scatter)
    total = (within + (n * (means - mu0) ** 2).sum(0)) / total_n
    lam = np.maximum(within / max(total_n - n_cls, 1), _VAR_FLOOR * total)
    kappa = _KAPPA0 + counts
    diff = means - mu0
    scale = scatter + ((_KAPPA0 * counts / kappa)[:, None, None]
                       * diff[:, :, None] * diff[:, None, :])
    idx = np.arange(len(lam))
    scale[:, idx, idx] += lam
    # nu0 = D + 2 marginalises to p + 2 on p neurons: df = nu_n - p + 1 = n + 3 for any subset.
    df = counts + 3.0
    factor = (kappa + 1) / (kappa * df)
    scale *= factor[:, None, None]
    mean = (_KAPPA0 * mu0 + n * means) / kappa[:, None]
    log_prior = np.log(counts / total_n)
    return _Posterior(mean, scale, df, log_prior, factor[:, None] * lam[None, :], loc, unit)


def _columns(activations: Activations, ids: np.ndarray) -> np.ndarray:
    """The given columns (global ids) of a store or an array, float32, checked finite."""
    if isinstance(activations, ActivationStore):
        x = activations.neurons(ids)
    elif isinstance(activations, np.ndarray) and activations.ndim == 2:
        if ids.max() >= activations.shape[1]:
            raise NeuronscopeError(
                f"activations have {activations.shape[1]} columns, but neuron {int(ids.max())} "
                "was selected: pass the columns the probe was ranked on"
            )
        x = np.asarray(activations[:, ids], dtype=np.float32)
    else:
        raise NeuronscopeError(
            "activations must be an ActivationStore or a 2-D numpy array, "
            f"not {type(activations).__name__}"
        )
    check_finite(x, 0)
    return x


def _t_const(df: np.ndarray, p: int) -> np.ndarray:
    """Log normaliser of a ``p``-variate Student-t, less half the log-determinant."""
    return gammaln((df + p) / 2) - gammaln(df / 2) - 0.5 * p * np.log(df * math.pi)


# ---------------------------------------------------------------------- greedy search
class _GreedySearch:
    """Scoring of every candidate with rank-one (pivoted Cholesky) updates.

    State for the selected set ``S`` (all in standardized units): per class the conditional
    scale matrices given ``S`` (Schur complements, float64) and the log-determinant of the
    selected block; for the *validation* words the Mahalanobis distance under ``S`` (float64)
    and each candidate's conditional residual per class and word (``(D, C, H)`` float32):
    adding candidate ``j`` adds ``r**2 / v`` to the distance and ``log v`` to the
    log-determinant. The rank-one update of the residuals is deferred to the next scoring sweep
    so that each chunk is read once per step while it is in cache. The *report* words, scored
    only for the chosen neurons, keep their distance and, per step, the Cholesky column and
    their standardized residual of the pivot (float64), from which the residual of the next
    pivot follows in ``O(|S| * C * n_report)``.
    """

    def __init__(
        self, post: _Posterior, x_sel: np.ndarray, y_sel: np.ndarray, x_rep: np.ndarray,
        y_rep: np.ndarray, n_jobs: int,
    ) -> None:
        self.n_cls, self.n_dim = post.mean.shape
        self.n_rows = len(y_sel)
        self.n_jobs = n_jobs
        self.y = y_sel
        self.df = post.df
        self.log_prior = post.log_prior
        self.floor = post.floor
        self.mean = post.mean
        self.cond = post.scale.copy()  # (C, D, D)
        self.maha = np.zeros((self.n_cls, self.n_rows))
        self.logdet = np.zeros(self.n_cls)
        self.active = np.ones(self.n_dim, dtype=bool)
        self.size = 0
        self.chunk = max(1, _CHUNK_BYTES // (4 * self.n_cls * max(self.n_rows, 1)))
        self.pending: tuple[np.ndarray, np.ndarray] | None = None  # (beta (D, C), r (C, H))
        self.resid = np.empty((self.n_dim, self.n_cls, self.n_rows), dtype=np.float32)
        for a, b in self._chunks():
            z = post.standardize(x_sel[:, a:b], slice(a, b)).T  # (b - a, H)
            r = z[:, None, :] - post.mean[:, a:b].T[:, :, None]
            np.clip(r, -_RESID_CLIP, _RESID_CLIP, out=self.resid[a:b])
        # Report words.
        self.rep_y = y_rep
        self.rep_x = post.standardize(x_rep)  # (R, D)
        self.rep_maha = np.zeros((self.n_cls, len(y_rep)))
        self.rep_cols: list[np.ndarray] = []  # per step: (C, D) Cholesky column of the pivot
        self.rep_z: list[np.ndarray] = []  # per step: (C, R) standardized pivot residual
        self.class_rows = np.bincount(y_rep, minlength=self.n_cls).astype(np.float64)
        freq = self.class_rows[self.class_rows > 0] / len(y_rep)
        self.entropy = float(-(freq * np.log2(freq)).sum())

    def _chunks(self) -> list[tuple[int, int]]:
        return [(a, min(a + self.chunk, self.n_dim)) for a in range(0, self.n_dim, self.chunk)]

    def _sweep(self, work: Callable[[int, int], None]) -> None:
        """Run ``work`` on every candidate chunk after applying the pending update to it."""

        def task(bounds: tuple[int, int]) -> None:
            a, b = bounds
            if self.pending is not None:
                beta, r = self.pending
                self.resid[a:b] -= beta[a:b, :, None] * r[None]
            work(a, b)

        # NumPy releases the GIL in its loops; chunks are disjoint, so threads need no locks.
        with ThreadPoolExecutor(self.n_jobs) as pool:
            list(pool.map(task, self._chunks()))
        self.pending = None

    def best_candidate(self, criterion: str) -> int:
        """Index of the candidate whose addition scores best on the validation words."""
        p = self.size + 1
        var = np.maximum(np.diagonal(self.cond, axis1=1, axis2=2), self.floor)  # (C, D)
        coef = (-0.5 * (self.df + p)).astype(np.float32)[None, :, None]
        const = (self.log_prior + _t_const(self.df, p) - 0.5 * self.logdet)[:, None]
        const = (const - 0.5 * np.log(var)).T.astype(np.float32)  # (D, C)
        inv = (1.0 / (var * self.df[:, None])).T.astype(np.float32)
        maha = (self.maha / self.df[:, None]).astype(np.float32)[None]
        loglik = np.full(self.n_dim, -np.inf)
        correct = np.full(self.n_dim, -1, dtype=np.int64)
        rows = np.arange(self.n_rows)

        def work(a: int, b: int) -> None:
            # log p_c(x_S, x_j) + log prior for every (candidate, class, row), in place.
            t = np.square(self.resid[a:b])
            t *= inv[a:b, :, None]
            t += maha
            np.log1p(t, out=t)
            t *= coef
            t += const[a:b, :, None]
            own = t[:, self.y, rows]
            top = t.max(1)
            correct[a:b] = (own >= top).sum(1)  # the true class is the argmax (ties aside)
            t -= top[:, None]
            np.exp(t, out=t)
            lse = np.log(t.sum(1))
            lse += top
            loglik[a:b] = (own - lse).sum(1, dtype=np.float64)

        self._sweep(work)
        loglik[~self.active] = -np.inf
        correct[~self.active] = -1
        if criterion == "accuracy":
            loglik[correct < correct.max()] = -np.inf
        return int(np.argmax(loglik))

    def add(self, j: int) -> None:
        """Condition every class on candidate ``j`` (one pivoted-Cholesky step)."""
        if self.pending is not None:
            self._sweep(lambda a, b: None)
        g = self.cond[:, :, j].copy()  # (C, D)
        pivot = np.maximum(g[:, j], self.floor[:, j])
        r = self.resid[j].astype(np.float64)  # (C, H)
        self.maha += r**2 / pivot[:, None]
        self.logdet += np.log(pivot)
        # Report words: the pivot's residual given S from the earlier Cholesky columns.
        r_rep = self.rep_x[:, j][None, :] - self.mean[:, j][:, None]  # (C, R)
        for col, z in zip(self.rep_cols, self.rep_z, strict=True):
            r_rep -= col[:, j][:, None] * z
        self.rep_maha += r_rep**2 / pivot[:, None]
        # Regression of every candidate on j, per class; applied in the next sweep.
        self.pending = ((g / pivot[:, None]).T.astype(np.float32), self.resid[j].copy())
        gs = g / np.sqrt(pivot)[:, None]
        self.rep_cols.append(gs)
        self.rep_z.append(r_rep / np.sqrt(pivot)[:, None])
        self.cond -= gs[:, :, None] * gs[:, None, :]
        self.active[j] = False
        self.size += 1

    def evaluate(self) -> dict[str, Any]:
        """MI (bits), accuracy and per-class mean log2-probability of the true class on the
        report words under the current selection (float64)."""
        p = self.size
        y, rows = self.rep_y, len(self.rep_y)
        joint = (self.log_prior + _t_const(self.df, p) - 0.5 * self.logdet)[:, None]
        joint = joint - 0.5 * (self.df + p)[:, None] * np.log1p(self.rep_maha / self.df[:, None])
        own = joint[y, np.arange(rows)] - logsumexp(joint, axis=0)
        per_class = np.bincount(y, weights=own, minlength=self.n_cls)
        with np.errstate(invalid="ignore"):  # NaN for classes without report words
            class_bits = per_class / self.class_rows / _LN2
        return {
            "mi_bits": self.entropy + float(own.mean()) / _LN2,
            "accuracy": float((joint.argmax(0) == y).mean()),
            "entropy_bits": self.entropy,
            "class_bits": class_bits,
        }

