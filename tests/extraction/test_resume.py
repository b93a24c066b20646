"""Crash safety: an interrupted extraction leaves a recognizable partial store that resumes
to exactly the values of an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import IncompleteStoreError, NeuronscopeError, StoreError
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore, StoreWriter, read_meta

# Tiny budget: the minimum block of 256 words, so the corpus below spans several blocks.
SMALL_BLOCKS = {"block_bytes": 1, "chunk_words": 100, "batch_size": 4, "progress": False}


class Crash(Exception):
    """Stands in for a power cut or a killed process."""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, big_corpus, tiny_bert):
    out = tmp_path_factory.mktemp("clean") / "store"
    return extract(big_corpus, out, tiny_bert, components=("hidden", "mlp"), **SMALL_BLOCKS)


def _hook_counts(model) -> list[tuple[int, int]]:
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]


def _fail_after(monkeypatch, method: str, n_ok: int) -> list[int]:
    """Make ``StoreWriter.<method>`` raise :class:`Crash` after ``n_ok`` successful calls."""
    original = getattr(StoreWriter, method)
    calls = [0]

    def flaky(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] > n_ok:
            raise Crash(f"{method} call {calls[0]}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, method, flaky)
    return calls


def _count_calls(monkeypatch, method: str) -> list[int]:
    """Count the calls of ``StoreWriter.<method>`` that return."""
    original = getattr(StoreWriter, method)
    calls = [0]

    def counted(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls[0] += 1
        return result

    monkeypatch.setattr(StoreWriter, method, counted)
    return calls


def _committed(ends: list[int], n_commits: int, chunk_words: int = 100) -> int:
    """Rows recorded after ``n_commits`` block commits: the last block end with all its rows
    on disk. Rows are written up to the last multiple of ``chunk_words`` a block reaches (the
    rest with the next block), all of them with the last block."""
    if n_commits == 0:
        return 0
    end = ends[n_commits - 1]
    written = end if n_commits == len(ends) else end - end % chunk_words
    return max(e for e in [0, *ends[:n_commits]] if e <= written)


def _block_ends(corpus: Corpus, block_words: int = 256) -> list[int]:
    """Word counts at the end of each block (the rows a commit can record)."""
    ends = []
    offsets = corpus.sentence_offsets()
    start = 0
    for i in range(1, corpus.n_sentences + 1):
        if offsets[i] - offsets[start] >= block_words:
            ends.append(int(offsets[i]))
            start = i
    if not ends or ends[-1] != corpus.n_words:
        ends.append(corpus.n_words)
    return ends


@pytest.mark.parametrize(
    ("method", "n_ok"),
    [
        ("commit", 1),  # dies while committing block 2: block 1's rows are all on disk now
        ("commit", 2),
        ("write_rows", 3),  # dies inside block 2, between its writes of the two components
        ("write_rows", 6),  # dies inside block 3
        ("write_rows", 0),  # dies before anything is written
    ],
)
def test_interrupt_then_resume_is_bitwise_equal(method, n_ok, monkeypatch, tmp_path, big_corpus,
                                                tiny_bert, uninterrupted):
    out = tmp_path / "store"
    hooks_before = _hook_counts(tiny_bert.model)
    commits = _count_calls(monkeypatch, "commit")
    _fail_after(monkeypatch, method, n_ok)
    with pytest.raises(Crash):
        extract(big_corpus, out, tiny_bert, components=("hidden", "mlp"), **SMALL_BLOCKS)
    monkeypatch.undo()
    assert _hook_counts(tiny_bert.model) == hooks_before  # no hook left behind by the crash

    # A partial store is on disk and says so.
    meta = read_meta(out)
    assert meta["complete"] is False
    done = int(meta["progress"]["words_done"])
    ends = _block_ends(big_corpus)
    assert len(ends) >= 3
    # Blocks 1, 2 and 3 write each component once, twice (held rows, then whole files), twice.
    assert commits[0] == (n_ok if method == "commit" else {0: 0, 3: 1, 6: 2}[n_ok])
    assert done == _committed(ends, commits[0])
    assert done in [0, *ends]
    assert done < big_corpus.n_words
    with pytest.raises(IncompleteStoreError, match="resume|allow_incomplete"):
        ActivationStore(out)

    partial = ActivationStore(out, allow_incomplete=True)
    assert partial.complete is False and partial.n_words == done
    assert partial.info()["complete"] is False
    assert partial.info()["words_done"] == done
    assert "PARTIAL" in repr(partial)
    assert partial.matrix().shape == (done, partial.n_neurons)
    np.testing.assert_array_equal(partial.matrix(), uninterrupted.matrix()[:done])
    assert partial.words() == big_corpus.words()[:done]
    assert sum(b.shape[0] for _, _, b in partial.iter_chunks(chunk_words=64)) == done
    assert partial.dask().shape == (done, partial.n_neurons)

    resumed = extract(big_corpus, out, tiny_bert, components=("hidden", "mlp"), resume=True,
                      **SMALL_BLOCKS)
    assert resumed.complete and resumed.n_words == big_corpus.n_words
    assert np.array_equal(resumed.matrix(), uninterrupted.matrix())
    for comp in ("hidden", "mlp"):
        assert np.array_equal(resumed.sentence_vectors(comp), uninterrupted.sentence_vectors(comp))
    assert resumed.info()["windows"] == uninterrupted.info()["windows"]
    assert resumed.info()["windows"]["sentences_windowed"] == 6
    assert np.isfinite(resumed.matrix()).all()

    with pytest.raises(StoreError, match="already complete"):
        extract(big_corpus, out, tiny_bert, components=("hidden", "mlp"), resume=True,
                **SMALL_BLOCKS)


@pytest.fixture()
def partial_store(monkeypatch, tmp_path, big_corpus, tiny_bert):
    out = tmp_path / "partial"
    _fail_after(monkeypatch, "commit", 1)
    with pytest.raises(Crash):
        extract(big_corpus, out, tiny_bert, components=("hidden", "mlp"), **SMALL_BLOCKS)
    monkeypatch.undo()
    return out


def test_resume_with_other_settings_is_refused(partial_store, big_corpus, tiny_bert):
    before = (partial_store / "neuronscope.json").read_bytes()
    with pytest.raises(StoreError, match="aggregation"):
        extract(big_corpus, partial_store, tiny_bert, components=("hidden", "mlp"),
                resume=True, aggregation="max", **SMALL_BLOCKS)
    with pytest.raises(StoreError, match="components"):
        extract(big_corpus, partial_store, tiny_bert, components=("hidden",), resume=True,
                **SMALL_BLOCKS)
    with pytest.raises(StoreError, match="dtype"):
        extract(big_corpus, partial_store, tiny_bert, components=("hidden", "mlp"),
                resume=True, dtype="float16", **SMALL_BLOCKS)
    settings = dict(SMALL_BLOCKS, batch_size=8)
    with pytest.raises(StoreError, match="batch_size"):
        extract(big_corpus, partial_store, tiny_bert, components=("hidden", "mlp"),
                resume=True, **settings)
    assert (partial_store / "neuronscope.json").read_bytes() == before


def test_resume_with_other_corpus_is_refused(partial_store, big_corpus, small_corpus,
                                             tiny_bert):
    with pytest.raises(StoreError, match="corpus") as info:
        extract(small_corpus, partial_store, tiny_bert, components=("hidden", "mlp"),
                resume=True, **SMALL_BLOCKS)
    assert big_corpus.fingerprint in str(info.value)
    assert small_corpus.fingerprint in str(info.value)


def test_resume_with_other_model_is_refused(partial_store, big_corpus, tiny_gpt2):
    with pytest.raises(StoreError, match="model"):
        extract(big_corpus, partial_store, tiny_gpt2, components=("hidden", "mlp"),
                resume=True, **SMALL_BLOCKS)


def test_resume_and_overwrite_conflict(partial_store, big_corpus, tiny_bert, tmp_path):
    with pytest.raises(NeuronscopeError, match="either resume or overwrite"):
        extract(big_corpus, partial_store, tiny_bert, resume=True, overwrite=True)
    with pytest.raises(StoreError, match="does not exist"):
        extract(big_corpus, tmp_path / "nothing-here", tiny_bert, resume=True, progress=False)
    with pytest.raises(StoreError, match="not a neuronscope"):
        extract(big_corpus, tmp_path, tiny_bert, resume=True, progress=False)


def test_overwrite_partial_store(partial_store, big_corpus, tiny_bert, uninterrupted):
    redo = extract(big_corpus, partial_store, tiny_bert, components=("hidden", "mlp"),
                   overwrite=True, **SMALL_BLOCKS)
    assert np.array_equal(redo.matrix(), uninterrupted.matrix())


def test_store_writer_refuses_to_finalize_early(partial_store):
    writer = StoreWriter.resume(partial_store)
    with pytest.raises(StoreError, match="cannot finalize"):
        writer.finalize()
    assert read_meta(partial_store)["complete"] is False
