"""Sentence-level and multi-label ranking keep neuron names and find planted neurons."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.methods import build_method
from neuronscope.methods.label_levels import (
    parse_label_sets,
    rank_multilabel,
    rank_sentences,
    sentence_activations,
)


def test_parse_label_sets():
    assert parse_label_sets(["A|B", "_", "", "B", ["C", "A"]]) == [
        frozenset({"A", "B"}), frozenset(), frozenset(), frozenset({"B"}),
        frozenset({"A", "C"})]
    with pytest.raises(NeuronscopeError, match="separator"):
        parse_label_sets(["A"], sep="")


def test_multilabel_ranks_each_concept_against_the_rest():
    rng = np.random.default_rng(0)
    n = 400
    options = [frozenset(), frozenset("A"), frozenset("B"), frozenset("AB")]
    sets = [options[i] for i in rng.integers(0, 4, size=n)]
    x = rng.normal(size=(n, 8)).astype(np.float32)
    has_a = np.array(["A" in s for s in sets])
    has_b = np.array(["B" in s for s in sets])
    x[:, 3] += 3 * has_a  # planted: column 3 fires on A (alone or with B), 5 on B
    x[:, 5] += 3 * has_b
    labels = ["|".join(sorted(s)) or "_" for s in sets]
    ranking = rank_multilabel(lambda c: build_method("probeless", {}, concepts=[c]), x, labels)
    assert ranking.concept_names == ["A", "B"]
    assert ranking.top(1, "A") == ["n3"] and ranking.top(1, "B") == ["n5"]
    assert ranking.extra["multi_label"]["rows"] == {"A": int(has_a.sum()), "B": int(has_b.sum())}
    with pytest.raises(NeuronscopeError, match="absent"):
        rank_multilabel(lambda c: build_method("probeless", {}, concepts=[c]), x, labels,
                        concepts=["Z"])


def test_sentence_ranking_keeps_store_names(extracted, small_corpus):
    store = extracted("bert", "mean", ("hidden", "mlp"))
    x, ids, names = sentence_activations(store, ["mlp"])
    assert x.shape == (store.n_sentences, len(ids)) and names[0] == "L0.mlp.0"
    labels = ["long" if len(s) > 6 else "short" for s in small_corpus.sentences]
    ranking = rank_sentences(build_method("probeless", {}), store, labels, components=["mlp"],
                             label_layer="length")
    assert ranking.store_fingerprint == store.fingerprint and ranking.label_layer == "length"
    assert ranking.extra["level"] == "sentence"
    direct = build_method("probeless", {}).rank(x, np.array(labels, dtype=object))
    best_col = int(direct.concepts["long"].ids[0])
    assert ranking.top(1, "long") == [names[best_col]]
    assert all(".mlp." in n for n in ranking.top(10, "long"))
    with pytest.raises(NeuronscopeError, match="sentence labels"):
        rank_sentences(build_method("probeless", {}), store, labels[:3])
