"""`extract --store-dtype/--compression/--no-shards`, and `rank` reading such a store."""

from __future__ import annotations

import numpy as np
import torch
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.errors import NeuronscopeError
from neuronscope.methods import Ranking
from neuronscope.store import ActivationStore

runner = CliRunner()


def test_extract_store_options_then_rank(tmp_path, tiny_bert_dir, small_conllu, cli_store):
    out = tmp_path / "half"
    result = runner.invoke(app, [
        "extract", str(small_conllu), "--out", str(out), "--model", str(tiny_bert_dir),
        "--components", "hidden,mlp", "--store-dtype", "bfloat16", "--compression",
        "blosc-lz4", "--no-shards",
        "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    store = ActivationStore(out)
    info = store.info()
    assert (info["dtype"], info["compression"], info["sharded"]) == ("bfloat16", "blosc-lz4",
                                                                     False)
    full = torch.from_numpy(ActivationStore(cli_store).matrix())
    np.testing.assert_array_equal(store.matrix(), full.to(torch.bfloat16).float().numpy())
    ranked = runner.invoke(app, ["rank", str(out), str(small_conllu), "--labels", "upos",
                                 "--method", "probeless", "--out", str(tmp_path / "r.json")])
    assert ranked.exit_code == 0, ranked.output
    ranking = Ranking.from_json(tmp_path / "r.json")
    assert ranking.global_order is not None and len(ranking.global_order) == store.n_neurons


def test_unknown_compression_is_refused_before_the_model_loads(tmp_path, small_conllu):
    result = runner.invoke(app, ["extract", str(small_conllu), "--out", str(tmp_path / "s"),
                                 "--model", str(tmp_path / "no-such-model"),
                                 "--compression", "gzip"])
    assert isinstance(result.exception, NeuronscopeError)
    assert "unknown compression 'gzip'" in str(result.exception)
