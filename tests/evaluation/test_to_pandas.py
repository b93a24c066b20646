"""``to_pandas()`` on evaluation results: selection, ablation curves, layers, control."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuronscope.evaluation import evaluate_selection
from neuronscope.evaluation.ablation import AblationCurves
from neuronscope.evaluation.layers import layer_distribution
from neuronscope.methods.ranking import ranking_from_scores


def test_selection_and_layers_to_pandas(extracted, small_corpus):
    store = extracted("bert", "mean", ("hidden",))
    rng = np.random.default_rng(0)
    labels = small_corpus.concept_labels("upos")
    concepts = sorted(set(labels.values.tolist()))
    ranking = ranking_from_scores("random", {}, rng.random((len(concepts), store.n_neurons)),
                                  concepts, np.arange(store.n_neurons),
                                  store.layout.names(range(store.n_neurons)),
                                  store_fingerprint=store.fingerprint, label_layer="upos")
    selection = evaluate_selection(store, labels, ranking, ks=[4, 8], n_random=2,
                                   random_state=0)
    frame = selection.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame["k"].tolist() == [4, 8]
    assert frame["top"].tolist() == selection.top
    layers = layer_distribution(ranking, k=5).to_pandas()
    assert layers.index.name == "concept" and set(layers.index) == set(concepts)
    assert (layers.sum(axis=1) == 5).all()


def test_ablation_curves_to_pandas():
    curves = AblationCurves("probe", None, "zero", [0, 2, 4], 4, [0.9, 0.6, 0.2],
                            [0.9, 0.85, 0.8], [0.9, 0.7, 0.5], [0.0, 0.05, 0.04], {}, {}, 0.3,
                            2, 0)
    frame = curves.to_pandas()
    assert frame["ablated"].tolist() == [0, 2, 4] and frame["top"].tolist() == [0.9, 0.6, 0.2]
