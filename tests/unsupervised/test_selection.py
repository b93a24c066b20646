"""Efficient neuron selection: LayerSelector, clustering, minimal probe set, speed-ups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.unsupervised.selection import select_neurons

from .conftest import make_corpus, write_store

PROBE = {"max_epochs": 4, "batch_size": 64, "learning_rate": 0.02, "alpha": 1e-5}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Three layers x 8 neurons; the label is readable from layer 0 already.

    Layer 0 neurons 0-1 encode the class (4 classes at the corners of a square, so both are
    needed), neuron 2 duplicates neuron 0; layers
    1-2 hold noisy copies and noise, so the LayerSelector should stop at layer 0.
    """
    base = make_corpus(n_sentences=150, length=8)
    rng = np.random.default_rng(0)
    n = base.n_words
    y = rng.integers(0, 4, n)
    centers = np.array([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]])
    layer0 = rng.standard_normal((n, 8))
    layer0[:, :2] = centers[y] + 0.3 * rng.standard_normal((n, 2))
    layer0[:, 2] = layer0[:, 0]
    layer1 = layer0 @ rng.standard_normal((8, 8)) + rng.standard_normal((n, 8))
    layer2 = rng.standard_normal((n, 8))
    x = np.concatenate([layer0, layer1, layer2], axis=1).astype(np.float32)
    labels = np.array(["A", "B", "C", "D"])[y]
    offsets = base.sentence_offsets()
    per_sentence = [labels[offsets[i]:offsets[i + 1]].tolist() for i in range(base.n_sentences)]
    corpus = Corpus(base.sentences, {"cls": per_sentence}, name=base.name)
    store = write_store(tmp_path_factory.mktemp("sel") / "s", corpus, {"hidden": x},
                        layers=(0, 1, 2))
    return store, corpus, x, labels


def test_pipeline_on_a_store(task):
    store, corpus, _, _ = task
    result = select_neurons(store, corpus.concept_labels("cls"), keep=0.97, layer_keep=0.97,
                            threshold=0.9, probe_params=PROBE,
                            percentages=(0.05, 0.1, 0.2, 0.5), random_state=0)
    assert result.full_accuracy > 0.9
    assert result.top_layer == 0 and result.n_after_layers == 8
    # Neuron 2 duplicates neuron 0: clustering keeps one of them.
    assert result.n_after_clustering == 7
    assert result.reached and result.selected_accuracy >= result.target
    assert result.target == pytest.approx(0.97 * result.full_accuracy)
    assert len(result.selected) <= 3
    assert set(result.selected) & {"L0.hidden.0", "L0.hidden.2"}
    assert "L0.hidden.1" in result.selected
    assert result.fraction_kept == pytest.approx(len(result.selected) / 24)
    assert result.accuracy_kept >= 0.97
    steps = [r.step for r in result.runs]
    assert steps[:2] == ["full", "layers<=0"] and steps[-1] == "selected"
    assert "clustered" in steps
    assert result.train_speedup > 0 and result.predict_speedup > 0
    # The ranking of the representatives is in store ids, for the evaluation tools.
    assert result.ranking.store_fingerprint == store.fingerprint
    assert result.ranking.label_layer == "cls"
    assert set(result.ranking.top(3)) <= {f"L0.hidden.{i}" for i in range(8)}
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n_selected"] == len(result.selected)


def test_arrays_skip_the_layer_selector(task):
    _, _, x, labels = task
    result = select_neurons(x[:, :8], labels, keep=0.9, probe_params=PROBE,
                            percentages=(0.25, 0.5), max_words=600, random_state=1)
    assert result.top_layer is None and result.n_after_layers == 8
    assert result.params["n_words"] == 600
    assert [r.step for r in result.runs][:2] == ["full", "clustered"]


def test_errors(task):
    store, corpus, _, _ = task
    labels = corpus.concept_labels("cls")
    with pytest.raises(NeuronscopeError, match="keep"):
        select_neurons(store, labels, keep=1.5)
    with pytest.raises(NeuronscopeError, match="test_size"):
        select_neurons(store, labels, test_size=1.0)
    with pytest.raises(NeuronscopeError, match="labels"):
        select_neurons(store, labels.values[:10])
