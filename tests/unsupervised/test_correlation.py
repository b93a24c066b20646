"""Streamed correlation: agreement with an in-memory reference, constants, blocks, disk."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.store import ActivationView
from neuronscope.unsupervised.correlation import (
    ColumnSource,
    CorrelationResult,
    correlation_matrix,
)

from .conftest import write_store


def reference(x: np.ndarray) -> np.ndarray:
    """np.corrcoef in float64 with NeuroX' convention for constant neurons."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.nan_to_num(np.corrcoef(x.astype(np.float64).T))
    np.fill_diagonal(ref, 1.0)
    return ref


def rows_with_structure(n: int, seed: int = 0) -> np.ndarray:
    """12 neurons of mixed scales and large means, with a copy, a negation and a constant."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12)) @ rng.standard_normal((12, 12))
    x = x * rng.uniform(0.1, 20, 12) + rng.uniform(-1e3, 1e3, 12)  # large means: cancellation
    x[:, 4] = x[:, 1]
    x[:, 5] = -2.5 * x[:, 1] + 7.0
    x[:, 9] = 3.25
    return x.astype(np.float32)


def test_streaming_store_matches_in_memory(tmp_path, corpus):
    x = rows_with_structure(corpus.n_words)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1, 2))
    result = correlation_matrix(store, chunk_words=37)  # many uneven chunks
    assert result.matrix.dtype == np.float32 and result.matrix.shape == (12, 12)
    np.testing.assert_allclose(result.matrix, reference(x), atol=1e-6)
    assert result.names[:2] == ["L0.hidden.0", "L0.hidden.1"]
    assert result.n_words == corpus.n_words


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("max_bytes", [10**9, 8 * 12 * 3])  # whole Gram / 3-row blocks
def test_blocks_and_precisions_agree(precision, max_bytes):
    x = rows_with_structure(500, seed=1)
    result = correlation_matrix(x, chunk_words=64, max_bytes=max_bytes, precision=precision)
    np.testing.assert_allclose(result.matrix, reference(x), atol=1e-6)
    np.testing.assert_array_equal(result.matrix, result.matrix.T)


def test_constant_neurons_reported_without_nan():
    x = rows_with_structure(300)
    result = correlation_matrix(x)
    assert result.constant == ["n9"]
    assert np.isfinite(result.matrix).all()
    assert result.matrix[9, 9] == 1.0
    assert np.all(np.delete(result.matrix[9], 9) == 0)
    assert result.std[9] == 0
    assert result.matrix[1, 4] == pytest.approx(1.0, abs=1e-6)
    assert result.matrix[1, 5] == pytest.approx(-1.0, abs=1e-6)


def test_neuron_selection_and_rows(tmp_path, corpus):
    x = rows_with_structure(corpus.n_words)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1, 2))
    result = correlation_matrix(store, neurons=["L2.hidden.1", "L0.hidden.1", 5])
    assert result.names == ["L2.hidden.1", "L0.hidden.1", "L1.hidden.1"]
    np.testing.assert_allclose(result.matrix, reference(x[:, [9, 1, 5]]), atol=1e-6)
    rows = np.arange(0, corpus.n_words, 3)
    sub = correlation_matrix(x, rows=rows, chunk_words=10)
    np.testing.assert_allclose(sub.matrix, reference(x[rows]), atol=1e-6)
    assert sub.n_words == len(rows)


def test_two_sources_side_by_side(tmp_path, corpus):
    x = rows_with_structure(corpus.n_words)
    y = np.random.default_rng(5).standard_normal((corpus.n_words, 3)).astype(np.float32)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1, 2))
    source = ColumnSource([(store, None), (y, None)], chunk_words=50)
    result = correlation_matrix(source)
    np.testing.assert_allclose(result.matrix, reference(np.hstack([x, y])), atol=1e-6)
    assert list(result.part_offsets) == [0, 12, 15]


def test_a_view_of_some_rows_and_neurons(tmp_path, corpus):
    # The held-out rows of a store through ActivationView: read in place, never copied.
    x = rows_with_structure(corpus.n_words)
    store = write_store(tmp_path / "s", corpus, {"hidden": x}, layers=(0, 1, 2))
    rows = np.flatnonzero(store.sentence_ids() % 3 == 0)
    view = ActivationView(store, layers=[1, 2], rows=rows)
    result = correlation_matrix(view, chunk_words=23)
    np.testing.assert_allclose(result.matrix, reference(x[np.ix_(rows, np.arange(4, 12))]),
                               atol=1e-6)
    assert result.names[0] == "L1.hidden.0" and result.n_words == len(rows)


def test_write_to_disk_and_load(tmp_path):
    x = rows_with_structure(200)
    result = correlation_matrix(x, out=tmp_path / "corr.npy", max_bytes=8 * 12 * 5)
    assert isinstance(result.matrix, np.memmap)
    loaded = CorrelationResult.load(tmp_path / "corr.npy")
    np.testing.assert_array_equal(np.asarray(loaded.matrix), np.asarray(result.matrix))
    assert loaded.constant == ["n9"] and loaded.names == result.names
    np.testing.assert_allclose(loaded.matrix, reference(x), atol=1e-6)


def test_errors():
    x = rows_with_structure(50)
    with pytest.raises(NeuronscopeError, match="precision"):
        correlation_matrix(x, precision="float16")
    with pytest.raises(NeuronscopeError, match="at least 2 words"):
        correlation_matrix(x[:1])
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(NeuronscopeError, match="row 7"):
        correlation_matrix(bad, chunk_words=4)
    with pytest.raises(NeuronscopeError, match="column indices"):
        correlation_matrix(x, neurons=["L0.hidden.1"])
    with pytest.raises(NeuronscopeError, match="same corpus"):
        ColumnSource([(x, None), (x[:10], None)])
