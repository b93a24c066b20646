"""Neuron grouping: PCA path recovers populations, UMAP optional-dependency handling."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.unsupervised.grouping import group_neurons


def populations(n: int = 800, seed: int = 0) -> np.ndarray:
    """Three populations of 6 neurons, each driven by its own latent signal."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    cols = [latent[:, g] * rng.uniform(0.5, 2) + 0.3 * rng.standard_normal(n)
            for g in range(3) for _ in range(6)]
    return np.stack(cols, axis=1).astype(np.float32)


def partition(result) -> set[frozenset[str]]:
    return {frozenset(g) for g in result.groups}


@pytest.mark.parametrize("profile", ["activations", "correlation"])
def test_pca_grouping_recovers_populations(profile):
    result = group_neurons(populations(), n_groups=3, embedding="pca", profile=profile,
                           n_components=2, sample_words=500)
    expected = {frozenset(f"n{i}" for i in range(g * 6, g * 6 + 6)) for g in range(3)}
    assert partition(result) == expected
    assert result.embedding.shape == (18, 2)
    assert result.layers[0] == {"all": 6}
    assert result.to_dict()["params"]["embedding"] == "pca"


def test_missing_umap_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    with pytest.raises(NeuronscopeError, match=r"pip install 'neuronscope\[umap\]'"):
        group_neurons(populations(100), n_groups=3, embedding="umap")


@pytest.mark.skipif(not os.environ.get("NEURONSCOPE_TEST_UMAP"),
                    reason="UMAP's numba compilation takes 30-60 s; set NEURONSCOPE_TEST_UMAP=1")
def test_umap_grouping_recovers_populations():
    pytest.importorskip("umap")
    result = group_neurons(populations(), n_groups=3, embedding="umap", n_neighbors=5)
    expected = {frozenset(f"n{i}" for i in range(g * 6, g * 6 + 6)) for g in range(3)}
    assert partition(result) == expected


def test_errors():
    x = populations(100)
    with pytest.raises(NeuronscopeError, match="n_groups"):
        group_neurons(x, n_groups=19, embedding="pca")
    with pytest.raises(NeuronscopeError, match="profile"):
        group_neurons(x, profile="weights", embedding="pca")
    with pytest.raises(NeuronscopeError, match="embedding"):
        group_neurons(x, embedding="tsne")
