"""A large correlation matrix goes to a mapped file during the linkage, with equal results."""

from __future__ import annotations

import numpy as np

from neuronscope.unsupervised import clustering
from neuronscope.unsupervised.clustering import cluster_correlations
from neuronscope.unsupervised.correlation import correlation_matrix


def test_spilled_matrix_gives_the_same_clusters(monkeypatch):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 6))
    x = np.hstack([base, base + 0.05 * rng.normal(size=(400, 6))]).astype(np.float32)
    kept = cluster_correlations(correlation_matrix(x), 0.7, representative="central")
    corr = correlation_matrix(x)
    values = np.array(corr.matrix)
    monkeypatch.setattr(clustering, "SPILL_BYTES", 0)
    spilled = cluster_correlations(corr, 0.7, representative="central")
    assert isinstance(corr.matrix, np.memmap) and np.array_equal(corr.matrix, values)
    assert np.array_equal(spilled.labels, kept.labels)
    assert np.array_equal(spilled.representatives, kept.representatives)
    assert spilled.n_clusters == 6
