"""Sharded extraction on a 2-worker cluster: bitwise equal to one process, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.distributed.extraction import chunk_region, extract_on
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore, StoreWriter, read_meta
from neuronscope.store.integrity import verify

# 256-word blocks over 100-row chunks: blocks share chunks (edges) and own others whole.
SMALL = {"block_bytes": 1, "chunk_words": 100, "batch_size": 4, "progress": False,
         "components": ("hidden", "mlp")}


@pytest.fixture(scope="module")
def single(tmp_path_factory, big_corpus, tiny_bert) -> ActivationStore:
    return extract(big_corpus, tmp_path_factory.mktemp("one") / "store", tiny_bert, **SMALL)


def assert_bitwise_equal(a: ActivationStore, b: ActivationStore) -> None:
    assert a.components == b.components
    for name in a.components:
        for kind in ("activations", "sentences"):
            x = np.asarray(a._group[f"{kind}/{name}"][:])
            y = np.asarray(b._group[f"{kind}/{name}"][:])
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes(), f"{kind}/{name} differs"
    assert a.meta["windows"] == b.meta["windows"]


def test_chunk_region():
    assert chunk_region(0, 256, 100, 738) == (0, 200)
    assert chunk_region(256, 512, 100, 738) == (300, 500)
    assert chunk_region(512, 738, 100, 738) == (600, 738)  # the last chunk is whole
    assert chunk_region(210, 290, 100, 738) == (210, 210)  # inside one chunk: all edges


def test_distributed_extraction_is_bitwise_equal(tmp_path, big_corpus, tiny_bert, single,
                                                  dask_client):
    store = extract_on(dask_client, big_corpus, tmp_path / "store", tiny_bert,
                    **SMALL)
    assert store.complete and len(read_meta(store.path)["progress"]) == 2
    assert_bitwise_equal(single, store)
    assert verify(store.path) == []  # every chunk listed in the manifest, checksums match


def test_workers_compute_with_this_process_thread_count(tmp_path, small_corpus, tiny_bert,
                                                         dask_client):
    """Sums in matrix products depend on the thread count: the workers (one thread each by
    Dask's default) take this process's count, so real models stay bitwise equal too."""
    import torch

    extract_on(dask_client, small_corpus, tmp_path / "store", tiny_bert, **SMALL)
    assert set(dask_client.run(torch.get_num_threads).values()) == {torch.get_num_threads()}
    extract_on(dask_client, small_corpus, tmp_path / "one-thread", tiny_bert,
               torch_threads=1, **SMALL)
    assert set(dask_client.run(torch.get_num_threads).values()) == {1}


def test_model_loaded_by_name_on_workers(tmp_path, small_corpus, tiny_bert_dir, dask_client):
    kw = {"block_bytes": 1, "chunk_words": 64, "batch_size": 4, "progress": False}
    one = extract(small_corpus, tmp_path / "one", str(tiny_bert_dir), **kw)
    two = extract_on(dask_client, small_corpus, tmp_path / "two", str(tiny_bert_dir),
                     **kw)
    assert_bitwise_equal(one, two)


class Crash(Exception):
    pass


def test_interrupted_distributed_run_resumes(monkeypatch, tmp_path, big_corpus, tiny_bert,
                                             single, dask_client):
    original, calls = StoreWriter.commit, [0]

    def flaky(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] > 1:
            raise Crash("killed after the first block")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, "commit", flaky)
    out = tmp_path / "store"
    with pytest.raises(Crash):
        extract_on(dask_client, big_corpus, out, tiny_bert, **SMALL)
    monkeypatch.setattr(StoreWriter, "commit", original)
    meta = read_meta(out)
    assert not meta["complete"] and 0 < meta["progress"]["words_done"] < big_corpus.n_words
    resumed = extract_on(dask_client, big_corpus, out, tiny_bert, resume=True, **SMALL)
    assert_bitwise_equal(single, resumed)
