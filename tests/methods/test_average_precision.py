"""Average precision (Suau et al. 2020): equal to scikit-learn's, ties included (both ways of
handling them, signed zeros, constant neurons, single-positive concepts, many neurons on
threads); planted neuron, store == array, no mutation, clear errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods import kernels
from neuronscope.methods.average_precision import AveragePrecision
from neuronscope.methods.ranking import Ranking

from .conftest import labelled_store

N = 600
CONCEPTS = ["A", "B", "C", "D"]


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8 random neurons; the words of concept A get +3 on neuron 5."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 8)).astype(np.float32)
    y = np.asarray(CONCEPTS)[rng.integers(0, len(CONCEPTS), N)]
    x[y == "A", 5] += 3.0
    return x, y


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
    store, corpus = labelled_store(tmp_path / "store", x, y)
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
    store, _ = labelled_store(tmp_path / "store", x, y)
    elsewhere = Corpus([[f"v{i}" for i in range(N)]], {"tag": [list(y)]}, name="other")
    with pytest.raises(FingerprintMismatchError, match="other than the one store"):
        AveragePrecision().rank(store, elsewhere.concept_labels("tag"))


# ---------------------------------------------------------------------------- fast paths
@pytest.fixture
def tie_path():
    """One way of handling ties is left (the sorted scan): kept so that tests read as before."""
    return "scan"


def random_problem(seed: int, n: int, d: int, decimals: int | None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    if decimals is not None:
        x = np.round(x, decimals)
    labels = np.asarray(["a", "b", "c", "d", "e", "f"])
    y = labels[rng.choice(6, n, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03])]
    return x, y


@functools.cache
def many_neurons(decimals: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 neurons x 900 words, and scikit-learn's AP (computed once for every tie path)."""
    x, y = random_problem(11, 900, 40, decimals)
    return x, y, sklearn_ap(x, y, ["a", "b", "c", "d", "e", "f"])


@pytest.mark.parametrize("decimals", [None, 3, 2, 1, 0])
def test_many_neurons_equal_sklearn(tie_path, decimals):
    """Many neurons at once (threads, several blocks), from no ties to massive ties."""
    x, y, expected = many_neurons(decimals)
    method = AveragePrecision(block_neurons=17, n_jobs=2)
    method.rank(x, y)
    np.testing.assert_allclose(method.scores_, expected, rtol=0, atol=1e-12)
    # The same scores one neuron at a time, without threads.
    single = AveragePrecision(block_neurons=1, n_jobs=1)
    single.rank(x, y)
    np.testing.assert_allclose(single.scores_, method.scores_, rtol=0, atol=1e-15)


def test_subset_of_concepts_with_ties(tie_path):
    """Words of other labels are negatives, also inside tied groups."""
    x, y = random_problem(12, 500, 20, 1)
    concepts = ["f", "b"]  # rare and common; "a", "c", "d", "e" words are negatives only
    method = AveragePrecision(concepts=concepts, n_jobs=2)
    method.rank(x, y)
    np.testing.assert_allclose(method.scores_, sklearn_ap(x, y, concepts), rtol=0, atol=1e-12)


def test_signed_zeros_are_one_value(tie_path):
    rng = np.random.default_rng(13)
    n = 400
    y = np.asarray(CONCEPTS)[rng.integers(0, len(CONCEPTS), n)]
    x = np.zeros((n, 4), np.float32)
    x[:, 0] = np.where(rng.random(n) < 0.5, -0.0, 0.0)  # only zeros of both signs
    # Zeros of both signs among positive and negative values (a ReLU-like unit and another).
    x[:, 1] = np.where(rng.random(n) < 0.6, rng.choice([-0.0, 0.0], n), rng.standard_normal(n))
    x[:, 2] = np.maximum(rng.standard_normal(n), 0) * rng.choice([-1.0, 1.0], n)
    x[:, 3] = np.where(y == "A", 0.0, -0.0)  # the sign alone must not separate A
    assert np.signbit(x[:, 0]).any() and np.signbit(x[:, 3]).any()
    method = AveragePrecision(n_jobs=1)
    method.rank(x, y)
    np.testing.assert_allclose(method.scores_, sklearn_ap(x, y, CONCEPTS), rtol=0, atol=1e-12)
    base = [(y == c).mean() for c in CONCEPTS]
    np.testing.assert_allclose(method.scores_[:, 0], base, atol=1e-15)
    np.testing.assert_allclose(method.scores_[:, 3], base, atol=1e-15)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # 3e38 summed
@pytest.mark.parametrize("value", [0.0, -0.0, -7.25, 3e38, 1e-45])
def test_constant_neuron_scores_base_rate(tie_path, value):
    x, y = planted()
    x[:, 2] = value
    method = AveragePrecision()
    method.rank(x, y)
    np.testing.assert_allclose(method.scores_[:, 2], [(y == c).mean() for c in CONCEPTS],
                               atol=1e-15)
    np.testing.assert_allclose(method.scores_, sklearn_ap(x, y, CONCEPTS), atol=1e-12)


