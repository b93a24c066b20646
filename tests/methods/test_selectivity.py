"""Selectivity (Na et al. 2019): the hand formula, planted and suppressed neurons, streaming ==
in-memory == store, no mutation, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.ranking import Ranking
from neuronscope.methods.selectivity import Selectivity

from .conftest import labelled_store

N = 600
CONCEPTS = ["A", "B", "C", "D"]


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8 random neurons; the words of concept A get +3 on neuron 5, B words -3 on neuron 2."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 8)).astype(np.float32)
    y = np.asarray(CONCEPTS)[rng.integers(0, len(CONCEPTS), N)]
    x[y == "A", 5] += 3.0
    x[y == "B", 2] -= 3.0
    return x, y


def hand_selectivity(x: np.ndarray, y: np.ndarray, concept: str) -> np.ndarray:
    """(mean over the concept's words - mean over the others) / (max - min), per column."""
    x = x.astype(np.float64)
    pos = y == concept
    return (x[pos].mean(axis=0) - x[~pos].mean(axis=0)) / (x.max(axis=0) - x.min(axis=0))


def test_equals_hand_formula():
    x, y = planted()
    method = Selectivity(chunk_words=50)  # 12 chunks
    method.rank(x, y)
    assert method.concepts_ == CONCEPTS
    for row, concept in zip(method.scores_, CONCEPTS, strict=True):
        np.testing.assert_allclose(row, hand_selectivity(x, y, concept), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(method.mu_plus_[0], x[y == "A"].astype(np.float64).mean(0),
                               rtol=1e-12)
    np.testing.assert_array_equal(method.minimum_, x.min(axis=0))
    np.testing.assert_array_equal(method.maximum_, x.max(axis=0))
    assert np.abs(method.scores_).max() <= 1


def test_planted_and_suppressed_neurons():
    x, y = planted()
    ranking = Selectivity().rank(x, y)
    assert ranking.top(1, "A") == ["n5"]
    assert ranking.scores("A")["n5"] > 0.3
    # B words push neuron 2 down: strongly negative, so last in B's ranking.
    assert ranking.scores("B")["n2"] < -0.3
    assert ranking.bottom_ids(1, "B").tolist() == [2]
    assert ranking.method == "selectivity"
    assert ranking.extra["concept_sizes"]["A"] == float((y == "A").sum())
    back = Ranking.from_json(ranking.to_json())  # extra and params are JSON-ready
    assert back.top(3, "A") == ranking.top(3, "A") and back.extra == ranking.extra


def test_constant_neuron_and_concept_subset():
    x, y = planted()
    x[:, 3] = 7.0
    method = Selectivity(concepts=["C", "A"])
    ranking = method.rank(x, y)
    assert ranking.concept_names == ["C", "A"]
    assert method.scores_[:, 3].tolist() == [0.0, 0.0]
    # mu_minus covers every other word, including labels that are not ranked.
    with np.errstate(invalid="ignore"):  # the constant column divides 0 by 0
        ref = hand_selectivity(x, y, "A")
    ref[3] = 0.0
    np.testing.assert_allclose(method.scores_[1], ref, rtol=1e-12, atol=1e-12)


def test_streaming_store_and_array_agree(tmp_path):
    x, y = planted()
    store, corpus = labelled_store(tmp_path / "store", x, y)
    labels = corpus.concept_labels("tag")
    in_memory = Selectivity(chunk_words=10_000)
    in_memory.rank(x, y)
    streamed = Selectivity(chunk_words=64)
    ranking = streamed.rank(store, labels)
    np.testing.assert_allclose(streamed.scores_, in_memory.scores_, rtol=1e-12, atol=1e-15)
    assert ranking.top(1, "A") == ["L1.hidden.1"]
    assert ranking.store_fingerprint == store.fingerprint and ranking.label_layer == "tag"
    # A non-contiguous selection streams copies instead of views; same numbers.
    subset = Selectivity(neurons=[5, 2, 0], chunk_words=37)
    subset.rank(x, y)
    np.testing.assert_allclose(subset.scores_, in_memory.scores_[:, [5, 2, 0]], rtol=1e-12)
    from_store = Selectivity(neurons=["L1.hidden.1", "L0.hidden.2", "L0.hidden.0"])
    from_store.rank(store, labels)
    np.testing.assert_allclose(from_store.scores_, subset.scores_, rtol=1e-12)


def test_does_not_mutate_inputs():
    x, y = planted()
    labels = list(y)
    x_before = x.copy()
    Selectivity(chunk_words=64).rank(x, labels)
    np.testing.assert_array_equal(x, x_before)
    assert labels == list(y)


def test_clear_errors(tmp_path):
    x, y = planted()
    with pytest.raises(NeuronscopeError, match=r"\['Q'\] absent"):
        Selectivity(concepts=["A", "Q"]).rank(x, y)
    with pytest.raises(NeuronscopeError, match="single class"):
        Selectivity().rank(x, np.full(N, "C"))
    for bad in (np.nan, np.inf):
        broken = x.copy()
        broken[130, 7] = bad
        with pytest.raises(NeuronscopeError, match="NaN or inf .*row 130, neuron n7"):
            Selectivity(chunk_words=64).rank(broken, y)
    with pytest.raises(NeuronscopeError, match="chunk_words"):
        Selectivity(chunk_words=0).rank(x, y)
    store, _ = labelled_store(tmp_path / "store", x, y)
    with pytest.raises(FingerprintMismatchError, match="other than the one store"):
        Selectivity().rank(store, ConceptLabels(np.asarray(y), "tag", "1" * 16))
