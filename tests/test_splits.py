"""The one split helper: whole sentences on one side, seeded, stratified rows without sentences."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.splits import split_by_sentence, split_masks


def test_whole_sentences_on_one_side_and_seeded():
    sentence_ids = np.repeat(np.arange(10), [3, 1, 4, 2, 5, 2, 3, 1, 2, 2])
    train, test = split_by_sentence(sentence_ids, 0.3, 7)
    assert len(np.unique(sentence_ids[test])) == 3  # round(0.3 * 10) sentences held out
    assert not set(sentence_ids[train]) & set(sentence_ids[test])
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(sentence_ids)))
    again = split_by_sentence(sentence_ids, 0.3, 7)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(split_by_sentence(sentence_ids, 0.3, 8)[1], test)
    train_mask, test_mask = split_masks(sentence_ids, 0.3, 7)
    assert np.array_equal(np.flatnonzero(test_mask), test) and np.array_equal(~train_mask,
                                                                             test_mask)


def test_at_least_one_and_never_all_held_out():
    ids = np.array([0, 0, 1, 1])
    assert len(split_by_sentence(ids, 0.01, 0)[1]) == 2  # one sentence, not none
    assert len(split_by_sentence(ids, 0.99, 0)[0]) == 2  # one sentence left to train on


def test_rows_without_sentences_and_stratified():
    y = np.array([0] * 10 + [1] * 4 + [2])
    train, test = split_by_sentence(None, 0.5, 0, n_rows=len(y), stratify=y)
    assert sorted(y[test].tolist()) == [0] * 5 + [1] * 2  # each class halved; the single 2 stays
    assert 2 in y[train]
    train, test = split_by_sentence(None, 0.2, 0, n_rows=10)
    assert len(test) == 2 and len(train) == 8


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sentence_ids": np.zeros(5), "test_size": 0.5}, "at least two sentences"),
    ({"sentence_ids": np.arange(5), "test_size": 1.0}, "test_size"),
    ({"sentence_ids": None, "test_size": 0.5}, "n_rows"),
    ({"sentence_ids": None, "test_size": 0.5, "n_rows": 1}, "cannot be split"),
    ({"sentence_ids": np.arange(4), "test_size": 0.5, "stratify": np.arange(4)}, "stratify"),
    ({"sentence_ids": np.arange(4), "test_size": 0.5, "n_rows": 5}, "4 sentence ids for 5"),
])
def test_bad_requests_fail_loudly(kwargs, message):
    with pytest.raises(NeuronscopeError, match=message):
        split_by_sentence(**kwargs)
