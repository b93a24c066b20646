"""Synthetic backgrounds and labels for the planted-neuron benchmark.

The background imitates a layer's activations without any relation to the labels: neurons
share a few latent factors (so they are correlated, as real neurons are), have random
offsets and scales, and a share of them is rectified (skewed, with many ties at the floor,
like MLP activations). Labels follow a Zipf-like class distribution, as part-of-speech tags do.
"""

from __future__ import annotations

import numpy as np

from neuronscope.errors import NeuronscopeError


def synthetic_background(
    n_words: int = 3000,
    n_neurons: int = 256,
    n_factors: int = 8,
    shared: float = 0.5,
    rectified: float = 0.25,
    random_state: int | None = 0,
) -> np.ndarray:
    """Label-free activations ``(n_words, n_neurons)`` with low-rank correlation structure.

    Args:
        n_words: rows.
        n_neurons: columns.
        n_factors: latent factors shared by all neurons.
        shared: share of each neuron's variance (before rectification) due to the factors.
        rectified: fraction of neurons passed through ``max(x, 0)``.
        random_state: seed.
    """
    if n_words < 2 or n_neurons < 1 or n_factors < 1:
        raise NeuronscopeError("synthetic background needs n_words >= 2, n_neurons >= 1 and "
                               "n_factors >= 1")
    if not 0 <= shared < 1 or not 0 <= rectified <= 1:
        raise NeuronscopeError("shared must be in [0, 1) and rectified in [0, 1]")
    rng = np.random.default_rng(random_state)
    factors = rng.standard_normal((n_words, n_factors))
    loadings = rng.standard_normal((n_factors, n_neurons))
    loadings /= np.linalg.norm(loadings, axis=0, keepdims=True)  # unit factor variance each
    x = np.sqrt(shared) * factors @ loadings
    x += np.sqrt(1 - shared) * rng.standard_normal((n_words, n_neurons))
    rect = rng.random(n_neurons) < rectified
    x[:, rect] = np.maximum(x[:, rect], 0)
    scale = rng.lognormal(0.0, 0.5, n_neurons)
    offset = rng.normal(0.0, 1.0, n_neurons)
    return (x * scale + offset).astype(np.float32)


def synthetic_labels(
    n_words: int = 3000, n_classes: int = 8, zipf: float = 0.7, random_state: int | None = 0
) -> np.ndarray:
    """One label ``"C0"`` ... ``"C{n_classes-1}"`` per word, class ``i`` with probability
    proportional to ``1 / (i + 1) ** zipf`` (object array of str)."""
    if n_words < 1 or n_classes < 2:
        raise NeuronscopeError("synthetic labels need n_words >= 1 and n_classes >= 2")
    rng = np.random.default_rng(random_state)
    p = 1.0 / np.arange(1, n_classes + 1) ** zipf
    codes = rng.choice(n_classes, size=n_words, p=p / p.sum())
    return np.array([f"C{i}" for i in codes], dtype=object)
