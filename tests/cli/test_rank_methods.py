"""``neuronscope methods`` and ``neuronscope rank`` over the registry: every ranker listed,
strict ``--param``, causal rankers with ``--model``."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app, main
from neuronscope.errors import NeuronscopeError
from neuronscope.methods import REGISTRY, Ranking
from neuronscope.store import ActivationStore

runner = CliRunner()


def _rank(cli_store, small_conllu, out, *args: str):
    return runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                               "--out", str(out), *args])


def test_methods_lists_every_ranker_with_tags_and_params():
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert list(data) == list(REGISTRY)
    assert data["erasure"]["family"] == "causal" and data["erasure"]["needs_model"] is True
    assert data["erasure"]["labels"] == "optional" and data["class-flip"]["labels"] == "required"
    assert data["probe"]["random"] is True and data["iou"]["random"] is False
    assert data["domain"]["family"] == "pairwise"
    assert data["iou"]["params"]["alpha"] == "auto"
    text = runner.invoke(app, ["methods"])
    assert text.exit_code == 0
    assert all(f"{name}:" in text.output for name in REGISTRY)
    assert "domains=['A', 'B']" in text.output  # printed as data, not as rich markup


def test_misspelt_param_exits_non_zero_naming_it(cli_store, small_conllu, tmp_path,
                                                 monkeypatch, capsys):
    out = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", ["neuronscope", "rank", str(cli_store), str(small_conllu),
                                      "--labels", "upos", "--method", "iou", "--param",
                                      "alhpa=0.01", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "'alhpa'" in err and "alpha" in err and "block_neurons" in err
    assert not out.exists()


def test_param_rule_with_several_methods(cli_store, small_conllu, tmp_path):
    out = tmp_path / "r.json"
    # alpha exists for iou only: applied there, and probeless runs with its defaults.
    result = _rank(cli_store, small_conllu, out, "--method", "iou", "--method", "probeless",
                   "--param", "alpha=0.25", "--layers", "1")
    assert result.exit_code == 0, result.output
    assert Ranking.from_json(tmp_path / "r.iou.json").params["alpha"] == 0.25
    assert "alpha" not in Ranking.from_json(tmp_path / "r.probeless.json").params
    bad = _rank(cli_store, small_conllu, out, "--method", "iou", "--method", "probeless",
                "--param", "max_epochs=3")
    assert isinstance(bad.exception, NeuronscopeError)
    assert "'max_epochs'" in str(bad.exception) and "probeless: concepts, neurons" in str(
        bad.exception)


def test_rank_runs_causal_methods_with_the_model(cli_store, small_conllu, tiny_bert_dir,
                                                 tmp_path):
    out = tmp_path / "r.json"
    result = _rank(cli_store, small_conllu, out, "--method", "erasure", "--method",
                   "class-flip", "--model", str(tiny_bert_dir), "--components", "mlp",
                   "--layers", "0", "--param", "group_size=16", "--param", "max_sentences=4",
                   "--concepts", "NOUN,DET")
    assert result.exit_code == 0, result.output
    for name in ("erasure", "class-flip"):
        ranking = Ranking.from_json(tmp_path / f"r.{name}.json")
        assert ranking.method == name and ranking.concept_names == ["NOUN", "DET"]
        assert len(ranking.global_order) == 64
        assert all(n.startswith("L0.mlp.") for n in ranking.top(64))
        assert ranking.params["group_size"] == 16 and ranking.params["max_sentences"] == 4
        assert ranking.extra["model"] and ranking.extra["corpus"]
    # The ranking carries the store's fingerprint, so evaluation and reports accept it.
    fingerprint = ActivationStore(cli_store).fingerprint
    assert Ranking.from_json(tmp_path / "r.erasure.json").store_fingerprint == fingerprint


def test_rank_refuses_what_it_cannot_run(cli_store, small_conllu, tiny_bert_dir, tmp_path):
    out = tmp_path / "r.json"
    no_model = _rank(cli_store, small_conllu, out, "--method", "probeless", "--method",
                     "erasure")
    assert isinstance(no_model.exception, NeuronscopeError)
    assert "erasure" in str(no_model.exception) and "--model" in str(no_model.exception)
    stray = _rank(cli_store, small_conllu, out, "--method", "probeless", "--model",
                  str(tiny_bert_dir))
    assert isinstance(stray.exception, NeuronscopeError) and "causal" in str(stray.exception)
    pair = _rank(cli_store, small_conllu, out, "--method", "domain")
    assert isinstance(pair.exception, NeuronscopeError) and "domains" in str(pair.exception)
    # Candidates outside the store are refused before any pass over the corpus.
    outside = _rank(cli_store, small_conllu, out, "--method", "erasure", "--model",
                    str(tiny_bert_dir), "--param", "candidates=L0.attn")
    assert isinstance(outside.exception, NeuronscopeError)
    assert "'attn'" in str(outside.exception)
    unknown = _rank(cli_store, small_conllu, out, "--method", "nope")
    assert "valid: probe" in str(unknown.exception)
    assert not list(tmp_path.iterdir())
