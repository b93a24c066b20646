"""Ranker hygiene: every method ranks dead neurons last and reports outliers."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.methods import METHODS, get_method

FAST = {"probe": {"n_alphas": 3, "max_epochs": 5}, "gaussian": {"max_neurons": 3}}


def data() -> tuple[np.ndarray, np.ndarray]:
    """n0 is dead (|a| ~ 1e-31, tiny variations that ratio scores can blow up; it is larger
    on A words), n1 is focused on A, n2 is a massive-activation neuron (-80 on 1% of words,
    about 0 elsewhere), the rest noise."""
    rng = np.random.default_rng(0)
    y = np.asarray(["A", "B", "C"])[rng.integers(0, 3, 1500)]
    x = rng.standard_normal((1500, 8))
    x[:, 0] = 1e-31 * (1 + (y == "A"))
    x[:, 1] += 2.0 * (y == "A")
    x[:, 2] = 0.01 * rng.standard_normal(1500)
    x[rng.random(1500) < 0.01, 2] = -80.0
    return x.astype(np.float32), y


@pytest.mark.parametrize("name", list(METHODS))
def test_dead_neurons_last_and_outliers_reported(name: str) -> None:
    x, y = data()
    ranking = get_method(name, **FAST.get(name, {})).rank(x, y)
    report = ranking.extra["hygiene"]
    assert report["dead"] == {"count": 1, "neurons": ["n0"]}
    assert "n2" in report["massive"]["neurons"]
    for concept in ranking.concept_names:
        assert ranking.concepts[concept].ids[-1] == 0, (name, concept)
    assert ranking.global_order[-1] == 0
    assert ranking.top(1, "A") == ["n1"]
