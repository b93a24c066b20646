"""``neuronscope benchmark`` end to end, on a tiny BERT saved to disk."""

from __future__ import annotations

import json
import re

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from neuronscope.benchmark import Leaderboard
from neuronscope.cli.benchmark import register
from neuronscope.errors import NeuronscopeError, StoreError

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A fresh app holding only the benchmark command (kept a group by the callback)."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app, Console(width=120))
    return app


FAST = ["--methods", "selectivity,probeless", "--max-words", "1500", "--n-concepts", "2",
        "--repeats", "2", "--no-progress"]


def test_default_run_extracts_demo_and_writes_leaderboard(app, tiny_bert_dir, tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["benchmark", "--model", str(tiny_bert_dir), "--out", str(out),
                                 *FAST])
    assert result.exit_code == 0, result.output
    assert (out / "store" / "neuronscope.json").exists()
    for name in ("leaderboard.json", "leaderboard.csv", "cases.csv"):
        assert (out / name).exists()
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["settings"]["methods"] == ["selectivity", "probeless"]
    assert data["settings"]["n_instances"] == 2 and data["settings"]["n_words"] == 1500
    assert data["settings"]["label_layer"] == "upos"
    board = Leaderboard.from_json(out / "leaderboard.json")
    assert set(board.results["method"]) == {"selectivity", "probeless", "random", "chance"}
    assert "Planted-neuron benchmark" in result.output and "selectivity" in result.output

    # A second run reuses the store and gives the same leaderboard.
    again = runner.invoke(app, ["benchmark", "--model", str(tiny_bert_dir), "--out", str(out),
                                *FAST])
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output
    assert Leaderboard.from_json(out / "leaderboard.json").results.equals(board.results)


def test_store_and_corpus(app, extracted, small_conllu, tmp_path):
    store = extracted("bert", components=("hidden",))
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "benchmark", "--store", str(store.path), "--corpus", str(small_conllu), "--labels", "upos",
        "--out", str(out), "--methods", "ap", "--kinds", "focused,redundant", "--snrs", "2",
        "--n-concepts", "1", "--min-concept-words", "5", "--repeats", "1", "--ks", "3",
        "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["settings"]["source"] == str(store.path)
    assert {r["k"] for r in data["results"]} == {"planted", "3"}
    assert not (out / "store").exists()


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--methods", "probe,nope"], NeuronscopeError, "unknown method 'nope'"),
        (["--snrs", "0,1"], NeuronscopeError, "snr"),
        (["--snrs", "one"], NeuronscopeError, "--snrs"),
        (["--snrs", ""], NeuronscopeError, "comma-separated"),  # no SNR at all: refused
        (["--kinds", "focused,odd"], NeuronscopeError, "kinds"),
        (["--store", "somewhere"], NeuronscopeError, "--corpus"),
        (["--labels", "nosuch"], NeuronscopeError, "no label layer 'nosuch'"),
        (["--concepts", "NUM", "--max-words", "100"], NeuronscopeError, "has .* words"),
    ],
)
def test_bad_input_is_a_clear_error(app, tiny_bert_dir, tmp_path, args, error, message):
    out = tmp_path / "bad"
    result = runner.invoke(app, ["benchmark", "--model", str(tiny_bert_dir), "--out", str(out),
                                 "--no-progress", *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, error), result.output
    assert re.search(message, str(result.exception))
    if "--concepts" not in args:
        # Refused before anything was extracted.
        assert not (out / "store").exists()


def test_store_that_is_not_a_store(app, tmp_path, small_conllu):
    result = runner.invoke(app, ["benchmark", "--store", str(tmp_path),
                                 "--corpus", str(small_conllu), "--no-progress"])
    assert isinstance(result.exception, StoreError)
