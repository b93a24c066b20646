"""Gaussian probe with greedy dimension selection (Torroba Hennigen, Williams & Cotterell 2020).

"Intrinsic Probing through Dimension Selection" (EMNLP 2020) models each class ``c`` as a
multivariate Gaussian over a *subset* ``S`` of neurons, classifies by Bayes' rule with the
class prior, and grows ``S`` greedily: at each step the neuron whose addition most improves the
probe on held-out words is added. The order of addition is the ranking.

Modelling choices made here:

* **Prior and predictive.** Each class has a conjugate Normal-Inverse-Wishart prior that is
  defined once on the whole candidate space and *marginalised* onto every subset, so all
  subsets share one coherent model: mean ``mu0`` = the overall training mean with weight
  ``kappa0 = 0.01`` (as in the paper's data-dependent prior), ``nu0 = D + 2`` (on a
  ``p``-neuron subset this is ``p + 2``, the smallest value with a finite prior mean of the
  covariance) and scale ``Lambda0 = diag(pooled within-class variance)``, so the prior mean
  covariance is the pooled diagonal one. A class is scored with its **posterior predictive**
  density, a multivariate Student-t with ``n_c + 3`` degrees of freedom (independent of the
  subset size). Unlike the MAP covariance of the paper, which divides the scatter by
  ``n + 2p + 4`` and grows overconfident for classes with a handful of words, the predictive
  falls back to the pooled diagonal covariance with heavy tails for tiny classes and tends to
  the maximum-likelihood Gaussian for large ones. The class prior is the training label
  frequency.
* **Criterion.** Held-out rows (a seeded, per-class stratified split) score each candidate:
  ``criterion="mi"`` maximises the mutual information estimate
  ``I(class; neurons) = H(class) - CE`` in bits, where ``H`` is the entropy of the held-out
  labels and ``CE`` the probe's held-out cross-entropy (can be slightly negative when the
  probe is worse than the class prior); ``"accuracy"`` maximises held-out accuracy, ties
  broken by the MI estimate.
* **Per-concept ranking.** Adding a neuron changes the held-out log-probability of the true
  class; averaged over the held-out words of class ``c`` this gives the class's share of the
  step's MI gain (the global gain is the frequency-weighted sum). A concept's ranking orders
  the selected neurons by that gain in bits. It is conditional on the neurons chosen before
  (greedy order); concepts without held-out words get zeros and keep the selection order.

Computation. One streaming pass collects per-class counts, sums and outer-product sums of the
candidate neurons in float64 (shifted by a first-block mean against cancellation); training
then only needs sub-blocks of these statistics. The greedy search is a pivoted Cholesky
factorisation of every class's predictive scale matrix: after choosing neuron ``s`` all
Schur complements (conditional scales given ``S``) and the held-out rows' conditional residuals
are updated by rank-one steps, so scoring *all* candidates for all classes costs
``O(C * n_validation)`` per candidate and step, in float32 chunks, independent of ``|S|``. The
prior bounds every pivot below by ``Lambda0_jj`` times a positive factor, so no pivot can
vanish; no eigendecomposition is needed.

Cost limits. The outer products take ``C * D**2 * 8`` bytes for ``D`` candidates (1 GB for
2688 neurons and 17 classes) and the held-out residuals ``4 * C * D * n_validation`` bytes, so
at most ``max_candidates`` neurons enter the search; when there are more, a first streaming
pass keeps those with the highest univariate Gaussian information
``0.5 * (log var_j - sum_c p_c log var_cj)`` (with the prior-shrunk class variances). Neurons
only informative jointly with others but not alone can be lost by this filter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    MethodInput,
    RankingMethod,
    check_finite,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.ranking import ConceptRanking, Ranking
from neuronscope.methods.statistics import class_moments
from neuronscope.store.store import ActivationStore

_KAPPA0 = 0.01  # prior weight of the mean: the class mean is essentially the empirical one
_VAR_FLOOR = 1e-6  # Lambda0 floor, relative to a neuron's total variance
_CHUNK_BYTES = 2 * 2**20  # float32 working set of a candidate chunk: cache-sized is fastest
_CRITERIA = ("mi", "accuracy")
_LN2 = math.log(2.0)


@dataclasses.dataclass
class _Posterior:
    """Per-class Student-t predictive over the candidate neurons (float64 numpy)."""

    mean: np.ndarray  # (C, D) predictive location
    scale: np.ndarray  # (C, D, D) predictive scale matrix
    df: np.ndarray  # (C,) degrees of freedom
    log_prior: np.ndarray  # (C,) log class prior
    floor: np.ndarray  # (C, D) lower bound of every conditional scale (from Lambda0)


class GaussianProbe(RankingMethod):
    """Rank neurons by greedy selection for a Bayesian Gaussian probe (intrinsic probing).

    Args:
        criterion: ``"mi"`` (held-out mutual information estimate, bits) or ``"accuracy"``.
        max_neurons: how many neurons to select (the ranking holds only these).
        max_candidates: at most this many neurons enter the search; if there are more, the
            ones with the highest univariate Gaussian information are kept (memory and time
            grow with ``C * max_candidates**2`` and ``C * max_candidates * n_validation``).
        validation_fraction: fraction of each class's words held out to score candidates.
        max_validation_rows: cap on held-out words (the rest train the probe).
        random_state: seed of the held-out split.
        concepts: report per-concept rankings only for these (the probe uses every label).
        neurons: restrict to these neurons (names or ids; default: all).
        device: torch device of the search (``"cpu"``, ``"cuda"``).

    Fitted attributes (after :meth:`rank`): ``selected_`` (global ids in selection order),
    ``selected_names_``, ``classes_``, ``class_prior_``, ``curve_`` (one
    ``{neuron, id, mi_bits, accuracy}`` per step), ``baseline_`` (the empty probe),
    ``candidates_`` (ids searched over), ``validation_rows_`` (the held-out row indices).
    """

    name = "gaussian"

    def __init__(
        self,
        criterion: str = "mi",
        max_neurons: int = 50,
        max_candidates: int = 1024,
        validation_fraction: float = 0.2,
        max_validation_rows: int = 10000,
        random_state: int = 0,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        device: str = "cpu",
    ) -> None:
        self.criterion = criterion
        self.max_neurons = max_neurons
        self.max_candidates = max_candidates
        self.validation_fraction = validation_fraction
        self.max_validation_rows = max_validation_rows
        self.random_state = random_state
        self.concepts = concepts
        self.neurons = neurons
        self.device = device

    # ------------------------------------------------------------------ ranking
    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Select up to ``max_neurons`` neurons greedily; rank globally and per concept."""
        self._check_params()
        data = prepare_input(activations, labels, self.neurons)
        classes = require_concepts(data.y, None)
        wanted = require_concepts(data.y, self.concepts)
        index = {c: i for i, c in enumerate(classes)}
        code = np.array([index[v] for v in data.y.tolist()], dtype=np.int64)
        held = _stratified_split(code, len(classes), self.validation_fraction,
                                 self.max_validation_rows, self.random_state)
        if len(held) == 0:
            raise NeuronscopeError(
                f"no word could be held out for validation ({data.n_words} words, "
                f"validation_fraction={self.validation_fraction}): use more data or a larger "
                "fraction"
            )
        is_held = np.zeros(data.n_words, dtype=bool)
        is_held[held] = True

        cand = np.arange(data.n_neurons)
        if data.n_neurons > self.max_candidates:
            cand = _prefilter(data, classes, is_held, self.max_candidates)
        sub = dataclasses.replace(data, ids=data.ids[cand], names=[data.names[i] for i in cand])
        counts, means, scatter, x_held, varying = _scatter_pass(sub, code, is_held,
                                                                len(classes))
        if not varying.any():
            raise NeuronscopeError("every candidate neuron is constant on the training words")
        if not varying.all():  # constant neurons carry nothing and would make pivots vanish
            keep = np.nonzero(varying)[0]
            means, x_held = means[:, keep], x_held[:, keep]
            scatter = scatter[:, keep][:, :, keep]
            sub = dataclasses.replace(sub, ids=sub.ids[keep], names=[sub.names[i] for i in keep])
        post = _posterior(counts, means, scatter)
        del scatter

        steps = min(self.max_neurons, sub.n_neurons)
        search = _GreedySearch(post, x_held, code[held], torch.device(self.device))
        baseline = search.evaluate()
        order, curve, gains = [], [], []
        previous = baseline
        for _ in range(steps):
            j = search.best_candidate(self.criterion)
            search.add(j)
            result = search.evaluate()
            order.append(j)
            curve.append({"neuron": sub.names[j], "id": int(sub.ids[j]),
                          "mi_bits": result["mi_bits"], "accuracy": result["accuracy"]})
            gains.append(result["class_bits"] - previous["class_bits"])
            previous = result

        sel = np.asarray(order, dtype=np.int64)
        self.selected_ = sub.ids[sel].copy()
        self.selected_names_ = [sub.names[j] for j in sel]
        self.classes_ = classes
        self.class_prior_ = np.exp(post.log_prior)
        self.curve_ = curve
        self.baseline_ = {"mi_bits": baseline["mi_bits"], "accuracy": baseline["accuracy"]}
        self.candidates_ = sub.ids.copy()
        self.validation_rows_ = held
        self._predictive = _Posterior(
            post.mean[:, sel], post.scale[:, sel][:, :, sel], post.df, post.log_prior,
            post.floor[:, sel],
        )
        return self._ranking(data, wanted, np.asarray(gains).reshape(steps, len(classes)),
                             baseline, search, counts)

    def _ranking(
        self, data: MethodInput, wanted: list[str], gains: np.ndarray,
        baseline: dict[str, Any], search: _GreedySearch, counts: np.ndarray,
    ) -> Ranking:
        ids = self.selected_
        per_concept = {}
        for concept in wanted:
            # Classes without held-out words have zero gains: a stable sort keeps greedy order.
            col = np.nan_to_num(gains[:, self.classes_.index(concept)], nan=0.0)
            order = np.argsort(-col, kind="stable")
            per_concept[str(concept)] = ConceptRanking(ids[order], col[order])
        key = "mi_bits" if self.criterion == "mi" else "accuracy"
        return Ranking(
            method=self.name, params=self.get_params(), concepts=per_concept,
            names={int(i): n for i, n in zip(ids, self.selected_names_, strict=True)},
            global_order=ids, global_scores=np.array([c[key] for c in self.curve_]),
            **data.ranking(self),
            extra={
                "selection_curve": self.curve_,
                "baseline": self.baseline_,
                "class_entropy_bits": baseline["entropy_bits"],
                "criterion": self.criterion,
                "n_candidates": len(self.candidates_),
                "n_train": int(counts.sum()),
                "n_validation": search.n_rows,
            },
        )

    def _check_params(self) -> None:
        if self.criterion not in _CRITERIA:
            raise NeuronscopeError(
                f"criterion must be one of {', '.join(_CRITERIA)}, got {self.criterion!r}"
            )
        for name in ("max_neurons", "max_candidates", "max_validation_rows"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise NeuronscopeError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.validation_fraction < 1:
            raise NeuronscopeError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )

    # ------------------------------------------------------------------ prediction
    def predict_log_proba(
        self, activations: Activations, n_neurons: int | None = None
    ) -> np.ndarray:
        """``(n_words, n_classes)`` natural-log class posteriors from the first ``n_neurons``
        selected neurons (default: all), columns in ``classes_`` order.

        ``activations`` is a store or an array with the columns of the one ranked: the
        selected neurons are picked by id.
        """
        post, p = self._fitted(n_neurons)
        x = _columns(activations, self.selected_[:p])
        dev = torch.device(self.device)
        chol = torch.linalg.cholesky(torch.as_tensor(post.scale[:, :p, :p], device=dev))
        mean = torch.as_tensor(post.mean[:, :p], device=dev)
        df = torch.as_tensor(post.df, device=dev)
        const = torch.as_tensor(post.log_prior, device=dev) + _t_const(df, p)
        const = const - torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
        out = np.empty((len(x), len(self.classes_)))
        step = max(1, 2**22 // (len(self.classes_) * p))
        for a in range(0, len(x), step):
            block = torch.as_tensor(x[a : a + step], dtype=torch.float64, device=dev)
            resid = (block[None] - mean[:, None, :]).transpose(1, 2)  # (C, p, rows)
            z = torch.linalg.solve_triangular(chol, resid, upper=False)
            maha = z.square().sum(1)  # (C, rows)
            joint = const[:, None] - 0.5 * (df + p)[:, None] * torch.log1p(maha / df[:, None])
            out[a : a + step] = (joint - torch.logsumexp(joint, 0)).T.cpu().numpy()
        return out

    def predict(self, activations: Activations, n_neurons: int | None = None) -> np.ndarray:
        """Most probable class of every word (labels from ``classes_``)."""
        proba = self.predict_log_proba(activations, n_neurons)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(1)]

    def score(
        self, activations: Activations, labels: Labels, n_neurons: int | None = None,
        metric: str = "accuracy",
    ) -> float:
        """Accuracy (default) or ``metric="mi"`` (MI estimate in bits) on labelled words."""
        if metric not in _CRITERIA:
            raise NeuronscopeError(f"metric must be one of {', '.join(_CRITERIA)}, not {metric!r}")
        self._fitted(n_neurons)
        data = prepare_input(activations, labels)
        index = {c: i for i, c in enumerate(self.classes_)}
        unknown = sorted({v for v in data.y.tolist() if v not in index}, key=str)
        if unknown:
            raise NeuronscopeError(f"label(s) {unknown[:10]} were not seen when ranking")
        y = np.array([index[v] for v in data.y.tolist()], dtype=np.int64)
        proba = self.predict_log_proba(activations, n_neurons)
        if metric == "accuracy":
            return float((proba.argmax(1) == y).mean())
        freq = np.bincount(y, minlength=len(self.classes_)) / len(y)
        entropy = -(freq[freq > 0] * np.log2(freq[freq > 0])).sum()
        return float(entropy + proba[np.arange(len(y)), y].mean() / _LN2)

    def _fitted(self, n_neurons: int | None) -> tuple[_Posterior, int]:
        if not hasattr(self, "_predictive"):
            raise NeuronscopeError("GaussianProbe is not fitted: call rank() first")
        total = len(self.selected_)
        p = total if n_neurons is None else n_neurons
        if not 1 <= p <= total:
            raise NeuronscopeError(f"n_neurons must be in [1, {total}], got {n_neurons}")
        return self._predictive, p


