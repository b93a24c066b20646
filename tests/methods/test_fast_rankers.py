"""The compiled corpus rankers equal the previous (numpy) implementations and independent
computations within 1e-6 (issue #16)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.methods.iou import IoU
from neuronscope.methods.probeless import Probeless
from neuronscope.methods.ranking import Ranking
from neuronscope.methods.selectivity import Selectivity


def problem(seed: int, n: int = 4000, d: int = 30, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.choice(list("ABCDEFG"), n, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.07, 0.03])
    x = (rng.standard_normal((n, d)) * rng.uniform(0.1, 10, d) + rng.uniform(-5, 5, d))
    x[y == "G", 4] += 6.0
    if d > 9:
        x[:, 9] = np.maximum(x[:, 9], 0)  # ReLU-like: many ties at 0
    if decimals is not None:
        x = np.round(x, decimals)
    return x.astype(np.float32), y


def old_searched_iou(block, codes, sizes, cuts):
    """The previous numpy implementation of the threshold search (argpartition + argsort +
    bincount per cut), kept here as the reference."""
    n, k = block.shape
    n_c = len(sizes)
    top = int(cuts[-1])
    part = (np.argpartition(-block, top - 1, axis=0)[:top] if top < n
            else np.broadcast_to(np.arange(n)[:, None], (n, k)))
    vals = np.take_along_axis(block, part, axis=0)
    order = np.argsort(-vals, axis=0, kind="stable")
    rows = np.take_along_axis(part, order, axis=0)
    vals = np.take_along_axis(vals, order, axis=0)
    inter = np.zeros((n_c, k))
    best = np.full((n_c, k), -1.0)
    best_thr = np.zeros((n_c, k), np.float32)
    offset = np.arange(k)
    prev = 0
    for m in cuts.tolist():
        seg = codes[rows[prev:m]] * k + offset
        inter += np.bincount(seg.ravel(), minlength=(n_c + 1) * k)[: n_c * k].reshape(n_c, k)
        iou = inter / (m + sizes[:, None] - inter)
        better = iou > best
        best = np.where(better, iou, best)
        best_thr = np.where(better, vals[m - 1][None, :], best_thr)
        prev = m
    return best, best_thr


def threshold_searched_iou(x, y, concepts, cuts):
    """Independent: for each cut m, the mask ``x >= t`` with t the m-th largest value (a cut
    inside a group of equal values takes the whole group: every mask is a threshold)."""
    best = np.full((len(concepts), x.shape[1]), -1.0)
    for j in range(x.shape[1]):
        ordered = np.sort(x[:, j])[::-1]
        for m in cuts:
            on = x[:, j] >= ordered[m - 1]
            for i, c in enumerate(concepts):
                is_c = y == c
                best[i, j] = max(best[i, j], (on & is_c).sum() / (on | is_c).sum())
    return best


@pytest.mark.parametrize("signed", [False, True])
def test_iou_search_equals_the_previous_implementation(signed):
    x, y = problem(0)
    method = IoU(signed=signed, n_jobs=2, block_neurons=7)
    method.rank(x, y)
    concepts = method.concepts_
    codes = np.asarray([concepts.index(v) for v in y])
    sizes = np.bincount(codes, minlength=len(concepts)).astype(np.float64)
    cuts = np.round(np.asarray(method.rank(x, y).extra["mask_fractions_tried"]) * len(x))
    cuts = cuts.astype(np.int64)
    best, thr = old_searched_iou(x, codes, sizes, cuts)
    if signed:
        low, _ = old_searched_iou(-x, codes, sizes, cuts)
        best = np.maximum(best, low)
    # Column 9 ties at 0 across a cut: the old argpartition broke them arbitrarily.
    cols = [j for j in range(x.shape[1]) if j != 9]
    np.testing.assert_allclose(method.scores_[:, cols], best[:, cols], rtol=0, atol=1e-12)
    if not signed:
        np.testing.assert_array_equal(method.thresholds_[:, cols], thr[:, cols])
    # With ties everywhere, masks are thresholds: whole groups of equal values.
    xr, yr = problem(1, n=1500, d=6, decimals=1)
    tied = IoU(n_jobs=1)
    ranking = tied.rank(xr, yr)
    cuts = np.round(np.asarray(ranking.extra["mask_fractions_tried"]) * len(xr)).astype(int)
    np.testing.assert_allclose(tied.scores_,
                               threshold_searched_iou(xr, yr, tied.concepts_, cuts),
                               rtol=0, atol=1e-12)
    for i, concept in enumerate(tied.concepts_):  # each score is that of its own threshold
        on = xr >= tied.thresholds_[i]
        is_c = (yr == concept)[:, None]
        np.testing.assert_allclose(tied.scores_[i], (on & is_c).sum(0) / (on | is_c).sum(0),
                                   rtol=0, atol=1e-12)


def test_selectivity_and_probeless_equal_direct_numpy():
    x, y = problem(2)
    x64 = x.astype(np.float64)
    method = Selectivity(chunk_words=333, n_jobs=2)
    method.rank(x, y)
    spread = x64.max(0) - x64.min(0)
    for i, c in enumerate(method.concepts_):
        expected = (x64[y == c].mean(0) - x64[y != c].mean(0)) / spread
        np.testing.assert_allclose(method.scores_[i], expected, rtol=0, atol=1e-9)
    probeless = Probeless()
    probeless.rank(x, y)
    classes = probeless.classes_
    means = np.stack([x64[y == c].mean(0) for c in classes])
    within = sum(((x64[y == c] - x64[y == c].mean(0)) ** 2).sum(0) for c in classes)
    np.testing.assert_allclose(probeless.class_means_, means, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(probeless.scale_, np.sqrt(within / (len(x) - len(classes))),
                               rtol=1e-9)


def test_rank_memory_option(cli_store, small_conllu, tmp_path):
    runner = CliRunner()
    out = tmp_path / "ap.json"
    args = ["rank", str(cli_store), str(small_conllu), "--labels", "upos", "--method", "ap",
            "--out", str(out)]
    result = runner.invoke(app, [*args, "--memory", "2GB"])
    assert result.exit_code == 0, result.output
    ranking = Ranking.from_json(out)
    assert ranking.params["memory"] == "2GB"
    assert json.loads(out.read_text())["method"] == "ap"
    tight = runner.invoke(app, [*args, "--memory", "1kB", "--overwrite"])
    assert tight.exit_code != 0 and "memory budget" in str(tight.exception)
    bad = runner.invoke(app, [*args, "--memory", "lots", "--overwrite"])
    assert bad.exit_code != 0 and "memory" in str(bad.exception)


def numpy_best_iou(x, codes, sizes, cuts, sign):
    """Plain numpy reference of the compiled threshold search for one sign: for each cut m
    (ascending, never below the previous mask), the mask ``sign * x >= t`` with t the m-th
    largest of ``sign * x``; the first best IoU per concept, its mask size and threshold."""
    v = sign * x.astype(np.float64)
    ordered = np.sort(v)[::-1]
    best = np.full(len(sizes), -1.0)
    best_m = np.zeros(len(sizes), np.int64)
    best_t = np.zeros(len(sizes))
    prev = 0
    for cut in cuts:
        t = ordered[max(cut, prev, 1) - 1]
        on = v >= t
        m = int(on.sum())
        inter = np.bincount(codes[on], minlength=len(sizes) + 1)[: len(sizes)].astype(float)
        iou = inter / (m + sizes - inter)
        better = iou > best
        best[better], best_m[better], best_t[better] = iou[better], m, t
        prev = m
    return best, best_m, sign * best_t


def tied_columns(rng, n):
    """Columns with many ties, signed zeros, a constant, one 16-bit key bucket holding
    many distinct values, and a wide range of magnitudes."""
    cols = [np.round(rng.standard_normal(n), 1),
            np.where(rng.random(n) < 0.5, 0.0, rng.standard_normal(n)),
            rng.choice([0.0, -0.0, 1.0, -1.0, 2.5], n),
            np.full(n, -3.0),
            1.0 + rng.random(n) / 200,  # one bucket of the search, almost no ties
            rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n),
            np.maximum(np.round(rng.standard_normal(n) * 3), 0)]
    return [np.ascontiguousarray(c, dtype=np.float32) for c in cols]


@pytest.mark.parametrize("n", [1, 2, 7, 3000])
def test_iou_search_kernel_equals_numpy_with_ties(n):
    """The compiled search (one pass per sign, cut buckets sorted) equals the numpy
    reference exactly: IoU, mask sizes and thresholds, high and low masks."""
    from neuronscope.methods import kernels

    rng = np.random.default_rng(n)
    n_c = 5
    codes = rng.integers(0, n_c + 1, n).astype(np.int32)  # code n_c: other labels
    sizes = np.bincount(codes, minlength=n_c + 1)[:n_c].astype(np.float64)
    sizes = np.maximum(sizes, 1.0)  # concepts are never empty
    cuts = np.unique(np.clip(np.r_[rng.integers(1, n + 1, 12), 1, n - 1], 1, max(n - 1, 1)))
    starts = np.empty(kernels.N_TOP + 1, np.int64)
    seg_of = np.empty(kernels.N_TOP, np.int64)
    cand = np.empty(n, np.uint64)
    best = np.empty((2, n_c))
    best_m = np.empty((2, n_c), np.int64)
    best_key = np.empty((2, n_c), np.uint32)
    for x in tied_columns(rng, n):
        kernels.best_iou_search(x, codes, n_c + 1, sizes, cuts, True, starts, seg_of, cand,
                                best, best_m, best_key, np.empty(3))
        for side, sign in enumerate((1.0, -1.0)):
            iou, m, t = numpy_best_iou(x, codes, sizes, cuts, sign)
            np.testing.assert_array_equal(best[side], iou)
            np.testing.assert_array_equal(best_m[side], m)
            np.testing.assert_array_equal(kernels.value_of_keys(best_key[side], sign),
                                          t.astype(np.float32))
