"""Average precision (Suau et al. 2020): equal to scikit-learn's, ties included; planted neuron,
store == array, no mutation, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.average_precision import AveragePrecision
from neuronscope.methods.ranking import Ranking
from neuronscope.store.store import ActivationStore, StoreWriter

N = 600
CONCEPTS = ["A", "B", "C", "D"]


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8 random neurons; the words of concept A get +3 on neuron 5."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 8)).astype(np.float32)
    y = np.asarray(CONCEPTS)[rng.integers(0, len(CONCEPTS), N)]
    x[y == "A", 5] += 3.0
    return x, y


def make_store(path: Path, rows: np.ndarray, y: np.ndarray) -> tuple[ActivationStore, Corpus]:
    """A ``hidden`` store (2 layers x 4 neurons, chunks of 64 words) and its labelled corpus."""
    words = [f"w{i}" for i in range(len(rows))]
    sentences = [words[i : i + 7] for i in range(0, len(words), 7)]
    tags = [list(y[i : i + 7]) for i in range(0, len(words), 7)]
    corpus = Corpus(sentences, {"tag": tags}, name="planted")
    meta = {
        "tool_version": "test",
        "model": {"name": "planted", "gguf_file": None, "model_type": "test", "config_hash": "c",
                  "fingerprint": "f" * 16, "random_init": True, "seed": 0, "num_layers": 2},
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint,
                   "n_sentences": corpus.n_sentences, "n_words": corpus.n_words},
        "components": {"hidden": {"layers": [0, 1], "neurons": 4, "head_dim": None,
                                  "source": "hidden_states", "modules": {}}},
        "aggregation": "first", "sentence_pooling": "none", "dtype": "float32",
        "block_words": 256, "batch_size": 1, "windows_config": None, "windows": {},
    }
    writer = StoreWriter.create(path, meta, corpus, chunk_words=64)
    writer.write_rows("hidden", 0, rows)
    writer.commit(corpus.n_words, corpus.n_sentences)
    writer.finalize()
    return ActivationStore(path), corpus


def sklearn_ap(x: np.ndarray, y: np.ndarray, concepts: list[str]) -> np.ndarray:
    return np.array([[average_precision_score(y == c, x[:, j]) for j in range(x.shape[1])]
                     for c in concepts])


def test_finds_planted_neuron():
    x, y = planted()
    ranking = AveragePrecision().rank(x, y)
    assert ranking.top(1, "A") == ["n5"]
    scores = ranking.scores("A")
    base = ranking.extra["base_rates"]["A"]
    assert base == pytest.approx((y == "A").mean())
    assert scores["n5"] > 0.8  # A words are the top activations of neuron 5
    assert max(v for k, v in scores.items() if k != "n5") < base + 0.1
    assert ranking.method == "ap" and set(ranking.extra["base_rates"]) == set(CONCEPTS)
    back = Ranking.from_json(ranking.to_json())  # extra and params are JSON-ready
    assert back.top(3, "A") == ranking.top(3, "A") and back.extra == ranking.extra


@pytest.mark.parametrize("decimals", [None, 2, 1, 0])
def test_equals_sklearn_exactly_with_ties(decimals):
    rng = np.random.default_rng(3)
    n = 700
    x = rng.standard_normal((n, 9)).astype(np.float32)
    if decimals is not None:
        x = np.round(x, decimals)  # ties, from a few to massive
    x[:, 3] = 1.5  # constant: AP is the base rate
    x[::4, 4] = -0.0  # -0.0 and +0.0 are one tie for sklearn
    x[1::4, 4] = 0.0
    x[:, 6] = (rng.integers(0, 3, n) - 1).astype(np.float32)  # three values only
    # Unbalanced labels, and concepts ranked in an order different from the sorted one.
    y = rng.choice(["a", "b", "c", "d", "e"], n, p=[0.1, 0.2, 0.3, 0.35, 0.05])
    concepts = ["e", "a", "c"]
    method = AveragePrecision(concepts=concepts, block_neurons=4, n_jobs=2)
    method.rank(x, y)
    np.testing.assert_allclose(method.scores_, sklearn_ap(x, y, concepts), rtol=0, atol=1e-9)
    np.testing.assert_allclose(method.scores_[:, 3], [(y == c).mean() for c in concepts],
                               atol=1e-12)


def test_store_matches_array(tmp_path):
    x, y = planted()
    x[:, 0] = np.round(x[:, 0], 1)
    store, corpus = make_store(tmp_path / "store", x, y)
    from_store = AveragePrecision(block_neurons=3, n_jobs=1)
    ranking = from_store.rank(store, corpus.concept_labels("tag"))
    from_array = AveragePrecision()
    from_array.rank(x, y)
    np.testing.assert_array_equal(from_store.scores_, from_array.scores_)
    np.testing.assert_allclose(from_array.scores_, sklearn_ap(x, y, CONCEPTS), atol=1e-9)
    assert ranking.top(1, "A") == ["L1.hidden.1"]
    assert ranking.store_fingerprint == store.fingerprint and ranking.label_layer == "tag"
    sub = AveragePrecision(neurons=["L1.hidden.1", "L0.hidden.0"])
    sub.rank(store, corpus.concept_labels("tag"))
    np.testing.assert_array_equal(sub.scores_, from_array.scores_[:, [5, 0]])


def test_does_not_mutate_inputs():
    x, y = planted()
    x[::5, 1] = -0.0
    x_before, y_before = x.copy(), y.copy()
    AveragePrecision(block_neurons=3).rank(x, y)
    np.testing.assert_array_equal(x, x_before)
    assert np.signbit(x[::5, 1]).all()  # -0.0 stays -0.0 in the caller's array
    np.testing.assert_array_equal(y, y_before)


def test_clear_errors(tmp_path):
    x, y = planted()
    with pytest.raises(NeuronscopeError, match=r"\['Z'\] absent"):
        AveragePrecision(concepts=["Z"]).rank(x, y)
    with pytest.raises(NeuronscopeError, match="single class"):
        AveragePrecision().rank(x, np.full(N, "B"))
    for bad in (np.nan, -np.inf):
        broken = x.copy()
        broken[300, 4] = bad
        with pytest.raises(NeuronscopeError, match="NaN or inf .*row 300, neuron n4"):
            AveragePrecision(block_neurons=3).rank(broken, y)
    with pytest.raises(NeuronscopeError, match="n_jobs"):
        AveragePrecision(n_jobs=0).rank(x, y)
    store, _ = make_store(tmp_path / "store", x, y)
    elsewhere = Corpus([[f"v{i}" for i in range(N)]], {"tag": [list(y)]}, name="other")
    with pytest.raises(FingerprintMismatchError, match="other than the one store"):
        AveragePrecision().rank(store, elsewhere.concept_labels("tag"))
