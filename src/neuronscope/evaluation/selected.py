"""Probing with selected neurons: retrain a probe on the top, random and bottom ``k`` neurons.

The classic check of a neuron ranking (Dalvi et al. 2019; Durrani et al. 2020): if a ranking
puts the relevant neurons first, a probe retrained on its top ``k`` neurons should come close to
the probe trained on every neuron, clearly beat ``k`` random neurons, and the ``k`` lowest
ranked neurons should do worst. Random neurons are drawn from the same pool the ranking orders
and the draw is repeated ``n_random`` times (mean and standard deviation reported).

For a ``concept`` the task becomes one-vs-rest (label == concept) and the concept's own order
is used; without one, the full multi-class task and the ranking's global order.

"Full accuracy" is that of a probe on *every neuron the ranking orders* (for a ranking
restricted to some layers, those layers), trained and tested on the same split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation._common import (
    Activations,
    NeuronMatrix,
    Probe,
    ProbeFactory,
    check_k,
    check_ranking,
    concept_target,
    default_probe_factory,
    fit_and_score,
    label_array,
    load_neurons,
    majority_accuracy,
    ranking_order,
    resolve_split,
)
from neuronscope.methods.ranking import Ranking

#: ``k`` values tried when neither ``ks`` nor ``fractions`` is given (those above the pool
#: size are dropped).
DEFAULT_KS = (10, 50, 100)

Labels = ConceptLabels | np.ndarray | Sequence[Any]


@dataclass
class SelectionResult:
    """Accuracy of probes retrained on top / random / bottom ``k`` neurons.

    Lists are aligned with ``ks``. ``full_probe`` is the probe trained on every neuron of the
    pool (not serialized), reusable e.g. for :func:`~neuronscope.evaluation.ablation_curves`;
    its columns are ``pool_ids``.
    """

    method: str
    concept: str | None
    ks: list[int]
    n_neurons: int
    full_accuracy: float
    majority_accuracy: float
    top: list[float]
    random_mean: list[float]
    random_std: list[float]
    random_runs: list[list[float]]
    bottom: list[float]
    top_neurons: dict[int, list[str]]
    n_train: int
    n_test: int
    random_state: int | None
    pool_ids: np.ndarray = field(repr=False, compare=False)
    full_probe: Probe | None = field(default=None, repr=False, compare=False)

    def table(self) -> list[dict[str, Any]]:
        """One row per ``k``: accuracies, the share of full accuracy kept by the top ``k``, and
        ``above_random``: whether the top ``k`` beats the random band (mean + 2 sd of the
        random draws); a row without it says nothing about the ranking."""
        return [
            {
                "k": k,
                "fraction": k / self.n_neurons,
                "top": top,
                "random_mean": rmean,
                "random_std": rstd,
                "bottom": bottom,
                "full": self.full_accuracy,
                "top_over_full": top / self.full_accuracy if self.full_accuracy else None,
                "above_random": bool(top > rmean + 2 * rstd),
            }
            for k, top, rmean, rstd, bottom in zip(
                self.ks, self.top, self.random_mean, self.random_std, self.bottom, strict=True
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the probe)."""
        return {
            "method": self.method,
            "concept": self.concept,
            "n_neurons": self.n_neurons,
            "full_accuracy": self.full_accuracy,
            "majority_accuracy": self.majority_accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_random": len(self.random_runs[0]) if self.random_runs else 0,
            "random_state": self.random_state,
            "table": self.table(),
            "random_runs": {str(k): runs for k, runs in zip(self.ks, self.random_runs,
                                                           strict=True)},
            "top_neurons": {str(k): names for k, names in self.top_neurons.items()},
        }

    def to_dataframe(self) -> Any:
        """The table as a pandas DataFrame (one row per ``k``)."""
        import pandas as pd

        return pd.DataFrame(self.table())

    def to_pandas(self) -> Any:
        """The same table as :meth:`to_dataframe` (pandas' usual name for it)."""
        return self.to_dataframe()


@dataclass
class MinimalSubsetResult:
    """The smallest top-``k`` set whose probe keeps ``target`` of the full probe's gain over
    the majority class (``baseline="majority"``) or of its accuracy (``"none"``)."""

    method: str
    concept: str | None
    k: int
    accuracy: float
    full_accuracy: float
    target: float
    threshold: float
    reached: bool
    neurons: list[str]
    evaluations: dict[int, float]
    n_neurons: int
    baseline: str = "majority"
    majority_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "method": self.method,
            "concept": self.concept,
            "baseline": self.baseline,
            "majority_accuracy": self.majority_accuracy,
            "k": self.k,
            "accuracy": self.accuracy,
            "full_accuracy": self.full_accuracy,
            "target": self.target,
            "threshold": self.threshold,
            "reached": self.reached,
            "neurons": list(self.neurons),
            "evaluations": {str(k): v for k, v in sorted(self.evaluations.items())},
            "n_neurons": self.n_neurons,
        }


