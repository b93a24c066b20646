"""``--scheduler`` on extract, rank, cluster and evaluate (against the shared 2-worker cluster)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.distributed.cluster import parse_scheduler
from neuronscope.errors import InvalidOptionError
from neuronscope.store import ActivationStore

runner = CliRunner()


@pytest.fixture(scope="module")
def address(dask_client) -> str:
    return dask_client.scheduler.address


def invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_scheduler_specs():
    assert parse_scheduler("local:2") == ("local", 2)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local", "10.0.0.5:8786", "yarn"):
        with pytest.raises(InvalidOptionError, match="--scheduler"):
            parse_scheduler(bad)


def test_bad_scheduler_is_refused_before_work(tmp_path, cli_store, small_conllu):
    result = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                                 "--method", "probeless", "--out", str(tmp_path / "r.json"),
                                 "--scheduler", "local:zero"])
    assert isinstance(result.exception, InvalidOptionError)
    assert "--scheduler" in str(result.exception)
    assert not (tmp_path / "r.json").exists()


def test_extract_on_scheduler_is_bitwise_equal(tmp_path, cli_store, small_conllu,
                                               tiny_bert_dir, address):
    out = tmp_path / "dist.store"
    invoke("extract", small_conllu, "--out", out, "--model", tiny_bert_dir, "--components",
           "hidden,mlp", "--no-progress", "--scheduler", address)
    one, two = ActivationStore(cli_store), ActivationStore(out)
    for name in one.components:
        assert one.component(name).tobytes() == two.component(name).tobytes()


def test_rank_and_cluster_on_scheduler(tmp_path, cli_store, small_conllu, address):
    for method in ("probeless", "selectivity"):
        base = ["rank", cli_store, small_conllu, "--labels", "upos", "--method", method]
        invoke(*base, "--out", tmp_path / f"{method}-one.json")
        invoke(*base, "--out", tmp_path / f"{method}-two.json", "--scheduler", address)
        one = json.loads((tmp_path / f"{method}-one.json").read_text())
        two = json.loads((tmp_path / f"{method}-two.json").read_text())
        assert one["global"]["ids"] == two["global"]["ids"]
        np.testing.assert_allclose(two["global"]["scores"], one["global"]["scores"],
                                   rtol=1e-6, atol=1e-6)
    invoke("cluster", cli_store, "--out", tmp_path / "c1.json")
    invoke("cluster", cli_store, "--out", tmp_path / "c2.json", "--scheduler", address)
    c1 = json.loads((tmp_path / "c1.json").read_text())
    c2 = json.loads((tmp_path / "c2.json").read_text())
    assert c1["clusters"] == c2["clusters"] and c1["n_clusters"] == c2["n_clusters"]


def test_evaluate_on_one_worker(tmp_path, cli_store, small_conllu, address):
    ranking = tmp_path / "probeless.json"
    invoke("rank", cli_store, small_conllu, "--labels", "upos", "--method", "probeless",
           "--out", ranking)
    base = ["evaluate", cli_store, small_conllu, ranking, "--labels", "upos", "--ks", "5",
            "--n-random", "2", "--ablation-steps", "2", "--max-epochs", "5"]
    invoke(*base, "--out", tmp_path / "one")
    invoke(*base, "--out", tmp_path / "two", "--scheduler", address)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one["selection"]["table"] == two["selection"]["table"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
