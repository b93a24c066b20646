"""User text prints literally and tables are never cut when piped; JSON/CSV output."""

from __future__ import annotations

import csv
import io
import json

from tests.robustness.conftest import SENTENCES


def test_top_words_prints_brackets_literally(cli, rb):
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.0", "-k", "30"])
    assert result.code == 0, result.text
    assert "to replace [retiring] jurists" in result.out
    for word in ("[/]", "[bold]tags", "[link=x]", "[retiring]"):
        assert word in result.out, word


def test_top_words_json_and_csv_are_exact(cli, rb):
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.0", "-k", "50",
                  "--output-format", "json"])
    assert result.code == 0, result.text
    data = json.loads(result.out)
    words = {row["word"] for row in data["top_words"]}
    assert words == {w for s in SENTENCES for w in s}
    assert data["top_words"][0]["word"] == "retiring"
    assert data["top_words"][0]["max"] == 10.0
    assert any(c["context"] == "to replace [retiring] jurists" for c in data["top_contexts"])
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.0", "-k", "50",
                  "--output-format", "csv"])
    assert result.code == 0, result.text
    block = result.out.split("\n\n")[0].split("\n", 1)[1]
    rows = list(csv.reader(io.StringIO(block)))
    assert rows[0] == ["word", "max", "mean", "count"]
    assert {r[0] for r in rows[1:]} == {w for s in SENTENCES for w in s}


def test_piped_tables_keep_full_numbers(cli, rb, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.1"])
    assert result.code == 0
    assert "…" not in result.out


def test_narrow_columns_never_cut_numbers(cli, rb, monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.1"])
    assert result.code == 0
    assert "…" not in result.out


def test_rank_output_formats(cli, rb, tmp_path):
    out = tmp_path / "r.json"
    result = cli(["rank", rb.store, rb.corpus, "--labels", "upos", "--method", "probeless",
                  "--out", out, "--output-format", "json", "--top", "2"])
    assert result.code == 0, result.text
    data = json.loads(result.out)  # stdout is pure JSON; "wrote" went to stderr
    rows = data["ranking_probeless"]
    assert {r["concept"] for r in rows} >= {"[/]", "[red]", "NOUN"}
    assert "wrote" in result.err


def test_unknown_output_format(cli, rb):
    result = cli(["info", rb.store, "--output-format", "yaml"])
    assert result.code == 2 and "--output-format" in result.err


def test_info_formats(cli, rb):
    table = cli(["info", rb.store])
    assert table.code == 0 and "store [/]" in table.out
    as_csv = cli(["info", rb.store, "--output-format", "csv"])
    assert as_csv.code == 0 and as_csv.out.startswith("key,value\n")
    as_json = cli(["info", rb.store, "--output-format", "json"])
    assert json.loads(as_json.out)["n_words"] == sum(len(s) for s in SENTENCES)


def test_evaluate_json_output(cli, cli_store, small_conllu, tmp_path):
    ranking = tmp_path / "r.json"
    assert cli(["rank", cli_store, small_conllu, "--labels", "upos", "--method", "probeless",
                "--out", ranking]).code == 0
    result = cli(["evaluate", cli_store, small_conllu, ranking, "--labels", "upos", "--out",
                  tmp_path / "ev", "--ks", "4", "--n-random", "1", "--ablation-steps", "2",
                  "--max-epochs", "2", "--output-format", "json"])
    assert result.code == 0, result.text
    data = json.loads(result.out)
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert data["selection"][0]["k"] == 4
    assert data["selection"][0]["top-k"] == summary["selection"]["table"][0]["top"]
    assert [r["neurons ablated"] for r in data["ablation"]] == summary["ablation"]["steps"]
    assert "wrote" in result.err


def test_report_with_markup_in_labels_and_words(cli, rb, tmp_path):
    out = tmp_path / "site"
    result = cli(["report", rb.store, rb.corpus, rb.ranking, "--out", out])
    assert result.code == 0, result.text
    html = "".join(p.read_text(encoding="utf-8") for p in out.rglob("*.html"))
    # The labels "[/]" and "[red]" are concepts of the ranking: shown literally in the HTML.
    assert "[/]" in html and "[red]" in html