# ---------------------------------------------------------------------- data passes
def _stratified_split(
    code: np.ndarray, n_classes: int, fraction: float, max_rows: int, seed: int
) -> np.ndarray:
    """Sorted held-out row indices: the same share of every class, at least one training word
    per class left (a class of one word is never held out)."""
    rng = np.random.default_rng(seed)
    share = min(fraction, max_rows / len(code))
    perm = rng.permutation(len(code))
    counts = np.bincount(code, minlength=n_classes)
    held = []
    for c in range(n_classes):
        k = min(int(round(share * counts[c])), counts[c] - 1)
        if k > 0:
            held.append(perm[code[perm] == c][:k])
    return np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)


def _prefilter(
    data: MethodInput, classes: list[str], is_held: np.ndarray, keep: int
) -> np.ndarray:
    """Column positions of the ``keep`` neurons with the highest univariate Gaussian
    information on the training words, in column order (one streaming pass)."""
    masked = data.y.astype(object)
    masked[is_held] = object()  # a label outside ``classes``: held-out words are not counted
    m = class_moments(dataclasses.replace(data, y=masked), classes)
    n = m.counts[:, None]
    total_n = m.counts.sum()
    mu0 = m.sums.sum(0) / total_n
    within = (n * m.variances).sum(0)
    total = (within + (n * (m.means - mu0) ** 2).sum(0)) / total_n
    lam = np.maximum(within / max(total_n - len(classes), 1), _VAR_FLOOR * total)
    cls_var = (lam + n * m.variances) / (n + 1)  # prior-shrunk, never zero
    with np.errstate(divide="ignore"):
        info = 0.5 * (np.log(total) - (n / total_n * np.log(cls_var)).sum(0))
    info[~(total > 0)] = -np.inf
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


