"""The tiled co-moment accumulator (plans, passes, memory) and the split of the linkage."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from neuronscope.unsupervised import clustering, comoments
from neuronscope.unsupervised.clustering import _condensed_distances
from neuronscope.unsupervised.comoments import plan_passes, tile_bytes
from neuronscope.unsupervised.correlation import ColumnSource, correlation_matrix

from .conftest import write_store
from .test_correlation import reference, rows_with_structure


@pytest.mark.parametrize("d, max_bytes, tile_rows", [(12, 10**9, 5), (12, 8 * 12 * 3, 512),
                                                     (100, 8 * 100 * 30, 16), (7, 8, 4)])
def test_plan_covers_the_upper_triangle_within_the_budget(d, max_bytes, tile_rows):
    passes = plan_passes(d, max_bytes, tile_rows)
    tiles = [t for p in passes for t in p]
    # Consecutive row tiles from 0 to d, none higher than asked.
    assert tiles[0][0] == 0 and tiles[-1][1] == d
    assert all(a < b <= a + tile_rows for a, b in tiles)
    assert all(t[1] == u[0] for t, u in zip(tiles, tiles[1:], strict=False))
    for p in passes:  # a pass fits the budget, or is a single (one-row at least) tile
        assert sum(tile_bytes(t, d) for t in p) <= max_bytes or len(p) == 1


def test_one_pass_when_the_triangle_fits():
    d = 11904
    (tiles,) = plan_passes(d, 2**40)
    triangle = sum(tile_bytes(t, d) for t in tiles)
    assert triangle < 0.6 * 8 * d * d  # about half of a full float64 D x D matrix
    assert tiles[0] == (0, 2114)  # a 96 MiB float32 product
    assert len(plan_passes(d, 2**30)) == 1
    assert len(plan_passes(d, 256 * 2**20)) > 1  # a smaller budget: several passes
    assert plan_passes(2688, 2**30) == [[(0, 2688)]]  # one x^T x product (syrk)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_tiles_pieces_and_batched_merges_match_the_reference(monkeypatch, precision):
    # Small tiles, several passes, reads split into pieces, rank-one terms flushed often.
    monkeypatch.setattr(comoments, "TILE_BYTES", 4 * 12 * 5)  # 5-row tiles
    monkeypatch.setattr(comoments, "_MIN_TILE_ROWS", 1)
    monkeypatch.setattr(comoments, "_GRAM_ROWS", 13)
    monkeypatch.setattr(comoments, "_TERMS", 3)
    x = rows_with_structure(700, seed=3)
    for max_bytes in (10**9, 8 * 12 * 9):
        result = correlation_matrix(x, chunk_words=50, max_bytes=max_bytes, precision=precision)
        np.testing.assert_allclose(result.matrix, reference(x), atol=1e-6)
        np.testing.assert_array_equal(result.matrix, result.matrix.T)
        assert result.constant == ["n9"]
        np.testing.assert_allclose(result.mean, x.astype(np.float64).mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(result.std, np.where(np.arange(12) == 9, 0.0,
                                                        x.astype(np.float64).std(axis=0)),
                                   rtol=1e-6)


def test_store_read_in_whole_chunks_for_the_gram(tmp_path, corpus):
    x = rows_with_structure(corpus.n_words)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1, 2), chunk_words=16)
    source = ColumnSource.of(store, chunk_words=64)
    assert source.rows_within(4 * 12 * 64) == 64  # at most what was asked
    assert source.rows_within(4 * 12 * 40) == 32  # whole store chunks
    assert source.rows_within(4 * 12 * 5) == 16  # a store chunk at least
    sizes = [stop - start for start, stop, _ in source.chunks(chunk_words=100)]
    assert sizes[0] == 100 and sum(sizes) == corpus.n_words
    np.testing.assert_allclose(correlation_matrix(source).matrix, reference(x), atol=1e-6)


def test_memory_holds_the_triangle_not_two_square_matrices(monkeypatch):
    # A float64 D x D accumulator next to the float32 result (the old row-block layout with a
    # large budget) would take 12 bytes per pair; the tiles take about 4 and the result 4.
    monkeypatch.setattr(comoments, "TILE_BYTES", 4 * 128 * 2048)  # 128-row tiles
    n, d, rows = 2048, 2048, 256
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    tracemalloc.start()
    try:
        result = correlation_matrix(x, chunk_words=rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    triangle = 8 * d * (d + 128) // 2
    chunk = 4 * rows * d  # two in flight, one being read; plus the product buffer
    assert peak < 4 * d * d + triangle + 3 * chunk + 4 * 128 * d + 2**20
    assert peak < 4 * d * d + 8 * d * d
    assert result.matrix.shape == (d, d)


@pytest.mark.parametrize("dead", [[], [0, 5, 6, 29], list(range(0, 300, 3))])
def test_condensed_distances_skip_constant_neurons(dead):
    # Few constant neurons: kept columns copied by runs; many: by a fancy index.
    rng = np.random.default_rng(1)
    m = rng.uniform(-1, 1, (300, 300)).astype(np.float32)
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    keep = np.setdiff1d(np.arange(300), dead)
    expected = 1.0 - np.abs(squareform(m[np.ix_(keep, keep)].astype(np.float64),
                                       checks=False))
    np.testing.assert_array_equal(_condensed_distances(m, keep), expected)


def _partition(labels: np.ndarray) -> list[list[int]]:
    return sorted(sorted(np.flatnonzero(labels == v).tolist()) for v in np.unique(labels))


@pytest.mark.parametrize("linkage", ["average", "complete", "single", "weighted"])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7, 0.95])
def test_components_give_the_clusters_of_one_linkage(monkeypatch, linkage, threshold):
    # Groups of correlated neurons of varied strength, a chain, and independent ones.
    rng = np.random.default_rng(2)
    base = rng.standard_normal((600, 8))
    cols = [base[:, g] + s * rng.standard_normal(600) for g in range(8)
            for s in (0.1, 0.4, 0.8, 1.5)]
    cols += [rng.standard_normal(600) for _ in range(10)]
    corr = correlation_matrix(np.column_stack(cols).astype(np.float32))
    keep = np.arange(corr.n_neurons)
    dist = _condensed_distances(corr.matrix, keep)
    full = hierarchy.fcluster(hierarchy.linkage(dist, method=linkage), t=1.0 - threshold,
                              criterion="distance")
    split = clustering._flat_clusters(corr, keep, threshold, linkage)
    assert _partition(split) == _partition(full)
    assert sorted(set(split.tolist())) == list(range(len(set(full.tolist()))))
    monkeypatch.setattr(clustering, "MAX_EDGES", 0)  # too many edges: one linkage of all
    assert clustering._components(corr.matrix, keep, 0.0) is None
    assert _partition(clustering._flat_clusters(corr, keep, threshold, linkage)) == \
        _partition(full)
