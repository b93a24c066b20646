"""Agreement between neuron rankings of the same concept (Antverg & Belinkov 2022).

Different ranking methods often disagree about which neurons matter; these measures quantify
by how much:

* ``overlap@k = |top_k(A) & top_k(B)| / k``: 1 when both put the same ``k`` neurons first.
* rank correlation (Spearman's rho or Kendall's tau, via :mod:`scipy.stats`) between the two
  orders, over the neurons both rankings order (``neurons="common"``) or over all neurons
  either orders (``"union"``; a neuron missing from one ranking is placed after all of that
  ranking's neurons, tied with the other missing ones).

Both rankings must come from the same store when both record one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation._common import check_k, ranking_order
from neuronscope.methods.ranking import Ranking
from neuronscope.store.provenance import check_rankings_comparable

CORRELATIONS = ("spearman", "kendall")
METRICS = ("overlap", *CORRELATIONS)
NEURON_SETS = ("common", "union")


def _check_same_store(a: Ranking, b: Ranking) -> None:
    check_rankings_comparable(a, b)  # the acceptance policy of neuronscope.store.provenance


def overlap_at_k(a: Ranking, b: Ranking, k: int, concept: str | None = None) -> float:
    """``|top_k(a) & top_k(b)| / k`` for a concept (or the global orders)."""
    _check_same_store(a, b)
    order_a, order_b = ranking_order(a, concept), ranking_order(b, concept)
    k = check_k(k, min(len(order_a), len(order_b)))
    return len(set(order_a[:k].tolist()) & set(order_b[:k].tolist())) / k


def rank_correlation(
    a: Ranking,
    b: Ranking,
    concept: str | None = None,
    method: str = "spearman",
    neurons: str = "common",
) -> float:
    """Spearman's rho or Kendall's tau between two orders of the same concept.

    Ranks are positions in each order (scores are not compared, so methods with different
    score scales are comparable). ``nan`` when one side is constant.
    """
    if method not in CORRELATIONS:
        raise NeuronscopeError(f"method must be one of {CORRELATIONS}, got {method!r}")
    if neurons not in NEURON_SETS:
        raise NeuronscopeError(f"neurons must be one of {NEURON_SETS}, got {neurons!r}")
    _check_same_store(a, b)
    pos_a, pos_b = _positions(ranking_order(a, concept)), _positions(ranking_order(b, concept))
    if neurons == "common":
        ids = sorted(set(pos_a) & set(pos_b))
    else:
        ids = sorted(set(pos_a) | set(pos_b))
    if len(ids) < 2:
        raise NeuronscopeError(
            f"the rankings share {len(ids)} neuron(s); a rank correlation needs at least two"
        )
    ra = np.asarray([pos_a.get(i, len(pos_a)) for i in ids], dtype=np.float64)
    rb = np.asarray([pos_b.get(i, len(pos_b)) for i in ids], dtype=np.float64)
    if np.all(ra == ra[0]) or np.all(rb == rb[0]):
        return float("nan")
    if method == "spearman":
        return float(stats.spearmanr(ra, rb).statistic)
    return float(stats.kendalltau(ra, rb).statistic)


def _positions(order: np.ndarray) -> dict[int, int]:
    return {int(i): p for p, i in enumerate(order.tolist())}


def _named(rankings: Mapping[str, Ranking] | Sequence[Ranking]) -> dict[str, Ranking]:
    if isinstance(rankings, Mapping):
        named = dict(rankings)
    else:
        named = {}
        for r in rankings:
            name, n = r.method, 2
            while name in named:  # two rankings of one method: method, method-2, ...
                name, n = f"{r.method}-{n}", n + 1
            named[name] = r
    if len(named) < 2:
        raise NeuronscopeError("agreement needs at least two rankings")
    return named


def agreement_matrix(
    rankings: Mapping[str, Ranking] | Sequence[Ranking],
    metric: str = "overlap",
    k: int = 10,
    concept: str | None = None,
    neurons: str = "common",
) -> Any:
    """Pairwise agreement of several rankings as a symmetric pandas DataFrame.

    Args:
        rankings: name -> ranking, or a sequence (named by method).
        metric: ``"overlap"`` (overlap@``k``), ``"spearman"`` or ``"kendall"``.
        k: for ``"overlap"``.
        concept: the concept compared (default: the global orders).
        neurons: neuron set of the correlations (``"common"`` or ``"union"``).
    """
    import pandas as pd

    if metric not in METRICS:
        raise NeuronscopeError(f"metric must be one of {METRICS}, got {metric!r}")
    named = _named(rankings)
    names = list(named)
    values = np.ones((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            ra, rb = named[a], named[names[j]]
            if metric == "overlap":
                v = overlap_at_k(ra, rb, k, concept)
            else:
                v = rank_correlation(ra, rb, concept, metric, neurons)
            values[i, j] = values[j, i] = v
    return pd.DataFrame(values, index=names, columns=names)


def compare_rankings(
    rankings: Mapping[str, Ranking] | Sequence[Ranking],
    ks: Sequence[int] = (10, 50, 100),
    concept: str | None = None,
    neurons: str = "common",
) -> dict[str, Any]:
    """Overlap@k for every ``k`` and both rank correlations, as JSON-ready nested dicts.

    ``k`` values larger than the shortest order are skipped.
    """
    named = _named(rankings)
    shortest = min(len(ranking_order(r, concept)) for r in named.values())
    out: dict[str, Any] = {"rankings": list(named), "concept": concept, "overlap": {}}
    for k in ks:
        if 1 <= k <= shortest:
            out["overlap"][str(k)] = agreement_matrix(named, "overlap", k, concept).to_dict()
    for method in CORRELATIONS:
        out[method] = agreement_matrix(named, method, concept=concept, neurons=neurons).to_dict()
    return out