def _posterior(counts: np.ndarray, means: np.ndarray, scatter: np.ndarray) -> _Posterior:
    """Normal-Inverse-Wishart posterior predictive (Student-t) of every class."""
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
    return _Posterior(mean, scale, df, log_prior, factor[:, None] * lam[None, :])


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


def _t_const(df: torch.Tensor, p: int) -> torch.Tensor:
    """Log normaliser of a ``p``-variate Student-t, less half the log-determinant."""
    return (torch.lgamma((df + p) / 2) - torch.lgamma(df / 2)
            - 0.5 * p * torch.log(df * math.pi))


# ---------------------------------------------------------------------- greedy search
class _GreedySearch:
    """Held-out scoring of every candidate with rank-one (pivoted Cholesky) updates.

    State for the selected set ``S``: per class the conditional scale matrices given ``S``
    (Schur complements, float64), the Mahalanobis distance and log-determinant of the held-out
    rows under ``S`` (float64), and each candidate's conditional residual per class and row
    (``(D, C, H)`` float32): adding candidate ``j`` adds ``r**2 / v`` to the distance and
    ``log v`` to the log-determinant.
    """

    def __init__(
        self, post: _Posterior, x_held: np.ndarray, y_held: np.ndarray, device: torch.device
    ) -> None:
        dev = device
        self.n_cls, self.n_dim = post.mean.shape
        self.n_rows = len(y_held)
        self.y = torch.as_tensor(y_held, device=dev)
        self.df = torch.as_tensor(post.df, device=dev)
        self.log_prior = torch.as_tensor(post.log_prior, device=dev)
        self.floor = torch.as_tensor(post.floor, device=dev)
        self.cond = torch.as_tensor(post.scale, device=dev).clone()  # (C, D, D)
        self.maha = torch.zeros(self.n_cls, self.n_rows, dtype=torch.float64, device=dev)
        self.logdet = torch.zeros(self.n_cls, dtype=torch.float64, device=dev)
        self.active = torch.ones(self.n_dim, dtype=torch.bool, device=dev)
        self.size = 0
        self.chunk = max(1, _CHUNK_BYTES // (4 * self.n_cls * max(self.n_rows, 1)))
        mean = torch.as_tensor(post.mean, device=dev)
        xt = torch.as_tensor(x_held.T, device=dev)  # (D, H)
        self.resid = torch.empty(self.n_dim, self.n_cls, self.n_rows, device=dev)
        for a in range(0, self.n_dim, self.chunk):
            b = min(a + self.chunk, self.n_dim)
            self.resid[a:b] = xt[a:b, None, :].double() - mean[:, a:b].T[:, :, None]
        freq = torch.bincount(self.y, minlength=self.n_cls).double()
        self.class_rows = freq
        freq = freq[freq > 0] / self.n_rows
        self.entropy = float(-(freq * torch.log2(freq)).sum())

    def best_candidate(self, criterion: str) -> int:
        """Index of the candidate whose addition scores best on the held-out rows."""
        p = self.size + 1
        var = torch.maximum(torch.diagonal(self.cond, dim1=1, dim2=2), self.floor)  # (C, D)
        coef = (-0.5 * (self.df + p)).float()[None, :, None]
        const = (self.log_prior + _t_const(self.df, p) - 0.5 * self.logdet)[:, None]
        const = (const - 0.5 * torch.log(var)).float()  # (C, D)
        inv = (1.0 / (var * self.df[:, None])).float()
        maha = (self.maha / self.df[:, None]).float()[None]
        loglik = torch.full((self.n_dim,), -math.inf, dtype=torch.float64, device=self.y.device)
        correct = torch.full((self.n_dim,), -1, dtype=torch.int64, device=self.y.device)
        for a in range(0, self.n_dim, self.chunk):
            b = min(a + self.chunk, self.n_dim)
            # In place on one buffer: log p_c(x_S, x_j) for every (candidate, class, row).
            t = self.resid[a:b].square()
            t.mul_(inv[:, a:b].T[:, :, None]).add_(maha).log1p_()
            t.mul_(coef).add_(const[:, a:b].T[:, :, None])
            own = t.gather(1, self.y.expand(b - a, 1, self.n_rows)).squeeze(1)
            # One max gives both the prediction and the log-sum-exp shift.
            top, pred = t.max(1)
            correct[a:b] = (pred == self.y).sum(1)
            lse = t.sub_(top[:, None]).exp_().sum(1).log_().add_(top)
            loglik[a:b] = (own - lse).sum(1, dtype=torch.float64)
        loglik[~self.active] = -math.inf
        correct[~self.active] = -1
        if criterion == "accuracy":
            loglik[correct < correct.max()] = -math.inf
        return int(torch.argmax(loglik))

    def add(self, j: int) -> None:
        """Condition every class on candidate ``j`` (one pivoted-Cholesky step)."""
        g = self.cond[:, :, j].clone()  # (C, D)
        pivot = torch.maximum(g[:, j], self.floor[:, j])
        r = self.resid[j].double()  # (C, H)
        self.maha += r.square() / pivot[:, None]
        self.logdet += torch.log(pivot)
        beta = (g / pivot[:, None]).float()  # regression of each candidate on j, per class
        r32 = self.resid[j].clone()
        for a in range(0, self.n_dim, self.chunk):
            b = min(a + self.chunk, self.n_dim)
            self.resid[a:b].addcmul_(beta[:, a:b].T[:, :, None], r32[None], value=-1.0)
        gs = g / torch.sqrt(pivot)[:, None]
        self.cond.baddbmm_(gs[:, :, None], gs[:, None, :], alpha=-1.0)
        self.active[j] = False
        self.size += 1

    def evaluate(self) -> dict[str, Any]:
        """Held-out MI (bits), accuracy and per-class mean log2-probability of the true class
        under the current selection (float64)."""
        p = self.size
        joint = (self.log_prior + _t_const(self.df, p) - 0.5 * self.logdet)[:, None]
        joint = joint - 0.5 * (self.df + p)[:, None] * torch.log1p(self.maha / self.df[:, None])
        own = joint.gather(0, self.y[None]).squeeze(0) - torch.logsumexp(joint, 0)
        per_class = torch.zeros(self.n_cls, dtype=torch.float64, device=self.y.device)
        per_class.index_add_(0, self.y, own)
        # NaN for classes without held-out rows (0 / 0); the ranking turns them into zeros.
        class_bits = (per_class / self.class_rows).cpu().numpy() / _LN2
        return {
            "mi_bits": self.entropy + float(own.mean()) / _LN2,
            "accuracy": float((joint.argmax(0) == self.y).double().mean()),
            "entropy_bits": self.entropy,
            "class_bits": class_bits,
        }
