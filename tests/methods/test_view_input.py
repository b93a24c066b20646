"""Every registered method ranks a row-restricted ActivationView of a store exactly like the
same rows materialized as an array, and records the store's fingerprint."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.methods import METHODS, get_method, prepare_input
from neuronscope.store import ActivationView

from .conftest import labelled_store


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(280, 16)).astype(np.float32)
    y = np.where(x[:, 3] > 0, "A", "B").astype(object)
    x[:, 5] += (y == "A") * 2
    store, corpus = labelled_store(tmp_path_factory.mktemp("view-input") / "s", x, y)
    rows = np.sort(rng.choice(len(x), 150, replace=False))
    return x, y, store, corpus.concept_labels("tag"), rows


@pytest.mark.parametrize("name", sorted(METHODS))
def test_rank_on_training_rows_of_a_store(planted, name):
    x, y, store, labels, rows = planted
    params = {"random_state": 0} if name in ("probe", "gaussian") else {}
    on_view = get_method(name, **params).rank(ActivationView(store, rows=rows), labels)
    # The probe holds out whole sentences, which a view of a store knows and an array does
    # not: hand the array the same sentence ids.
    extra = (store.sentence_ids()[rows],) if name == "probe" else ()
    on_array = get_method(name, **params).rank(x[rows], y[rows], *extra)
    assert on_view.store_fingerprint == store.fingerprint
    assert set(on_view.concepts) == set(on_array.concepts)
    for concept, expected in on_array.concepts.items():
        np.testing.assert_array_equal(on_view.concepts[concept].ids, expected.ids)
        np.testing.assert_allclose(on_view.concepts[concept].scores, expected.scores,
                                   rtol=1e-6, atol=1e-9)


def test_prepare_input_restricts_corpus_labels(planted):
    x, y, store, labels, rows = planted
    data = prepare_input(ActivationView(store, rows=rows), labels, neurons=[5, 3])
    np.testing.assert_array_equal(data.y, y[rows])
    np.testing.assert_array_equal(data.matrix(), x[np.ix_(rows, [5, 3])])
    assert data.names == ["L0.hidden.5", "L0.hidden.3"]
    with pytest.raises(NeuronscopeError, match="3 labels for 150 rows"):
        prepare_input(ActivationView(store, rows=rows), ["A", "B", "A"])
