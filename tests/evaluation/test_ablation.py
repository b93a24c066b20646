"""Ablation inside a trained probe: removing the planted neuron leaves a guessing probe."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.evaluation import NeuronMatrix, ablation_curves, default_steps
from neuronscope.methods.linear_probe import LinearProbe
from neuronscope.methods.ranking import ConceptRanking, Ranking


@pytest.fixture(scope="module")
def planted_probe(planted):
    x, y = planted
    probe = LinearProbe.for_evaluation(0, learning_rate=0.05, max_epochs=30)
    probe.fit(x[:450], y[:450])
    return probe, x[450:], y[450:]


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablating_the_planted_neuron_drops_to_chance(planted_probe, ranking_of, mode):
    probe, x_test, y_test = planted_probe
    curves = ablation_curves(probe, x_test, y_test, ranking_of([3], 12), mode=mode,
                             steps=[0, 1, 6, 12], n_random=4, random_state=0)
    assert curves.steps == [0, 1, 6, 12] and curves.n_neurons == 12
    assert curves.top[0] > 0.95  # nothing ablated: the probe reads neuron 3
    majority = max(np.mean(y_test == "A"), np.mean(y_test == "B"))
    assert curves.majority == pytest.approx(majority)
    # Neuron 3 gone: the probe's output no longer depends on the label -> chance level.
    assert abs(curves.top[1] - majority) < 0.06
    # Predictions no longer depend on the label: P(say A | A) = P(say A | B), so the two
    # per-class accuracies add up to 1 (before: both near 1).
    assert curves.per_class["top"]["A"][0] + curves.per_class["top"]["B"][0] > 1.9
    assert curves.per_class["top"]["A"][1] + curves.per_class["top"]["B"][1] == pytest.approx(
        1.0, abs=0.15)
    # The least relevant neuron first: nothing happens.
    assert curves.bottom[1] == pytest.approx(curves.top[0], abs=0.02)
    # One random neuron rarely is the planted one: the mean stays high.
    assert curves.random_mean[1] > 0.75
    # Everything ablated: every order ends at the same point.
    assert curves.top[-1] == pytest.approx(curves.bottom[-1])
    assert curves.top[-1] == pytest.approx(curves.random_mean[-1])
    frame = curves.to_dataframe()
    assert list(frame["ablated"]) == [0, 1, 6, 12]
    d = curves.to_dict()
    assert d["mode"] == mode and d["class_counts"]["A"] + d["class_counts"]["B"] == 150


def test_mean_from_given_means_or_training_rows(planted, ranking_of):
    x, y = planted

    class Threshold:  # reads neuron 3 only, no mean_: means must come from elsewhere
        def predict(self, rows):
            return np.where(rows[:, 3] > 0.5, "A", "B")

    ranking = ranking_of([3], 12)
    with pytest.raises(NeuronscopeError, match="training means"):
        ablation_curves(Threshold(), x, y, ranking, mode="mean", steps=[0, 1])
    # Mean-replacing with a value above the threshold makes it always say "A".
    means = np.zeros(12)
    means[3] = 1.0
    curves = ablation_curves(Threshold(), x, y, ranking, mode="mean", means=means, steps=[0, 1],
                             n_random=1)
    assert curves.top[1] == pytest.approx(np.mean(y == "A"))
    from_rows = ablation_curves(Threshold(), x, y, ranking, mode="mean",
                                train_activations=x + np.float32(2.0), steps=[0, 1], n_random=1)
    assert from_rows.top[1] == pytest.approx(np.mean(y == "A"))


def test_matrix_columns_follow_their_ids(planted):
    x, y = planted
    probe = LinearProbe.for_evaluation(learning_rate=0.05, max_epochs=30, random_state=0).fit(x, y)
    # The same columns presented as neurons 100..111: the ranking must speak of those ids.
    matrix = NeuronMatrix(x, np.arange(100, 112), [f"n{i}" for i in range(100, 112)])
    order = [103, *[i for i in range(100, 112) if i != 103]]
    ranking = Ranking("planted", {}, {"A": ConceptRanking(order, np.arange(12, 0, -1))},
                      {i: f"n{i}" for i in order})
    curves = ablation_curves(probe, matrix, y, ranking, steps=[0, 1], n_random=1)
    assert curves.top[0] > 0.95 and curves.top[1] < 0.65
    same = ablation_curves(probe, x, y, ranking, column_ids=range(100, 112), steps=[0, 1],
                           n_random=1)
    assert same.top == curves.top
    with pytest.raises(NeuronscopeError, match="not among the loaded"):
        ablation_curves(probe, x, y, ranking, steps=[0, 1])
    stamped = NeuronMatrix(x, np.arange(100, 112), matrix.names, store_fingerprint="a")
    ranking.store_fingerprint = "b"
    with pytest.raises(FingerprintMismatchError):
        ablation_curves(probe, stamped, y, ranking, steps=[0, 1])


def test_failures(planted_probe, ranking_of):
    probe, x_test, y_test = planted_probe
    ranking = ranking_of([3], 12)
    with pytest.raises(NeuronscopeError, match="mode"):
        ablation_curves(probe, x_test, y_test, ranking, mode="noise")
    with pytest.raises(NeuronscopeError, match="steps"):
        ablation_curves(probe, x_test, y_test, ranking, steps=[0, 13])
    with pytest.raises(NeuronscopeError, match="labels for"):
        ablation_curves(probe, x_test, y_test[:-1], ranking)
    with pytest.raises(NeuronscopeError, match="n_random"):
        ablation_curves(probe, x_test, y_test, ranking, n_random=0)
    with pytest.raises(NeuronscopeError, match="fitted on activations with 12"):
        ablation_curves(probe, x_test[:, :11], y_test, ranking_of([3], 11), steps=[0])


def test_default_steps():
    assert default_steps(100, 4) == [0, 1, 25, 50, 75, 100]
    assert default_steps(3, 10) == [0, 1, 2, 3]
    with pytest.raises(NeuronscopeError):
        default_steps(10, 0)


def test_drop_in_gain_and_majority_fallback_warning(ranking_of):
    """A skewed task (B on ~84% of words) decided by neuron 3: the emptied probe predicts B
    everywhere, so raw accuracy stays at the majority rate and B's own accuracy rises to 1;
    the drop in gain says the truth (everything lost) and a warning names the fallback."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(900, 12)).astype(np.float32)
    y = np.where(x[:, 3] > 1.0, "A", "B").astype(object)
    probe = LinearProbe.for_evaluation(0, learning_rate=0.05, max_epochs=30)
    probe.fit(x[:600], y[:600])
    curves = ablation_curves(probe, x[600:], y[600:], ranking_of([3], 12), steps=[0, 1, 12],
                             n_random=5, random_state=0)
    assert curves.top[0] > 0.95 and curves.majority > 0.8
    assert curves.top[-1] == pytest.approx(curves.majority)  # raw accuracy: looks fine
    assert curves.per_class["top"]["B"][-1] == 1.0  # and B's accuracy even rises
    drop = curves.drop_in_gain
    assert drop["top"][0] == 0.0 and drop["top"][1] == pytest.approx(1.0, abs=0.1)
    assert drop["top"][-1] == pytest.approx(1.0)
    assert drop["random_mean"][1] < 0.5  # one random neuron is rarely neuron 3
    assert curves.above_random() == [False, True, False]
    assert curves.per_class_drop["top"]["B"][-1] == pytest.approx(1.0)  # no gain over chance
    assert curves.per_class_drop["top"]["A"][0] == 0.0
    assert len(curves.warnings) == 1 and "'B'" in curves.warnings[0]
    assert "fallen back to one class" in curves.warnings[0]
    d = curves.to_dict()
    assert d["drop_in_gain"] == drop and d["above_random"] == [False, True, False]
    assert d["warnings"] == curves.warnings