@pytest.mark.parametrize("decimals", [None, 1])
def test_single_positive_concepts(tie_path, decimals):
    rng = np.random.default_rng(14)
    n = 300
    x = rng.standard_normal((n, 6)).astype(np.float32)
    if decimals is not None:
        x = np.round(x, decimals)
    y = np.full(n, "rest", dtype=object)
    y[[0, 7, 150, n - 1]] = ["first", "second", "middle", "last"]  # one word each
    x[7, 1] = x[:, 1].max() + 1  # "second" holds neuron 1's top value alone: AP 1
    x[150, 4] = x[151, 4] = x[:, 4].max() + 1  # "middle" shares neuron 4's top value: 1/2
    concepts = ["first", "second", "middle", "last", "rest"]
    method = AveragePrecision(concepts=concepts, n_jobs=1)
    method.rank(x, y)
    np.testing.assert_allclose(method.scores_, sklearn_ap(x, y, concepts), rtol=0, atol=1e-12)
    assert method.scores_[1, 1] == 1.0 and method.scores_[2, 4] == pytest.approx(0.5)


def test_sort_keys_order_floats_descending():
    special = [np.finfo(np.float32).max, -np.finfo(np.float32).max, 1e-45, -1e-45,
               np.finfo(np.float32).tiny, 0.0, -0.0, 1.0, -1.0, 2.5, -2.5]
    rng = np.random.default_rng(15)
    x = np.concatenate([special, rng.standard_normal(500) * 10.0 ** rng.integers(-30, 30, 500)])
    x = np.concatenate([x, x[::7]]).astype(np.float32)  # repeated values: ties
    keys = np.empty(len(x), np.uint32)
    kernels.descending_keys(x, 1.0, keys)
    # Ascending keys are descending values, equal values (0.0 and -0.0 included) equal keys.
    for i, j in rng.integers(0, len(x), (3000, 2)):
        assert (keys[i] < keys[j]) == (x[i] > x[j]) and (keys[i] == keys[j]) == (x[i] == x[j])
    # The radix sort is numpy's stable argsort of the keys: descending values, ties in row
    # order; each item carries its row's code. Also for keys sharing their top half or
    # their low bytes, and constant columns.
    narrow = (1.0 + rng.random(700) / 300).astype(np.float32)
    coarse = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # low bytes 0
    for column in (x, narrow, np.round(narrow, 3), coarse, np.full(50, -0.0, np.float32)):
        codes = np.arange(len(column), dtype=np.int32) % 7
        items, tmp = np.empty(len(column), np.uint64), np.empty(len(column), np.uint64)
        counts = np.empty(kernels.SORT_COUNTS, np.uint32)
        for sign in (1.0, -1.0):
            stats = np.empty(3)
            kernels.sorted_items(column, sign, codes, items, tmp, counts, stats)
            # The counting pass's moments are column_moments' (the same additions).
            np.testing.assert_array_equal(stats, kernels.column_moments(column))
            reference = -sign * column.astype(np.float64)
            order = np.argsort(reference, kind="stable")  # -0.0 and 0.0 tie here too
            np.testing.assert_array_equal(items & np.uint64(0xFFFFFFFF), codes[order])
            np.testing.assert_array_equal(
                kernels.value_of_keys((items >> np.uint64(32)).astype(np.uint32), sign),
                column[order] + np.float32(0.0))


@pytest.mark.parametrize("decimals", [None, 2, 1, 0])
def test_scan_equals_sklearn(decimals):
    """The scan of the sorted items gives scikit-learn's AP, from no ties to massive ties,
    also on the shortest columns (a group or a value of its own at either end)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(21)
    full = rng.standard_normal(4000).astype(np.float32)
    if decimals is not None:
        full = np.round(full, decimals)
    codes = rng.choice(6, len(full), p=[0.4, 0.3, 0.15, 0.1, 0.04, 0.01]).astype(np.uint8)
    short = [np.array(v, np.float32) for v in ([1.0], [1.0, 1.0], [1.0, 2.0], [2.0, 1.0, 1.0],
                                               [1.0, 1.0, 2.0], [1.0, 2.0, 1.0])]
    for column in [full, *short]:
        n = len(column)
        items, tmp = np.empty(n, np.uint64), np.empty(n, np.uint64)
        kernels.sorted_items(column, 1.0, codes[:n], items, tmp,
                             np.empty(kernels.SORT_COUNTS, np.uint32), np.empty(3))
        out = np.full(6, np.nan)
        kernels.ap_from_items(items, 6, out)
        for c in np.unique(codes[:n]):
            expected = average_precision_score(codes[:n] == c, column)
            assert out[c] / np.sum(codes[:n] == c) == pytest.approx(expected, abs=1e-12)
        assert not np.isnan(out).any()  # codes without words get 0


def test_nan_in_a_later_block_with_threads():
    x, y = random_problem(16, 300, 50, None)
    x[123, 41] = np.nan
    with pytest.raises(NeuronscopeError, match="NaN or inf .*row 123, neuron n41"):
        AveragePrecision(block_neurons=20, n_jobs=2).rank(x, y)
