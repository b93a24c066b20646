"""compare-units and the sae CLI commands on the tiny synthetic store."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus.writers import write_conllu
from neuronscope.sae.compare import compare_units, render_markdown
from neuronscope.store import ActivationStore
from tests.sae.conftest import TRAIN


@pytest.fixture(scope="module")
def cli_setup(sae_store, tmp_path_factory):
    store, corpus = sae_store
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(store.path, root / "store")
    corpus_path = root / "corpus.conllu"
    write_conllu(corpus.with_layer("upos", corpus.layer("tag")), corpus_path)
    return root, corpus_path


def test_sae_train_attach_and_compare_units_from_the_cli(cli_setup):
    root, corpus_path = cli_setup
    runner = CliRunner()
    train = ["sae", "train", str(root / "store"), "--layer", "3", "--latents", "32", "--k",
             "2", "--epochs", "3", "--batch-size", "64", "--lr", "0.01",
             "--buffer-rows", "512", "--out", str(root / "sae"), "--no-progress"]
    res = runner.invoke(app, train)
    assert res.exit_code == 0, res.output
    assert "FVE" in res.output and (root / "sae" / "sae_weights.safetensors").exists()
    again = runner.invoke(app, train)
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)

    res = runner.invoke(app, ["sae", "attach", str(root / "store"), str(root / "sae")])
    assert res.exit_code == 0, res.output
    assert ActivationStore(root / "store").components == ["hidden", "sae"]

    res = runner.invoke(app, ["compare-units", str(root / "store"), str(corpus_path),
                              "--labels", "upos", "--sae", str(root / "sae"),
                              "--lm-sentences", "0", "--max-units", "8",
                              "--out", str(root / "cmp")])
    assert res.exit_code == 0, res.output
    data = json.loads((root / "cmp" / "compare_units.json").read_text())
    assert [c["concept"] for c in data["concepts"]] == ["A", "B"]
    assert (root / "cmp" / "compare_units.md").read_text().startswith("# Neurons vs SAE")

    # Features go through rank -> evaluate -> top-words -> report like neurons.
    store, corpus = str(root / "store"), str(corpus_path)
    res = runner.invoke(app, ["rank", store, corpus, "--labels", "upos", "--method", "ap",
                              "--components", "sae", "--out", str(root / "ap.json")])
    assert res.exit_code == 0, res.output
    ranking = json.loads((root / "ap.json").read_text())
    top = ranking["names"][str(ranking["concepts"]["A"]["ids"][0])]
    assert top.startswith("L3.sae.")
    res = runner.invoke(app, ["evaluate", store, corpus, str(root / "ap.json"), "--labels",
                              "upos", "--ks", "1,4", "--max-epochs", "5", "--ablation-steps", "2",
                              "--n-random", "2", "--out", str(root / "eval")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["top-words", store, corpus, "--neuron", top, "-k", "3"])
    assert res.exit_code == 0 and "w" in res.output, res.output
    res = runner.invoke(app, ["report", store, corpus, str(root / "ap.json"), "--out",
                              str(root / "report"), "--evaluation", str(root / "eval")])
    assert res.exit_code == 0, res.output
    assert (root / "report" / "index.html").exists()


def test_compare_units_finds_the_feature_of_a_planted_direction(sae_store, tmp_path):
    """Tag A = direction 0 on: one feature should carry it; neurons mix 24 directions."""
    from neuronscope.sae import SAETrainer

    store, corpus = sae_store
    shutil.copytree(store.path, tmp_path / "store")
    st = ActivationStore(tmp_path / "store")
    trainer = SAETrainer(**TRAIN).fit(st)
    trainer.sae_.save(tmp_path / "sae")
    result = compare_units(st, corpus, "tag", tmp_path / "sae", concepts=["A"],
                           max_units=12, lm_sentences=0)
    (a,) = result.concepts
    assert a.features.needed is not None and a.features.needed <= 4
    assert a.features.best_ap > a.neurons.best_ap
    assert a.features.best_ap > 0.7
    # The control: an untrained SAE of the same shape does worse than the trained one.
    assert a.random is not None and a.random.best_ap < a.features.best_ap
    assert a.majority_accuracy > 0.8  # A is rare: "not A" is the majority
    assert any("trained on" in n for n in result.notes)  # in-sample warning
    assert 0.5 < result.sae_metrics["fve"] <= 1
    assert "| A |" in render_markdown(result)
    assert result.lm_loss is None
