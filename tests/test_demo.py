"""The demo pipeline end to end (on the tiny BERT: the real MiniLM run is `make demo`)."""

from __future__ import annotations

import json

import numpy as np

from neuronscope.demo import DEMO_CONCEPTS, PROBE_FILE
from neuronscope.methods import METHODS, LinearProbe, Ranking
from neuronscope.store import ActivationStore


def test_demo_runs_every_stage(demo_run):
    folder, result, text = demo_run
    store = ActivationStore(folder / "store")
    assert store.n_words == result.n_words == 4600
    assert set(store.components) == {"hidden", "mlp"}
    # One probe per hidden layer, accuracies are real fractions above the majority baseline.
    assert [r.layer for r in result.layer_accuracy] == [0, 1, 2]
    for r in result.layer_accuracy:
        assert 0.0 <= r.majority_baseline < r.accuracy <= 1.0
    # Every method ranked every demo concept and wrote a readable ranking.
    assert set(result.methods) == set(METHODS)
    for name in METHODS:
        ranking = Ranking.from_json(folder / f"ranking.{name}.json")
        for concept in DEMO_CONCEPTS:
            assert ranking.top(5, concept) == result.methods[name]["top"][concept]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_sentences"] == 400
    # The evaluation retrained probes on top / random / bottom k neurons of the probe ranking.
    evaluation = summary["evaluation"]
    assert [row["k"] for row in evaluation["table"]] == [10, 50, 200]
    for row in evaluation["table"]:
        assert 0.0 <= row["bottom"] <= 1.0 and 0.0 <= row["top"] <= 1.0
    assert 0.0 < evaluation["full_accuracy"] <= 1.0
    # Held out: the probe ranking was recomputed on the train sentences only.
    assert evaluation["holdout"]["mode"] == "reranked"
    assert evaluation["holdout"]["n_train_sentences"] == 320
    assert evaluation["holdout"]["n_test_sentences"] == 80 and evaluation["n_random"] == 5
    assert "Which layers encode part of speech" in text
    assert "top neuron per tag and method" in text
    assert "Are the top neurons the right ones?" in text
    # ... and a static report was written, linking its neuron cards.
    index = folder / "report" / "index.html"
    assert result.report == str(index) and index.exists()
    html = index.read_text(encoding="utf-8")
    assert "neurons/" in html
    # ... with an evaluation section from the full evaluation the demo wrote, ...
    evaluation_summary = json.loads((folder / "evaluation" / "probe" / "summary.json")
                                    .read_text())
    assert evaluation_summary["format"] == "neuronscope-evaluation"
    assert evaluation_summary["selection"]["table"] == evaluation["table"]
    assert (folder / "evaluation" / "probe" / "selection.png").is_file()
    assert "probe · all upos: probes on the top / random / bottom k neurons" in html
    assert "probe · all upos: ablation in a trained probe" in html
    # ... and the saved probe's signed weights on the cards of the neurons it uses.
    probe = LinearProbe.load(folder / PROBE_FILE)
    cards = {p.stem for p in (folder / "report" / "neurons").glob("*.html")}
    used = [n for n in result.methods["probe"]["top"]["NOUN"] if n in cards and
            (probe.coef_[:, list(probe.neuron_names_).index(n)] != 0).any()]
    assert used, "no carded top NOUN neuron of the probe has a non-zero weight"
    card = (folder / "report" / "neurons" / f"{used[0]}.html").read_text(encoding="utf-8")
    assert 'id="probe-weights"' in card
    column = probe.coef_[:, list(probe.neuron_names_).index(used[0])]
    strongest = int(np.argmax(np.abs(column)))
    assert (f"<td>{probe.classes_[strongest]}</td><td><span class=\"num\">"
            f"{column[strongest]:.3g}</span>") in card
