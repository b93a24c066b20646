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
        "-k", "5", "--labels", "upos", "--op", "mean", "--out", str(out), "--no-progress",
        "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    assert "ablating 5 neurons of 'NOUN'" in result.output
    for condition in ("none", "top", "random", "bottom"):  # controls on by default
        assert condition in result.output
    assert "±" in result.output and "random band" in result.output
    data = json.loads(out.read_text())
    assert data["schema"] == "neuronscope.ablation/1"
    shown = runner.invoke(app, ["show", str(out)], env={"COLUMNS": "300"})  # renders again
    assert shown.exit_code == 0 and "delta_concept" in shown.output, shown.output
    assert data["task"] == "masked-lm" and len(data["neurons"]["random"]) == 5
    assert [r["condition"] for r in data["table"]] == ["none", "top", "random", "bottom"]
    printed = " ".join(result.output.split())  # the notes are printed too (wrapped)
    assert data["notes"] and all(" ".join(n.split()) in printed for n in data["notes"])
    again = runner.invoke(app, [  # an existing --out is refused before the model is loaded
        "ablate", s["model"], s["store"], s["corpus"], s["ranking"], "--concept", "NOUN",
        "-k", "5", "--labels", "upos", "--out", str(out), "--no-progress"])
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)
    assert json.loads(out.read_text()) == data  # untouched
    bare = runner.invoke(app, [
        "ablate", s["model"], s["store"], s["corpus"], s["ranking"], "--concept", "NOUN",
        "-k", "5", "--labels", "upos", "--no-random", "--no-bottom", "--no-progress"])
    assert bare.exit_code == 0 and "no random control" in bare.output
    bad = runner.invoke(app, [
        "ablate", s["model"], s["store"], s["corpus"], s["ranking"], "--concept", "NOUN",
        "--device", "gpu7", "--no-progress"])
    assert isinstance(bad.exception, NeuronscopeError) and "gpu7" in str(bad.exception)


@pytest.mark.parametrize("verb", ["ablate", "attribute", "steer"])
def test_help_shows_out_progress_device(verb):
    result = runner.invoke(app, [verb, "--help"], terminal_width=200)
    for option in ("--out", "--no-progress", "--device"):
        assert option in result.output


def test_attribute_command(bert_setup):
    out = bert_setup["root"] / "knowledge.json"
    result = runner.invoke(app, [
        "attribute", bert_setup["model"], "--prompt", "the cat sat on the [MASK] .",
        "--target", "mat", "--paraphrase", "a cat sat on the [MASK] .", "--steps", "5",
        "--top", "3", "--other", "the dog ran in the [MASK] .=>park",
        "--other", "she reads [MASK] every evening .=>books",
        "--other", "we visited [MASK] in april .=>paris", "--out", str(out), "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert "knowledge neurons" in result.output and "L0.mlp." in result.output
    assert "suppress" in result.output and "paraphrase agreement" in result.output
    assert "[MASK]" in result.output  # user text printed literally
    data = json.loads(out.read_text())
    assert data["schema"] == "neuronscope.knowledge/1"
    shown = runner.invoke(app, ["show", str(out)], env={"COLUMNS": "300"})  # renders again
    assert shown.exit_code == 0 and "paraphrase_jaccard" in shown.output, shown.output
    kinds = [e["kind"] for e in data["effects"]]
    assert kinds == ["fact", "paraphrase", "other", "other", "other"]
    assert len(data["random_neurons"]) == 5 and data["summary"]["paraphrase_jaccard"] >= 0
    bad = runner.invoke(app, ["attribute", bert_setup["model"], "--prompt", "a [MASK] .",
                              "--target", "mat", "--other", "no arrow here"])
    assert isinstance(bad.exception, NeuronscopeError) and "PROMPT=>ANSWER" in str(bad.exception)


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
    out = tmp_path / "steering.json"
    result = runner.invoke(app, [
        "steer", str(tiny_gpt2_dir), str(path), "--concept", "DET", "--prompt", "the cat sat",
        "--prompt", "we visited", "-k", "2", "--value", "25", "--words", "the,a",
        "--max-new-tokens", "5", "--out", str(out), "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert "steering 2 neurons of 'DET'" in result.output and "generations" in result.output
    assert "neurons and values" in result.output and "random-4" in result.output
    data = json.loads(out.read_text())
    assert data["schema"] == "neuronscope.steering/1" and len(data["random_neurons"]) == 5
    shown = runner.invoke(app, ["show", str(out)], env={"COLUMNS": "300"})  # renders again
    assert shown.exit_code == 0 and "generations" in shown.output, shown.output
    assert data["values"] == [25.0, 25.0] and data["neurons"] == names[:2]
    missing = runner.invoke(app, ["steer", str(tiny_gpt2_dir), str(path), "--concept", "DET",
                                  "--prompt", "the cat"])
    assert isinstance(missing.exception, NeuronscopeError)
    assert "--value" in str(missing.exception)
