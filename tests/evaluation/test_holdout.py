"""Held out by default: the ranking an evaluation uses never saw its test sentences."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation._common import train_test_masks
from neuronscope.evaluation.holdout import held_out_ranking
from neuronscope.methods import get_method
from neuronscope.methods.hygiene import rank_excluding
from tests.methods.conftest import labelled_store


def leaky_store(path: Path):
    """n1 carries A on every sentence; n2 carries A only on the test sentences of the seeded
    split (a ranking of the whole corpus finds it, one of the train sentences cannot)."""
    rng = np.random.default_rng(0)
    n = 1400
    y = np.asarray(["A", "B"])[rng.integers(0, 2, n)]
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[:, 1] += 0.3 * (y == "A")
    sentences = np.arange(n) // 7
    _, test = train_test_masks(n, 0.2, sentences, 0)
    x[test, 2] += 6.0 * (y[test] == "A")
    store, corpus = labelled_store(path, x, y)
    train, test = train_test_masks(n, 0.2, store.sentence_ids(), 0)
    return store, corpus, train, test


def test_a_ranking_of_this_corpus_is_recomputed_on_train_sentences(tmp_path: Path) -> None:
    store, corpus, train, test = leaky_store(tmp_path / "s")
    labels = corpus.concept_labels("tag")
    leaky = rank_excluding(get_method("probeless"), store, labels, "first")
    assert leaky.top(1, "A") == ["L0.hidden.2"]  # it saw the test sentences
    held = held_out_ranking(leaky, store, corpus, "tag", train, test, ks=(1, 3))
    assert held.mode == "reranked" and held.held_out and not held.warnings
    assert held.ranking.top(1, "A") == ["L0.hidden.1"]
    assert held.exclude_positions == "first"  # the given ranking's policy is kept
    assert held.ranking.extra["exclude_positions"]["policy"] == "first"
    assert held.n_train_sentences + held.n_test_sentences == 200
    assert held.n_test_sentences == 40 and held.overlap[3] < 1.0
    other = held_out_ranking(leaky, store, corpus, "tag", train, test,
                             exclude_positions="none")
    assert other.ranking.extra["exclude_positions"]["n_excluded"] == 0


def test_given_other_corpus_and_causal_rankings(tmp_path: Path) -> None:
    store, corpus, train, test = leaky_store(tmp_path / "s")
    ranking = get_method("probeless").rank(store, corpus.concept_labels("tag"))
    given = held_out_ranking(ranking, store, corpus, "tag", train, test, holdout="given")
    assert given.mode == "given" and not given.held_out and given.ranking is ranking
    assert "may have been computed on these same sentences" in given.warnings[0]
    # Computed on another corpus (train store, dev evaluation): held out as it is.
    model, _, aggregation = store.fingerprint.split("-", 2)
    elsewhere = replace(ranking, store_fingerprint=f"{model}-{'0' * 16}-{aggregation}")
    other = held_out_ranking(elsewhere, store, corpus, "tag", train, test)
    assert other.mode == "other-corpus" and other.held_out and other.ranking is elsewhere
    causal = replace(ranking, method="erasure")
    kept = held_out_ranking(causal, store, corpus, "tag", train, test)
    assert kept.mode == "given" and "causal ranker" in kept.warnings[0]
    with pytest.raises(NeuronscopeError, match="cannot recompute"):
        held_out_ranking(causal, store, corpus, "tag", train, test, holdout="rerank")
    with pytest.raises(NeuronscopeError, match="holdout must be one of"):
        held_out_ranking(ranking, store, corpus, "tag", train, test, holdout="never")
