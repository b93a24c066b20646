"""IoU (Mu & Andreas 2020): planted neuron, exact quantile thresholds and IoU against numpy,
the subsample fallback, store == array, no mutation, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods import iou as iou_module
from neuronscope.methods.iou import IoU, tail_quantiles
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


def direct_iou(x: np.ndarray, y: np.ndarray, concept: str, alpha: float) -> np.ndarray:
    """|m AND c| / |m OR c| with m = x > np.quantile(x, 1 - alpha), per column."""
    mask = x > np.quantile(x, 1 - alpha, axis=0)
    c = (y == concept)[:, None]
    return (mask & c).sum(axis=0) / (mask | c).sum(axis=0)


def test_defaults_search_the_threshold():
    method = IoU()
    assert method.alpha == "auto" and method.name == "iou"
    assert method.get_params() == {"alpha": "auto", "concepts": None, "neurons": None,
                                   "signed": False, "block_neurons": 384,
                                   "max_fraction": 0.3, "n_fractions": 12, "n_jobs": None,
                                   "memory": None}


def test_threshold_search_finds_a_focused_neuron_whatever_its_firing_rate():
    """Concept A covers 8 % of the words; neuron 3 is shifted on A (d = 1.5); the others are
    heavy-tailed noise. A fixed top 0.5 % mask (30 words) caps the IoU with A's ~480 words at
    30 / 480; the searched threshold finds neuron 3 with a mask near A's frequency and an IoU
    several times higher."""
    rng = np.random.default_rng(0)
    n = 6000
    y = np.where(rng.random(n) < 0.08, "A", "B")
    x = rng.standard_t(2, (n, 40)).astype(np.float32)
    x[:, 3] = rng.standard_normal(n) + 1.5 * (y == "A")
    searched = IoU().rank(x, y)
    assert searched.top(1, "A") == ["n3"]
    fraction = searched.extra["mask_fraction"]["A"][3]
    assert 0.02 < fraction < 0.2
    fixed = IoU(alpha=0.005).rank(x, y).scores("A")["n3"]
    assert fixed <= 30 / (y == "A").sum() + 1e-9
    assert searched.scores("A")["n3"] > 3 * fixed
    # Exact: the best IoU over the tried masks, checked by brute force for neuron 3.
    order = np.argsort(-x[:, 3], kind="stable")
    is_a = (y == "A")[order]
    best = max(is_a[:m].sum() / (m + is_a.sum() - is_a[:m].sum())
               for m in np.round(np.asarray(searched.extra["mask_fractions_tried"]) * n)
               .astype(int))
    assert searched.scores("A")["n3"] == pytest.approx(best)


def test_finds_planted_neuron():
    x, y = planted()
    ranking = IoU(alpha=0.1).rank(x, y)
    assert ranking.top(1, "A") == ["n5"]
    scores = ranking.scores("A")
    # The top 60 words of neuron 5 are nearly all A words (about 150 of them).
    assert scores["n5"] > 0.3 > max(v for k, v in scores.items() if k != "n5")
    assert ranking.method == "iou" and ranking.params["alpha"] == 0.1
    assert ranking.extra["concept_sizes"]["A"] == float((y == "A").sum())
    back = Ranking.from_json(ranking.to_json())  # extra and params are JSON-ready
    assert back.top(3, "A") == ranking.top(3, "A") and back.extra == ranking.extra


def test_equals_direct_numpy_with_ties():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    x[:, 0] = np.round(x[:, 0])  # heavy ties, also at the threshold
    x[:, 1] = 2.0  # constant: empty mask
    x[:, 2] = np.round(x[:, 2], 1)
    y = np.asarray(CONCEPTS)[rng.integers(0, 4, 200)]
    for alpha in (0.005, 0.05, 0.3):
        method = IoU(alpha=alpha, block_neurons=4)
        method.rank(x, y)
        np.testing.assert_array_equal(method.thresholds_,
                                      np.quantile(x, 1 - alpha, axis=0))
        for row, concept in zip(method.scores_, method.concepts_, strict=True):
            np.testing.assert_allclose(row, direct_iou(x, y, concept, alpha), rtol=0, atol=0)
        np.testing.assert_array_equal(method.mask_sizes_,
                                      (x > method.thresholds_).sum(axis=0))
    assert method.scores_[:, 1].tolist() == [0.0] * 4


def test_signed_scores_low_activations():
    x, y = planted()
    x[y == "B", 2] -= 3.0  # B words push neuron 2 down
    high = IoU(alpha=0.1)
    high.rank(x, y)
    signed = IoU(alpha=0.1, signed=True)
    ranking = signed.rank(x, y)
    low_mask = x < np.quantile(x, 0.1, axis=0)
    b = (y == "B")[:, None]
    low = (low_mask & b).sum(axis=0) / (low_mask | b).sum(axis=0)
    np.testing.assert_array_equal(signed.low_thresholds_, np.quantile(x, 0.1, axis=0))
    np.testing.assert_allclose(signed.scores_[1], np.maximum(high.scores_[1], low))
    assert ranking.top(1, "B") == ["n2"] and ranking.top(1, "A") == ["n5"]
    assert ranking.extra["direction"]["B"][2] == -1
    assert ranking.extra["direction"]["A"][5] == 1


def test_threshold_at_zero():
    x, y = planted()
    method = IoU(alpha=None)
    method.rank(x, y)
    mask = x > 0
    for row, concept in zip(method.scores_, method.concepts_, strict=True):
        c = (y == concept)[:, None]
        np.testing.assert_allclose(row, (mask & c).sum(0) / (mask | c).sum(0))
    assert method.thresholds_.tolist() == [0.0] * 8


def test_subsampled_cut_is_exact_and_falls_back():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40_000, 3)).astype(np.float32)
    x[:, 1] = np.round(x[:, 1], 2)
    for q in (0.995, 0.005):
        thr, (rows, cols, vals) = tail_quantiles(x, q, seed=3)
        np.testing.assert_array_equal(thr, np.quantile(x, q, axis=0))
        beyond = x > thr if q > 0.5 else x < thr
        for j in range(3):  # the candidates hold every entry beyond the threshold
            picked = rows[(cols == j) & ((vals > thr[j]) if q > 0.5 else (vals < thr[j]))]
            assert sorted(picked.tolist()) == np.flatnonzero(beyond[:, j]).tolist()

    class FirstRow:  # subsample rows 0, step, 2 * step, ...
        def integers(self, low: int, high: int) -> int:
            return 0

    # Column 2's sampled rows are all huge, so the sample's cut lies far too high.
    step = 40_000 // iou_module._SAMPLE_ROWS
    x[::step, 2] = 100 + np.arange(len(x[::step, 2]), dtype=np.float32)
    index = int(np.floor((40_000 - 1) * 0.99))
    a, b, (rows, cols, vals) = iou_module._order_stats(x, index, True, FirstRow())
    ref = np.sort(x, axis=0)
    np.testing.assert_array_equal(a, ref[index])
    np.testing.assert_array_equal(b, ref[index + 1])
    # The fallback column still lists exactly its entries from the order statistic up.
    assert sorted(rows[cols == 2].tolist()) == np.flatnonzero(x[:, 2] >= a[2]).tolist()
    np.testing.assert_array_equal(vals[cols == 2], x[rows[cols == 2], 2])


def test_store_matches_array_and_neuron_subsets(tmp_path):
    x, y = planted()
    store, corpus = labelled_store(tmp_path / "store", x, y)
    labels = corpus.concept_labels("tag")
    from_store = IoU(alpha=0.05, block_neurons=3)
    ranking = from_store.rank(store, labels)
    from_array = IoU(alpha=0.05)
    from_array.rank(x, y)
    np.testing.assert_array_equal(from_store.scores_, from_array.scores_)
    np.testing.assert_array_equal(from_store.thresholds_, from_array.thresholds_)
    assert ranking.top(1, "A") == ["L1.hidden.1"]
    assert ranking.store_fingerprint == store.fingerprint and ranking.label_layer == "tag"
    sub = IoU(alpha=0.05, neurons=["L1.hidden.1", "L0.hidden.2"])
    sub_ranking = sub.rank(store, labels)
    np.testing.assert_array_equal(sub.scores_, from_array.scores_[:, [5, 2]])
    assert sorted(sub_ranking.names.values()) == ["L0.hidden.2", "L1.hidden.1"]
    sub_array = IoU(alpha=0.05, neurons=[5, 2])
    sub_array.rank(x, y)
    np.testing.assert_array_equal(sub_array.scores_, sub.scores_)


def test_does_not_mutate_inputs():
    x, y = planted()
    x[::3, 0] = 0.001  # small values: NeuroX's "IoU probe" zeroes these in place
    x_before, y_before = x.copy(), y.copy()
    IoU(alpha=0.05, signed=True).rank(x, y)
    IoU(alpha=None).rank(x, y)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_clear_errors(tmp_path):
    x, y = planted()
    with pytest.raises(NeuronscopeError, match=r"\['Z'\] absent"):
        IoU(concepts=["A", "Z"]).rank(x, y)
    with pytest.raises(NeuronscopeError, match="single class"):
        IoU().rank(x, np.full(N, "A"))
    for bad in (np.nan, np.inf):
        broken = x.copy()
        broken[17, 6] = bad
        with pytest.raises(NeuronscopeError, match="NaN or inf .*row 17, neuron n6"):
            IoU(block_neurons=3).rank(broken, y)
    with pytest.raises(NeuronscopeError, match="alpha"):
        IoU(alpha=1.5).rank(x, y)
    store, corpus = labelled_store(tmp_path / "store", x, y)
    other = ConceptLabels(np.asarray(y), "tag", "0" * 16)
    with pytest.raises(FingerprintMismatchError, match="other than the one store"):
        IoU().rank(store, other)
    with pytest.raises(NeuronscopeError, match="600 labels for 599"):
        IoU().rank(x[:-1], y)
