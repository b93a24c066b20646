"""LinearProbe's row sources: streaming from the store through a mixing buffer against the
in-memory path, memory layouts, the automatic choice, and determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import prepare_input
from neuronscope.methods.linear_probe import LinearProbe
from neuronscope.methods.probe_data import (
    InMemoryRows,
    StreamingRows,
    in_memory_rows,
    use_streaming,
)
from neuronscope.methods.probe_training import check_window
from neuronscope.store.view import ActivationView

from .conftest import labelled_store

CLASSES = np.array(["A", "B", "C", "D"])


def task(n_sentences: int = 300, words: int = 8, d: int = 24, seed: int = 0):
    """Four classes carried by columns 2, 9 and 17 (a noisy copy of each too), the rest
    noise on assorted scales; one sentence id per ``words`` rows."""
    rng = np.random.default_rng(seed)
    n = n_sentences * words
    y = rng.integers(0, 4, n)
    x = rng.standard_normal((n, d)).astype(np.float32)
    for cls, col in ((0, 2), (1, 9), (2, 17)):
        x[y == cls, col] += 2.5
        x[:, col + 1] += 0.5 * x[:, col]
    x = x * rng.uniform(0.5, 3, d).astype(np.float32) + rng.normal(0, 1, d).astype(np.float32)
    return x, CLASSES[y], np.repeat(np.arange(n_sentences), words)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory):
    x, y, _ = task()
    store, corpus = labelled_store(tmp_path_factory.mktemp("s") / "store", x, y, layer="tag",
                                   sentence_length=8, chunk_words=128)
    return x, y, store, corpus


FAST = {"max_epochs": 10, "n_alphas": 4, "batch_size": 64, "buffer_rows": 300}


def split_fit(params: dict, store, corpus, cols: list[str] | None = None
              ) -> tuple[LinearProbe, float]:
    """Rank on the first 200 sentences of the store (a row view) and score on the other 100."""
    train = store.sentence_ids() < 200
    labels = corpus.labels_array("tag")
    probe = LinearProbe(**params)
    probe.rank(ActivationView(store, cols, rows=np.flatnonzero(train)), labels[train])
    test = ActivationView(store, cols, rows=np.flatnonzero(~train))
    return probe, probe.score(test, labels[~train])


def test_streaming_matches_in_memory_and_beats_random_k(stored) -> None:
    _, _, store, corpus = stored
    acc, tops = {}, {}
    for streaming in (False, True):
        probe, acc[streaming] = split_fit({**FAST, "streaming": streaming}, store, corpus)
        assert probe.streaming_ is streaming
        assert probe.validation_unit_ == "sentences"
        tops[streaming] = probe.ranking_from_fit().global_order[:3]
        # Each path's top 3 are signal columns (2, 9, 17 or their noisy copies).
        assert set(tops[streaming].tolist()) <= {2, 3, 9, 10, 17, 18}, tops
    # Same held-out accuracy within noise (the minibatch order differs), far above chance.
    assert abs(acc[False] - acc[True]) < 0.02, acc
    assert min(acc.values()) > 0.6
    # The streamed top 3, retrained and scored on sentences never seen, beat random 3s.
    single = {**FAST, "streaming": True, "alpha": 1e-4, "ranking": "weight"}
    top3 = split_fit(single, store, corpus, store.layout.names(tops[True]))[1]
    rng = np.random.default_rng(0)
    random3 = [split_fit(single, store, corpus,
                         store.layout.names(rng.choice(24, 3, replace=False)))[1]
               for _ in range(4)]
    assert top3 > np.mean(random3) + 2 * np.std(random3), (top3, random3)


def test_streamed_fits_are_deterministic(stored) -> None:
    _, _, store, corpus = stored
    labels = corpus.concept_labels("tag")
    params = {"streaming": True, "buffer_rows": 200, "max_epochs": 3, "n_alphas": 3,
              "batch_size": 64}
    a = LinearProbe(random_state=3, **params).fit(store, labels)
    b = LinearProbe(random_state=3, **params).fit(store, labels)
    c = LinearProbe(random_state=4, **params).fit(store, labels)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    assert a.path_ == b.path_
    assert not np.array_equal(a.coef_, c.coef_)
    # The in-memory path is deterministic too.
    d = LinearProbe(random_state=3, **dict(params, streaming=False)).fit(store, labels)
    e = LinearProbe(random_state=3, **dict(params, streaming=False)).fit(store, labels)
    np.testing.assert_array_equal(d.coef_, e.coef_)


def test_mixing_buffer_visits_each_row_once_with_bounded_memory(stored) -> None:
    x, y, store, _ = stored
    data = prepare_input(store, y)
    source = StreamingRows(data, torch.device("cpu"), buffer_rows=200, chunk_rows=128)
    assert source._buffer.shape == (200 + 128, x.shape[1])
    rows = np.sort(np.random.default_rng(0).choice(len(x), 1500, replace=False))
    generator = torch.Generator().manual_seed(0)
    seen, first = [], None
    for ids, parts in source.shuffled_batches(rows, 50, generator):
        assert len(ids) <= 50
        block = torch.cat(parts)
        np.testing.assert_array_equal(block.numpy(), x[ids])  # rows travel with their ids
        seen.append(ids.copy())
        first = ids.copy() if first is None else first
    order = np.concatenate(seen)
    np.testing.assert_array_equal(np.sort(order), rows)  # every row exactly once
    # Mixed: the stream is not in store order, and the first batch spans several chunks.
    assert not np.array_equal(order, rows)
    assert len(np.unique(first // 128)) > 1
    # Ordered passes give the rows in order.
    blocks = list(source.blocks(rows))
    np.testing.assert_array_equal(np.concatenate([i for i, _ in blocks]), rows)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for _, b in blocks]), x[rows])


def test_any_memory_layout_gives_the_same_fit() -> None:
    x, y, groups = task(n_sentences=120)
    params = {"max_epochs": 3, "n_alphas": 3, "batch_size": 64, "random_state": 1}
    reference = LinearProbe(**params).fit(np.ascontiguousarray(x), y, groups)
    for variant in (np.asfortranarray(x), np.asfortranarray(np.hstack([x, x]))[:, :24],
                    x.astype(np.float64)):
        probe = LinearProbe(**params).fit(variant, y, groups)
        np.testing.assert_array_equal(probe.coef_, reference.coef_)
    # An array can be streamed too (row blocks of any layout), to the same accuracy.
    streamed = LinearProbe(**params, streaming=True, buffer_rows=300).fit(
        np.asfortranarray(x), y, groups)
    assert streamed.streaming_
    assert abs(streamed.score(x, y) - reference.score(x, y)) < 0.03
    # A column selection of a Fortran array = the probe on those columns of a C array.
    cols = [3, 9, 17, 20]
    sub = LinearProbe(**params, neurons=cols).fit(np.asfortranarray(x), y, groups)
    same = LinearProbe(**params).fit(np.ascontiguousarray(x[:, cols]), y, groups)
    np.testing.assert_array_equal(sub.coef_, same.coef_)


def test_automatic_choice_follows_the_memory_budget(stored, monkeypatch) -> None:
    x, y, store, corpus = stored
    data = prepare_input(store, y)
    assert not use_streaming(data, "auto")  # 58 KB fit in any budget
    assert not use_streaming(prepare_input(x, y), "auto")
    monkeypatch.setenv("NEURONSCOPE_MEMORY_LIMIT", "100KB")
    assert use_streaming(data, "auto")  # 2,400 x 24 x 4 bytes > half of 100 KB
    assert not use_streaming(prepare_input(x, y), "auto")  # an array is in memory already
    probe = LinearProbe(max_epochs=2, n_alphas=2, batch_size=64, buffer_rows=300).fit(
        store, corpus.concept_labels("tag"))
    assert probe.streaming_
    with pytest.raises(NeuronscopeError, match="mixing buffer"):
        LinearProbe(streaming=True, buffer_rows=2000).fit(store, corpus.concept_labels("tag"))


def test_the_probe_memory_parameter_is_its_budget(stored) -> None:
    # rank --memory reaches the probe as memory=: it decides streaming like the environment's
    # limit does, and its buffer is sized by it.
    x, y, store, corpus = stored
    data = prepare_input(store, y)
    assert use_streaming(data, "auto", 100_000)  # 230 KB > half of 100 KB
    assert not use_streaming(data, "auto", 10**9)
    labels = corpus.concept_labels("tag")
    small = LinearProbe(max_epochs=2, n_alphas=2, batch_size=64, memory="100KB").fit(
        store, labels)
    assert small.streaming_
    assert not LinearProbe(max_epochs=2, n_alphas=2, batch_size=64, memory="1GB").fit(
        store, labels).streaming_


@pytest.mark.parametrize("budget", [10**9, 1000])
def test_training_layout_remixes_tiles_every_epoch(budget: int) -> None:
    # In the layout (a copy fits the budget) or gathered from the array as it is (it does
    # not): the same tiles, every training row once per epoch, rows with their ids.
    x, y, _ = task(n_sentences=100)
    rows = np.arange(0, len(x), 3)
    data = prepare_input(x, y)
    source = in_memory_rows(data, torch.device("cpu"), 300, rows, seed=5, budget=budget)
    assert source.in_layout == (budget > 1000)
    assert source.tiles_per_batch * source.tile_rows >= 300 and source.tile_rows <= 128
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        seen = []
        for ids, parts in source.shuffled_batches(rows, 300, generator):
            assert len(parts) <= source.tiles_per_batch
            np.testing.assert_array_equal(torch.cat(parts).numpy(), x[ids])
            seen.append(ids)
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), rows)
        epochs.append(seen)
    # Batches differ between epochs (tiles drawn anew), and a batch holds scattered rows.
    assert not np.array_equal(epochs[0][0], epochs[1][0])
    assert np.ptp(epochs[0][0]) > 300
    # Ordered passes give any rows with their ids (a block is valid until the next one).
    others = np.setdiff1d(np.arange(len(x)), rows)
    for wanted in (rows, others, np.arange(len(x))):
        seen = []
        for ids, block in source.blocks(wanted):
            np.testing.assert_array_equal(block.numpy(), x[ids])
            if source.in_layout:  # blocks of training rows or of other rows, never both
                assert np.isin(ids, rows).all() or not np.isin(ids, rows).any()
            seen.append(ids)
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), wanted)
    with pytest.raises(NeuronscopeError, match="training rows"):
        next(source.shuffled_batches(others, 300, generator))


def test_a_copy_in_the_layout_or_gathered_rows_give_the_same_fit(monkeypatch) -> None:
    # The same tiles in the same order; only the standardization moments are summed in
    # another order (row order instead of the layout's), hence float32 rounding apart.
    x, y, groups = task(n_sentences=120)
    params = {"max_epochs": 3, "n_alphas": 3, "batch_size": 64, "random_state": 1}
    copied = LinearProbe(**params).fit(x, y, groups)
    monkeypatch.setenv("NEURONSCOPE_MEMORY_LIMIT", "10KB")  # no room for a copy
    gathered = LinearProbe(**params, streaming=False).fit(x, y, groups)
    np.testing.assert_allclose(gathered.coef_, copied.coef_, rtol=1e-3, atol=1e-6)
    assert [p["nonzero_neurons"] for p in gathered.path_] == [
        p["nonzero_neurons"] for p in copied.path_]
    # A single fit gathers its batches from an array handed in (no copy to repay).
    monkeypatch.delenv("NEURONSCOPE_MEMORY_LIMIT")
    data = prepare_input(x, y)
    assert in_memory_rows(data, torch.device("cpu"), 64, np.arange(len(x)), 0).in_layout
    assert not in_memory_rows(data, torch.device("cpu"), 64, np.arange(len(x)), 0,
                              copy_array=False).in_layout
    assert LinearProbe()._fits_a_path() and not LinearProbe.for_evaluation()._fits_a_path()


def test_in_memory_source_refuses_other_layouts() -> None:
    with pytest.raises(NeuronscopeError, match="C-ordered float32"):
        InMemoryRows(np.zeros((4, 3), order="F", dtype=np.float32), torch.device("cpu"), 8)


def test_streaming_parameters_are_checked() -> None:
    x, y, _ = task(n_sentences=20)
    for bad in ({"streaming": "yes"}, {"buffer_rows": 0}, {"buffer_rows": 2.5}):
        with pytest.raises(NeuronscopeError, match=next(iter(bad))):
            LinearProbe(**bad).fit(x, y)


def test_saved_streamed_probe_round_trips(stored, tmp_path: Path) -> None:
    x, _, store, corpus = stored
    probe = LinearProbe(streaming=True, buffer_rows=300, max_epochs=2, n_alphas=2,
                        batch_size=64).fit(
        store, corpus.concept_labels("tag"))
    probe.save(tmp_path / "p.pt")
    loaded = LinearProbe.load(tmp_path / "p.pt")
    assert loaded.streaming_ and loaded.get_params()["buffer_rows"] == 300
    np.testing.assert_array_equal(loaded.predict(x), probe.predict(store))


def test_check_rows_checks_convergence_within_an_epoch() -> None:
    x, y, groups = task(n_sentences=150)
    params = {"alpha": 1e-3, "ranking": "weight", "batch_size": 32, "tol": 1e-2,
              "random_state": 0}
    by_epoch = LinearProbe(**params, max_epochs=30, check_rows=None).fit(x, y, groups)
    # Checking every 200 rows: the same plateaus come sooner, in fewer passes.
    by_rows = LinearProbe(**params, max_epochs=30, check_rows=200).fit(x, y, groups)
    assert by_epoch.converged_ and by_rows.converged_
    assert by_rows.n_epochs_ < by_epoch.n_epochs_
    assert by_rows.score(x, y) > 0.6
    with pytest.raises(NeuronscopeError, match="check_rows"):
        LinearProbe(check_rows=0).fit(x, y)
    with pytest.raises(NeuronscopeError, match="check_rows"):
        LinearProbe(check_rows="often").fit(x, y)


def test_automatic_check_window_is_half_an_epoch_of_at_least_50_batches() -> None:
    assert check_window("auto", 184_000, 920) == 92_000
    assert check_window("auto", 10_000, 32) == 5_000
    assert check_window("auto", 2_000, 32) == 1_600  # 50 batches of 32
    assert check_window("auto", 1_000, 32) == 1_000  # never more than an epoch
    assert check_window(None, 1_000, 32) == 1_000
    assert check_window(300, 1_000, 32) == 300
