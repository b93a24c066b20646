"""Multi-model neuron search (Bau et al. 2019) and representation-level comparison.

"Identifying and Controlling Important Neurons in Neural Machine Translation" (Bau,
Belinkov, Sajjad, Durrani, Dalvi & Glass, ICLR 2019) ranks the neurons of a model by how
well other models trained on the same data reproduce them, without labels. With
``rho(x_i^m, x_j^m')`` the Pearson correlation over words between neuron ``i`` of model ``m``
and neuron ``j`` of model ``m'``:

* **MaxCorr**: ``max_{m' != m} max_j |rho(x_i^m, x_j^m')|`` -- the neuron has a close
  counterpart in *some* other model;
* **MinCorr**: ``min_{m' != m} max_j |rho(x_i^m, x_j^m')|`` -- it has one in *every* other
  model (for two models MinCorr equals MaxCorr);
* **LinReg**: how well a linear regression from all the other models' neurons predicts the
  neuron. The paper ranks by the regression's mean squared error; here the score is the
  in-sample R^2 (1 - MSE / variance), the same order on standardized neurons and comparable
  across neurons of different scales. It is computed from the correlation matrix,
  ``R^2 = r^T (R_oo + ridge I)^{-1} r``; the small ridge keeps it defined when predictors are
  collinear (duplicated or constant neurons). In-sample R^2 is inflated by about
  ``p / n_words`` for ``p`` predictors: compare it on corpora much longer than ``p``.

Constant neurons score 0. Each method yields one :class:`Ranking` per model, with the single
concept named after the method, so the evaluation tools apply to it.

Representation-level similarity between every pair of models: SVCCA, PWCCA and linear CKA on
the whole selection (see :mod:`.similarity`), and linear CKA between each layer of one model
and each layer of the other.

All correlations come from one streamed pass over the stores together, chunk by chunk (the
joint correlation matrix of all models' neurons, built by neuron blocks when large).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.store.provenance import check_same_rows
from neuronscope.store.store import ActivationStore
from neuronscope.unsupervised.clustering import _group_order, group_of
from neuronscope.unsupervised.correlation import (
    DEFAULT_MAX_BYTES,
    Activations,
    ColumnSource,
    CorrelationResult,
    correlation_matrix,
)
from neuronscope.unsupervised.similarity import (
    RepresentationSimilarity,
    Spectrum,
    similarity_from_cov,
)

NEURON_METHODS = ("maxcorr", "mincorr", "linreg")


@dataclass
class PairSimilarity:
    """Similarity of two models' representations."""

    a: int
    b: int
    similarity: RepresentationSimilarity
    layer_labels_a: list[str]
    layer_labels_b: list[str]
    layer_cka: np.ndarray

    def to_dict(self, labels: Sequence[str]) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "a": labels[self.a], "b": labels[self.b], **self.similarity.to_dict(),
            "layer_cka": {"rows": self.layer_labels_a, "cols": self.layer_labels_b,
                          "values": np.round(self.layer_cka, 6).tolist()},
        }


@dataclass
class ModelComparison:
    """Neuron rankings across models and pairwise representation similarity.

    Attributes:
        labels: a short label per model (store folder name, or ``model0``...).
        names: neuron names per model; ``ids`` their global ids.
        scores: method -> per model, one score per neuron (higher = more important).
        best_match: per model, the name (``label:neuron``) of each neuron's most correlated
            neuron in another model.
        rankings: method -> per model, a :class:`Ranking` with one concept (the method).
        pairs: representation similarity of every pair of models.
        constant: per model, names of constant neurons.
    """

    labels: list[str]
    names: list[list[str]]
    ids: list[np.ndarray]
    scores: dict[str, list[np.ndarray]]
    best_match: list[list[str]]
    rankings: dict[str, list[Ranking]]
    pairs: list[PairSimilarity]
    constant: list[list[str]]
    params: dict[str, Any] = field(default_factory=dict)

    def ranking(self, method: str, model: int | str = 0) -> Ranking:
        """The ranking of one model's neurons by one method."""
        if method not in self.rankings:
            raise NeuronscopeError(
                f"no method {method!r}; computed: {', '.join(self.rankings)}"
            )
        index = self.labels.index(model) if isinstance(model, str) else int(model)
        return self.rankings[method][index]

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        """JSON-ready summary: top neurons per method and model, similarities."""
        models = []
        for m, label in enumerate(self.labels):
            entry: dict[str, Any] = {"label": label, "n_neurons": len(self.names[m]),
                                     "constant": self.constant[m], "top": {}}
            match = dict(zip(self.names[m], self.best_match[m], strict=True))
            for method in self.rankings:
                ranking = self.rankings[method][m]
                entry["top"][method] = [
                    {"neuron": n, "score": s, "best_match": match[n]}
                    for n, s in list(ranking.scores(method).items())[:top]
                ]
            models.append(entry)
        return {
            "format": "neuronscope-model-comparison",
            "params": dict(self.params),
            "models": models,
            "pairs": [p.to_dict(self.labels) for p in self.pairs],
        }


