"""Evaluation functions read a row-restricted ActivationView like the rows themselves."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import FingerprintMismatchError
from neuronscope.evaluation import NeuronMatrix, evaluate_selection, load_neurons
from neuronscope.evaluation._common import check_ranking, label_array
from neuronscope.methods.ranking import ranking_from_scores
from neuronscope.store import ActivationView, store_from_arrays


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, graded):
    x, y, order = graded
    cut = [slice(i, i + 7) for i in range(0, len(y), 7)]  # sentences of 7 words
    corpus = Corpus([[f"w{i}" for i in range(s.start, min(s.stop, len(y)))] for s in cut],
                    {"tag": [list(y[s]) for s in cut]}, name="graded")
    store = store_from_arrays(tmp_path_factory.mktemp("eval-view") / "s", corpus,
                              {"hidden": x}, chunk_words=64)
    test_rows = np.flatnonzero(store.sentence_ids() % 4 == 0)
    return x, y, order, store, corpus.concept_labels("tag"), test_rows


def test_load_and_labels_of_held_out_rows(held_out):
    x, y, _, store, labels, rows = held_out
    view = ActivationView(store, rows=rows)
    matrix = load_neurons(view, [7, 3])
    np.testing.assert_array_equal(matrix.x, x[np.ix_(rows, [7, 3])])
    np.testing.assert_array_equal(matrix.groups, rows // 7)
    assert matrix.store_fingerprint == store.fingerprint
    np.testing.assert_array_equal(label_array(view, labels), y[rows])


def test_selection_on_a_view_equals_selection_on_its_rows(held_out):
    x, y, order, store, labels, rows = held_out
    scores = np.zeros(x.shape[1])
    scores[order] = np.arange(len(order), 0, -1)
    ids = np.arange(x.shape[1])
    ranking = ranking_from_scores("planted", {}, scores[None], ["A"], ids,
                                  store.layout.names(ids), store_fingerprint=store.fingerprint)
    view = ActivationView(store, rows=rows)
    on_view = evaluate_selection(view, labels, ranking, ks=[2], n_random=2, random_state=0)
    # The same rows in memory, with their sentences (the view splits by sentence too).
    rows_in_memory = NeuronMatrix(x[rows], ids, store.layout.names(ids), store.fingerprint,
                                  store.corpus_fingerprint, rows // 7)
    on_rows = evaluate_selection(rows_in_memory, y[rows], ranking, ks=[2], n_random=2,
                                 random_state=0)
    assert on_view.top == on_rows.top and on_view.random_mean == on_rows.random_mean
    # The policy applies to views too: another model's ranking is refused.
    ranking.store_fingerprint = "f" * 16 + "-" + store.corpus_fingerprint + "-first"
    with pytest.raises(FingerprintMismatchError, match="another model or aggregation"):
        check_ranking(ranking, view)
