"""Probeless: the class-mean rule by hand, standardized by default, raw on request."""

from __future__ import annotations

import numpy as np

from neuronscope.methods.probeless import Probeless


def data() -> tuple[np.ndarray, np.ndarray]:
    """n1 is focused on A (shift 2 sd); n0 is an outlier-scale neuron (sd 100) with a small
    shift on A in its own units (0.2 sd); n2 is constant."""
    rng = np.random.default_rng(0)
    y = np.asarray(["A", "B", "C"])[rng.integers(0, 3, 3000)]
    x = rng.standard_normal((3000, 3))
    x[:, 0] = 100 * x[:, 0] + 20.0 * (y == "A")
    x[:, 1] += 2.0 * (y == "A")
    x[:, 2] = 7.0
    return x.astype(np.float32), y


def test_standardized_differences_by_hand() -> None:
    x, y = data()
    ranking = Probeless().rank(x, y)
    assert ranking.top(1, "A") == ["n1"]
    means = np.stack([x[y == c].astype(np.float64).mean(0) for c in "ABC"])
    within = sum(((x[y == c] - means[i]) ** 2).sum(0) for i, c in enumerate("ABC"))
    sd = np.sqrt(within / (len(y) - 3))
    expected = np.abs(means[0] - means[1]) + np.abs(means[0] - means[2])
    scores = ranking.scores("A")
    for j in (0, 1):
        assert abs(scores[f"n{j}"] - expected[j] / sd[j]) < 1e-4 * expected[j] / sd[j]
    assert scores["n2"] == 0.0  # constant: never first, no division by zero


def test_raw_rule_lets_the_outlier_dimension_win() -> None:
    x, y = data()
    raw = Probeless(normalize=False).rank(x, y)
    assert raw.top(1, "A") == ["n0"]
    assert raw.top(1) == ["n0"]
