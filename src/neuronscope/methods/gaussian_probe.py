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
* **Criterion.** Two disjoint parts of the words are held out (one seeded, per-class
  stratified split): *validation* words (``validation_fraction``), which score each candidate,
  and *report* words (``report_fraction``), on which everything reported is measured.
  ``criterion="mi"`` maximises the mutual information estimate
  ``I(class; neurons) = H(class) - CE`` in bits on the validation words, where ``H`` is the
  entropy of their labels and ``CE`` the probe's cross-entropy on them; ``"accuracy"``
  maximises their accuracy, ties broken by the MI estimate.
* **Reported scores and stopping.** The best of hundreds of noisy held-out gains is biased
  upwards: on pure noise the chosen neuron always "gains" a few thousandths of a bit on the
  words that chose it. So the curve (MI estimate, slightly negative when the probe is worse
  than the class prior, and accuracy) and the per-concept gains are measured on the report
  words, which played no part in the choice: unbiased estimates for the chosen subsets. The
  search stops at the first step whose neuron raises the report MI by less than ``min_gain``
  bits (with either criterion; default 0: the neuron does not help on words that did not
  choose it). That neuron is not kept; the first one always is (rankings are never empty),
  and ``max_neurons`` caps the length. Only this yes/no decision per step looks at the report
  words, so the reported curve stays nearly unbiased, whereas reusing the validation words
  would add the winner's bias of every step. ``min_gain=None`` never stops early (a fixed-
  length ranking, e.g. to rank more neurons than the data can support jointly: past the
  stopping point the report MI falls, each neuron costing more estimation error than it
  brings).
* **Per-concept ranking.** Adding a neuron changes the report words' log-probability of the
  true class; averaged over the report words of class ``c`` this gives the class's share of
  the step's MI gain (``extra["class_gains"]``). That gain is conditional on the neurons
  chosen before for *all* classes, so a concept's *ranking* instead orders every neuron by
  its one-vs-rest univariate Gaussian information (bits; classes ``c`` and "not c"), which
  finds a neuron focused on ``c`` whatever was chosen for other classes.
* **Every neuron is ordered.** The global order is the greedy selection, then the other
  neurons by univariate Gaussian information, so that top-k exists for any k.