class _Setup:
    """Everything the probes of one evaluation share: pool, labels, split, factory."""

    def __init__(
        self,
        activations: Activations,
        labels: Labels,
        ranking: Ranking,
        concept: str | None,
        train_mask: np.ndarray | None,
        test_mask: np.ndarray | None,
        test_size: float,
        probe_factory: ProbeFactory | None,
        random_state: int | None,
    ) -> None:
        check_ranking(ranking, activations)
        self.ranking = ranking
        self.concept = concept
        self.y = concept_target(label_array(activations, labels), concept)
        self.order = ranking_order(ranking, concept)
        if isinstance(activations, NeuronMatrix):
            self.matrix = activations
        else:
            # Sorted ids: a store reads its chunks in order.
            self.matrix = load_neurons(activations, np.sort(self.order))
        self.order_cols = self.matrix.columns(self.order)
        train, test = resolve_split(len(self.y), train_mask, test_mask, test_size,
                                    self.matrix.groups, random_state)
        self.train_idx, self.test_idx = np.nonzero(train)[0], np.nonzero(test)[0]
        self.factory = probe_factory or default_probe_factory(random_state)
        self.random_state = random_state
        self._full: tuple[float, Probe] | None = None

    @property
    def n(self) -> int:
        return len(self.order)

    def score_columns(self, cols: np.ndarray) -> tuple[float, Probe]:
        """Accuracy of a probe on these matrix columns (rows gathered per probe, no copy of
        the whole pool)."""
        x = self.matrix.x
        return fit_and_score(
            self.factory,
            x[np.ix_(self.train_idx, cols)], self.y[self.train_idx],
            x[np.ix_(self.test_idx, cols)], self.y[self.test_idx],
        )

    def score_top(self, k: int) -> float:
        if k == self.n:
            return self.full()[0]
        return self.score_columns(self.order_cols[:k])[0]

    def full(self) -> tuple[float, Probe]:
        if self._full is None:
            # Pool columns in matrix order, so the probe applies to the matrix as it is when
            # the matrix holds exactly the pool.
            self._full = self.score_columns(np.sort(self.order_cols))
        return self._full

    def names(self, ids: np.ndarray) -> list[str]:
        return [self.ranking.names.get(int(i), f"n{int(i)}") for i in ids]


def _resolve_ks(ks: Sequence[int] | None, fractions: Sequence[float] | None, n: int) -> list[int]:
    if ks is not None and fractions is not None:
        raise NeuronscopeError("pass ks or fractions, not both")
    if fractions is not None:
        out = []
        for f in fractions:
            if not 0 < float(f) <= 1:
                raise NeuronscopeError(f"fractions must lie in (0, 1], got {f}")
            out.append(max(1, int(round(float(f) * n))))
    elif ks is not None:
        out = [check_k(k, n) for k in ks]
    else:
        out = [k for k in DEFAULT_KS if k <= n] or [n]
    if not out:
        raise NeuronscopeError("no k to evaluate: ks (or fractions) is empty")
    return sorted(set(out))


def evaluate_selection(
    activations: Activations,
    labels: Labels,
    ranking: Ranking,
    ks: Sequence[int] | None = None,
    fractions: Sequence[float] | None = None,
    concept: str | None = None,
    *,
    train_mask: np.ndarray | None = None,
    test_mask: np.ndarray | None = None,
    test_size: float = 0.2,
    probe_factory: ProbeFactory | None = None,
    n_random: int = 5,
    random_state: int | None = 0,
) -> SelectionResult:
    """Retrain probes on the top-, random- and bottom-``k`` neurons of a ranking.

    Args:
        activations: a store, a ``(n_words, n_neurons)`` array or a :class:`NeuronMatrix`.
        labels: a label layer (``corpus.concept_labels(layer)``) or one label per row.
        ranking: the ranking to evaluate; a ranking from another store is refused.
        ks: neuron counts (each in ``1..n`` for the ``n`` neurons the ranking orders).
        fractions: alternatively, shares of ``n`` (rounded, at least 1).
        concept: evaluate one concept (one-vs-rest labels, the concept's order).
        train_mask, test_mask: explicit split (boolean masks or row indices); otherwise a
            seeded split holding out ``test_size`` of the sentences (a store or a matrix
            loaded from one) or of the rows (an array).
        probe_factory: builds a fresh probe (``fit``/``predict``); default
            ``LinearProbe.for_evaluation(random_state)``.
        n_random: random draws of ``k`` neurons per ``k``.
        random_state: seed of the split, the random draws and the default probe.
    """
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise NeuronscopeError(f"n_random must be a positive integer, got {n_random!r}")
    setup = _Setup(activations, labels, ranking, concept, train_mask, test_mask, test_size,
                   probe_factory, random_state)
    ks_list = _resolve_ks(ks, fractions, setup.n)
    full_acc, full_probe = setup.full()
    rng = np.random.default_rng(random_state)
    top, rmean, rstd, runs, bottom, names = [], [], [], [], [], {}
    for k in ks_list:
        top.append(setup.score_top(k))
        draws = [setup.score_columns(setup.order_cols[np.sort(rng.choice(setup.n, k,
                                                                           replace=False))])[0]
                 for _ in range(n_random)]
        runs.append(draws)
        rmean.append(float(np.mean(draws)))
        rstd.append(float(np.std(draws)))
        bottom.append(full_acc if k == setup.n else
                      setup.score_columns(setup.order_cols[::-1][:k])[0])
        names[k] = setup.names(setup.order[:k])
    return SelectionResult(
        method=ranking.method, concept=concept, ks=ks_list, n_neurons=setup.n,
        full_accuracy=full_acc,
        majority_accuracy=majority_accuracy(setup.y[setup.train_idx], setup.y[setup.test_idx]),
        top=top, random_mean=rmean, random_std=rstd, random_runs=runs, bottom=bottom,
        top_neurons=names, n_train=len(setup.train_idx), n_test=len(setup.test_idx),
        random_state=random_state, pool_ids=setup.matrix.ids[np.sort(setup.order_cols)],
        full_probe=full_probe,
    )


