"""The chunk manifest, the metadata schema and the checks on open, on read and in verify."""

from __future__ import annotations

import gc
import json
import os
import pickle

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import DamagedStoreError, StoreError, StoreLockedError
from neuronscope.store import ActivationStore, StoreWriter, read_meta, store_from_arrays
from neuronscope.store.integrity import (
    MANIFEST_FILE,
    SettledKeys,
    checksum,
    meta_problems,
    read_manifest,
    verify,
)
from neuronscope.store.lock import StoreLock, lock_path

SENTENCES = [[f"w{i}" for i in range(j, j + 5 + j % 3)] for j in range(0, 300, 6)]


@pytest.fixture()
def corpus() -> Corpus:
    return Corpus(SENTENCES, {}, name="toy")


@pytest.fixture()
def values(corpus) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((corpus.n_words, 12)).astype(np.float32)


@pytest.fixture()
def store(tmp_path, corpus, values) -> ActivationStore:
    return store_from_arrays(tmp_path / "s", corpus, {"hidden": (values, [0, 1, 2])},
                             chunk_words=64)


def test_manifest_lists_every_file_with_size_and_crc(store):
    entries = read_manifest(store.path)
    on_disk = {str(p.relative_to(store.path)) for p in store.path.rglob("*") if p.is_file()}
    assert set(entries) == on_disk - {"neuronscope.json", MANIFEST_FILE}
    for key, (size, crc) in entries.items():
        data = np.fromfile(store.path / key, dtype=np.uint8)
        assert (len(data), checksum(data)) == (size, crc)
    # Chunks equal to the fill value are written too (sentence 0 is all zeros here).
    # Activations are sharded: one file per block of 64 rows holds the chunks of all layers.
    assert "words/sentence_id/c/0" in entries and "activations/hidden/c/3/0" in entries
    assert not any(k.startswith("activations/hidden/c/0/1") for k in entries)


def test_no_files_outside_the_store_and_lock_released(store):
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["s"]


def test_meta_problems_name_keys_and_types(store):
    meta = dict(store.meta)
    assert meta_problems(meta) == []
    bad = json.loads(json.dumps(meta))
    del bad["progress"]
    bad["corpus"]["n_sentences"] = True
    bad["dtype"] = 32
    assert meta_problems(bad) == ["dtype must be a string, got 32",
                                  "corpus.n_sentences must be an integer, got True",
                                  "missing key progress"]
    bad = json.loads(json.dumps(meta))
    bad["progress"]["words_done"] = 5  # still marked complete
    bad["components"]["hidden"]["layers"] = [0, "1"]
    assert any("components.hidden.layers must be a list of integers" in p
               for p in meta_problems(bad))
    bad["components"]["hidden"]["layers"] = [0, 1, 2]
    assert meta_problems(bad) == [f"marked complete but progress.words_done is 5 of "
                                  f"{meta['corpus']['n_words']}"]


def test_settled_keys():
    meta = {"complete": False, "progress": {"words_done": 130}, "chunk_words": 64}
    settled = SettledKeys(meta)
    assert settled("activations/h/c/1/0") and not settled("activations/h/c/2/0")
    assert settled("words/word/c/0") and settled("activations/h/zarr.json")
    assert not settled("sentences/h/c/0/0")
    assert SettledKeys(dict(meta, complete=True))("sentences/h/c/0/0")
    assert pickle.loads(pickle.dumps(settled))("activations/h/c/1/0")


def test_partial_store_checks_settled_chunks_only(tmp_path, corpus, values, store):
    meta = {k: v for k, v in store.meta.items()
            if k not in ("format", "format_version", "complete", "created", "finished",
                         "chunk_words", "progress")}
    writer = StoreWriter.create(tmp_path / "p", meta, corpus, chunk_words=64)
    writer.write_rows("hidden", 0, values[:100])
    writer.commit(100, 17)
    writer.close()
    assert verify(tmp_path / "p") == []
    # Rows 64..99 share chunk row 1 with rows not committed: a resume rewrites that chunk.
    for key, should_fail in (("activations/hidden/c/1/0", False),
                             ("activations/hidden/c/0/0", True)):
        path = tmp_path / "p" / key
        original = path.read_bytes()
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        partial = ActivationStore(tmp_path / "p", allow_incomplete=True)
        if should_fail:
            with pytest.raises(DamagedStoreError, match=f"file {key} fails its checksum"):
                partial.matrix()
            assert verify(tmp_path / "p") == [f"file {key} fails its checksum"]
        else:
            partial.matrix()
        path.write_bytes(original)
    resumed = StoreWriter.resume(tmp_path / "p")
    resumed.write_rows("hidden", 64, values[64:])
    resumed.commit(corpus.n_words, corpus.n_sentences)
    resumed.finalize()
    np.testing.assert_array_equal(ActivationStore(tmp_path / "p").matrix(), values)


