"""Stores at fsspec URLs: memory:// in process, s3:// against a local moto S3 server."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import DamagedStoreError, StoreError
from neuronscope.methods import Ranking
from neuronscope.store import ActivationStore, store_from_arrays
from neuronscope.store.remote import is_url, mirror_path, normalize_url, publish

runner = CliRunner()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONSCOPE_CACHE", str(tmp_path / "cache"))


def test_urls():
    assert is_url("s3://b/x") and is_url("s3:/b/x") and is_url("memory://x")
    assert not is_url("/data/x") and not is_url("x") and not is_url("file:///data/x")
    assert normalize_url("s3:/b/x/") == "s3://b/x" == normalize_url("s3://b/x")
    assert mirror_path("s3://b/x") == mirror_path("s3:/b/x") != mirror_path("s3://b/y")


def test_memory_store_round_trip_and_refresh(tmp_path):
    import fsspec

    corpus = Corpus([["a", "b", "c"], ["d", "e"]] * 40, {}, name="m")
    values = np.random.default_rng(0).standard_normal((corpus.n_words, 8)).astype(np.float32)
    local = store_from_arrays(tmp_path / "s", corpus, {"h": (values, [0, 1])}, chunk_words=32)
    publish(local.path, "memory://stores/one")
    remote = ActivationStore("memory://stores/one")
    assert remote.url == "memory://stores/one"
    np.testing.assert_array_equal(remote.matrix(), values)
    # A new version at the URL is downloaded again; an unchanged one is not.
    store_from_arrays(tmp_path / "s", corpus, {"h": (values * 2, [0, 1])}, chunk_words=32,
                      overwrite=True)
    publish(tmp_path / "s", "memory://stores/one")
    np.testing.assert_array_equal(ActivationStore("memory://stores/one").matrix(), values * 2)
    # A file damaged on the remote side (same metadata) is caught by the manifest's checks.
    fs = fsspec.filesystem("memory")
    key = "/stores/one/activations/h/c/1/0"
    data = bytearray(fs.cat_file(key))
    data[10] ^= 1
    fs.pipe_file(key, bytes(data))
    import shutil

    shutil.rmtree(mirror_path("memory://stores/one"))
    with pytest.raises(DamagedStoreError, match="fails its checksum"):
        ActivationStore("memory://stores/one").matrix()
    with pytest.raises(StoreError, match="not a neuronscope activation store"):
        ActivationStore("memory://stores/none")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3(s3_server, monkeypatch):
    import fsspec
    import s3fs

    conf = {"endpoint_url": s3_server, "key": "testing", "secret": "testing"}
    monkeypatch.setitem(fsspec.config.conf, "s3", conf)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fs = s3fs.S3FileSystem(**conf)
    if not fs.exists("neuronscope"):
        fs.mkdir("neuronscope")
    return fs


def test_s3_store_is_ranked_like_the_local_store(tmp_path, s3, tiny_bert_dir, small_conllu,
                                                 cli_store):
    url = "s3://neuronscope/small.store"
    result = runner.invoke(app, [
        "extract", str(small_conllu), "--out", url, "--model", str(tiny_bert_dir),
        "--components", "hidden,mlp", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert s3.exists("neuronscope/small.store/neuronscope.json")
    assert s3.exists("neuronscope/small.store/activations/mlp/c/0/0")
    # Read back from S3 (a fresh mirror: the extraction's own is removed).
    import shutil

    shutil.rmtree(mirror_path(url))
    remote = ActivationStore(url)
    np.testing.assert_array_equal(remote.matrix(), ActivationStore(cli_store).matrix())
    rankings = {}
    for name, store in (("s3", url), ("local", str(cli_store))):
        out = tmp_path / f"{name}.json"
        ranked = runner.invoke(app, ["rank", store, str(small_conllu), "--labels", "upos",
                                     "--method", "probeless", "--out", str(out)])
        assert ranked.exit_code == 0, ranked.output
        rankings[name] = Ranking.from_json(out)
    a, b = rankings["s3"], rankings["local"]
    np.testing.assert_array_equal(a.global_order, b.global_order)
    np.testing.assert_array_equal(a.global_scores, b.global_scores)
    assert a.store_fingerprint == b.store_fingerprint
    assert a.to_json() == b.to_json()  # every concept's order and scores too