def minimal_subset(
    activations: Activations,
    labels: Labels,
    ranking: Ranking,
    target: float = 0.95,
    concept: str | None = None,
    *,
    max_k: int | None = None,
    train_mask: np.ndarray | None = None,
    test_mask: np.ndarray | None = None,
    test_size: float = 0.2,
    probe_factory: ProbeFactory | None = None,
    random_state: int | None = 0,
    baseline: str = "majority",
) -> MinimalSubsetResult:
    """The smallest ``k`` whose top-``k`` probe keeps ``target`` of the full probe's gain.

    With ``baseline="majority"`` (default) the threshold is ``maj + target * (full - maj)``,
    ``maj`` the majority-class accuracy of the test words: a share of the *gain* over always
    predicting the most frequent label. ``"none"`` uses ``target * full``, which for a rare
    one-vs-rest concept can sit below ``maj`` (CCONJ "passed" with one neuron on EWT).

    Search: ``k = 1, 2, 4, ...`` (doubling, capped at ``max_k``, default all ranked neurons)
    until a probe reaches the threshold, then bisection between the last ``k`` that failed
    and the first that passed. This needs ``O(log n)`` probes and finds the exact minimum when
    accuracy grows with ``k`` (the usual case; with a non-monotone curve it finds *a* passing
    ``k`` whose predecessor in the bisection failed). ``reached`` is ``False`` when even
    ``max_k`` neurons fall short; ``k`` is then ``max_k``. Probes on all ``n`` neurons reuse
    the full probe. Other arguments as in :func:`evaluate_selection`; for a ``concept`` the
    task is one-vs-rest and the concept's own order is searched.
    """
    if not 0 < float(target) <= 1:
        raise NeuronscopeError(f"target must be in (0, 1], got {target}")
    if baseline not in ("majority", "none"):
        raise NeuronscopeError(f"baseline must be 'majority' or 'none', got {baseline!r}")
    setup = _Setup(activations, labels, ranking, concept, train_mask, test_mask, test_size,
                   probe_factory, random_state)
    limit = setup.n if max_k is None else check_k(max_k, setup.n, "max_k")
    full_acc = setup.full()[0]
    maj = majority_accuracy(setup.y[setup.train_idx], setup.y[setup.test_idx])
    threshold = (maj + float(target) * (full_acc - maj) if baseline == "majority"
                 else float(target) * full_acc)
    evaluations: dict[int, float] = {}

    def passes(k: int) -> bool:
        if k not in evaluations:
            evaluations[k] = setup.score_top(k)
        return evaluations[k] >= threshold

    lo, hi, k = 0, None, 1
    while True:
        if passes(k):
            hi = k
            break
        lo = k
        if k >= limit:
            break
        k = min(2 * k, limit)
    if hi is None:
        best = limit
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if passes(mid):
                hi = mid
            else:
                lo = mid
        best = hi
    return MinimalSubsetResult(
        method=ranking.method, concept=concept, k=best, accuracy=evaluations[best],
        full_accuracy=full_acc, target=float(target), threshold=threshold,
        reached=hi is not None, neurons=setup.names(setup.order[:best]),
        evaluations=evaluations, n_neurons=setup.n, baseline=baseline,
        majority_accuracy=maj,
    )