def test_format_1_store_opens_with_a_warning_and_newer_is_refused(store, values):
    meta = read_meta(store.path)
    (store.path / MANIFEST_FILE).unlink()
    (store.path / "neuronscope.json").write_text(json.dumps(dict(meta, format_version=1)))
    with pytest.warns(UserWarning, match="before chunk manifests"):
        old = ActivationStore(store.path)
    np.testing.assert_array_equal(old.matrix(), values)
    assert verify(store.path) == []
    (store.path / "neuronscope.json").write_text(json.dumps(dict(meta, format_version=3)))
    with pytest.raises(StoreError, match="format version 3"):
        ActivationStore(store.path)


def test_lock_is_exclusive_names_the_holder_and_cleans_up(tmp_path):
    target = tmp_path / "s"
    first = StoreLock(target).acquire()
    assert lock_path(target).read_text().strip() == str(os.getpid())
    with pytest.raises(StoreLockedError, match=rf"pid {os.getpid()}"):
        StoreLock(target).acquire()
    first.release()
    assert not lock_path(target).exists()
    with StoreLock(target):
        pass
    StoreLock(target).acquire()  # dropped without release: garbage collection frees it
    gc.collect()
    assert not lock_path(target).exists()
    StoreLock(target).acquire().release()


def test_writer_lock_refuses_a_second_writer(tmp_path, corpus, values, store):
    meta = {k: v for k, v in store.meta.items() if k not in ("progress", "complete")}
    writer = StoreWriter.create(tmp_path / "w", meta, corpus, chunk_words=64)
    with pytest.raises(StoreLockedError, match="being written by another process"):
        StoreWriter.resume(tmp_path / "w")
    with pytest.raises(StoreLockedError):
        store_from_arrays(tmp_path / "w", corpus, {"hidden": values}, overwrite=True)
    writer.close()
    store_from_arrays(tmp_path / "w", corpus, {"hidden": values}, overwrite=True)
    assert verify(tmp_path / "w") == []


def test_append_records_added_and_removed_arrays(store, values):
    """A derived component added (then removed) through the writer keeps the store intact."""
    writer = StoreWriter.append(store.path)
    arr = writer.group.create_array("activations/extra", shape=(store.n_words, 6),
                                    chunks=(64, 6), dtype="float32", fill_value=np.nan)
    arr[:] = values[:, :6]
    components = dict(store.meta["components"],
                      extra={"layers": [0], "neurons": 6, "head_dim": None, "derived": True})
    writer.update_meta(components=components)
    writer.close()
    assert verify(store.path) == []
    np.testing.assert_array_equal(ActivationStore(store.path).component("extra"), values[:, :6])
    writer = StoreWriter.append(store.path)
    del writer.group["activations/extra"]
    writer.update_meta(components=dict(store.meta["components"]))
    writer.close()
    assert verify(store.path) == [] and ActivationStore(store.path).components == ["hidden"]
    assert not any("extra" in key for key in read_manifest(store.path))


def test_checksums_off_keeps_size_and_existence_checks(store, values):
    key = "activations/hidden/c/1/0"
    path = store.path / key
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    fast = ActivationStore(store.path, checksums=False)
    assert not np.array_equal(fast.matrix(), values)  # the flip goes unseen without checksums
    with pytest.raises(DamagedStoreError, match=f"file {key} fails its checksum"):
        ActivationStore(store.path).matrix()
    fast = ActivationStore(store.path, checksums=False)
    path.write_bytes(bytes(data[:-4]))
    with pytest.raises(DamagedStoreError, match=f"file {key} has"):
        fast.matrix()
