"""Genetic search for neuron groups: planted group recovery, probe comparison, LDA, errors."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.explanations.evolutionary import (
    GeneticSelector,
    LDAClassifier,
    SubsetFitness,
    compare_with_probe,
    encode_labels,
    planted_group_problem,
)

GA = {"population": 40, "generations": 30}


@pytest.fixture(scope="module")
def group():
    """A concept decodable only jointly from 3 of 63 neurons (1,500 words, seeded)."""
    return planted_group_problem(n_words=1500, n_background=60, group_size=3, snr=4.0,
                                 random_state=1)


def test_group_neurons_are_individually_weak(group):
    y = group.y == "concept"
    x = group.x.astype(np.float64)
    d = np.abs(x[y].mean(0) - x[~y].mean(0)) / x.std(0)
    assert d[group.group].max() < 0.5  # each alone says little...
    fit = SubsetFitness(x[::2], y[::2].astype(int), x[1::2], y[1::2].astype(int), 2,
                        metric="balanced_accuracy")
    assert fit.accuracy(group.group) > 0.95  # ...together they decode the concept
    assert max(fit.accuracy([i]) for i in group.group) < 0.65


def test_genetic_search_recovers_the_planted_group(group):
    y, classes = encode_labels(group.y)
    assert classes == ["concept", "other"]
    result = GeneticSelector(k=6, random_state=1, **GA).search(group.x, group.y)
    assert result.ids == group.group and result.names == [f"n{i}" for i in group.group]
    assert result.accuracy > 0.95
    assert result.fitness == pytest.approx(result.accuracy - 0.005 * 3)
    # Cached: never more distinct subsets than individuals scored.
    assert result.n_evaluations <= GA["population"] * (GA["generations"] + 1)
    best = [h["best_fitness"] for h in result.history]
    assert best == sorted(best) and len(result.history) == GA["generations"] + 1
    # Seeded.
    again = GeneticSelector(k=6, random_state=1, **GA).search_array(group.x, y)
    assert again.ids == result.ids and again.history == result.history


def test_comparison_with_linear_probe_on_the_group(group):
    cmp = compare_with_probe(group.x, group.y, k=3,
                             selector=GeneticSelector(random_state=1, **GA), random_state=1)
    assert cmp.k == 3 and len(cmp.probe_ids) == 3 and cmp.ga.size <= 3
    assert cmp.ga.ids == group.group
    assert 0 <= cmp.probe_accuracy <= 1 and cmp.ga_accuracy > 0.95
    assert cmp.ga_accuracy >= cmp.probe_accuracy
    assert cmp.n_train + cmp.n_test == len(group.y)
    data = cmp.to_dict()
    assert data["ga"]["test_accuracy"] == cmp.ga_accuracy
    assert data["probe"]["test_accuracy"] == cmp.probe_accuracy


def test_comparison_on_upos_store(extracted, small_corpus):
    store = extracted("bert", components=("hidden",))
    neurons = store.layout.select(["hidden"], [1]).tolist()
    cmp = compare_with_probe(store, small_corpus.concept_labels("upos"), k=4, neurons=neurons,
                             selector=GeneticSelector(population=12, generations=4,
                                                      metric="accuracy"))
    assert cmp.label_layer == "upos" and cmp.metric == "accuracy"
    assert all(n.startswith("L1.hidden.") for n in cmp.ga.names + cmp.probe_names)
    assert set(cmp.ga.ids) <= set(neurons) and set(cmp.probe_ids) <= set(neurons)
    assert 0 <= cmp.ga_accuracy <= 1 and 0 <= cmp.probe_accuracy <= 1


def test_lda_matches_scikit_learn():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.standard_normal((600, 5)) + np.eye(3, 5)[y] * 1.5
    ours = LDAClassifier(shrinkage=0.0).fit(x, y).predict(x)
    theirs = LinearDiscriminantAnalysis().fit(x, y).predict(x)
    assert np.mean(ours == theirs) > 0.99
    # A class absent from training is never predicted.
    assert 2 not in LDAClassifier().fit(x[y < 2], y[y < 2], 3).predict(x)


def test_errors(group):
    with pytest.raises(NeuronscopeError, match="exceeds the 63 candidate"):
        GeneticSelector(k=100).search(group.x, group.y)
    with pytest.raises(NeuronscopeError, match="metric"):
        GeneticSelector(metric="f1").search(group.x, group.y)
    with pytest.raises(NeuronscopeError, match="elitism"):
        GeneticSelector(population=4, elitism=4).search(group.x, group.y)
    with pytest.raises(NeuronscopeError, match="single class"):
        compare_with_probe(group.x, np.array(["a"] * len(group.y)), k=3)
    with pytest.raises(NeuronscopeError, match="labels"):
        GeneticSelector().search(group.x, group.y[:10])
