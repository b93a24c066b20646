"""``neuronscope evaluate`` end to end on a tiny-BERT store, and the library on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.evaluation import (
    evaluate_selection,
    gaussian_mutual_information,
    load_neurons,
    neuron_mutual_information,
)
from neuronscope.methods import Ranking
from neuronscope.store import ActivationStore

runner = CliRunner()


@pytest.fixture(scope="module")
def ranking(cli_store, small_conllu, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval-rankings") / "ranking.json"
    result = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                                 "--method", "probeless", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _evaluate(store, conllu, ranking, out, *extra):
    return runner.invoke(app, [
        "evaluate", str(store), str(conllu), str(ranking), "--labels", "upos", "--out", str(out),
        "--n-random", "2", "--ablation-steps", "4", "--max-epochs", "3", *extra,
    ])


def test_evaluate_writes_summary_and_plots(cli_store, small_conllu, ranking, tmp_path):
    out = tmp_path / "eval"
    result = _evaluate(cli_store, small_conllu, ranking, out, "--ks", "5,20")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert {"format", "store_fingerprint", "labels", "concept", "ranking", "split", "selection",
            "ablation", "control", "layers", "plots", "warnings"} <= set(summary)
    assert summary["store_fingerprint"] == ActivationStore(cli_store).fingerprint
    n_neurons = 3 * 32 + 2 * 64  # hidden layers 0-2, mlp layers 0-1
    sel = summary["selection"]
    assert sel["n_neurons"] == n_neurons and [r["k"] for r in sel["table"]] == [5, 20]
    assert 0 < sel["full_accuracy"] <= 1 and sel["n_train"] + sel["n_test"] == 123
    for row in sel["table"]:
        assert {"top", "random_mean", "random_std", "bottom", "full"} <= set(row)
    abl = summary["ablation"]
    assert abl["steps"][0] == 0 and abl["steps"][-1] == n_neurons
    # Nothing ablated: the probe on all neurons, as in the selection table.
    assert abl["top"][0] == pytest.approx(sel["full_accuracy"])
    assert [c["k"] for c in summary["control"]] == [5, 20]
    for c in summary["control"]:
        assert c["selectivity"] == pytest.approx(c["task_accuracy"] - c["control_accuracy"])
    layers = summary["layers"]
    assert layers["k"] == 20 and "__all__" in layers["counts"]
    assert all(sum(row.values()) == 20 for row in layers["counts"].values())
    for stem in ("selection", "ablation", "layers"):
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"{stem}.svg").stat().st_size > 0
    assert "top-k" in result.output and "selectivity" in result.output
    # The ranking was computed on this same corpus: held out by default, it is recomputed
    # on the train sentences only, and the split is stated in sentences.
    held = summary["holdout"]
    assert held["mode"] == "reranked" and held["held_out"] is True
    n_sentences = len(set(ActivationStore(cli_store).sentence_ids().tolist()))
    assert held["n_train_sentences"] + held["n_test_sentences"] == n_sentences
    assert summary["split"]["n_test_sentences"] == held["n_test_sentences"] > 0
    assert set(held["overlap_with_given"]) == {"5", "20"}
    assert "train / " in result.output and "held-out test sentences" in result.output
    assert not any("may have" in w for w in summary["warnings"])


def test_evaluate_given_ranking_is_warned(cli_store, small_conllu, ranking, tmp_path):
    out = tmp_path / "given"
    result = _evaluate(cli_store, small_conllu, ranking, out, "--ks", "5", "--holdout", "given")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["holdout"]["mode"] == "given" and summary["holdout"]["held_out"] is False
    assert any("may have been computed on these same sentences" in w
               for w in summary["warnings"])
    assert "NOT held out" in result.output


def test_evaluate_one_concept(cli_store, small_conllu, ranking, tmp_path):
    result = _evaluate(cli_store, small_conllu, ranking, tmp_path / "noun", "--ks", "3",
                       "--concept", "NOUN", "--mode", "mean")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "noun" / "summary.json").read_text())
    assert summary["concept"] == "NOUN" and summary["selection"]["concept"] == "NOUN"
    assert summary["control"][0]["concept"] == "NOUN"
    assert list(summary["layers"]["counts"]) == ["NOUN"]
    assert set(summary["ablation"]["class_counts"]) == {"0", "1"}
    assert summary["ablation"]["mode"] == "mean"


def test_bad_options_fail_before_any_probe(cli_store, small_conllu, ranking, tmp_path):
    result = _evaluate(cli_store, small_conllu, ranking, tmp_path / "x", "--mode", "noise")
    assert isinstance(result.exception, NeuronscopeError) and "mode" in str(result.exception)
    result = _evaluate(cli_store, small_conllu, ranking, tmp_path / "x", "--concept", "NOPE")
    assert isinstance(result.exception, NeuronscopeError)
    assert "no concept 'NOPE'" in str(result.exception)
    result = runner.invoke(app, ["evaluate", str(cli_store), str(small_conllu), str(ranking),
                                 "--labels", "xpos", "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, NeuronscopeError)
    assert "no label layer 'xpos'" in str(result.exception)


def test_ranking_from_another_store_is_refused(cli_store, small_conllu, ranking, tmp_path):
    other = Ranking.from_json(ranking)
    other.store_fingerprint = "0123456789abcdef-other-mean"
    path = tmp_path / "other.json"
    other.to_json(path)
    result = _evaluate(cli_store, small_conllu, path, tmp_path / "x", "--ks", "5")
    assert isinstance(result.exception, FingerprintMismatchError)
    assert "another model" in str(result.exception)
    # Without a fingerprint, mismatching names give away a foreign ranking too.
    other.store_fingerprint = None
    other.names = {i: f"L9.mlp.{i}" for i in other.names}
    other.to_json(path)
    result = _evaluate(cli_store, small_conllu, path, tmp_path / "x", "--ks", "5")
    assert isinstance(result.exception, NeuronscopeError)
    assert "differ from store" in str(result.exception)
    assert not (tmp_path / "x" / "summary.json").exists()


def test_ranking_from_another_corpus_of_the_same_model_is_accepted(cli_store, small_conllu, ranking,
                                                                   tmp_path):
    # Rank on training text, evaluate on held-out text: same neurons, other corpus.
    other = Ranking.from_json(ranking)
    model_fp, _, aggregation = other.store_fingerprint.split("-")
    other.store_fingerprint = f"{model_fp}-0123456789abcdef-{aggregation}"
    path = tmp_path / "train-ranking.json"
    other.to_json(path)
    result = _evaluate(cli_store, small_conllu, path, tmp_path / "x", "--ks", "5")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "summary.json").exists()


@pytest.mark.parametrize("ks, message", [("0", "between 1 and 224"),
                                         ("5,225", "between 1 and 224"),
                                         ("ten", "comma-separated integers")])
def test_bad_k_is_refused(cli_store, small_conllu, ranking, tmp_path, ks, message):
    result = _evaluate(cli_store, small_conllu, ranking, tmp_path / "x", "--ks", ks)
    assert isinstance(result.exception, NeuronscopeError)
    assert message in str(result.exception)


def test_library_on_a_store_splits_by_sentence(cli_store, small_conllu, ranking, small_corpus):
    st = ActivationStore(cli_store)
    rk = Ranking.from_json(ranking)
    result = evaluate_selection(st, small_corpus.concept_labels("upos"), rk, ks=[4],
                                n_random=1, test_size=0.3)
    # Held-out words are whole sentences: 3 of the 10.
    lengths = small_corpus.sentence_lengths()
    assert result.n_test in {int(lengths[list(c)].sum()) for c in _triples(len(lengths))}
    matrix = load_neurons(st, rk.top_ids(4))
    assert matrix.names == rk.top(4) and np.isfinite(matrix.x).all()


def test_information_on_a_store_checks_the_corpus(cli_store, ranking, small_corpus):
    st = ActivationStore(cli_store)
    rk = Ranking.from_json(ranking)
    labels = small_corpus.concept_labels("upos")
    per = neuron_mutual_information(st, labels, neurons=rk.top(3))
    assert list(per) == rk.top(3) and all(v >= 0 for v in per.values())
    assert gaussian_mutual_information(st, labels, neurons=rk.top(3)) >= 0
    other = small_corpus.subset(range(1, 10))
    foreign = ConceptLabels(np.resize(other.labels_array("upos"), st.n_words), "upos",
                            other.fingerprint)
    with pytest.raises(FingerprintMismatchError, match="other than the one store"):
        neuron_mutual_information(st, foreign, neurons=rk.top(3))


def _triples(n):
    return [(a, b, c) for a in range(n) for b in range(a + 1, n) for c in range(b + 1, n)]
