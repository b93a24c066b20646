"""The demo pipeline end to end (on the tiny BERT: the real MiniLM run is `make demo`)."""

from __future__ import annotations

import json

from rich.console import Console

from neuronscope.demo import DEMO_CONCEPTS, run_demo
from neuronscope.methods import METHODS, Ranking
from neuronscope.store import ActivationStore


def test_demo_runs_every_stage(tmp_path, tiny_bert_dir):
    console = Console(record=True, width=160)
    result = run_demo(tmp_path / "demo", model=str(tiny_bert_dir), console=console,
                      progress=False)
    store = ActivationStore(tmp_path / "demo" / "store")
    assert store.n_words == result.n_words == 4600
    assert set(store.components) == {"hidden", "mlp"}
    # One probe per hidden layer, accuracies are real fractions above the majority baseline.
    assert [r.layer for r in result.layer_accuracy] == [0, 1, 2]
    for r in result.layer_accuracy:
        assert 0.0 <= r.majority_baseline < r.accuracy <= 1.0
    # Every method ranked every demo concept and wrote a readable ranking.
    assert set(result.methods) == set(METHODS)
    for name in METHODS:
        ranking = Ranking.from_json(tmp_path / "demo" / f"ranking.{name}.json")
        for concept in DEMO_CONCEPTS:
            assert ranking.top(5, concept) == result.methods[name]["top"][concept]
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["n_sentences"] == 400
    # The evaluation retrained probes on top / random / bottom k neurons of the probe ranking.
    evaluation = summary["evaluation"]
    assert [row["k"] for row in evaluation["table"]] == [10, 50, 200]
    for row in evaluation["table"]:
        assert 0.0 <= row["bottom"] <= 1.0 and 0.0 <= row["top"] <= 1.0
    assert 0.0 < evaluation["full_accuracy"] <= 1.0
    text = console.export_text()
    assert "Which layers encode part of speech" in text
    assert "top neuron per tag and method" in text
    assert "Are the top neurons the right ones?" in text
    # ... and a static report was written, linking its neuron cards.
    index = tmp_path / "demo" / "report" / "index.html"
    assert result.report == str(index) and index.exists()
    assert "neurons/" in index.read_text(encoding="utf-8")
