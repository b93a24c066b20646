"""Probing with selected neurons and the minimal subset, on planted synthetic neurons."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.evaluation import (
    NeuronMatrix,
    evaluate_selection,
    minimal_subset,
    train_test_masks,
)
from neuronscope.methods.linear_probe import LinearProbe


def test_top_beats_random_beats_bottom(graded, ranking_of):
    x, y, order = graded
    ranking = ranking_of(order, x.shape[1])
    result = evaluate_selection(x, y, ranking, ks=[2, 4], n_random=4, random_state=0)
    assert result.ks == [2, 4] and result.n_neurons == 20
    for i in range(2):
        assert result.top[i] > result.random_mean[i] + 0.05
        assert result.random_mean[i] > result.bottom[i] + 0.02
    # The two strongest neurons carry most of the label; the bottom ones carry none.
    assert result.top[0] > 0.7
    assert abs(result.bottom[0] - 0.5) < 0.12
    assert result.full_accuracy > 0.8
    assert 0.4 < result.majority_accuracy < 0.6
    assert result.n_train + result.n_test == len(y) and result.n_test == 160
    assert result.top_neurons[2] == ["n3", "n7"]
    table = result.to_dataframe()
    assert list(table["k"]) == [2, 4]
    assert table.loc[0, "top"] == pytest.approx(result.top[0])
    assert table.loc[0, "top_over_full"] == pytest.approx(result.top[0] / result.full_accuracy)
    d = result.to_dict()
    assert len(d["random_runs"]["2"]) == 4 and d["table"][1]["k"] == 4
    assert np.std(d["random_runs"]["4"]) == pytest.approx(result.random_std[1])
    # Every row says whether the top-k beats the random band (mean + 2 sd).
    for row in d["table"]:
        assert row["above_random"] == (row["top"] > row["random_mean"] + 2 * row["random_std"])


def test_fractions_and_seed_reproducibility(planted, ranking_of):
    x, y = planted
    ranking = ranking_of([3], x.shape[1])
    a = evaluate_selection(x, y, ranking, fractions=[0.1, 0.5], n_random=2, random_state=3)
    b = evaluate_selection(x, y, ranking, fractions=[0.1, 0.5], n_random=2, random_state=3)
    assert a.ks == [1, 6]  # round(0.1 * 12) = 1, round(0.5 * 12) = 6
    assert a.to_dict() == b.to_dict()
    assert a.top[0] > 0.95


def test_concept_uses_one_vs_rest_and_its_own_order(ranking_of):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 10)).astype(np.float32)
    # Three classes: neuron 5 separates C from the rest, neuron 2 separates A from B.
    y = np.where(x[:, 5] > 0.5, "C", np.where(x[:, 2] > 0, "A", "B")).astype(object)
    ranking = ranking_of([2], 10, concepts=("A", "B", "C"))
    ranking.concepts["C"] = ranking_of([5], 10).concepts["A"]
    result = evaluate_selection(
        x, y, ranking, ks=[1], concept="C", n_random=2,
        probe_factory=lambda: LinearProbe.for_evaluation(learning_rate=0.05, max_epochs=20),
    )
    assert result.concept == "C" and result.top_neurons[1] == ["n5"]
    assert result.top[0] > 0.95 and result.top[0] > result.random_mean[0] + 0.2
    # One-vs-rest: the majority baseline is the share of "not C" words.
    assert result.majority_accuracy == pytest.approx(1 - np.mean(y == "C"), abs=0.06)
    with pytest.raises(NeuronscopeError, match="does not occur"):
        evaluate_selection(x, y, ranking_of([5], 10, concepts=("Z",)), ks=[1], concept="Z")
    with pytest.raises(NeuronscopeError, match="ranking has no concept 'C'"):
        evaluate_selection(x, y, ranking_of([5], 10), ks=[1], concept="C")


class NearestMean:
    """The smallest thing with fit/predict: nearest class mean (any probe works)."""

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.means_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, x):
        dist = ((x[:, None, :] - self.means_[None]) ** 2).sum(axis=2)
        return self.classes_[dist.argmin(axis=1)]


def test_given_masks_and_custom_probe(planted, ranking_of):
    x, y = planted
    test = np.zeros(len(y), dtype=bool)
    test[:100] = True
    result = evaluate_selection(
        x, y, ranking_of([3], 12), ks=[1], test_mask=test, n_random=1,
        probe_factory=NearestMean,
    )
    assert result.n_test == 100 and result.n_train == 500
    assert result.top[0] > 0.9 and result.full_accuracy > 0.6
    with pytest.raises(NeuronscopeError, match="overlap"):
        evaluate_selection(x, y, ranking_of([3], 12), ks=[1], train_mask=test, test_mask=test)


@pytest.mark.parametrize("ks", [[0], [13], [-1], [1.5]])
def test_bad_k_is_a_clear_error(planted, ranking_of, ks):
    x, y = planted
    with pytest.raises(NeuronscopeError, match="between 1 and 12|integer"):
        evaluate_selection(x, y, ranking_of([3], 12), ks=ks)


def test_other_failures(planted, ranking_of):
    x, y = planted
    ranking = ranking_of([3], 12)
    with pytest.raises(NeuronscopeError, match="fractions"):
        evaluate_selection(x, y, ranking, fractions=[0.0])
    with pytest.raises(NeuronscopeError, match="not both"):
        evaluate_selection(x, y, ranking, ks=[1], fractions=[0.5])
    with pytest.raises(NeuronscopeError, match="n_random"):
        evaluate_selection(x, y, ranking, ks=[1], n_random=0)
    with pytest.raises(NeuronscopeError, match="labels for"):
        evaluate_selection(x, y[:-1], ranking, ks=[1])
    # A ranking of more neurons than the array has.
    with pytest.raises(NeuronscopeError, match=r"\[0, 12\)"):
        evaluate_selection(x, y, ranking_of([3], 14), ks=[1])
    # A ranking recorded on another store than a loaded matrix.
    matrix = NeuronMatrix(x, np.arange(12), [f"n{i}" for i in range(12)], store_fingerprint="s1")
    with pytest.raises(FingerprintMismatchError, match="another model"):
        evaluate_selection(matrix, y, ranking_of([3], 12, fingerprint="s2"), ks=[1])


def test_default_ks_drop_those_above_the_pool(planted, ranking_of):
    x, y = planted
    result = evaluate_selection(x, y, ranking_of([3], 12), n_random=1,
                                probe_factory=lambda: LinearProbe.for_evaluation(max_epochs=3))
    assert result.ks == [10]


def test_minimal_subset_finds_one_neuron(planted, ranking_of):
    x, y = planted
    result = minimal_subset(x, y, ranking_of([3], 12), target=0.95)
    assert result.reached and result.k == 1 and result.neurons == ["n3"]
    assert result.evaluations == {1: result.accuracy}
    # The default threshold is a share of the gain over the majority class.
    maj, full = result.majority_accuracy, result.full_accuracy
    assert result.baseline == "majority" and 0 < maj < full
    assert result.accuracy >= result.threshold == pytest.approx(maj + 0.95 * (full - maj))
    assert result.to_dict()["k"] == 1
    plain = minimal_subset(x, y, ranking_of([3], 12), target=0.95, baseline="none")
    assert plain.threshold == pytest.approx(0.95 * plain.full_accuracy)


def test_minimal_subset_baseline_aware_target_is_not_met_by_the_majority(ranking_of):
    """A rare one-vs-rest concept: 95% of the full accuracy lies below the majority class,
    so an uninformative neuron "passes" with the plain target but not the default one."""
    rng = np.random.default_rng(5)
    n = 2000
    y = np.where(rng.random(n) < 0.04, "R", "other")
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[:, 4] += 4.0 * (y == "R")
    order = [0, 1, 2, 3, 5, 4]  # the informative neuron last
    factory = lambda: LinearProbe.for_evaluation(max_epochs=10)  # noqa: E731
    plain = minimal_subset(x, y, ranking_of(order, 6, concepts=("R", "other")), concept="R",
                           baseline="none", probe_factory=factory)
    assert plain.k == 1  # the majority class alone clears 0.95 * full
    aware = minimal_subset(x, y, ranking_of(order, 6, concepts=("R", "other")), concept="R",
                           probe_factory=factory)
    assert aware.k == 6 and aware.threshold > aware.majority_accuracy


def test_minimal_subset_bisects_to_the_planted_neuron_last(planted, ranking_of):
    x, y = planted
    # The planted neuron ranked last: only all 12 neurons pass.
    order = [i for i in range(12) if i != 3] + [3]
    result = minimal_subset(x, y, ranking_of(order, 12), target=0.9,
                            probe_factory=lambda: LinearProbe.for_evaluation(max_epochs=4))
    assert result.reached and result.k == 12
    # Doubling 1, 2, 4, 8, then 12 (capped), then bisection 10, 11.
    assert sorted(result.evaluations) == [1, 2, 4, 8, 10, 11, 12]
    capped = minimal_subset(x, y, ranking_of(order, 12), target=0.9, max_k=6,
                            probe_factory=lambda: LinearProbe.for_evaluation(max_epochs=4))
    assert not capped.reached and capped.k == 6
    with pytest.raises(NeuronscopeError, match="target"):
        minimal_subset(x, y, ranking_of(order, 12), target=1.5)


def test_split_by_groups_keeps_groups_together():
    groups = np.repeat(np.arange(10), 5)
    train, test = train_test_masks(50, 0.3, groups, random_state=0)
    assert test.sum() == 15 and not (train & test).any() and (train | test).all()
    for g in range(10):
        assert len(set(test[groups == g].tolist())) == 1
    with pytest.raises(NeuronscopeError, match="two sentences"):
        train_test_masks(5, 0.3, np.zeros(5), 0)
    with pytest.raises(NeuronscopeError, match="test_size"):
        train_test_masks(5, 1.0)


def test_layer_matched_random_draws_from_the_top_k_layers(ranking_of):
    """Layer 1 holds 6 noisy copies of the signal, layer 0 30 noise neurons; the ranking puts
    3 layer-1 neurons first. Uniform random-3 mostly draws noise, so top-3 looks far above it;
    random-3 matched to top-3's layers draws signal copies too and closes the gap."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=900)
    x = rng.normal(size=(900, 36)).astype(np.float32)
    x[:, 30:] += 2.0 * signal[:, None]
    y = np.where(signal > 0, "A", "B").astype(object)
    names = [f"L0.hidden.{i}" if i < 30 else f"L1.hidden.{i - 30}" for i in range(36)]
    ranking = ranking_of([30, 31, 32], 36, names=names)
    kwargs = dict(ks=[3], n_random=5, random_state=0)
    uniform = evaluate_selection(x, y, ranking, **kwargs)
    matched = evaluate_selection(x, y, ranking, random_matched="layers", **kwargs)
    assert uniform.random_matched == "none" and matched.random_matched == "layers"
    assert matched.to_dict()["random_matched"] == "layers"
    assert matched.random_mean[0] > uniform.random_mean[0] + 0.1
    assert matched.top[0] - matched.random_mean[0] < 0.05
    with pytest.raises(NeuronscopeError, match="random_matched must be one of"):
        evaluate_selection(x, y, ranking, random_matched="components", **kwargs)
    with pytest.raises(NeuronscopeError, match="needs neurons named by layer"):
        evaluate_selection(x, y, ranking_of([30], 36), random_matched="layers", **kwargs)
