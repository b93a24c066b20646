"""Stores at scale: storage dtypes, compression, sharding and the fast read path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import DamagedStoreError, NeuronscopeError
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore, ActivationView, store_from_arrays
from neuronscope.store.dtypes import to_bfloat16_bits
from neuronscope.store.integrity import read_manifest, verify
from neuronscope.store.layout import COMPRESSIONS, activation_array_kwargs

SENTENCES = [[f"w{i}" for i in range(j, j + 4 + j % 5)] for j in range(0, 420, 7)]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(SENTENCES, {}, name="scale")


@pytest.fixture(scope="module")
def values(corpus) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    hidden = (rng.standard_normal((corpus.n_words, 3 * 20)) * 7).astype(np.float32)
    hidden[5, 3] = 1e-30  # a subnormal for float16: rounding must match Zarr's path too
    return {"hidden": hidden, "mlp": rng.standard_normal((corpus.n_words, 2 * 24),
                                                          dtype=np.float32)}


def _store(path, corpus, values, **kw) -> ActivationStore:
    return store_from_arrays(path, corpus, {"hidden": (values["hidden"], [0, 1, 2]),
                                            "mlp": (values["mlp"], [0, 1])},
                             chunk_words=64, **kw)


def _reads(store: ActivationStore) -> list[np.ndarray]:
    """Every read shape the stages use: whole, one layer, rows, scattered neurons, views."""
    view = ActivationView(store, layers=[1])
    subset = ActivationView(store).restrict(np.arange(3, store.n_words, 5))
    out = np.full((40, store.n_neurons + 3), -1.0, dtype=np.float32)
    ActivationView(store).read(60, 100, out=out[:, 2:-1])  # a strided slice of a wider array
    return [store.matrix(), store.layer("hidden", 2), store.layer("mlp", 0, rows=slice(50, 190)),
            store.neurons(["L2.hidden.7", "L0.mlp.3", "L0.hidden.0", "L1.mlp.23"],
                          rows=slice(10, 200)),
            store.neurons(list(range(0, store.n_neurons, 9))), view.matrix(), subset.matrix(),
            np.concatenate([b for _, _, b in store.iter_chunks(chunk_words=50)]), out]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("sharded", [True, False])
def test_fast_path_is_bitwise_equal_to_zarr(tmp_path, corpus, values, dtype, compression,
                                            sharded):
    store = _store(tmp_path / "s", corpus, values, dtype=dtype, compression=compression,
                   sharded=sharded)
    assert store._plan("hidden", store._array("hidden")) is not None  # the fast path is taken
    fast = _reads(store)
    store.fast_reads = False
    slow = _reads(store)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    # What was written comes back, rounded only by the storage dtype.
    expect = np.concatenate([values["hidden"], values["mlp"]], axis=1)
    if dtype == "float16":
        expect = expect.astype(np.float16).astype(np.float32)
    elif dtype == "bfloat16":
        expect = torch.from_numpy(expect).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(fast[0], expect)
    assert verify(store.path) == []
    assert store.info()["compression"] == compression and store.info()["dtype"] == dtype


def test_bfloat16_rounds_like_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 1e3,
                        np.array([0.0, -0.0, np.inf, -np.inf, 3.4e38, 1e-40, 1.00390625,
                                  1.01171875], dtype=np.float32)])
    bits = to_bfloat16_bits(x)
    expect = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bits, expect)
    nan = to_bfloat16_bits(np.array([0x7FC00000, 0xFFC00000, 0x7F800001],
                                    dtype=np.uint32).view(np.float32))
    restored = (nan.astype(np.uint32) << 16).view(np.float32)
    assert np.isnan(restored).all()  # a NaN with low mantissa bits does not round to inf


def test_half_dtypes_halve_the_files_and_stay_close(tmp_path, corpus, values):
    sizes, mats = {}, {}
    for dtype in ("float32", "float16", "bfloat16"):
        store = _store(tmp_path / dtype, corpus, values, dtype=dtype)
        sizes[dtype] = sum(size for key, (size, _) in read_manifest(store.path).items()
                           if key.startswith("activations/") and "/c/" in key)
        mats[dtype] = store.matrix()
    for dtype, tol in (("float16", 2**-11), ("bfloat16", 2**-8)):
        assert sizes[dtype] < 0.52 * sizes["float32"]
        rel = np.abs(mats[dtype] - mats["float32"]) / np.maximum(np.abs(mats["float32"]), 1e-3)
        assert rel.max() <= tol * 1.01, dtype
    array = zarr.open_group(str(tmp_path / "bfloat16"), mode="r")["activations/hidden"]
    assert array.dtype == np.uint16 and array.attrs["neuronscope_bfloat16"] is True


def test_compression_shrinks_compressible_data(tmp_path, corpus, values):
    sparse = {k: np.where(np.abs(v) > 1.5, v, 0).astype(np.float32) for k, v in values.items()}
    sizes = {}
    for compression in COMPRESSIONS:
        store = _store(tmp_path / compression, corpus, sparse, compression=compression)
        np.testing.assert_array_equal(store.matrix()[:, :60], sparse["hidden"])
        sizes[compression] = sum(s for k, (s, _) in read_manifest(store.path).items()
                                 if "/c/" in k and k.startswith("activations/"))
    assert sizes["zstd"] < 0.8 * sizes["none"] and sizes["blosc-lz4"] < 0.8 * sizes["none"]
    with pytest.raises(NeuronscopeError, match="unknown compression 'gzip'"):
        _store(tmp_path / "bad", corpus, values, compression="gzip")
    with pytest.raises(NeuronscopeError, match="unknown storage dtype 'int8'"):
        _store(tmp_path / "bad", corpus, values, dtype="int8")


def test_shards_group_layers_and_bound_their_size():
    kw = activation_array_kwargs(200_000, 32, 14336, np.dtype(np.float16), 4096, "none", True)
    assert kw["chunks"] == (4096, 14336)
    assert kw["shards"] == (4096, 2 * 14336)  # 2 layers = 224 MiB per shard file
    kw = activation_array_kwargs(200_000, 7, 384, np.dtype(np.float32), 4096, "zstd", True)
    assert kw["shards"] == (4096, 7 * 384)  # small models: one file per row block
    assert [type(c).__name__ for c in kw["compressors"]] == ["ZstdCodec", "Crc32cCodec"]
    assert activation_array_kwargs(10, 2, 8, np.dtype(np.float32), 4096, "none", False) == {
        "chunks": (10, 8), "compressors": None}


def test_damage_inside_a_shard_is_caught_by_a_one_layer_read(tmp_path, corpus, values):
    store = _store(tmp_path / "s", corpus, values)
    key = "activations/hidden/c/1/0"
    path = store.path / key
    data = bytearray(path.read_bytes())
    inner = 64 * 20 * 4 + 4  # one inner chunk of layer 0 and its CRC
    data[inner + 100] ^= 0x10  # flip a bit of layer 1's chunk
    path.write_bytes(bytes(data))
    opened = ActivationStore(store.path)
    np.testing.assert_array_equal(opened.layer("hidden", 0), values["hidden"][:, :20])
    with pytest.raises(DamagedStoreError, match="fails its checksum"):
        opened.layer("hidden", 1)
    with pytest.raises(DamagedStoreError, match=f"{key} fails its checksum"):
        opened.matrix()
    assert verify(store.path) == [f"file {key} fails its checksum"]
    # Without checksums the same read returns (damaged) values: the size still matches.
    ActivationStore(store.path, checksums=False).layer("hidden", 1)


def test_extract_bfloat16_zstd_unsharded(tmp_path, small_corpus, tiny_bert):
    full = extract(small_corpus, tmp_path / "f", tiny_bert, components=("hidden",),
                   chunk_words=32, progress=False)
    half = extract(small_corpus, tmp_path / "b", tiny_bert, components=("hidden",),
                   chunk_words=32, progress=False, dtype="bfloat16", compression="zstd",
                   sharded=False)
    assert half.meta["dtype"] == "bfloat16" and half.meta["sharded"] is False
    expect = torch.from_numpy(full.matrix()).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(half.matrix(), expect)
    np.testing.assert_array_equal(half.sentence_vectors("hidden"), torch.from_numpy(
        full.sentence_vectors("hidden")).to(torch.bfloat16).float().numpy())
    np.testing.assert_array_equal(half.dask("hidden").compute(), expect)


def test_bfloat16_store_exports_float32_to_neurox(tmp_path, corpus, values):
    import h5py

    from neuronscope.store.neurox import export_neurox_hdf5

    store = _store(tmp_path / "b", corpus, values, dtype="bfloat16")
    out = export_neurox_hdf5(store, tmp_path / "x.hdf5", component="hidden")
    first = store.layer("hidden", 0)[: len(SENTENCES[0])]
    with h5py.File(out, "r") as f:
        assert f["0"].dtype == np.float32
        np.testing.assert_array_equal(f["0"][()][0], first)  # layer 0 of sentence 0


def test_fast_reads_work_in_a_forked_child(tmp_path, corpus, values):
    import os

    from neuronscope.store.fastread import read_region

    store = _store(tmp_path / "s", corpus, values)
    expect = store.layer("hidden", 1)  # the parent's read pool now exists
    plan = store._plans["hidden"]
    assert plan is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        # Only the fast path runs here: Zarr's own event-loop thread does not survive a fork.
        try:
            out = np.empty_like(expect)
            read_region(plan, (0, store.n_words), (20, 40), out, store._entries, store._check,
                        "activations/hidden")
            os._exit(0 if np.array_equal(out, expect) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
