"""Mutual information estimates against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation import (
    entropy_bits,
    equal_frequency_bins,
    gaussian_mutual_information,
    neuron_mutual_information,
    plugin_mutual_information,
)


@pytest.fixture(scope="module")
def informative():
    """Four balanced classes; neuron 0 = class index + tiny noise, neuron 1 = pure noise,
    neuron 2 = constant."""
    rng = np.random.default_rng(0)
    code = np.repeat(np.arange(4), 250)
    rng.shuffle(code)
    y = np.asarray(["A", "B", "C", "D"], dtype=object)[code]
    x = np.stack([code + rng.normal(0, 0.05, len(code)), rng.normal(size=len(code)),
                  np.full(len(code), 3.0)], axis=1).astype(np.float32)
    return x, y


def test_gaussian_mi_of_a_perfect_neuron_is_the_label_entropy(informative):
    x, y = informative
    mi = gaussian_mutual_information(x, y, neurons=[0])
    assert mi == pytest.approx(2.0, abs=0.05)  # H(Y) of 4 balanced classes
    assert gaussian_mutual_information(x, y, neurons=[1]) < 0.02
    assert gaussian_mutual_information(x, y, neurons=[2]) < 0.02  # constant: no information
    # Jointly with noise: still (about) everything.
    assert gaussian_mutual_information(x, y, neurons=[0, 1, 2]) == pytest.approx(2.0, abs=0.05)


def test_gaussian_mi_with_explicit_split_uses_held_out_entropy(informative):
    x, y = informative
    test = np.zeros(len(y), dtype=bool)
    test[:100] = True
    mi = gaussian_mutual_information(x, y, neurons=[0], test_mask=test)
    assert mi == pytest.approx(entropy_bits(y[:100]), abs=0.02)


def test_per_neuron_gaussian_matches_the_joint_estimate_for_one_neuron(informative):
    x, y = informative
    per = neuron_mutual_information(x, y)
    assert list(per) == ["n0", "n1", "n2"]
    assert per["n0"] == pytest.approx(2.0, abs=0.05)
    assert per["n1"] < 0.02 and per["n2"] < 0.02
    for j in range(3):
        assert per[f"n{j}"] == pytest.approx(gaussian_mutual_information(x, y, neurons=[j]),
                                             abs=1e-6)


def test_gaussian_mi_grows_with_partial_information():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4000)
    weak = y + rng.normal(0, 1.0, len(y))
    strong = y + rng.normal(0, 0.3, len(y))
    x = np.stack([weak, strong], axis=1).astype(np.float32)
    per = neuron_mutual_information(x, y)
    assert 0.05 < per["n0"] < per["n1"] < 1.0
    # Two independent noisy views together know more than the better one.
    assert gaussian_mutual_information(x, y) > per["n1"]


def test_plugin_mi_matches_a_hand_computation():
    x = np.array([0, 0, 1, 1, 2, 2, 3, 3], dtype=float)
    y = np.array(list("aaabbbbb"))
    # Two equal-frequency bins: {0, 0, 1, 1} holds a, a, a, b and {2, 2, 3, 3} holds b x 4.
    assert equal_frequency_bins(x, 2).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    h_y = -(3 / 8 * math.log2(3 / 8) + 5 / 8 * math.log2(5 / 8))
    h_y_given_bin = 0.5 * -(3 / 4 * math.log2(3 / 4) + 1 / 4 * math.log2(1 / 4)) + 0.5 * 0.0
    assert plugin_mutual_information(x, y, bins=2) == pytest.approx(h_y - h_y_given_bin)
    assert h_y - h_y_given_bin == pytest.approx(0.548795, abs=1e-6)


def test_miller_madow_correction_by_hand():
    x = np.array([0, 0, 1, 1, 2, 2, 3, 3], dtype=float)
    y = np.array(list("abaabbab"))
    # Four bins of two: {a, b}, {a, a}, {b, b}, {a, b}: H(Y) = 1, H(Y | bin) = 0.5 bits.
    assert equal_frequency_bins(x, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert plugin_mutual_information(x, y, bins=4) == pytest.approx(0.5)
    # Miller-Madow adds (m - 1) / 2N nats to each entropy: m = 4 bins, 2 labels, 6 cells.
    correction = ((4 - 1) + (2 - 1) - (6 - 1)) / (2 * 8) / math.log(2)
    assert plugin_mutual_information(x, y, bins=4, miller_madow=True) == pytest.approx(
        0.5 + correction)


def test_plugin_per_neuron_and_ties(informative):
    x, y = informative
    per = neuron_mutual_information(x, y, estimator="plugin", bins=4)
    assert per["n0"] == pytest.approx(2.0, abs=1e-9)  # quartiles are exactly the classes
    assert per["n1"] < 0.05
    assert per["n2"] == 0.0  # all values tied: a single bin
    corrected = neuron_mutual_information(x, y, estimator="plugin", bins=4, miller_madow=True)
    assert corrected["n1"] <= per["n1"]


def test_equal_frequency_bins_are_balanced():
    values = np.random.default_rng(0).uniform(size=1000)
    assert np.bincount(equal_frequency_bins(values, 10)).tolist() == [100] * 10


def test_entropy_bits():
    assert entropy_bits(["a", "b", "c", "d"]) == pytest.approx(2.0)
    assert entropy_bits(["a", "a"]) == 0.0


def test_failures(informative):
    x, y = informative
    with pytest.raises(NeuronscopeError, match="bins"):
        plugin_mutual_information(x[:, 0], y, bins=1)
    with pytest.raises(NeuronscopeError, match="estimator"):
        neuron_mutual_information(x, y, estimator="knn")
    with pytest.raises(NeuronscopeError, match="1-D of equal length"):
        plugin_mutual_information(x[:, 0], y[:-1])
    with pytest.raises(NeuronscopeError, match="labels for"):
        gaussian_mutual_information(x, y[:-1])
    with pytest.raises(NeuronscopeError, match="prior_strength"):
        gaussian_mutual_information(x, y, prior_strength=-1)
    with pytest.raises(NeuronscopeError, match="max_neurons"):
        gaussian_mutual_information(x, y, max_neurons=2)
    with pytest.raises(NeuronscopeError, match=r"\[0, 3\)"):
        gaussian_mutual_information(x, y, neurons=[5])