def _labels_for(models: Sequence[Activations], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(models):
            raise NeuronscopeError(f"{len(labels)} labels for {len(models)} models")
        return [str(x) for x in labels]
    out: list[str] = []
    for i, m in enumerate(models):
        base = m.path.name if isinstance(m, ActivationStore) else f"model{i}"
        out.append(base if base not in out else f"{base}-{i}")
    return out


def check_same_corpus(models: Sequence[Activations]) -> None:
    """Raise :class:`FingerprintMismatchError` unless all stores come from one corpus."""
    check_same_rows([m for m in models if isinstance(m, ActivationStore)],
                    "multi-model comparison")


def _layer_cka(corr: CorrelationResult, ia: np.ndarray, ib: np.ndarray,
               names_a: list[str], names_b: list[str]) -> tuple[list[str], list[str],
                                                                np.ndarray]:
    ga = [group_of(n) for n in names_a]
    gb = [group_of(n) for n in names_b]
    la, lb = _group_order(ga), _group_order(gb)
    idx_a = {g: ia[[i for i, h in enumerate(ga) if h == g]] for g in la}
    idx_b = {g: ib[[i for i, h in enumerate(gb) if h == g]] for g in lb}
    norm_a = {g: np.linalg.norm(corr.covariance(i, i)) for g, i in idx_a.items()}
    norm_b = {g: np.linalg.norm(corr.covariance(i, i)) for g, i in idx_b.items()}
    out = np.zeros((len(la), len(lb)))
    for r, g in enumerate(la):
        for c, h in enumerate(lb):
            cov = corr.covariance(idx_a[g], idx_b[h])
            denom = norm_a[g] * norm_b[h]
            out[r, c] = float(np.sum(cov * cov) / denom) if denom > 0 else 0.0
    return la, lb, out


def compare_models(
    models: Sequence[Activations],
    neurons: Sequence[Sequence[str | int] | None] | None = None,
    labels: Sequence[str] | None = None,
    methods: Sequence[str] = NEURON_METHODS,
    ridge: float = 1e-4,
    variance: float = 0.99,
    representation: bool = True,
    chunk_words: int = 8192,
    max_bytes: int = DEFAULT_MAX_BYTES,
    out: str | os.PathLike | None = None,
) -> ModelComparison:
    """Rank each model's neurons by MaxCorr, MinCorr and LinReg; compare representations.

    Args:
        models: two or more stores (or arrays) of the same corpus.
        neurons: per model, the neurons to use (names/ids; ``None``: all).
        labels: a short label per model (default: store folder names).
        methods: any of ``"maxcorr"``, ``"mincorr"``, ``"linreg"``.
        ridge: ridge added to the predictors' correlation matrix for LinReg.
        variance: variance kept by SVCCA's SVD step.
        representation: compute SVCCA/PWCCA/CKA between every pair of models.
        chunk_words: rows per chunk read (from all stores in lockstep).
        max_bytes: float64 accumulator budget of the joint correlation matrix.
        out: write the joint correlation matrix to this ``.npy`` (memory-mapped).
    """
    if len(models) < 2:
        raise NeuronscopeError("multi-model comparison needs at least two models")
    unknown = [m for m in methods if m not in NEURON_METHODS]
    if unknown:
        raise NeuronscopeError(f"unknown method(s) {unknown}; valid: {', '.join(NEURON_METHODS)}")
    if ridge < 0:
        raise NeuronscopeError(f"ridge must be >= 0, got {ridge}")
    check_same_corpus(models)
    selections = list(neurons) if neurons is not None else [None] * len(models)
    if len(selections) != len(models):
        raise NeuronscopeError(f"{len(selections)} neuron selections for {len(models)} models")
    tags = _labels_for(models, labels)
    source = ColumnSource(list(zip(models, selections, strict=True)), chunk_words)
    corr = correlation_matrix(source, max_bytes=max_bytes, out=out)
    off = source.offsets
    spans = [np.arange(off[m], off[m + 1]) for m in range(len(models))]
    part_names = [p.names for p in source.parts]
    part_ids = [p.ids for p in source.parts]
    constant = corr.constant_mask

    scores: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    best_match: list[list[str]] = []
    for m, rows in enumerate(spans):
        others = [o for o in range(len(models)) if o != m]
        per_model = np.zeros((len(others), len(rows)))
        match_val = np.full(len(rows), -1.0)
        match_name = [""] * len(rows)
        for k, o in enumerate(others):
            block = np.abs(corr.block(spans[m], spans[o]))
            best = block.argmax(axis=1)
            per_model[k] = block[np.arange(len(rows)), best]
            better = per_model[k] > match_val
            match_val[better] = per_model[k][better]
            for i in np.nonzero(better)[0]:
                match_name[i] = f"{tags[o]}:{part_names[o][best[i]]}"
        best_match.append(match_name)
        if "maxcorr" in scores:
            scores["maxcorr"].append(per_model.max(axis=0))
        if "mincorr" in scores:
            scores["mincorr"].append(per_model.min(axis=0))
        if "linreg" in scores:
            scores["linreg"].append(_linreg_r2(corr, rows, np.concatenate(
                [spans[o] for o in others]), ridge))
        for method in scores:
            scores[method][-1][constant[rows]] = 0.0

    params = {"labels": tags, "ridge": ridge, "variance": variance,
              "n_words": int(corr.n_words), "methods": list(methods)}
    rankings: dict[str, list[Ranking]] = {m: [] for m in methods}
    for method in methods:
        for m, model in enumerate(models):
            fp = model.fingerprint if isinstance(model, ActivationStore) else None
            ranking = ranking_from_scores(
                method, {**params, "model": tags[m]}, scores[method][m][None, :], [method],
                part_ids[m], part_names[m], store_fingerprint=fp,
            )
            ranking.extra["model"] = tags[m]
            rankings[method].append(ranking)

    pairs = []
    if representation:
        spectra = [Spectrum.of(corr.covariance(s, s)) for s in spans]
        for a in range(len(models)):
            for b in range(a + 1, len(models)):
                sim = similarity_from_cov(
                    corr.covariance(spans[a], spans[a]), corr.covariance(spans[b], spans[b]),
                    corr.covariance(spans[a], spans[b]), variance, (spectra[a], spectra[b]),
                )
                la, lb, lcka = _layer_cka(corr, spans[a], spans[b], part_names[a],
                                          part_names[b])
                pairs.append(PairSimilarity(a, b, sim, la, lb, lcka))
    return ModelComparison(
        labels=tags, names=part_names, ids=part_ids, scores=scores, best_match=best_match,
        rankings=rankings, pairs=pairs,
        constant=[[part_names[m][i] for i in np.nonzero(constant[s])[0]]
                  for m, s in enumerate(spans)],
        params={**params, "correlation_path": None if out is None else str(Path(out))},
    )


def _linreg_r2(corr: CorrelationResult, targets: np.ndarray, predictors: np.ndarray,
               ridge: float) -> np.ndarray:
    """In-sample R^2 of each target neuron regressed on all predictor neurons (standardized)."""
    r_oo = corr.block(predictors, predictors).astype(np.float64)
    r_oo[np.diag_indices_from(r_oo)] += ridge
    r_ot = corr.block(predictors, targets).astype(np.float64)
    try:
        factor = cho_factor(r_oo, lower=False, check_finite=False)
        coef = cho_solve(factor, r_ot, check_finite=False)
    except np.linalg.LinAlgError:
        # Not positive definite (ridge 0 with collinear predictors): least squares instead.
        coef = np.linalg.lstsq(r_oo, r_ot, rcond=None)[0]
    return np.clip(np.sum(r_ot * coef, axis=0), 0.0, 1.0)
