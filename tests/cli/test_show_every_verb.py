"""Each verb's saved output (``--out``) renders again with ``neuronscope show``.

The verbs run on the tiny store of the test corpus with the smallest settings; the
intervention verbs' files are shown in tests/interventions/test_commands.py, evaluate's and
benchmark's folders in their own command tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "300"}


def _verbs(store: Path, corpus: Path, model: Path) -> dict[str, tuple[list[str], list[str]]]:
    """verb -> (arguments before --out, texts `show` must print)."""
    s, c = str(store), str(corpus)
    return {
        "info": (["info", s], ["random_init", "n_words", "neuronscope.info/1"]),
        "methods": (["methods"], ["probe", "neuronscope.methods/1"]),
        "top-words": (["top-words", s, c, "--neuron", "L1.hidden.3", "-k", "3"],
                      ["top_words", "top_contexts", "L1.hidden.3"]),
        "verify": (["verify", s], ["neuronscope.verify/1", "ok"]),
        "cluster": (["cluster", s, "--layers", "1", "--threshold", "0.5"],
                    ["neuronscope.clusters/1", "redundancy"]),
        "factorize": (["factorize", s, c, "-k", "2", "--sample-words", "40",
                       "--components", "hidden", "--layers", "1"],
                      ["neuronscope.nmf/1", "factors"]),
        "group": (["group", s, "--n-groups", "2", "--embedding", "pca", "--components",
                   "hidden", "--sample-words", "40"], ["neuronscope.groups/1", "members"]),
        "compare": (["compare", s, s, "--components", "hidden", "--layers", "1",
                     "--methods", "maxcorr"], ["neuronscope.model-comparison/1", "maxcorr"]),
        "explain": (["explain", s, c, "-n", "L1.hidden.3", "--max-length", "2", "--beam", "2",
                     "--alpha", "0.1", "--min-count", "2"],
                    ["neuronscope.explain/1", "L1.hidden.3", "formulas"]),
        "concepts": (["concepts", s, c, "--layer", "1", "-k", "4"],
                     ["neuronscope.concepts/1", "clusters"]),
        "evolve": (["evolve", s, c, "--labels", "upos", "-k", "3", "--population", "6",
                    "--generations", "2", "--components", "hidden", "--layers", "1"],
                   ["neuronscope.evolution/1", "ga"]),
        "domains": (["domains", s, s, "--layers", "1", "--top", "3"],
                    ["neuronscope.domains/1", "ranking"]),
        "generate": (["generate", str(model), "-n", "L1.mlp.3", "--steps", "3", "--length",
                      "2", "--samples", "2", "--n-sequences", "2", "--device", "cpu"],
                     ["neuronscope.generation/1", "L1.mlp.3", "sequences"]),
    }


VERBS = ["info", "methods", "top-words", "verify", "cluster", "factorize", "group", "compare",
         "explain", "concepts", "evolve", "domains", "generate"]


@pytest.mark.parametrize("verb", VERBS)
def test_out_of_verb_renders_with_show(verb, cli_store, small_conllu, tiny_bert_dir, tmp_path):
    args, expected = _verbs(cli_store, small_conllu, tiny_bert_dir)[verb]
    out = tmp_path / f"{verb}.json"
    result = runner.invoke(app, [*args, "--out", str(out)]
                           + ([] if verb == "methods" else ["--no-progress"]), env=WIDE)
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads(out.read_text())
    assert data["schema"].startswith("neuronscope.") and data["schema"].endswith("/1")
    shown = runner.invoke(app, ["show", str(out)], env=WIDE)
    assert shown.exit_code == 0, shown.output
    for text in expected:
        assert text in shown.output, (text, shown.output[:2000])


def test_show_renders_a_store_folder(cli_store):
    shown = runner.invoke(app, ["show", str(cli_store)], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert "neuronscope-activation-store" in shown.output and "components" in shown.output


def test_show_refuses_a_folder_without_result(tmp_path):
    shown = runner.invoke(app, ["show", str(tmp_path)])
    assert shown.exit_code != 0
    assert "no result file" in str(shown.exception)


def test_rank_evaluate_and_benchmark_outputs_render(cli_store, small_conllu, tmp_path):
    s, c = str(cli_store), str(small_conllu)
    ranking = tmp_path / "ranking.json"
    ranked = runner.invoke(app, ["rank", s, c, "--labels", "upos", "--method", "probeless",
                                 "--out", str(ranking), "--no-progress"])
    assert ranked.exit_code == 0, ranked.output
    shown = runner.invoke(app, ["show", str(ranking)], env=WIDE)
    assert shown.exit_code == 0 and "ranking by probeless" in shown.output, shown.output

    evaluation = tmp_path / "eval"
    evaluated = runner.invoke(app, [
        "evaluate", s, c, str(ranking), "--labels", "upos", "--out", str(evaluation),
        "--ks", "5", "--n-random", "2", "--ablation-steps", "3", "--max-epochs", "2",
        "--no-progress"])
    assert evaluated.exit_code == 0, evaluated.output
    shown = runner.invoke(app, ["show", str(evaluation)], env=WIDE)  # the folder
    assert shown.exit_code == 0, shown.output
    assert "neuronscope-evaluation" in shown.output and "selection" in shown.output

    bench = tmp_path / "bench"
    benched = runner.invoke(app, [
        "benchmark", "--store", s, "--corpus", c, "--out", str(bench), "--methods",
        "probeless", "--kinds", "focused", "--snrs", "2", "--n-concepts", "1", "--repeats",
        "1", "--min-concept-words", "5", "--no-progress"], env=WIDE)
    assert benched.exit_code == 0, benched.output
    shown = runner.invoke(app, ["show", str(bench)], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert "neuronscope-benchmark-leaderboard" in shown.output and "probeless" in shown.output
