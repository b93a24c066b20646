"""The joint Gaussian MI estimate stays stable as neurons are added (issue #13)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from neuronscope.evaluation import gaussian_mutual_information


def test_non_decreasing_as_informative_neurons_are_added():
    """17 classes, 60 neurons that each carry a little class signal: the estimate grows with
    the set instead of collapsing (the clipped estimate fell from 2.3 bits to 0 at 50)."""
    rng = np.random.default_rng(0)
    n, d, n_cls = 6000, 60, 17
    y = rng.choice(n_cls, n, p=np.r_[[0.2, 0.15, 0.1], np.full(14, 0.55 / 14)])
    centres = rng.standard_normal((n_cls, d)) * 0.6
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / math.sqrt(d)  # correlated noise
    x = (centres[y] + rng.standard_normal((n, d)) @ mix) * rng.uniform(0.01, 100, d)
    labels = np.asarray([f"c{i}" for i in range(n_cls)])[y]
    sizes = [1, 5, 10, 20, 35, 50, 60]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no estimate below 0
        mi = [gaussian_mutual_information(x, labels, neurons=list(range(k)))
              for k in sizes]
    assert all(b >= a - 0.01 for a, b in zip(mi, mi[1:], strict=False)), mi
    assert mi[-1] > mi[2] + 0.5 > 1.0, mi


def test_matches_the_exact_value_of_a_gaussian_mixture():
    """Two equiprobable classes N(-1, 1) and N(+1, 1): I = H(Y) - E[H(Y | X)] by quadrature."""

    def conditional_entropy(x: float) -> float:
        p = 1.0 / (1.0 + math.exp(-2.0 * x))  # P(Y = + | x)
        return -sum(q * math.log2(q) for q in (p, 1 - p) if q > 0)

    density = lambda x: 0.5 * (norm.pdf(x, -1, 1) + norm.pdf(x, 1, 1))  # noqa: E731
    exact = 1.0 - quad(lambda x: density(x) * conditional_entropy(x), -12, 12)[0]
    rng = np.random.default_rng(1)
    n = 60000
    y = rng.integers(0, 2, n)
    x = (2.0 * y - 1.0 + rng.standard_normal(n))[:, None]
    # A second, pure-noise neuron changes nothing.
    both = np.column_stack([x, rng.standard_normal(n)])
    labels = np.where(y == 1, "pos", "neg")
    assert gaussian_mutual_information(x, labels) == pytest.approx(exact, abs=0.01)
    assert gaussian_mutual_information(both, labels) == pytest.approx(exact, abs=0.01)


def test_a_worse_than_prior_estimate_is_returned_with_a_warning():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 40))
    y = rng.choice(["a", "b", "c"], 300)
    with pytest.warns(RuntimeWarning, match="below|< 0"):
        mi = gaussian_mutual_information(x, y, prior_strength=0.0)
    assert mi < 0  # not clipped
