"""Synthetic activations with planted neurons, and rankings built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.methods.ranking import Ranking, ranking_from_scores


def _ranking_of(order: list[int], n: int, concepts=("A", "B"), method: str = "planted",
               fingerprint: str | None = None, names: list[str] | None = None) -> Ranking:
    """A ranking whose every concept (and the global order) is ``order`` followed by the
    remaining neurons in id order."""
    rest = [i for i in range(n) if i not in order]
    full = list(order) + rest
    scores = np.zeros(n)
    scores[full] = np.arange(n, 0, -1, dtype=float)  # decreasing along `full`
    ids = np.arange(n)
    return ranking_from_scores(
        method, {}, np.tile(scores, (len(concepts), 1)), list(concepts), ids,
        names or [f"n{i}" for i in ids], store_fingerprint=fingerprint,
    )


@pytest.fixture(scope="session")
def ranking_of():
    """``ranking_of(order, n, ...)``: a hand-made ranking (see ``_ranking_of``)."""
    return _ranking_of


@pytest.fixture(scope="module")
def planted():
    """600 rows x 12 neurons of noise; the label is decided by neuron 3 alone."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12)).astype(np.float32)
    y = np.where(x[:, 3] > 0, "A", "B").astype(object)
    return x, y


@pytest.fixture(scope="module")
def graded():
    """800 rows x 20 neurons; the label is the sign of a weighted sum over 8 neurons with
    decreasing weights (``order``), the other 12 neurons are noise."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 20)).astype(np.float32)
    order = [3, 7, 11, 0, 5, 9, 13, 15]
    w = np.zeros(20)
    w[order] = [6, 3, 2, 1.5, 1.2, 1, 1, 1]
    y = np.where(x @ w > 0, "A", "B").astype(object)
    return x, y, order
