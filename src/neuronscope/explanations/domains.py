"""Domain neurons: which neurons tell two domains apart, and shifting them at inference.

Gu et al. (2021, "Pruning-then-expanding model for domain adaptation of neural machine
translation") find that some neurons matter mostly for one domain; Antverg, Ben-David &
Belinkov (2022, "IDANI: Inference-time Domain Adaptation via Neuron-level Interventions")
rank neurons by how well they separate a source domain from a target domain and, at
inference on the target domain, move the top-``k`` neurons' activations by the difference of
the two domains' mean activations, so that a model (or probe) trained on the source sees
source-like values; no target labels are needed.

Here the two domains are two stores of the *same* model (their model fingerprints and neuron
layouts must match) over two corpora:

* :class:`DomainNeurons` (``rank_pair(domain_a, domain_b)``) ranks neurons by Cohen's d,
  ``(mean_B - mean_A) / s_pooled`` with the pooled standard deviation
  ``sqrt(((n_A - 1) s_A^2 + (n_B - 1) s_B^2) / (n_A + n_B - 2))``,
  or by the average precision of the activation as a detector of domain membership (the
  score of :class:`~neuronscope.methods.average_precision.AveragePrecision`, words of one
  domain positive). The :class:`~neuronscope.methods.ranking.Ranking` has one concept per
  domain: the neurons most active in it first (``d`` for B, ``-d`` for A; or each domain's
  AP); its global order is by ``|d|`` (or the better AP). Both measures are kept in ``extra``.
* :func:`domain_shift` gives the IDANI shift of the top-``k`` neurons from the target (B) to
  the source (A): ``delta = alpha * (mean_A - mean_B)``; :func:`shift_activations` applies it
  to stored target activations, and :func:`adaptation_intervention` to a running model
  through :func:`neuronscope.interventions.editing` (``op="add"``).
* :func:`adaptation_effect` measures the downstream effect on a probe: a probe (LDA, as in
  :mod:`.evolutionary`) trained on domain A's activations for a label layer both corpora
  carry is scored on A's held-out words, then on B's words before and after shifting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.families import PairwiseRanker
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.store.provenance import check_same_neurons
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView, align_labels, label_layer

MEASURES = ("d", "ap")
#: One domain's activations: a store, an array or a view (the PairwiseRanker contract).
Domain = ActivationStore | np.ndarray | ActivationView


def cohens_d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cohen's d of each column, ``(mean_b - mean_a) / pooled sd`` (0 where both are constant)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise NeuronscopeError(f"each domain needs at least 2 words, got {na} and {nb}")
    pooled = ((na - 1) * a.var(axis=0, ddof=1) + (nb - 1) * b.var(axis=0, ddof=1)) / (na + nb - 2)
    diff = b.mean(axis=0) - a.mean(axis=0)
    sd = np.sqrt(pooled)
    return np.divide(diff, sd, out=np.zeros_like(diff), where=sd > 1e-12)


def check_same_model(store_a: ActivationStore, store_b: ActivationStore) -> None:
    """Refuse stores of different models, aggregations or neuron layouts (the policy of
    :func:`~neuronscope.store.provenance.check_same_neurons`; the corpora may differ)."""
    check_same_neurons(store_a, store_b, "domain neurons compare one model on two domains")


def _columns(domain: Domain, ids: np.ndarray) -> np.ndarray:
    return ActivationView(domain, ids).matrix()


def _selection(a: Domain, b: Domain, neurons: Sequence[str | int] | None
               ) -> tuple[np.ndarray, list[str], str | None]:
    """Neuron ids, names and the model fingerprint of two domains, checked."""
    if isinstance(a, ActivationStore) and isinstance(b, ActivationStore):
        check_same_model(a, b)
    elif isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise NeuronscopeError(
                f"domain arrays must be 2-D with the same columns, got {a.shape} and {b.shape}")
    else:
        raise NeuronscopeError("give two ActivationStores or two arrays")
    view = ActivationView(a, neurons)
    return view.ids, view.names, view.provenance.model_fingerprint


def _blocks(a: Domain, ids: np.ndarray) -> list[np.ndarray]:
    """Positions into ``ids`` grouped by (component, layer), so a store reads each layer once."""
    if not isinstance(a, ActivationStore):
        return [np.arange(len(ids))]
    keys = a.layout.layer_of(ids)
    groups: dict[tuple[str, int], list[int]] = {}
    for pos, key in enumerate(keys):
        groups.setdefault(key, []).append(pos)
    return [np.asarray(v) for v in groups.values()]


class DomainNeurons(PairwiseRanker):
    """Rank neurons by how differently they activate on two domains.

    A :class:`~neuronscope.methods.families.PairwiseRanker`:
    ``DomainNeurons(...).rank_pair(domain_a, domain_b)``.

    Args:
        measure: ``"d"`` (Cohen's d) or ``"ap"`` (average precision of domain membership).
        domains: names of the two domains (the ranking's concepts).
        neurons: restrict to these neurons (names or ids; default all).
    """

    name = "domain"

    def __init__(self, measure: str = "d", domains: tuple[str, str] = ("A", "B"),
                 neurons: Sequence[str | int] | None = None) -> None:
        self.measure = measure
        self.domains = tuple(domains)
        self.neurons = neurons

    def rank_pair(self, domain_a: Domain, domain_b: Domain) -> Ranking:
        """A :class:`Ranking` with one concept per domain (see the module docstring)."""
        from neuronscope.methods.average_precision import AveragePrecision

        if self.measure not in MEASURES:
            raise NeuronscopeError(f"measure must be one of {MEASURES}, got {self.measure!r}")
        if len(self.domains) != 2 or self.domains[0] == self.domains[1]:
            raise NeuronscopeError(f"domains must be two distinct names, got {self.domains}")
        ids, names, model_fp = _selection(domain_a, domain_b, self.neurons)
        name_a, name_b = (str(d) for d in self.domains)
        d = np.zeros(len(ids))
        ap = np.zeros((2, len(ids)))
        mean_a, mean_b = np.zeros(len(ids)), np.zeros(len(ids))
        n_a = n_b = 0
        for pos in _blocks(domain_a, ids):
            xa, xb = _columns(domain_a, ids[pos]), _columns(domain_b, ids[pos])
            n_a, n_b = len(xa), len(xb)
            d[pos] = cohens_d(xa, xb)
            mean_a[pos] = xa.mean(axis=0, dtype=np.float64)
            mean_b[pos] = xb.mean(axis=0, dtype=np.float64)
            labels = np.array([name_a] * n_a + [name_b] * n_b, dtype=object)
            method = AveragePrecision(concepts=[name_a, name_b], n_jobs=1)
            method.rank(np.concatenate([xa, xb]), labels)
            ap[:, pos] = method.scores_
        scores = np.stack([-d, d]) if self.measure == "d" else ap
        extra = {
            "measure": self.measure, "n_words": {name_a: n_a, name_b: n_b},
            "cohens_d": {n: float(v) for n, v in zip(names, d, strict=True)},
            "ap": {dom: {n: float(v) for n, v in zip(names, row, strict=True)}
                   for dom, row in zip((name_a, name_b), ap, strict=True)},
            "mean": {dom: {n: float(v) for n, v in zip(names, row, strict=True)}
                     for dom, row in zip((name_a, name_b), (mean_a, mean_b), strict=True)},
            "model_fingerprint": model_fp,
        }
        return ranking_from_scores(
            f"domain-{self.measure}", self.get_params(), scores, [name_a, name_b], ids, names,
            store_fingerprint=model_fp, extra=extra,
        )


# ---------------------------------------------------------------------------- adaptation
@dataclass
class DomainShift:
    """The IDANI shift: add ``delta`` to ``names`` on the target domain (B -> A)."""

    ids: list[int]
    names: list[str]
    delta: np.ndarray
    alpha: float
    model_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"ids": self.ids, "names": self.names, "delta": self.delta.tolist(),
                "alpha": self.alpha, "model_fingerprint": self.model_fingerprint}


def domain_shift(ranking: Ranking, k: int, alpha: float = 1.0) -> DomainShift:
    """Shift of the top-``k`` domain neurons (global order) from domain B's mean to A's.

    ``ranking`` must come from :class:`DomainNeurons` (it carries both domains' means).
    """
    if k < 1:
        raise NeuronscopeError(f"k must be >= 1, got {k}")
    means = ranking.extra.get("mean")
    if not means or len(means) != 2:
        raise NeuronscopeError("domain_shift needs a DomainNeurons ranking (with means)")
    name_a, name_b = list(means)
    ids = ranking.top_ids(k)
    names = [ranking.names[int(i)] for i in ids]
    delta = alpha * np.asarray([means[name_a][n] - means[name_b][n] for n in names])
    return DomainShift([int(i) for i in ids], names, delta.astype(np.float32), float(alpha),
                       ranking.extra.get("model_fingerprint"))


def shift_activations(x: np.ndarray, shift: DomainShift, columns: Sequence[int]) -> np.ndarray:
    """A copy of target activations ``x`` with ``shift.delta`` added to ``columns`` (the
    positions of ``shift.ids`` in ``x``)."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[:, list(columns)] += shift.delta[None, :]
    return out


def adaptation_intervention(loaded: Any, shift: DomainShift, positions: Any = "all") -> Any:
    """An :class:`~neuronscope.interventions.Intervention` adding the shift in a running model.

    Use it as ``with adaptation_intervention(loaded, shift): loaded.model(**batch)``; the model
    must be the one the stores were extracted with.
    """
    from neuronscope.interventions.editing import intervene

    if shift.model_fingerprint and shift.model_fingerprint != loaded.fingerprint:
        raise FingerprintMismatchError(
            f"the domain shift was computed on another model (fingerprint "
            f"{shift.model_fingerprint}); {loaded.name} has {loaded.fingerprint}")
    return intervene(loaded, shift.names, op="add", value=shift.delta, positions=positions)


@dataclass
class AdaptationResult:
    """Probe accuracy (trained on domain A) on A, and on B before and after the shift."""

    k: int
    shift: DomainShift
    accuracy_source: float
    accuracy_before: float
    accuracy_after: float
    n_source_test: int
    n_target: int
    label_layer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """Accuracy on B after minus before the shift."""
        return self.accuracy_after - self.accuracy_before

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"k": self.k, "label_layer": self.label_layer,
                "accuracy_source": self.accuracy_source,
                "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
                "gain": self.gain, "n_source_test": self.n_source_test,
                "n_target": self.n_target, "shift": self.shift.to_dict(), **self.extra}


def _labels(domain: Domain, labels: ConceptLabels | np.ndarray | Sequence[Any],
            what: str) -> tuple[np.ndarray, str | None]:
    try:
        values = align_labels(labels, domain)
    except NeuronscopeError as err:
        raise type(err)(f"{what}: {err}") from err
    return np.asarray([str(v) for v in values.tolist()], dtype=object), label_layer(labels)


def adaptation_effect(
    domain_a: Domain,
    labels_a: ConceptLabels | np.ndarray | Sequence[Any],
    domain_b: Domain,
    labels_b: ConceptLabels | np.ndarray | Sequence[Any],
    k: int = 10,
    alpha: float = 1.0,
    ranking: Ranking | None = None,
    neurons: Sequence[str | int] | None = None,
    test_fraction: float = 0.3,
    shrinkage: float = 1e-3,
    random_state: int | None = 0,
) -> AdaptationResult:
    """Downstream effect of shifting the top-``k`` domain neurons of B toward A, on a probe.

    Args:
        domain_a, labels_a: source activations (store or array) and a label layer.
        domain_b, labels_b: target activations and the same label layer.
        k: domain neurons shifted.
        alpha: shift strength (1: move B's means exactly onto A's).
        ranking: a :class:`DomainNeurons` ranking (default: Cohen's d over ``neurons``).
        neurons: the probe's features (default all neurons; restrict big stores to a layer).
        test_fraction: share of A's words held out to score the probe on the source.
        shrinkage: the LDA probe's shrinkage.
        random_state: seed of A's split.
    """
    from neuronscope.explanations.lda import LDAClassifier
    from neuronscope.splits import split_by_sentence

    ids, names, _ = _selection(domain_a, domain_b, neurons)
    ya, layer = _labels(domain_a, labels_a, "domain A")
    yb, _ = _labels(domain_b, labels_b, "domain B")
    xa, xb = _columns(domain_a, ids), _columns(domain_b, ids)
    if ranking is None:
        ranking = DomainNeurons(neurons=None if neurons is None else list(neurons)).rank_pair(
            domain_a, domain_b)
    shift = domain_shift(ranking, k, alpha)
    position = {n: j for j, n in enumerate(names)}
    missing = [n for n in shift.names if n not in position]
    if missing:
        raise NeuronscopeError(f"domain neurons {missing[:5]} are not among the probe's "
                               "neurons; rank the same neurons the probe uses")
    columns = [position[n] for n in shift.names]

    classes = sorted(set(ya.tolist()) | set(yb.tolist()))
    code = {c: i for i, c in enumerate(classes)}
    ca = np.asarray([code[v] for v in ya.tolist()], dtype=np.int64)
    cb = np.asarray([code[v] for v in yb.tolist()], dtype=np.int64)
    rng = np.random.default_rng(random_state)
    train, test = split_by_sentence(None, test_fraction, rng, n_rows=len(xa), stratify=ca)
    probe = LDAClassifier(shrinkage).fit(xa[train], ca[train], len(classes))
    before = float(np.mean(probe.predict(xb) == cb))
    after = float(np.mean(probe.predict(shift_activations(xb, shift, columns)) == cb))
    return AdaptationResult(
        k=k, shift=shift, accuracy_source=float(np.mean(probe.predict(xa[test]) == ca[test])),
        accuracy_before=before, accuracy_after=after, n_source_test=len(test),
        n_target=len(xb), label_layer=layer,
    )
