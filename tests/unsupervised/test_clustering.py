"""Correlation clustering: known clusters, threshold semantics, representatives, redundancy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.unsupervised.clustering import (
    cluster_correlations,
    cluster_neurons,
    group_of,
    layer_similarity,
)
from neuronscope.unsupervised.correlation import correlation_matrix

from .conftest import write_store


def mixed(n: int = 2000, seed: int = 0) -> np.ndarray:
    """8 independent neurons, a copy of n0 (n8), a negated scaled n0 (n9), a constant (n10),
    and n11 = n1 + noise with |rho| ~ 0.8."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12))
    x[:, 8] = x[:, 0]
    x[:, 9] = -4.0 * x[:, 0] + 2.0
    x[:, 10] = 1.5
    x[:, 11] = x[:, 1] + 0.75 * rng.standard_normal(n)
    return x.astype(np.float32)


def cluster_of(result, name: str) -> list[str]:
    return next(c for c in result.clusters() if name in c)


def test_duplicated_and_negated_neurons_share_a_cluster():
    result = cluster_neurons(mixed(), threshold=0.7)
    assert sorted(cluster_of(result, "n0")) == ["n0", "n8", "n9"]
    assert cluster_of(result, "n2") == ["n2"]
    assert result.n_clusters == 12 - 1 - 2 - 1  # constant out; n8, n9 -> n0; n11 -> n1
    # Clusters are numbered largest first, and each has exactly one representative.
    assert len(result.clusters()[0]) == 3
    assert len(set(result.representative_names)) == result.n_clusters
    for rep, members in zip(result.representative_names, result.clusters(), strict=True):
        assert rep in members


def test_threshold_means_absolute_correlation():
    x = mixed()
    rho = abs(np.corrcoef(x[:, 1], x[:, 11])[0, 1])
    assert 0.75 < rho < 0.85
    merged = cluster_neurons(x, threshold=0.7)
    apart = cluster_neurons(x, threshold=0.9)
    assert sorted(cluster_of(merged, "n1")) == ["n1", "n11"]
    assert cluster_of(apart, "n1") == ["n1"]
    assert sorted(cluster_of(apart, "n0")) == ["n0", "n8", "n9"]  # |rho| = 1 still merged


def test_linkages_differ_on_a_chain():
    # A chain a ~ b ~ c: |rho(a, b)| = |rho(b, c)| = 0.5 but rho(a, c) = 0.
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5000, 4))
    x = np.stack([z[:, 0] + z[:, 1], z[:, 1] + z[:, 2], z[:, 2] + z[:, 3]], axis=1)
    x = x.astype(np.float32)
    assert cluster_neurons(x, threshold=0.45, linkage="single").n_clusters == 1
    # Complete linkage needs every pair >= threshold: c stays apart from {a, b}.
    assert cluster_neurons(x, threshold=0.45, linkage="complete").n_clusters == 2
    assert cluster_neurons(x, threshold=0.55, linkage="single").n_clusters == 3


def test_representatives_random_is_seeded_and_central_is_central():
    x = mixed()
    a = cluster_neurons(x, representative="random", random_state=1)
    b = cluster_neurons(x, representative="random", random_state=1)
    assert a.representative_names == b.representative_names
    # n0 + small noise variants: the noiseless one is the most central.
    rng = np.random.default_rng(0)
    base = rng.standard_normal(3000)
    y = np.stack([base, base + 0.3 * rng.standard_normal(3000),
                  base + 0.35 * rng.standard_normal(3000)], axis=1).astype(np.float32)
    central = cluster_neurons(y, threshold=0.7, representative="central")
    assert central.representative_names == ["n0"]


def test_constant_neurons_are_left_out_and_redundant():
    result = cluster_neurons(mixed())
    assert result.constant == ["n10"]
    assert result.labels[10] == -1
    overall = result.redundancy["overall"]
    assert overall["neurons"] == 12 and overall["constant"] == 1
    assert overall["redundant"] == 12 - result.n_clusters
    assert overall["share"] == pytest.approx((12 - result.n_clusters) / 12)
    json.dumps(result.to_dict())  # JSON-ready


def test_redundancy_per_layer_and_layer_similarity(tmp_path, corpus):
    rng = np.random.default_rng(0)
    n = corpus.n_words
    layer0 = rng.standard_normal((n, 5))
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    layer1 = 3.0 * layer0 @ q  # a rotated, scaled copy: CKA 1 with layer 0
    layer2 = np.concatenate([layer0[:, :2], rng.standard_normal((n, 3))], axis=1)
    x = np.concatenate([layer0, layer1, layer2], axis=1).astype(np.float32)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1, 2))
    result = cluster_neurons(store, threshold=0.95, random_state=0)
    groups = result.redundancy["groups"]
    assert list(groups) == ["L0.hidden", "L1.hidden", "L2.hidden"]
    # L2.hidden.0/1 duplicate L0.hidden.0/1: of each pair exactly one is redundant.
    assert groups["L0.hidden"]["redundant"] + groups["L2.hidden"]["redundant"] == 2
    lay = result.layers
    assert lay.labels == ["L0.hidden", "L1.hidden", "L2.hidden"]
    np.testing.assert_allclose(np.diag(lay.cka), 1.0)
    assert lay.cka[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert lay.cka[0, 2] < 0.7
    assert lay.max_corr[2, 0] == pytest.approx(2 / 5, abs=0.1)  # 2 of 5 have a copy
    assert lay.max_corr[0, 0] < 0.5  # within-layer: independent neurons


def test_layer_similarity_direct_and_group_names():
    assert group_of("L3.mlp.17") == "L3.mlp"
    assert group_of("L2.attn.h5.17") == "L2.attn"
    assert group_of("n4") == "all"
    corr = correlation_matrix(mixed())
    lay = layer_similarity(corr)
    assert lay.labels == ["all"] and lay.cka.shape == (1, 1)


def test_errors():
    corr = correlation_matrix(mixed(200))
    with pytest.raises(NeuronscopeError, match="threshold"):
        cluster_correlations(corr, threshold=1.5)
    with pytest.raises(NeuronscopeError, match="linkage"):
        cluster_correlations(corr, linkage="ward")
    with pytest.raises(NeuronscopeError, match="representative"):
        cluster_correlations(corr, representative="first")
