"""NMF of activations: error falls with k, exact low rank, sign handling, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.unsupervised.factorization import (
    factorize_corpus,
    factorize_matrix,
    factorize_sentence,
    nonnegative,
)

from .conftest import make_corpus, write_store


def signed(n: int = 60, d: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 5)) @ rng.standard_normal((5, d))
            + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def test_reconstruction_error_falls_as_k_grows():
    x = signed()
    errors = [factorize_matrix(x, k)[3] for k in (1, 2, 4, 8, 16)]
    assert all(b <= a + 1e-6 for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0]


def test_exact_nonnegative_low_rank_is_recovered():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (40, 3)) @ rng.uniform(0, 1, (3, 12))
    _, weights, h, error, _ = factorize_matrix(x, 3, nonneg="clip", max_iter=2000)
    assert error < 1e-2
    assert weights.shape == (3, 12) and h.shape == (3, 12)


def test_sign_handling_modes():
    x = np.array([[1.0, -2.0], [-0.5, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(nonnegative(x, "split"),
                                  [[1, 0, 0, 2], [0, 3, 0.5, 0]])
    np.testing.assert_array_equal(nonnegative(x, "clip"), [[1, 0], [0, 3]])
    np.testing.assert_array_equal(nonnegative(x, "shift"), [[1.5, 0], [0, 5]])
    w, weights, h, _, _ = factorize_matrix(signed(), 4, nonneg="split")
    assert h.shape == (4, 40) and weights.shape == (4, 20)
    np.testing.assert_allclose(weights, h[:, :20] - h[:, 20:])
    assert (w >= 0).all() and (h >= 0).all()


def test_k_larger_than_rank_bound_is_an_error():
    x = signed(n=6, d=20)
    with pytest.raises(NeuronscopeError, match=r"k=7 .* rank at most 6"):
        factorize_matrix(x, 7)
    with pytest.raises(NeuronscopeError, match="positive integer"):
        factorize_matrix(x, 0)
    with pytest.raises(NeuronscopeError, match="nonneg"):
        factorize_matrix(x, 2, nonneg="abs")


def test_sentence_and_corpus_factorization_on_a_store(tmp_path):
    corpus = make_corpus(n_sentences=12, length=9)
    x = np.concatenate([signed(n=corpus.n_words, d=8, seed=s) for s in range(2)], axis=1)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1))
    local = factorize_sentence(store, 4, k=3, neurons=store.layout.select(layers=[1]))
    assert local.words == corpus.sentences[4]
    np.testing.assert_array_equal(local.rows, np.arange(36, 45))
    assert local.word_loadings.shape == (9, 3)
    assert local.names[0] == "L1.hidden.0" and len(local.names) == 8
    assert local.top_neurons(0, 3)[0][0].startswith("L1.hidden.")
    data = json.loads(json.dumps(local.to_dict(top=2)))
    assert data["sentence"] == 4 and len(data["factors"]) == 3
    assert len(data["word_loadings"]) == 9
    with pytest.raises(NeuronscopeError, match="rank at most 9"):
        factorize_sentence(store, 4, k=10)
    with pytest.raises(NeuronscopeError, match="out of range"):
        factorize_sentence(store, 12, k=2)
    glob = factorize_corpus(store, k=4, sample_words=50, random_state=0)
    assert len(glob.rows) == 50 and glob.words is not None
    assert glob.top_words(0, 2)[0][1] == glob.words[int(np.argmax(glob.word_loadings[:, 0]))]
    again = factorize_corpus(store, k=4, sample_words=50, random_state=0)
    np.testing.assert_array_equal(glob.rows, again.rows)


def test_sentence_of_an_array_needs_sentence_ids():
    x = signed(n=12, d=6)
    with pytest.raises(NeuronscopeError, match="sentence_ids"):
        factorize_sentence(x, 0, k=2)
    result = factorize_sentence(x, 1, k=2, sentence_ids=np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(result.rows, [4, 5, 6, 7])
    assert result.words is None
