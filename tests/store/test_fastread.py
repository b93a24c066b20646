"""The fast read path's own mechanics: pieces, direct reads, bytes read, CRC streaming."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import DamagedStoreError
from neuronscope.store import ActivationStore, ActivationView, fastread, store_from_arrays
from neuronscope.store.integrity import MANIFEST_FILE, checksum, read_manifest, verify

SENTENCES = [[f"w{i}" for i in range(j, j + 3 + j % 4)] for j in range(0, 300, 5)]
CHUNK = 32  # words per chunk; the corpus ends inside a chunk row (rows past it are padding)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(SENTENCES, {}, name="fastread")


@pytest.fixture(scope="module")
def values(corpus) -> np.ndarray:
    assert corpus.n_words % CHUNK
    rng = np.random.default_rng(5)
    return (rng.standard_normal((corpus.n_words, 3 * 12)) * 5).astype(np.float32)


def _store(path, corpus, values, **kw) -> ActivationStore:
    return store_from_arrays(path, corpus, {"hidden": (values, [0, 1, 2])}, chunk_words=CHUNK,
                             **kw)


def _reads(store: ActivationStore) -> list[np.ndarray]:
    out = np.full((50, 40), -1.0, dtype=np.float32)
    store.read_into("hidden", slice(7, 57), slice(None), out[:, 1:-3])  # strided destination
    return [store.matrix(), store.layer("hidden", 1), store.layer("hidden", 2, rows=slice(5, 71)),
            store.neurons(["L1.hidden.3", "L0.hidden.11", "L2.hidden.0"], rows=slice(3, 90)),
            ActivationView(store).restrict(np.arange(1, store.n_words, 3)).matrix(), out]


@pytest.mark.parametrize("dtype,compression,sharded", [
    ("float32", "none", True), ("float32", "none", False), ("float16", "none", True),
    ("bfloat16", "zstd", True), ("float32", "blosc-lz4", False)])
def test_small_pieces_split_chunks_and_stay_bitwise_equal(tmp_path, corpus, values,
                                                          monkeypatch, dtype, compression,
                                                          sharded):
    store = _store(tmp_path / "s", corpus, values, dtype=dtype, compression=compression,
                   sharded=sharded)
    # 100 bytes: two rows of 12 float32 (one of float16 is 24 bytes: four rows) per piece,
    # so every chunk is read in many pieces, ending inside a row block.
    monkeypatch.setattr(fastread, "PIECE_BYTES", 100)
    # Buffers over 64 bytes are not kept per thread here: the path for big chunks (the
    # other tests read through kept ones).
    monkeypatch.setattr(fastread, "KEEP_BYTES", 64)
    fast = _reads(store)
    store.fast_reads = False
    slow = _reads(store)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)


def _count_reads(monkeypatch) -> list[int]:
    sizes: list[int] = []
    real = os.preadv

    def preadv(fd, buffers, offset):
        n = real(fd, buffers, offset)
        sizes.append(n)
        return n

    monkeypatch.setattr(os, "preadv", preadv)
    return sizes


def test_one_layer_of_a_shard_reads_only_its_chunks(tmp_path, corpus, values, monkeypatch):
    store = _store(tmp_path / "s", corpus, values)
    plan = store._plan("hidden", store._array("hidden"))
    assert plan is not None and plan.sharded and plan.inner_grid == (1, 3)
    shards = -(-corpus.n_words // CHUNK)
    sizes = _count_reads(monkeypatch)
    layer = store.layer("hidden", 1)
    # Per shard: its index (3 entries + CRC) and one layer's chunk with its CRC, no more.
    assert sum(sizes) == shards * ((16 * 3 + 4) + (CHUNK * 12 * 4 + 4))
    np.testing.assert_array_equal(layer, values[:, 12:24])
    sizes.clear()
    store.layer("hidden", 1, rows=slice(40, 70))  # chunk rows 1 and 2 of the shards only
    assert sum(sizes) == 2 * ((16 * 3 + 4) + (CHUNK * 12 * 4 + 4))
    sizes.clear()
    store.matrix()  # whole files: every byte once, for the manifest's CRC
    files = sum(size for key, (size, _) in read_manifest(store.path).items()
                if key.startswith("activations/hidden/c/"))
    assert sum(sizes) == files + shards * (16 * 3 + 4)  # the index is read twice


def test_unchecked_reads_read_only_the_rows_asked(tmp_path, corpus, values, monkeypatch):
    store = _store(tmp_path / "s", corpus, values, sharded=False)
    unchecked = ActivationStore(store.path, checksums=False)
    sizes = _count_reads(monkeypatch)
    got = unchecked.layer("hidden", 0, rows=slice(10, 20))
    assert sum(sizes) == 10 * 12 * 4  # ten rows of one chunk: no CRC, no other row
    np.testing.assert_array_equal(got, values[10:20, :12])


def test_damaged_index_and_chunks_are_refused(tmp_path, corpus, values):
    store = _store(tmp_path / "s", corpus, values)
    key = "activations/hidden/c/1/0"
    path = store.path / key
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[-10] ^= 0x01  # inside the shard index
    path.write_bytes(bytes(damaged))
    opened = ActivationStore(store.path)
    with pytest.raises(DamagedStoreError, match=f"file {key}: its shard index fails its checksum"):
        opened.layer("hidden", 0)
    with pytest.raises(DamagedStoreError, match=f"file {key} fails its checksum"):
        opened.matrix()
    damaged = bytearray(original)
    damaged[CHUNK * 12 * 4 - 1] ^= 0x40  # the last byte of layer 0's chunk
    path.write_bytes(bytes(damaged))
    opened = ActivationStore(store.path)
    np.testing.assert_array_equal(opened.layer("hidden", 2), values[:, 24:])
    for read in (lambda: opened.layer("hidden", 0), opened.matrix,
                 lambda: opened.matrix(rows=slice(CHUNK, 2 * CHUNK))):
        with pytest.raises(DamagedStoreError, match=f"file {key} fails its checksum"):
            read()


def test_shard_with_shared_chunk_bytes_is_checked_in_a_pass_of_its_own(tmp_path, corpus,
                                                                        values):
    """Two index entries naming the same bytes: the file CRC cannot be summed in one sweep."""
    store = _store(tmp_path / "s", corpus, values)
    key = "activations/hidden/c/0/0"
    path = store.path / key
    data = bytearray(path.read_bytes())
    index = np.frombuffer(bytes(data[-(16 * 3 + 4):-4]), dtype="<u8").reshape(3, 2).copy()
    index[2] = index[0]  # layer 2 now reads layer 0's chunk of this shard
    data[-(16 * 3 + 4):-4] = index.tobytes()
    data[-4:] = np.array([checksum(np.frombuffer(index.tobytes(), np.uint8))], "<u4").tobytes()
    path.write_bytes(bytes(data))
    manifest = json.loads((store.path / MANIFEST_FILE).read_text())
    manifest["files"][key] = [len(data), checksum(np.frombuffer(bytes(data), np.uint8))]
    (store.path / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert verify(store.path) == []
    opened = ActivationStore(store.path)
    fast = opened.matrix()
    opened.fast_reads = False
    np.testing.assert_array_equal(fast, opened.matrix())
    np.testing.assert_array_equal(fast[:CHUNK, 24:], values[:CHUNK, :12])
    data[5] ^= 0x02  # now damage it: the separate pass still refuses it
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedStoreError, match=f"file {key} fails its checksum"):
        ActivationStore(store.path).matrix()
