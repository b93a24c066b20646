"""Multi-model search: MaxCorr / MinCorr / LinReg rankings and representation similarity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.ranking import Ranking
from neuronscope.unsupervised.multimodel import compare_models

from .conftest import make_corpus, write_store


@pytest.fixture
def three_stores(tmp_path):
    """Stores A (2 layers x 6), B (1 x 8), C (1 x 5) of one corpus.

    A's L1.hidden.2 is copied into B (L0.hidden.5, scaled and shifted) and negated into C
    (L0.hidden.0); B's L0.hidden.6 is a mix of A's L0.hidden.0 and L0.hidden.1; A's
    L0.hidden.3 is constant.
    """
    corpus = make_corpus(n_sentences=200)
    n = corpus.n_words
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, 12))
    a[:, 3] = 0.5
    b = rng.standard_normal((n, 8))
    b[:, 5] = 3.0 * a[:, 8] + 1.0
    b[:, 6] = 0.6 * a[:, 0] + 0.8 * a[:, 1]
    c = rng.standard_normal((n, 5))
    c[:, 0] = -a[:, 8]
    stores = [
        write_store(tmp_path / "A", corpus, {"hidden": a.astype(np.float32)}, layers=(0, 1),
                    model_fingerprint="a" * 16),
        write_store(tmp_path / "B", corpus, {"hidden": b.astype(np.float32)}, layers=(0,),
                    model_fingerprint="b" * 16),
        write_store(tmp_path / "C", corpus, {"hidden": c.astype(np.float32)}, layers=(0,),
                    model_fingerprint="c" * 16),
    ]
    return stores


def test_maxcorr_ranks_the_copied_neuron_first(three_stores):
    result = compare_models(three_stores[:2], chunk_words=100)
    assert result.labels == ["A", "B"]
    ranking_a = result.ranking("maxcorr", "A")
    ranking_b = result.ranking("maxcorr", "B")
    assert isinstance(ranking_a, Ranking) and ranking_a.concept_names == ["maxcorr"]
    assert ranking_a.top(1) == ["L1.hidden.2"]
    assert ranking_b.top(1) == ["L0.hidden.5"]
    assert ranking_a.scores("maxcorr")["L1.hidden.2"] == pytest.approx(1.0, abs=1e-5)
    assert ranking_a.store_fingerprint == three_stores[0].fingerprint
    assert result.best_match[0][8] == "B:L0.hidden.5"
    # Two models: MinCorr is MaxCorr.
    np.testing.assert_allclose(result.scores["mincorr"][0], result.scores["maxcorr"][0])


def test_mincorr_needs_a_counterpart_in_every_model(three_stores):
    result = compare_models(three_stores)
    a_min = result.ranking("mincorr", "A")
    assert a_min.top(1) == ["L1.hidden.2"]  # copied into B and C
    # A's L0.hidden.0 has a partner in B (the mix) but none in C.
    scores_max = result.ranking("maxcorr", "A").scores("maxcorr")
    scores_min = a_min.scores("mincorr")
    assert scores_max["L0.hidden.0"] > 0.5 > scores_min["L0.hidden.0"]


def test_linreg_finds_linear_combinations(three_stores):
    result = compare_models(three_stores[:2], methods=["linreg"])
    ranking_b = result.ranking("linreg", "B")
    top2 = set(ranking_b.top(2))
    assert top2 == {"L0.hidden.5", "L0.hidden.6"}  # a copy and a mix of A's neurons
    scores = ranking_b.scores("linreg")
    assert scores["L0.hidden.6"] == pytest.approx(1.0, abs=1e-3)
    assert scores["L0.hidden.0"] < 0.1  # independent: only in-sample noise
    assert set(result.rankings) == {"linreg"}


def test_constant_neurons_score_zero_and_no_nan(three_stores):
    result = compare_models(three_stores[:2])
    assert result.constant[0] == ["L0.hidden.3"]
    for method, per_model in result.scores.items():
        for scores in per_model:
            assert np.isfinite(scores).all(), method
        assert result.ranking(method, "A").scores(method)["L0.hidden.3"] == 0.0


def test_representation_similarity_and_json(three_stores):
    result = compare_models(three_stores[:2])
    (pair,) = result.pairs
    assert pair.layer_labels_a == ["L0.hidden", "L1.hidden"]
    assert pair.layer_labels_b == ["L0.hidden"]
    assert pair.layer_cka.shape == (2, 1)
    assert 0 < pair.similarity.cka < 1
    # Two shared directions (the copy and the mix) -> two canonical correlations ~ 1.
    np.testing.assert_allclose(pair.similarity.pwcca_correlations[:2], 1.0, atol=1e-4)
    data = json.loads(json.dumps(result.to_dict(top=3)))
    assert data["models"][0]["top"]["maxcorr"][0]["neuron"] == "L1.hidden.2"
    assert data["pairs"][0]["a"] == "A"


def test_arrays_and_neuron_selection(three_stores):
    a, b, _ = three_stores
    result = compare_models([a, b], neurons=[["L1.hidden.2", "L0.hidden.0"], None],
                            representation=False)
    assert result.names[0] == ["L1.hidden.2", "L0.hidden.0"]
    assert result.pairs == []
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    y = x[:, ::-1].copy()
    arrays = compare_models([x, y])
    assert arrays.labels == ["model0", "model1"]
    assert arrays.ranking("maxcorr", 0).scores("maxcorr")["n0"] == pytest.approx(1.0, abs=1e-6)


def test_errors(tmp_path, three_stores):
    other = make_corpus(n_sentences=200, seed=9)
    stray = write_store(tmp_path / "D", other, {"hidden": np.zeros((other.n_words, 2),
                                                                   dtype=np.float32)},
                        layers=(0,))
    with pytest.raises(FingerprintMismatchError, match="same corpus"):
        compare_models([three_stores[0], stray])
    with pytest.raises(NeuronscopeError, match="at least two"):
        compare_models(three_stores[:1])
    with pytest.raises(NeuronscopeError, match="unknown method"):
        compare_models(three_stores[:2], methods=["svcca-max"])
