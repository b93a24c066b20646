"""ActivationStore reading API, metadata, dtypes and corpus checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import (
    DamagedStoreError,
    FingerprintMismatchError,
    StoreError,
    UnknownComponentError,
)
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore, StoreWriter, read_meta
from neuronscope.store.store import META_FILE


@pytest.fixture(scope="module")
def store(extracted) -> ActivationStore:
    """BERT store: hidden (3 x 32), mlp (2 x 64), attn (2 x 32, heads of 8), mean pooling."""
    return extracted("bert", "mean")


def test_info(store, small_corpus, tiny_bert):
    info = store.info()
    for key in ("path", "model", "model_fingerprint", "components", "n_neurons", "n_sentences",
                "n_words", "corpus", "corpus_fingerprint", "aggregation", "sentence_pooling",
                "dtype", "complete", "words_done", "windows", "tool_version"):
        assert key in info, key
    assert info["model"] == "tiny-bert"
    assert info["model_fingerprint"] == tiny_bert.fingerprint
    assert info["components"] == {
        "hidden": {"layers": [0, 1, 2], "neurons": 32},
        "mlp": {"layers": [0, 1], "neurons": 64},
        "attn": {"layers": [0, 1], "neurons": 32, "head_dim": 8},
    }
    assert info["n_neurons"] == 3 * 32 + 2 * 64 + 2 * 32 == store.n_neurons
    assert info["n_sentences"] == small_corpus.n_sentences == store.n_sentences
    assert info["n_words"] == small_corpus.n_words == info["words_done"]
    assert info["corpus"] == "small"
    assert info["corpus_fingerprint"] == small_corpus.fingerprint == store.corpus_fingerprint
    assert info["aggregation"] == "mean" and info["sentence_pooling"] == "mean"
    assert info["dtype"] == "float32" and info["complete"] is True
    json.dumps(info)  # JSON-ready
    assert store.components == ["hidden", "mlp", "attn"]
    assert store.model_fingerprint == tiny_bert.fingerprint
    assert store.fingerprint == f"{tiny_bert.fingerprint}-{small_corpus.fingerprint}-mean"
    assert store.chunk_words == 4096
    assert "hidden: 3x32" in repr(store) and "complete" in repr(store)


def test_metadata_on_disk(store, tiny_bert):
    meta = read_meta(store.path)
    assert meta["format"] == "neuronscope-activation-store"
    assert meta["complete"] is True
    assert meta["model"]["config_hash"] == tiny_bert.config_hash
    assert meta["model"]["num_layers"] == 2 and meta["model"]["random_init"] is False
    assert meta["windows_config"]["max_length"] == 64
    assert meta["windows_config"]["causal"] is False
    assert "finished" in meta and "created" in meta


def test_words_table(store, small_corpus):
    assert store.words() == small_corpus.words()
    np.testing.assert_array_equal(store.sentence_ids(), small_corpus.sentence_ids())
    np.testing.assert_array_equal(store.positions(), small_corpus.positions())
    assert store.sentence_ids().dtype == np.int64
    labels = small_corpus.labels_array("upos")
    assert len(labels) == store.n_words  # labels line up with rows


def test_layer_component_matrix_consistency(store):
    matrix = store.matrix()
    assert matrix.dtype == np.float32 and matrix.shape == (123, store.n_neurons)
    hidden = store.component("hidden")
    mlp = store.component("mlp")
    attn = store.component("attn")
    np.testing.assert_array_equal(matrix, np.concatenate([hidden, mlp, attn], axis=1))
    assert hidden.shape == (123, 96)
    for k, layer in enumerate((0, 1, 2)):
        np.testing.assert_array_equal(store.layer("hidden", layer),
                                      hidden[:, 32 * k: 32 * k + 32])
        sl = store.layout.layer_slice("hidden", layer)
        np.testing.assert_array_equal(store.layer("hidden", layer), matrix[:, sl])
    np.testing.assert_array_equal(store.layer("mlp", 1), matrix[:, 96 + 64: 96 + 128])
    # Some layers, in any order.
    np.testing.assert_array_equal(store.component("hidden", [2, 0]),
                                  np.concatenate([hidden[:, 64:], hidden[:, :32]], axis=1))
    np.testing.assert_array_equal(store.component("mlp", [0, 1]), mlp)


def test_row_selection(store):
    matrix = store.matrix()
    np.testing.assert_array_equal(store.matrix(slice(10, 20)), matrix[10:20])
    np.testing.assert_array_equal(store.layer("mlp", 0, slice(3, 30, 4)),
                                  store.layer("mlp", 0)[3:30:4])
    picked = np.array([50, 2, 9, 2])
    np.testing.assert_array_equal(store.layer("hidden", 1, picked),
                                  store.layer("hidden", 1)[picked])
    np.testing.assert_array_equal(store.component("attn", rows=slice(100, None)),
                                  store.component("attn")[100:])
    np.testing.assert_array_equal(store.matrix(slice(-5, None)), matrix[-5:])


def test_neurons_by_name_and_id_in_any_order(store):
    matrix = store.matrix()
    layout = store.layout
    names = ["L1.mlp.63", "L0.hidden.0", "L1.attn.h3.7", "L2.hidden.31", "L0.mlp.5"]
    ids = [layout.id(n) for n in names]
    assert ids == [96 + 64 + 63, 0, 96 + 128 + 32 + 31, 95, 96 + 5]
    np.testing.assert_array_equal(store.neurons(names), matrix[:, ids])
    np.testing.assert_array_equal(store.neurons(ids), matrix[:, ids])
    mixed = [ids[0], names[1], np.int64(ids[2]), 7, 7]
    np.testing.assert_array_equal(store.neurons(mixed), matrix[:, [ids[0], 0, ids[2], 7, 7]])
    np.testing.assert_array_equal(store.neurons(names, slice(5, 9)), matrix[5:9][:, ids])
    assert store.neurons([]).shape == (123, 0)


def test_iter_chunks(store):
    matrix = store.matrix()
    chunks = list(store.iter_chunks(chunk_words=7))
    assert [c[0] for c in chunks] == list(range(0, 123, 7))
    assert [c[1] for c in chunks] == [min(s + 7, 123) for s in range(0, 123, 7)]
    assert all(b.dtype == np.float32 for _, _, b in chunks)
    np.testing.assert_array_equal(np.concatenate([b for _, _, b in chunks]), matrix)
    names = ["L2.hidden.3", "L0.attn.h0.1"]
    parts = [b for _, _, b in store.iter_chunks(names, chunk_words=50)]
    assert [p.shape for p in parts] == [(50, 2), (50, 2), (23, 2)]
    np.testing.assert_array_equal(np.concatenate(parts), store.neurons(names))
    # Default step: the store's chunk size, larger than this corpus: one block.
    assert len(list(store.iter_chunks())) == 1


def test_dask(store):
    da = store.dask()
    assert da.shape == (123, store.n_neurons)
    np.testing.assert_array_equal(np.asarray(da.compute(), np.float32), store.matrix())
    np.testing.assert_array_equal(store.dask("mlp").compute(), store.component("mlp"))


def test_sentence_vectors_are_means_of_word_rows(store, small_corpus):
    offsets = small_corpus.sentence_offsets()
    for comp in store.components:
        words = store.component(comp)
        sent = store.sentence_vectors(comp)
        assert sent.shape == (small_corpus.n_sentences, words.shape[1])
        expected = np.stack([words[offsets[i]: offsets[i + 1]].mean(axis=0)
                             for i in range(small_corpus.n_sentences)])
        np.testing.assert_allclose(sent, expected, rtol=1e-5, atol=1e-6)


def test_no_sentence_vectors(tmp_path, small_corpus, tiny_bert):
    store = extract(small_corpus, tmp_path / "s", tiny_bert, sentence_pooling="none",
                    progress=False)
    with pytest.raises(StoreError, match="no sentence vectors"):
        store.sentence_vectors("hidden")
    assert not (tmp_path / "s" / "sentences").exists()


def test_float16(extracted, store):
    half = extracted("bert", "mean", dtype="float16")
    assert half.info()["dtype"] == "float16"
    group = zarr.open_group(str(half.path), mode="r")
    assert group["activations/hidden"].dtype == np.float16
    assert group["sentences/mlp"].dtype == np.float16
    matrix = half.matrix()
    assert matrix.dtype == np.float32  # reads come back as float32
    full = store.matrix()
    np.testing.assert_allclose(matrix, full, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(matrix, full.astype(np.float16).astype(np.float32))
    assert half.layer("mlp", 0).dtype == np.float32
    assert half.neurons(["L0.mlp.1"]).dtype == np.float32
    assert half.sentence_vectors("hidden").dtype == np.float32
    # float16 halves the disk size of the raw chunks.
    size = {s: sum(p.stat().st_size for p in (s.path / "activations").rglob("*")
                   if p.is_file() and p.name != "zarr.json")
            for s in (half, store)}
    assert size[store] >= 123 * store.n_neurons * 4
    # (exactly half but for the shards' per-chunk CRCs and indexes, a few bytes per chunk)
    assert size[half] * 2 == pytest.approx(size[store], rel=0.02)


def test_chunk_layout(tmp_path, small_corpus, tiny_bert):
    store = extract(small_corpus, tmp_path / "c", tiny_bert, components=("hidden", "mlp"),
                    chunk_words=16, progress=False)
    group = zarr.open_group(str(store.path), mode="r")
    assert group["activations/hidden"].chunks == (16, 32)
    assert group["activations/mlp"].chunks == (16, 64)
    assert group["activations/mlp"].shape == (123, 128)
    # One shard file per 16 rows holds every layer's chunk of those rows.
    assert group["activations/mlp"].shards == (16, 128)
    assert sorted(p.name for p in (store.path / "activations/mlp/c").iterdir()) == sorted(
        str(i) for i in range(8))
    assert store.chunk_words == 16
    assert len(list(store.iter_chunks())) == 8


def test_check_corpus(store, small_corpus):
    store.check_corpus(small_corpus)
    # Labels are not part of the fingerprint: an annotated copy still matches.
    relabelled = small_corpus.with_layer("x", [["a"] * len(s) for s in small_corpus.sentences])
    store.check_corpus(relabelled)
    other = small_corpus.subset(range(1, small_corpus.n_sentences))
    with pytest.raises(FingerprintMismatchError, match="not the corpus") as info:
        store.check_corpus(other)
    assert other.fingerprint in str(info.value) and store.corpus_fingerprint in str(info.value)
    assert isinstance(info.value, StoreError)
    # Same words, other sentence boundaries: another corpus.
    words = small_corpus.words()
    with pytest.raises(FingerprintMismatchError):
        store.check_corpus(Corpus([words[:60], words[60:]]))


def test_unknown_names(store):
    with pytest.raises(UnknownComponentError, match="this store has: hidden, mlp, attn"):
        store.layer("ffn", 0)
    with pytest.raises(UnknownComponentError, match="this store has"):
        store.component("ffn")
    with pytest.raises(UnknownComponentError, match="no layer 2; layers: \\[0, 1\\]"):
        store.layer("mlp", 2)
    with pytest.raises(UnknownComponentError, match="no layer 5"):
        store.component("hidden", [0, 5])
    with pytest.raises(UnknownComponentError):
        store.neurons(["L0.mlp.64"])
    with pytest.raises(UnknownComponentError, match="out of range"):
        store.neurons([store.n_neurons])
    with pytest.raises(UnknownComponentError):
        store.dask("ffn")
    with pytest.raises(StoreError, match="no sentence vectors"):
        store.sentence_vectors("ffn")


def test_open_is_the_constructor(store):
    other = ActivationStore.open(store.path)
    assert other.meta == store.meta and other.n_words == store.n_words


def test_writer_marks_store_incomplete_from_the_start(tmp_path, store, small_corpus):
    """The metadata is on disk, marked incomplete, as soon as the store is created."""
    meta = {k: v for k, v in store.meta.items()
            if k not in ("format", "format_version", "complete", "created", "finished",
                         "chunk_words", "progress")}
    writer = StoreWriter.create(tmp_path / "new", meta, small_corpus, chunk_words=32)
    on_disk = read_meta(tmp_path / "new")
    assert on_disk["complete"] is False
    assert on_disk["progress"] == {"words_done": 0, "sentences_done": 0}
    assert (tmp_path / "new" / META_FILE).exists()
    partial = ActivationStore(tmp_path / "new", allow_incomplete=True)
    assert partial.n_words == 0 and partial.matrix().shape == (0, store.n_neurons)
    # Rows not yet written read back as NaN (the fill value), never as plausible zeros.
    raw = zarr.open_group(str(tmp_path / "new"), mode="r")["activations/hidden"][:5]
    assert np.isnan(raw).all()
    # A commit may only count rows written in every component (the open checks this).
    writer.write_rows("hidden", 0, store.component("hidden"))
    writer.commit(50, 3)
    with pytest.raises(DamagedStoreError, match="activations/mlp/c/0/0 is not in the manifest"):
        ActivationStore(tmp_path / "new", allow_incomplete=True)
    for comp in store.components:
        writer.write_rows(comp, 0, store.component(comp))
        writer.write_sentences(comp, 0, store.sentence_vectors(comp))
    writer.commit(50, 3)
    partial = ActivationStore(tmp_path / "new", allow_incomplete=True)
    assert partial.n_words == 50
    np.testing.assert_array_equal(partial.component("hidden"), store.component("hidden")[:50])
    with pytest.raises(StoreError, match="cannot finalize"):
        writer.finalize()
    writer.commit(123, 10)
    writer.update_meta(note="hello")
    writer.finalize(extra=1)
    done = ActivationStore(tmp_path / "new")
    assert done.complete and done.meta["note"] == "hello" and done.meta["extra"] == 1
    with pytest.raises(StoreError, match="already complete"):
        StoreWriter.resume(tmp_path / "new")
    with pytest.raises(StoreError, match="already exists"):
        StoreWriter.create(tmp_path / "new", meta, small_corpus)
