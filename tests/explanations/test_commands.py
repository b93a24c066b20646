"""The explanation commands end to end on tiny stores."""

from __future__ import annotations

import json

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from neuronscope.cli.explanations import register
from neuronscope.corpus import write_conllu
from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.extraction import extract

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A fresh app holding only these commands."""
    app = typer.Typer(pretty_exceptions_enable=False)
    register(app, Console(width=160))
    return app


@pytest.fixture(scope="module")
def files(extracted, small_conllu, tmp_path_factory):
    """The tiny BERT store of ``small_corpus`` (hidden + mlp), the corpus as CoNLL-U and a
    folder for outputs."""
    folder = tmp_path_factory.mktemp("explain-cli")
    return extracted("bert", components=("hidden", "mlp")), small_conllu, folder


def test_registered_on_the_main_cli():
    from neuronscope.cli import app as main_app

    names = {c.name for c in main_app.registered_commands}
    assert {"explain", "concepts", "generate", "evolve", "domains"} <= names


def test_explain(app, files):
    store, conllu, folder = files
    out = folder / "explain.json"
    result = runner.invoke(app, ["explain", str(store.path), str(conllu), "--neuron",
                                 "L1.mlp.3", "-n", "L0.hidden.2", "--alpha", "0.05",
                                 "--min-count", "2", "--beam", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "L1.mlp.3" in result.output and "IoU" in result.output
    data = json.loads(out.read_text())
    assert [e["neuron"] for e in data["explanations"]] == ["L1.mlp.3", "L0.hidden.2"]
    assert data["params"]["beam"] == 3 and data["explanations"][0]["formulas"]
    bad = runner.invoke(app, ["explain", str(store.path), str(conllu), "-n", "L9.mlp.0"])
    assert isinstance(bad.exception, UnknownComponentError)


def test_concepts(app, files):
    store, conllu, folder = files
    out = folder / "concepts.json"
    result = runner.invoke(app, ["concepts", str(store.path), str(conllu), "--layer", "2",
                                 "-k", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "clusters explained" in result.output and "upos" in result.output
    data = json.loads(out.read_text())
    assert data["k"] == 8 and len(data["clusters"]) == 8 and data["component"] == "hidden"
    bad = runner.invoke(app, ["concepts", str(store.path), str(conllu), "--layer", "2",
                              "-k", "500"])
    assert isinstance(bad.exception, NeuronscopeError) and "fewer than" in str(bad.exception)


def test_generate(app, tiny_bert_dir, tmp_path):
    # The shared saved model: saving a model changes its fingerprint (save_pretrained sets
    # config.dtype), so this test saves none itself.
    out = tmp_path / "generate.json"
    result = runner.invoke(app, ["generate", str(tiny_bert_dir), "--neuron", "L1.mlp.5",
                                 "--steps", "30", "--length", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["neuron"] == "L1.mlp.5" and data["gain"] > 0 and len(data["sequences"]) >= 1
    bad = runner.invoke(app, ["generate", str(tiny_bert_dir), "--neuron", "L0.nope.1",
                              "--steps", "1"])
    assert isinstance(bad.exception, UnknownComponentError)


def test_evolve(app, files):
    store, conllu, folder = files
    out = folder / "evolve.json"
    result = runner.invoke(app, ["evolve", str(store.path), str(conllu), "--labels", "upos",
                                 "-k", "3", "--components", "hidden", "--layers", "1",
                                 "--population", "10", "--generations", "3",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "genetic" in result.output and "linear probe" in result.output
    data = json.loads(out.read_text())
    assert len(data["probe"]["names"]) == 3 and data["ga"]["size"] <= 3
    assert all(n.startswith("L1.hidden.") for n in data["ga"]["names"])
    bad = runner.invoke(app, ["evolve", str(store.path), str(conllu), "--labels", "xpos"])
    assert isinstance(bad.exception, NeuronscopeError) and "xpos" in str(bad.exception)


def test_domains(app, tiny_bert, small_corpus, tmp_path):
    halves = [small_corpus.subset(range(0, 5)), small_corpus.subset(range(5, 10))]
    paths = []
    for i, part in enumerate(halves):
        extract(part, tmp_path / f"s{i}", tiny_bert, components=("mlp",), progress=False)
        write_conllu(part, tmp_path / f"c{i}.conllu")
        paths.append((tmp_path / f"s{i}", tmp_path / f"c{i}.conllu"))
    out = tmp_path / "domains.json"
    result = runner.invoke(app, [
        "domains", str(paths[0][0]), str(paths[1][0]), "--names", "first,second",
        "--top", "5", "--corpus-a", str(paths[0][1]), "--corpus-b", str(paths[1][1]),
        "--labels", "upos", "-k", "4", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "Cohen's d" in result.output and "after shifting 4 neurons" in result.output
    data = json.loads(out.read_text())
    assert data["ranking"]["method"] == "domain-d"
    assert set(data["ranking"]["concepts"]) == {"first", "second"}
    assert len(data["adaptation"]["shift"]["names"]) == 4
    bad = runner.invoke(app, ["domains", str(paths[0][0]), str(paths[1][0]), "--labels",
                              "upos"])
    assert isinstance(bad.exception, NeuronscopeError) and "--corpus-a" in str(bad.exception)
