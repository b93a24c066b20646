"""Latent concept discovery: planted clusters, alignment, unexplained clusters, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.explanations.latent import LatentConceptDiscovery

from .conftest import write_store

K = 6


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """600 words in 6 well-separated Gaussian clusters (layer 1 of a 2-layer store).

    Word types are per cluster (``c{cluster}w{j}``); the ``kind`` layer names the cluster for
    clusters 0-4, while cluster 5 mixes two labels (an unexplained latent concept); ``pos`` is
    ``NOUN`` on clusters 1 and 3 and blank elsewhere.
    """
    rng = np.random.default_rng(0)
    n_sent, length, dim = 100, 6, 16
    truth = rng.integers(0, K, n_sent * length)
    centres = rng.standard_normal((K, dim)) * 10
    x1 = centres[truth] + rng.standard_normal((len(truth), dim))
    x0 = rng.standard_normal((len(truth), dim))  # layer 0: no structure
    words = [f"c{c}w{rng.integers(0, 4)}" for c in truth]
    kind = [f"K{c}" if c < K - 1 else str(rng.choice(["X", "Y"])) for c in truth]
    pos = ["NOUN" if c in (1, 3) else NO_LABEL for c in truth]
    cut = lambda v: [v[i * length:(i + 1) * length] for i in range(n_sent)]  # noqa: E731
    corpus = Corpus(cut(words), {"kind": cut(kind), "pos": cut(pos)}, name="planted")
    store = write_store(tmp_path_factory.mktemp("latent") / "s", corpus,
                        np.column_stack([x0, x1]), layers=(0, 1))
    return store, corpus, truth


@pytest.mark.parametrize("method", ["agglomerative", "kmeans"])
def test_planted_clusters_are_recovered_and_aligned(planted, method):
    store, corpus, truth = planted
    found = LatentConceptDiscovery(k=K, method=method, max_fit_words=300).discover(
        store, corpus, layer=1)
    assert len(found.labels) == len(truth) and np.array_equal(found.rows, np.arange(len(truth)))
    assert adjusted_rand_score(truth, found.labels) >= 0.9
    assert sum(c.size for c in found.clusters) == len(truth)
    by_truth = {int(np.bincount(found.labels[truth == c]).argmax()): c for c in range(K)}
    for cluster in found.clusters:
        planted_id = by_truth[cluster.id]
        if planted_id < K - 1:
            assert ("kind", f"K{planted_id}", 1.0) in cluster.aligned
        else:
            assert cluster.best["kind"][1] < 0.9
        # Lexical alignment: every word of a cluster starts with its cluster's prefix but
        # there are four word types, so no single word form explains it.
        assert cluster.best["form"][1] < 0.9
        assert cluster.top_words and cluster.top_words[0][0].startswith(f"c{planted_id}w")
        assert len(cluster.contexts) == 3 and all("[" in c for c in cluster.contexts)
    # The mixed cluster is the one unexplained latent concept.
    unexplained = found.unexplained
    assert [by_truth[c.id] for c in unexplained] == [K - 1]
    shares = found.aligned_share()
    assert shares["kind"] == pytest.approx((K - 1) / K)
    assert shares["pos"] == pytest.approx(2 / K)  # clusters 1 and 3; NO_LABEL never aligns
    data = found.to_dict()
    assert data["k"] == K and len(data["clusters"]) == K and data["method"] == method


def test_threshold_and_filters(planted):
    store, corpus, truth = planted
    loose = LatentConceptDiscovery(k=K, threshold=0.3, layers=["kind"]).discover(
        store, corpus, 1)
    assert loose.layers == ["kind"] and all(c.explained for c in loose.clusters)
    capped = LatentConceptDiscovery(k=K, max_per_type=10, layers=["form"]).discover(
        store, corpus, 1)
    assert len(capped.rows) == 10 * len(set(corpus.words()))
    assert all(cluster.explained is False or cluster.aligned[0][0] == "form"
               for cluster in capped.clusters)


def test_errors(planted):
    store, corpus, _ = planted
    with pytest.raises(NeuronscopeError, match="0 words after filtering, fewer than k=50"):
        LatentConceptDiscovery(k=50, min_count=300).discover(store, corpus, 1)
    with pytest.raises(NeuronscopeError, match="600 words.*fewer than k=1000"):
        LatentConceptDiscovery(k=1000, max_fit_words=None).discover(store, corpus, 1)
    with pytest.raises(UnknownComponentError, match="no layer 7"):
        LatentConceptDiscovery(k=K).discover(store, corpus, 7)
    with pytest.raises(UnknownComponentError, match="unknown component 'mlp'"):
        LatentConceptDiscovery(k=K).discover(store, corpus, 1, component="mlp")
    with pytest.raises(NeuronscopeError, match="no label layer 'upos'"):
        LatentConceptDiscovery(k=K, layers=["upos"]).discover(store, corpus, 1)
    for bad in ({"k": 1}, {"method": "dbscan"}, {"threshold": 0}, {"max_fit_words": 3}):
        with pytest.raises(NeuronscopeError):
            LatentConceptDiscovery(**bad).discover(store, corpus, 1)
