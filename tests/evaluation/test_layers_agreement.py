"""Layer distribution and agreement between rankings, on hand-made rankings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.evaluation import (
    agreement_matrix,
    compare_rankings,
    layer_distribution,
    overlap_at_k,
    rank_correlation,
)
from neuronscope.methods.ranking import ConceptRanking, Ranking

# Neurons of a store with hidden (layers 0-2, 4 neurons) and mlp (layers 0-1, 4 neurons).
NAMES = {i: f"L{i // 4}.hidden.{i % 4}" for i in range(12)} | {
    12 + i: f"L{i // 4}.mlp.{i % 4}" for i in range(8)}


def _ranking(orders: dict[str, list[int]], method: str = "m", fingerprint: str | None = "s",
             scores: dict[str, list[float]] | None = None) -> Ranking:
    concepts = {
        c: ConceptRanking(np.asarray(o), np.asarray(
            scores[c] if scores else np.arange(len(o), 0, -1), dtype=float))
        for c, o in orders.items()
    }
    names = {i: NAMES.get(i, f"n{i}") for o in orders.values() for i in o}
    return Ranking(method, {}, concepts, names, store_fingerprint=fingerprint)


def test_layer_counts_of_a_hand_made_ranking():
    ranking = _ranking({
        "NOUN": [0, 1, 5, 12, 13, 8],   # L0.hidden x2, L1.hidden, L0.mlp x2, L2.hidden
        "VERB": [9, 10, 19, 4, 0, 1],   # L2.hidden x2, L1.mlp, L1.hidden, L0.hidden x2
    })
    dist = layer_distribution(ranking, k=4)
    assert dist.columns == ["L0.hidden", "L1.hidden", "L2.hidden", "L0.mlp", "L1.mlp"]
    frame = dist.to_dataframe()
    assert frame.loc["NOUN"].tolist() == [2, 1, 0, 1, 0]
    assert frame.loc["VERB"].tolist() == [0, 1, 2, 0, 1]
    assert dist.counts.sum(axis=1).tolist() == [4, 4]
    assert dist.shares()[0].tolist() == [0.5, 0.25, 0.0, 0.25, 0.0]
    assert dist.to_dict()["counts"]["VERB"]["L1.mlp"] == 1
    # The global order (derived round-robin) as an extra row.
    with_global = layer_distribution(ranking, k=2, include_global=True)
    assert with_global.concepts == ["NOUN", "VERB", "__all__"]
    assert with_global.counts[-1].sum() == 2
    only = layer_distribution(ranking, k=6, concepts=["VERB"])
    assert only.concepts == ["VERB"] and only.counts.tolist() == [[2, 1, 2, 1]]


def test_layer_counts_by_score_mass():
    ranking = _ranking({"NOUN": [0, 12, 4, 5]}, scores={"NOUN": [5.0, 3.0, 1.0, 1.0]})
    # 5 + 3 = 8 of 10 reaches 80 % of the mass: two neurons.
    dist = layer_distribution(ranking, mass=0.8)
    assert dist.columns == ["L0.hidden", "L0.mlp"] and dist.counts.tolist() == [[1, 1]]
    assert dist.mass == 0.8 and dist.k is None


def test_layer_distribution_failures():
    ranking = _ranking({"A": [0, 1]})
    with pytest.raises(NeuronscopeError, match="exactly one"):
        layer_distribution(ranking)
    with pytest.raises(NeuronscopeError, match="k must be"):
        layer_distribution(ranking, k=0)
    with pytest.raises(NeuronscopeError, match="has no layer"):
        layer_distribution(_ranking({"A": [100, 101]}), k=1)
    with pytest.raises(NeuronscopeError, match="no concept 'B'"):
        layer_distribution(ranking, k=1, concepts=["B"])


def test_overlap_and_rank_correlation_by_hand():
    a = _ranking({"X": [0, 1, 2, 3, 4]}, "a")
    b = _ranking({"X": [1, 0, 2, 4, 3]}, "b")
    assert overlap_at_k(a, b, 1, "X") == 0.0
    assert overlap_at_k(a, b, 2, "X") == 1.0
    assert overlap_at_k(a, b, 4, "X") == 0.75  # {0,1,2,3} & {1,0,2,4}
    # Positions differ by 1 for four neurons: rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8.
    assert rank_correlation(a, b, "X") == pytest.approx(0.8)
    # Two discordant pairs of ten: tau = (8 - 2) / 10.
    assert rank_correlation(a, b, "X", method="kendall") == pytest.approx(0.6)
    assert rank_correlation(a, a, "X") == pytest.approx(1.0)
    reverse = _ranking({"X": [4, 3, 2, 1, 0]}, "r")
    assert rank_correlation(a, reverse, "X") == pytest.approx(-1.0)


def test_common_versus_union_neurons():
    a = _ranking({"X": [0, 1, 2, 3, 4]}, "a")
    short = _ranking({"X": [0, 1, 2]}, "s")
    assert rank_correlation(a, short, "X", neurons="common") == pytest.approx(1.0)
    # Union: neurons 3 and 4 are missing from `short` and tie after its three neurons.
    expected = stats.spearmanr([0, 1, 2, 3, 4], [0, 1, 2, 3, 3]).statistic
    assert rank_correlation(a, short, "X", neurons="union") == pytest.approx(expected)
    assert rank_correlation(a, short, "X", neurons="union") < 1.0
    disjoint = _ranking({"X": [7, 8]}, "d")
    with pytest.raises(NeuronscopeError, match="share 0 neuron"):
        rank_correlation(a, disjoint, "X")


def test_agreement_matrix_and_comparison():
    a = _ranking({"X": [0, 1, 2, 3, 4]}, "a")
    b = _ranking({"X": [1, 0, 2, 4, 3]}, "b")
    c = _ranking({"X": [4, 3, 2, 1, 0]}, "c")
    overlap = agreement_matrix([a, b, c], "overlap", k=2, concept="X")
    assert list(overlap.index) == ["a", "b", "c"]
    assert overlap.loc["a", "b"] == 1.0 and overlap.loc["a", "c"] == 0.0
    assert np.allclose(overlap.values, overlap.values.T) and np.all(np.diag(overlap) == 1)
    rho = agreement_matrix({"first": a, "second": b}, "spearman", concept="X")
    assert rho.loc["first", "second"] == pytest.approx(0.8)
    # Two rankings of the same method get distinct names.
    assert list(agreement_matrix([a, a], "overlap", k=1, concept="X").index) == ["a", "a-2"]
    summary = compare_rankings([a, b], ks=(2, 4, 50), concept="X")
    assert set(summary["overlap"]) == {"2", "4"}  # 50 exceeds the orders
    assert summary["overlap"]["4"]["a"]["b"] == 0.75
    assert summary["kendall"]["b"]["a"] == pytest.approx(0.6)


def test_agreement_failures():
    a = _ranking({"X": [0, 1, 2]}, "a", fingerprint="s1")
    b = _ranking({"X": [0, 1, 2]}, "b", fingerprint="s2")
    with pytest.raises(FingerprintMismatchError, match="different stores"):
        overlap_at_k(a, b, 1, "X")
    c = _ranking({"X": [0, 1, 2]}, "c", fingerprint="s1")
    with pytest.raises(NeuronscopeError, match="between 1 and 3"):
        overlap_at_k(a, c, 4, "X")
    with pytest.raises(NeuronscopeError, match="between 1 and 3"):
        overlap_at_k(a, c, 0, "X")
    with pytest.raises(NeuronscopeError, match="method must be"):
        rank_correlation(a, c, "X", method="pearson")
    with pytest.raises(NeuronscopeError, match="neurons must be"):
        rank_correlation(a, c, "X", neurons="all")
    with pytest.raises(NeuronscopeError, match="at least two"):
        agreement_matrix([a], "overlap", k=1)
    with pytest.raises(NeuronscopeError, match="metric"):
        agreement_matrix([a, c], "jaccard")
