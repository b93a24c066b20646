"""Chunk files written directly (store.rawwrite) are bitwise equal to the ones Zarr writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from neuronscope.corpus.corpus import Corpus
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore, StoreWriter, faults, layout
from neuronscope.store.integrity import read_manifest, verify
from neuronscope.store.rawwrite import RawWriter


def _zarr_only(monkeypatch) -> None:
    """Route every write through Zarr (the path the direct writer replaces)."""
    monkeypatch.setattr(RawWriter, "write_files", lambda *a: False)
    monkeypatch.setattr(RawWriter, "write_rows_in_place", lambda *a: False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("neuronscope.json", ".lock")}


def _meta(n_layers: int, neurons: int, dtype: str) -> dict:
    return {"components": {"hidden": {"layers": list(range(n_layers)), "neurons": neurons,
                                      "head_dim": None, "source": "arrays", "modules": {}}},
            "dtype": dtype, "sentence_pooling": "mean", "aggregation": "mean",
            "windows": {}, "model": {"name": "m", "fingerprint": "f"}}


def _corpus(lengths: list[int]) -> Corpus:
    sentences = [[f"w{i}_{j}" for j in range(n)] for i, n in enumerate(lengths)]
    return Corpus(sentences=sentences, name="c")


def _fill_store(path: Path, corpus: Corpus, writes: list[tuple[int, int, int, int]],
                values: np.ndarray, sentences: np.ndarray, *, dtype: str, n_layers: int,
                neurons: int, chunk_words: int, compression: str = "none",
                sharded: bool = True, resume_after: int | None = None) -> None:
    """Write rows / sentences ``(row0, row1, sent0, sent1)`` one call each, committing."""
    meta = _meta(n_layers, neurons, dtype)
    meta["corpus"] = {"name": "c", "fingerprint": corpus.fingerprint,
                      "n_sentences": corpus.n_sentences, "n_words": corpus.n_words}
    writer = StoreWriter.create(path, meta, corpus, chunk_words=chunk_words,
                                compression=compression, sharded=sharded)
    for k, (r0, r1, s0, s1) in enumerate(writes):
        if k == resume_after:  # a new process continues: nothing remembered
            writer.close()
            writer = StoreWriter.resume(path)
        writer.write_rows("hidden", r0, values[r0:r1])
        writer.write_sentences("hidden", s0, sentences[s0:s1])
        writer.commit(r1, s1)
    writer.finalize()


# (n_layers, neurons, dtype, chunk_words, shard bytes): edge chunks in rows and in columns.
LAYOUTS = [
    (3, 5, "float32", 8, layout.SHARD_BYTES),
    (3, 5, "float16", 8, 2 * 8 * 5 * 2),  # two layers per shard: the last shard half outside
    (4, 3, "bfloat16", 7, 3 * 7 * 3 * 2),
]


@pytest.mark.parametrize("sharded", [True, False])
@pytest.mark.parametrize(("n_layers", "neurons", "dtype", "chunk_words", "shard_bytes"),
                         LAYOUTS)
def test_files_equal_zarrs(monkeypatch, tmp_path, n_layers, neurons, dtype, chunk_words,
                           shard_bytes, sharded):
    monkeypatch.setattr(layout, "SHARD_BYTES", shard_bytes)
    corpus = _corpus([5, 3, 7, 1, 6, 4, 2, 9])  # 37 words: the last file is partial
    rng = np.random.default_rng(0)
    values = rng.standard_normal((corpus.n_words, n_layers * neurons)).astype(np.float32)
    values[3, :] = np.nan  # a NaN row
    sentences = rng.standard_normal((corpus.n_sentences, n_layers * neurons)).astype(
        np.float32)
    # Whole files, a write of several files, one to the end; sentences 2 or 3 at a time.
    cw = chunk_words
    writes = [(0, cw, 0, 2), (cw, 3 * cw, 2, 5), (3 * cw, corpus.n_words, 5, 8)]
    kwargs = {"dtype": dtype, "n_layers": n_layers, "neurons": neurons, "chunk_words": cw,
              "sharded": sharded}
    for resume_after in (None, 1):
        direct, ref = tmp_path / f"direct{resume_after}", tmp_path / f"zarr{resume_after}"
        _fill_store(direct, corpus, writes, values, sentences, resume_after=resume_after,
                    **kwargs)
        with monkeypatch.context() as m:
            _zarr_only(m)
            _fill_store(ref, corpus, writes, values, sentences, resume_after=resume_after,
                        **kwargs)
        assert _files(direct) == _files(ref)
        assert read_manifest(direct) == read_manifest(ref)
        assert verify(direct) == []
        store = ActivationStore(direct)
        expect = ActivationStore(ref)
        # The fast reader (checksums verified) and Zarr's own reading agree bitwise.
        assert np.array_equal(store.matrix(), expect.matrix(), equal_nan=True)
        zarr_read = zarr.open_array(direct / "activations" / "hidden", mode="r")[:]
        zarr_ref = zarr.open_array(ref / "activations" / "hidden", mode="r")[:]
        assert np.array_equal(zarr_read, zarr_ref, equal_nan=True)
        assert np.array_equal(store.sentence_vectors("hidden"),
                              expect.sentence_vectors("hidden"), equal_nan=True)


def test_partial_files_and_compression_go_through_zarr(tmp_path):
    corpus = _corpus([5, 3, 7, 1])
    values = np.ones((corpus.n_words, 6), dtype=np.float32)
    sentences = np.ones((corpus.n_sentences, 6), dtype=np.float32)
    for compression, writes in (("zstd", [(0, 16, 0, 4)]), ("none", [(0, 5, 0, 1),
                                                                     (5, 16, 1, 4)])):
        out = tmp_path / compression
        _fill_store(out, corpus, writes, values, sentences, dtype="float32", n_layers=2,
                    neurons=3, chunk_words=8, compression=compression)
        assert verify(out) == []
        assert np.array_equal(ActivationStore(out).matrix(), values)


def test_in_place_rows_keep_the_manifest_crc(tmp_path):
    """Sentence rows written in place: the manifest's CRC is the file's after every write."""
    corpus = _corpus([2] * 10)
    meta = _meta(1, 4, "float32")
    meta["corpus"] = {"name": "c", "fingerprint": corpus.fingerprint, "n_sentences": 10,
                      "n_words": 20}
    writer = StoreWriter.create(tmp_path / "s", meta, corpus, chunk_words=8)
    vectors = np.arange(40, dtype=np.float32).reshape(10, 4)
    for s0, s1 in ((0, 3), (3, 4), (4, 10)):
        writer.write_sentences("hidden", s0, vectors[s0:s1])
        writer.commit(0, 0)
        entries = read_manifest(tmp_path / "s")
        data = (tmp_path / "s" / "sentences" / "hidden" / "c" / "0" / "0").read_bytes()
        from neuronscope.store.integrity import checksum

        assert entries["sentences/hidden/c/0/0"] == [len(data), checksum(
            np.frombuffer(data, dtype=np.uint8))]
        expect = np.full((10, 4), np.nan, dtype=np.float32)
        expect[:s1] = vectors[:s1]
        assert np.array_equal(np.frombuffer(data, dtype=np.float32).reshape(10, 4), expect,
                              equal_nan=True)
    writer.close()


def test_every_direct_file_passes_the_fault_checkpoint(monkeypatch, tmp_path):
    """The crash tests count chunk files written: direct ones count like Zarr's."""
    passes: list[str] = []
    monkeypatch.setattr(faults, "checkpoint", passes.append)
    corpus = _corpus([5, 3, 7, 1, 6, 4, 2, 9])
    values = np.zeros((corpus.n_words, 4), dtype=np.float32)
    sentences = np.zeros((corpus.n_sentences, 4), dtype=np.float32)
    writes = [(0, 16, 0, 4), (16, 37, 4, 8)]
    _fill_store(tmp_path / "direct", corpus, writes, values, sentences, dtype="float32",
                n_layers=2, neurons=2, chunk_words=8)
    direct = passes.count("write:chunk")
    passes.clear()
    _zarr_only(monkeypatch)
    _fill_store(tmp_path / "zarr", corpus, writes, values, sentences, dtype="float32",
                n_layers=2, neurons=2, chunk_words=8)
    assert direct == passes.count("write:chunk") > 0


def test_extraction_is_bitwise_equal_to_zarrs_writes(monkeypatch, tmp_path, big_corpus,
                                                      tiny_bert):
    settings = {"components": ("hidden", "mlp"), "block_bytes": 1, "batch_size": 4,
                "progress": False, "chunk_words": 100}
    extract(big_corpus, tmp_path / "direct", tiny_bert, **settings)
    _zarr_only(monkeypatch)
    extract(big_corpus, tmp_path / "zarr", tiny_bert, **settings)
    assert _files(tmp_path / "direct") == _files(tmp_path / "zarr")
