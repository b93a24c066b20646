"""Memory budgets of the corpus rankers (``memory=``): bounded working sets, clear refusals,
and results equal to the previous implementations."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.methods import column_pass, spill, statistics
from neuronscope.methods.average_precision import AveragePrecision
from neuronscope.methods.budget import resolve_budget
from neuronscope.methods.iou import IoU
from neuronscope.methods.probeless import Probeless
from neuronscope.methods.selectivity import Selectivity
from neuronscope.store import fastread

from .conftest import labelled_store


def problem(n: int = 3000, d: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(list("ABCDE"), n, p=[0.4, 0.25, 0.2, 0.1, 0.05])
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[y == "B", 3] += 2.0
    x[y == "E", 7] -= 3.0
    return x, y


#: Bytes per word of one thread's buffers, as the rankers plan them.
THREAD_BYTES = {AveragePrecision: 16, IoU: 8}


def test_budget_parsing_and_refusal():
    assert resolve_budget("4GB") == 4 * 10**9
    assert resolve_budget(12345) == 12345
    for bad in ("lots", -1, 0, True):
        with pytest.raises(NeuronscopeError, match="memory"):
            resolve_budget(bad)
    x, y = problem()
    for method in (AveragePrecision(memory="10kB"), IoU(memory="10kB"),
                   Selectivity(memory="1kB"), Probeless(memory="1kB")):
        with pytest.raises(NeuronscopeError, match="memory budget"):
            method.rank(x, y)


@pytest.mark.parametrize("cls", [AveragePrecision, IoU])
def test_column_blocks_shrink_to_the_budget(cls, monkeypatch):
    """The largest block of full columns fits the budget; scores equal the unbounded run's."""
    x, y = problem()
    n = len(x)
    seen: list[tuple[int, int]] = []
    original = column_pass.iter_column_blocks

    def spy(data, block_neurons):
        for cols, block in original(data, block_neurons):
            seen.append(block.shape)
            yield cols, block

    monkeypatch.setattr(column_pass, "iter_column_blocks", spy)
    free = cls(n_jobs=1)
    free.rank(x, y)
    assert max(s[1] for s in seen) == x.shape[1]  # unbounded: one block
    seen.clear()
    fixed = n * THREAD_BYTES[cls]  # one thread's sort buffers
    # Room for five columns: two blocks in flight and the thread's transposed sub-block.
    budget = fixed + 5 * (8 + 4) * n
    tight = cls(n_jobs=1, memory=budget)
    tight.rank(x, y)
    assert max(s[1] for s in seen) == 5 and len(seen) == 5  # 24 neurons in blocks of <= 5
    assert fixed + 12 * n * max(s[1] for s in seen) <= budget
    np.testing.assert_array_equal(tight.scores_, free.scores_)


@pytest.mark.parametrize("cls", [Selectivity, Probeless])
def test_row_chunks_shrink_to_the_budget(cls, monkeypatch):
    x, y = problem()
    d = x.shape[1]
    rows_seen: list[int] = []
    original = statistics._row_chunks

    def spy(data, rows):
        for start, stop, block in original(data, rows):
            rows_seen.append(stop - start)
            yield start, stop, block

    monkeypatch.setattr(statistics, "_row_chunks", spy)
    free = cls()
    free.rank(x, y)
    n_classes = 6 if cls is Selectivity else 5  # Selectivity adds "other"
    budget = 8 * d * n_classes * 5 + 32 * d + 8 * d * 100  # room for 100 rows
    tight = cls(memory=budget)
    tight.rank(x, y)
    assert max(rows_seen[-30:]) == 100 and len(rows_seen) >= 30
    if cls is Selectivity:
        np.testing.assert_allclose(tight.scores_, free.scores_, rtol=0, atol=1e-12)
    else:
        np.testing.assert_allclose(tight.class_means_, free.class_means_, rtol=0, atol=1e-12)


def _peak(method, store, labels) -> int:
    tracemalloc.start()
    try:
        method.rank(store, labels)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_block_wise_peak_memory_stays_below_the_matrix(tmp_path):
    """On a store, AP and IoU under a small budget hold a fraction of the matrix, well under
    what the default blocks (a whole layer, two in flight) take (tracemalloc counts numpy's
    and the store reader's allocations)."""
    x, y = problem(n=60000, d=64, seed=1)
    store, corpus = labelled_store(tmp_path / "s", x, y, chunk_words=2048)
    labels = corpus.concept_labels("tag")
    budget = len(x) * 16 + 4 * 12 * len(x)  # four columns (see the test above)
    for cls in (AveragePrecision, IoU):
        free, tight = cls(n_jobs=1), cls(n_jobs=1, memory=budget)
        peak_free, peak_tight = _peak(free, store, labels), _peak(tight, store, labels)
        assert peak_tight < 0.6 * x.nbytes and peak_tight < peak_free / 1.5, (
            cls.__name__, peak_tight, peak_free, x.nbytes)
        np.testing.assert_array_equal(tight.scores_, free.scores_)


@pytest.mark.parametrize("cls", [AveragePrecision, IoU])
@pytest.mark.parametrize("jobs", [1, 2])
def test_spilled_columns_give_the_same_scores(cls, jobs, tmp_path, monkeypatch):
    """A store spilled through the scratch transpose (forced: threshold 0, row blocks and
    groups smaller than the data) scores exactly like the in-memory array."""
    x, y = problem(n=2500, d=24, seed=3)
    store, corpus = labelled_store(tmp_path / "s", x, y, chunk_words=128)
    labels = corpus.concept_labels("tag")
    monkeypatch.setattr(column_pass, "SPILL_BYTES", 0)
    monkeypatch.setattr(spill, "ROW_BLOCK", 300)
    written: list[int] = []
    original = spill._write_all

    def spy(fd, data, offset):
        written.append(len(data))
        original(fd, data, offset)

    monkeypatch.setattr(spill, "_write_all", spy)
    spilled, reference = cls(n_jobs=jobs, block_neurons=5), cls(n_jobs=jobs, block_neurons=5)
    ranked = spilled.rank(store, labels)
    assert written and max(written) == 300  # row blocks of 300 words went through the file
    expected = reference.rank(x, y)
    np.testing.assert_array_equal(spilled.scores_, reference.scores_)
    assert ranked.global_order.tolist() == expected.global_order.tolist()


def test_spilled_columns_refuse_nan_with_rows_and_neuron(tmp_path, monkeypatch):
    x, y = problem(n=900, d=8, seed=4)
    x[700, 5] = np.nan
    store, corpus = labelled_store(tmp_path / "s", x, y, chunk_words=128)
    monkeypatch.setattr(column_pass, "SPILL_BYTES", 0)
    monkeypatch.setattr(spill, "ROW_BLOCK", 256)
    with pytest.raises(NeuronscopeError, match=r"rows 512-767: .*first at row 188, neuron"):
        AveragePrecision(n_jobs=1).rank(store, corpus.concept_labels("tag"))


def test_spill_scratch_write_failure_is_a_clear_error(tmp_path, monkeypatch):
    x, y = problem(n=900, d=8, seed=5)
    store, corpus = labelled_store(tmp_path / "s", x, y, chunk_words=128)
    monkeypatch.setattr(column_pass, "SPILL_BYTES", 0)

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fastread.os, "pwrite", full)  # the scratch file's writes
    with pytest.raises(NeuronscopeError, match="scratch file in .*No space left on device.*TMPDIR"):
        IoU(n_jobs=1).rank(store, corpus.concept_labels("tag"))
