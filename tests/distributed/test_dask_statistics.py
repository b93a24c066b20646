"""Rankers and correlation statistics on a 2-worker cluster equal the single-process ones."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.distributed import connect, use
from neuronscope.distributed.ranking import rank_on
from neuronscope.methods import get_method
from neuronscope.methods.base import prepare_input
from neuronscope.methods.statistics import class_moments
from neuronscope.store.store import store_from_arrays
from neuronscope.unsupervised.correlation import correlation_matrix

N_SENT, WORDS = 300, 4  # 1,200 words: several 256-row chunks


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    tags = ["NOUN", "VERB", "ADJ"]
    labels = [[tags[(s + j) % 3] for j in range(WORDS)] for s in range(N_SENT)]
    corpus = Corpus([[f"w{s}_{j}" for j in range(WORDS)] for s in range(N_SENT)],
                    {"upos": labels}, name="synthetic")
    n = N_SENT * WORDS
    x = rng.normal(size=(n, 24)).astype(np.float32) + 50.0  # a large mean: cancellation-prone
    x[:, 3] += np.array([tags.index(t) for row in labels for t in row], dtype=np.float32)
    x[:, 5] = 0.8 * x[:, 3] + 0.1 * x[:, 5]
    path = tmp_path_factory.mktemp("stats") / "store"
    st = store_from_arrays(path, corpus, {"hidden": (x.reshape(n, 24), [0])}, chunk_words=256)
    return st, corpus


@pytest.mark.parametrize("second", [True, False])
def test_class_moments_equal_to_float64_rounding(store, dask_client, second):
    st, corpus = store
    data = prepare_input(st, corpus.labels_array("upos"), None)
    data.chunk_words = 256
    one = class_moments(data, ["NOUN", "VERB", "ADJ"], second_moments=second)
    with use(dask_client):
        two = class_moments(data, ["NOUN", "VERB", "ADJ"], second_moments=second)
    for field in ("counts", "minimum", "maximum"):
        assert np.array_equal(getattr(one, field), getattr(two, field)), field
    for field in ("sums", "m2"):  # chunks shifted by their own mean vs the running mean
        np.testing.assert_allclose(getattr(two, field), getattr(one, field), rtol=1e-12,
                                   err_msg=field)


def test_probeless_ranking_equal_within_1e_6(store, dask_client):
    st, corpus = store
    labels = corpus.labels_array("upos")
    one = get_method("probeless").rank(st, labels)
    two = rank_on(dask_client, get_method("probeless"), st, labels)
    assert np.array_equal(one.global_order, two.global_order)
    np.testing.assert_allclose(two.global_scores, one.global_scores, rtol=1e-6, atol=1e-6)
    assert two.global_order[0] == 3


def test_other_rankers_run_on_one_worker(store, dask_client):
    st, corpus = store
    labels = corpus.labels_array("upos")
    one = get_method("selectivity").rank(st, labels)
    two = rank_on(dask_client, get_method("selectivity"), st, labels)
    assert np.array_equal(one.global_order, two.global_order)
    np.testing.assert_allclose(two.global_scores, one.global_scores, rtol=1e-6, atol=1e-6)


def test_correlation_gram_equal_within_1e_6(store, dask_client):
    st, _ = store
    one = correlation_matrix(st, chunk_words=256)
    # max_bytes forces neuron row blocks: several passes, each split over the workers
    with connect(dask_client):
        two = correlation_matrix(st, chunk_words=256)
        three = correlation_matrix(st, chunk_words=256, max_bytes=8 * 24 * 10)
    np.testing.assert_allclose(two.matrix, one.matrix, atol=1e-6)
    np.testing.assert_allclose(three.matrix, one.matrix, atol=1e-6)
    np.testing.assert_allclose(two.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(two.std, one.std, rtol=1e-6)  # float32 products: ~1e-7
    assert abs(one.matrix[3, 5]) > 0.9
