"""The ablate, attribute and steer commands end to end on tiny models saved to disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.errors import NeuronscopeError
from neuronscope.extraction import extract
from neuronscope.interventions.sites import model_sites
from neuronscope.methods.probeless import Probeless
from neuronscope.methods.ranking import ranking_from_scores
from neuronscope.models import load_model

runner = CliRunner()


@pytest.fixture(scope="module")
def bert_setup(tmp_path_factory, tiny_bert_dir, small_corpus, small_conllu):
    """Corpus file, store and ranking made with the tiny BERT as loaded from disk."""
    root = tmp_path_factory.mktemp("cli-interventions")
    loaded = load_model(str(tiny_bert_dir))
    store = extract(small_corpus, root / "store", loaded, components=["mlp"], progress=False)
    ranking = Probeless().rank(store, small_corpus.concept_labels("upos"))
    ranking_path = root / "ranking.json"
    ranking.to_json(ranking_path)
    return {"model": str(tiny_bert_dir), "store": str(root / "store"), "corpus": str(small_conllu),
            "ranking": str(ranking_path), "root": root}


def test_ablate_command(bert_setup):
    s = bert_setup
    out = s["root"] / "ablation.json"
    result = runner.invoke(app, [
        "ablate", s["model"], s["store"], s["corpus"], s["ranking"], "--concept", "NOUN",
        "-k", "5", "--random", "--bottom", "--repeats", "2", "--labels", "upos",
        "--op", "mean", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "ablating 5 neurons of 'NOUN'" in result.output
    for condition in ("none", "top", "random", "bottom"):
        assert condition in result.output
    data = json.loads(out.read_text())
    assert data["task"] == "masked-lm" and len(data["neurons"]["random"]) == 2
    assert [r["condition"] for r in data["table"]] == ["none", "top", "random", "bottom"]


def test_attribute_command(bert_setup):
    result = runner.invoke(app, [
        "attribute", bert_setup["model"], "--prompt", "the cat sat on the [MASK] .",
        "--target", "mat", "--paraphrase", "a cat sat on the [MASK] .", "--steps", "5",
        "--top", "3",
    ])
    assert result.exit_code == 0, result.output
    assert "knowledge neurons" in result.output and "L0.mlp." in result.output
    assert "suppress" in result.output


def test_steer_command(tiny_gpt2_dir, tmp_path):
    loaded = load_model(str(tiny_gpt2_dir))
    names = [f"L1.mlp.{i}" for i in range(8)]
    ranking = ranking_from_scores(
        "manual", {}, np.array([np.linspace(1, 0, 8)]), ["DET"],
        model_sites(loaded).layout().ids(names), names,
        store_fingerprint=f"{loaded.fingerprint}-x-mean",
    )
    path = tmp_path / "ranking.json"
    ranking.to_json(path)
    result = runner.invoke(app, [
        "steer", str(tiny_gpt2_dir), str(path), "--concept", "DET", "--prompt", "the cat sat",
        "--prompt", "we visited", "-k", "2", "--value", "25", "--words", "the,a",
        "--max-new-tokens", "5",
    ])
    assert result.exit_code == 0, result.output
    assert "steering 2 neurons of 'DET'" in result.output and "generations" in result.output
    missing = runner.invoke(app, ["steer", str(tiny_gpt2_dir), str(path), "--concept", "DET",
                                  "--prompt", "the cat"])
    assert isinstance(missing.exception, NeuronscopeError)
    assert "--value" in str(missing.exception)