Computation. One streaming pass collects per-class counts, sums and outer-product sums of the
candidate neurons in float64 (shifted by a first-block mean against cancellation); training
then only needs sub-blocks of these statistics. Every candidate is then standardized with its
training mean and standard deviation (statistics, prior and held-out words alike): the model is
affine-equivariant, a per-neuron rescaling multiplies every class's predictive density by the
same Jacobian, so posteriors, MI and accuracy are unchanged, while the float32 scoring below
only ever sees unit-scale numbers (real activations mix neurons of scale 1e-32 and 1e2, whose
raw squares and inverse variances leave float32's range). The greedy search is a pivoted
Cholesky factorisation of every class's predictive scale matrix: after choosing neuron ``s``
all Schur complements (conditional scales given ``S``) and the validation words' conditional
residuals are updated by rank-one steps, so scoring *all* candidates for all classes costs
``O(C * n_validation)`` per candidate and step, in float32 chunks, independent of ``|S|``
(residuals beyond ``1e8`` training standard deviations are clipped there; the report words are
scored in float64). The prior bounds every pivot below by ``Lambda0_jj`` times a positive
factor, so no pivot can vanish; no eigendecomposition is needed.

Cost limits. The outer products take ``C * D**2 * 8`` bytes for ``D`` candidates (1 GB for
2688 neurons and 17 classes) and the validation residuals ``4 * C * D * n_validation`` bytes, so
at most ``max_candidates`` neurons enter the search; when there are more, a first streaming
pass keeps those with the highest univariate Gaussian information
``0.5 * (log var_j - sum_c p_c log var_cj)`` (with the prior-shrunk class variances). Neurons
only informative jointly with others but not alone can be lost by this filter.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    MethodInput,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.budget import Memory, require_within, resolve_budget
from neuronscope.methods.gaussian_search import (
    _CRITERIA,
    _LN2,
    _columns,
    _GreedySearch,
    _Posterior,
    _posterior,
    _prefilter,
    _scatter_pass,
    _stratified_split,
    _t_const,
    _univariate_information,
)
from neuronscope.methods.hygiene import apply_hygiene, neuron_health
from neuronscope.methods.ranking import ConceptRanking, Ranking


class GaussianProbe(RankingMethod):
    """Rank neurons by greedy selection for a Bayesian Gaussian probe (intrinsic probing).

    Args:
        criterion: ``"mi"`` (held-out mutual information estimate, bits) or ``"accuracy"``.
        max_neurons: the most neurons to select (the ranking holds only the selected ones).
        min_gain: stop at the first step whose neuron raises the MI estimate on the report
            words by less than this many bits (the neuron is not kept; the first one always
            is); ``None``: always select ``max_neurons``. The default 0 keeps a neuron only if
            it helps on words that did not choose it.
        max_candidates: at most this many neurons enter the search; if there are more, the
            ones with the highest univariate Gaussian information are kept (memory and time
            grow with ``C * max_candidates**2`` and ``C * max_candidates * n_validation``).
        validation_fraction: fraction of each class's words held out to score candidates.
        report_fraction: fraction of each class's words held out, apart from those, to
            measure the reported curve, the per-concept gains and ``min_gain``.
        max_validation_rows: cap on the words of each held-out part (the words not held out
            train the probe); the search keeps ``4 * C * n_candidates * n_validation`` bytes
            of residuals (700 MB for 17 classes, 1024 candidates and 10000 rows) and its time
            is proportional to it.
        random_state: seed of the held-out split.
        concepts: report per-concept rankings only for these (the probe uses every label).
        neurons: restrict to these neurons (names or ids; default: all).
        n_jobs: threads scoring candidate chunks (default: the CPUs, at most 8).
        memory: memory budget (``"4GB"``, bytes; default: the available memory): the
            streaming pass shrinks its chunks to fit, and a search whose statistics
            (``8 * C * D**2`` bytes) and residuals do not fit is refused before any data is
            read.

    Fitted attributes (after :meth:`rank`): ``selected_`` (global ids in selection order),
    ``selected_names_``, ``classes_``, ``class_prior_``, ``curve_`` (one
    ``{neuron, id, mi_bits, accuracy}`` per step, on the report words), ``baseline_`` (the
    empty probe), ``stopped_early_`` (whether ``min_gain`` ended the search before
    ``max_neurons``), ``candidates_`` (ids searched over), ``validation_rows_`` (the row
    indices that scored the candidates), ``report_rows_`` (those of the report words).
    """

    name = "gaussian"

    def __init__(
        self,
        criterion: str = "mi",
        max_neurons: int = 50,
        min_gain: float | None = 0.0,
        max_candidates: int = 1024,
        validation_fraction: float = 0.2,
        report_fraction: float = 0.1,
        max_validation_rows: int = 10000,
        random_state: int = 0,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        n_jobs: int | None = None,
        memory: Memory = None,
    ) -> None:
        self.memory = memory
        self.criterion = criterion
        self.max_neurons = max_neurons
        self.min_gain = min_gain
        self.max_candidates = max_candidates
        self.validation_fraction = validation_fraction
        self.report_fraction = report_fraction
        self.max_validation_rows = max_validation_rows
        self.random_state = random_state
        self.concepts = concepts
        self.neurons = neurons
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ ranking
    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Select up to ``max_neurons`` neurons greedily; rank globally and per concept."""
        self._check_params()
        data = prepare_input(activations, labels, self.neurons)
        classes = require_concepts(data.y, None)
        wanted = require_concepts(data.y, self.concepts)
        index = {c: i for i, c in enumerate(classes)}
        code = np.array([index[v] for v in data.y.tolist()], dtype=np.int64)
        select, report = _stratified_split(
            code, len(classes), (self.validation_fraction, self.report_fraction),
            self.max_validation_rows, self.random_state)
        if len(select) == 0 or len(report) == 0:
            raise NeuronscopeError(
                f"too few words could be held out for validation ({data.n_words} words, "
                f"validation_fraction={self.validation_fraction}, report_fraction="
                f"{self.report_fraction}): choosing neurons and reporting their scores need "
                "one word each; use more data or larger fractions"
            )
        is_held = np.zeros(data.n_words, dtype=bool)
        is_held[select] = is_held[report] = True
        in_report = np.isin(np.nonzero(is_held)[0], report)  # held-out rows are in row order

        sub, counts, post, x_held = self._statistics(data, classes, code, is_held)

        steps = min(self.max_neurons, sub.n_neurons)
        n_jobs = self.n_jobs or min(8, os.cpu_count() or 1)
        search = _GreedySearch(post, x_held[~in_report], code[select], x_held[in_report],
                               code[report], n_jobs)
        baseline = search.evaluate()
        order: list[int] = []
        curve: list[dict[str, Any]] = []
        gains: list[np.ndarray] = []
        previous = baseline
        stopped = False
        for _ in range(steps):
            j = search.best_candidate(self.criterion)
            search.add(j)
            result = search.evaluate()
            if (order and self.min_gain is not None
                    and result["mi_bits"] - previous["mi_bits"] < self.min_gain):
                stopped = True  # j does not help on words that did not choose it
                break
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
        self.stopped_early_ = stopped
        self.candidates_ = sub.ids.copy()
        self.validation_rows_ = select
        self.report_rows_ = report
        self._predictive = post.subset(sel)
        extra = {"class_entropy_bits": search.entropy, "n_candidates": len(self.candidates_),
                 "n_train": int(counts.sum()), "n_validation": len(select),
                 "n_report": len(report), "stopped_early": stopped}
        ranking = self._ranking(data, wanted,
                                np.asarray(gains).reshape(len(sel), len(classes)), extra)
        return apply_hygiene(ranking, neuron_health(data))

    def _statistics(
        self, data: MethodInput, classes: list[str], code: np.ndarray, is_held: np.ndarray
    ) -> tuple[MethodInput, np.ndarray, _Posterior, np.ndarray]:
        """Candidate neurons, training class counts, the predictive over the candidates
        (standardized units) and the held-out rows of the candidates (raw, float32)."""
        cand = np.arange(data.n_neurons)
        d, n_cls, n_held = min(data.n_neurons, self.max_candidates), len(classes), is_held.sum()
        # Scatter matrices, the search's conditional scales and residuals, the held-out rows.
        need = 16 * n_cls * d * d + 4 * n_cls * d * n_held + 8 * d * n_held
        require_within(resolve_budget(self.memory), int(need),
                       f"the Gaussian probe's search over {d} candidates and {n_cls} classes",
                       "lower max_candidates or max_validation_rows, or raise memory")
        self._info = _univariate_information(data, classes, is_held, memory=self.memory)
        if data.n_neurons > self.max_candidates:
            cand = _prefilter(self._info[0], self.max_candidates)
        sub = dataclasses.replace(data, ids=data.ids[cand], names=[data.names[i] for i in cand])
        counts, means, scatter, x_held, varying = _scatter_pass(sub, code, is_held,
                                                                len(classes))
        n = counts[:, None]
        loc = (n * means).sum(0) / counts.sum()
        total = np.einsum("cjj->j", scatter) + (n * (means - loc) ** 2).sum(0)
        varying &= total > 0  # a variance lost to rounding: nothing to standardize by
        if not varying.any():
            raise NeuronscopeError("every candidate neuron is constant on the training words")
        if not varying.all():  # constant neurons carry nothing and would make pivots vanish
            keep = np.nonzero(varying)[0]
            means, x_held, loc, total = means[:, keep], x_held[:, keep], loc[keep], total[keep]
            scatter = scatter[:, keep][:, :, keep]
            sub = dataclasses.replace(sub, ids=sub.ids[keep], names=[sub.names[i] for i in keep])
        # Standardize (see the module docstring): the model is affine-equivariant.
        unit = np.sqrt(total / counts.sum())
        means = (means - loc) / unit
        scatter /= unit[:, None]
        scatter /= unit
        return sub, counts, _posterior(counts, means, scatter, loc, unit), x_held

    def _ranking(
        self, data: MethodInput, wanted: list[str], gains: np.ndarray, extra: dict[str, Any]
    ) -> Ranking:
        """Every neuron ordered. Globally: the selected ones in selection order, then the
        others by univariate Gaussian information (bits). Per concept: every neuron by its
        one-vs-rest univariate information, since a greedy gain is conditional on the neurons
        chosen before for *all* classes (a strong neuron of another class, chosen early, would
        outrank the concept's own); the selected neurons' class gains are in
        ``extra["class_gains"]``."""
        ids = self.selected_
        info, per_class = (v / _LN2 for v in self._info)
        position = {int(i): j for j, i in enumerate(data.ids.tolist())}
        rest = np.setdiff1d(np.arange(data.n_neurons), [position[int(i)] for i in ids])

        def append(sel_ids: np.ndarray, sel_scores: np.ndarray,
                   score: np.ndarray) -> ConceptRanking:
            tail = rest[np.argsort(-score[rest], kind="stable")]
            return ConceptRanking(np.concatenate([sel_ids, data.ids[tail]]),
                                  np.concatenate([sel_scores, score[tail]]))

        per_concept, class_gains = {}, {}
        for concept in wanted:
            row = per_class[self.classes_.index(concept)]
            order = np.argsort(-row, kind="stable")
            per_concept[str(concept)] = ConceptRanking(data.ids[order], row[order])
            # Classes without held-out words have zero gains.
            col = np.nan_to_num(gains[:, self.classes_.index(concept)], nan=0.0)
            class_gains[str(concept)] = [float(g) for g in col]
        extra["class_gains"] = class_gains
        key = "mi_bits" if self.criterion == "mi" else "accuracy"
        overall = append(ids, np.array([c[key] for c in self.curve_]), info)
        return Ranking(
            method=self.name, params=self.get_params(), concepts=per_concept,
            names={int(i): n for i, n in zip(data.ids, data.names, strict=True)},
            global_order=overall.ids, global_scores=overall.scores,
            **data.ranking(self),
            extra={"selection_curve": self.curve_, "baseline": self.baseline_,
                   "criterion": self.criterion, "n_selected": len(ids),
                   "rest_order": "univariate Gaussian information (bits; per concept "
                                 "one-vs-rest) after the greedily selected neurons", **extra},
        )

    def _check_params(self) -> None:
        if self.criterion not in _CRITERIA:
            raise NeuronscopeError(
                f"criterion must be one of {', '.join(_CRITERIA)}, got {self.criterion!r}"
            )
        for name in ("max_neurons", "max_candidates", "max_validation_rows", "n_jobs"):
            value = getattr(self, name)
            if name == "n_jobs" and value is None:
                continue
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise NeuronscopeError(f"{name} must be a positive integer, got {value!r}")
        for name in ("validation_fraction", "report_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise NeuronscopeError(f"{name} must be in (0, 1), got {value}")
        if self.validation_fraction + self.report_fraction >= 1:
            raise NeuronscopeError(
                "validation_fraction + report_fraction must be below 1 (the rest trains the "
                f"probe), got {self.validation_fraction} + {self.report_fraction}"
            )
        gain = self.min_gain
        if gain is not None and (isinstance(gain, bool) or not isinstance(gain, numbers.Real)
                                 or not math.isfinite(gain)):
            raise NeuronscopeError(f"min_gain must be a finite number (bits) or None, got "
                                   f"{gain!r}")

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
        chol = np.linalg.cholesky(post.scale[:, :p, :p])  # (C, p, p), lower
        logdet_half = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
        const = post.log_prior + _t_const(post.df, p) - logdet_half
        out = np.empty((len(x), len(self.classes_)))
        step = max(1, 2**22 // (len(self.classes_) * p))
        for a in range(0, len(x), step):
            block = post.standardize(x[a : a + step], slice(0, p))  # Jacobian cancels
            maha = np.stack([
                np.square(solve_triangular(chol[c], (block - post.mean[c, :p]).T, lower=True))
                .sum(0)
                for c in range(len(self.classes_))
            ])  # (C, rows)
            joint = const[:, None] - 0.5 * (post.df + p)[:, None] * np.log1p(
                maha / post.df[:, None])
            out[a : a + step] = (joint - logsumexp(joint, axis=0)).T
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
