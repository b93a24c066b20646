"""The one-command demo: default model x shipped corpus -> store -> a first analysis.

It answers the questions a researcher asks first: which layers encode part of speech best
(per-layer probe accuracy on held-out sentences), and which neurons does each ranking method
pick for closed-class (DET, ADP) and open-class (NOUN, VERB) tags, with their top words, and
do probes retrained on the top-ranked neurons beat random and bottom-ranked ones.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from neuronscope.corpus import load_demo_corpus
from neuronscope.corpus.corpus import Corpus
from neuronscope.extraction import extract
from neuronscope.io import atomic_write_json
from neuronscope.methods import METHODS, Ranking, build_supervised
from neuronscope.methods.inspection import top_words
from neuronscope.models import load_model
from neuronscope.splits import split_masks
from neuronscope.store import ActivationStore
from neuronscope.store.store import META_FILE


@dataclass
class LayerProbeResult:
    """Held-out accuracy of a probe trained on one layer."""

    component: str
    layer: int
    accuracy: float
    majority_baseline: float


@dataclass
class DemoResult:
    """What the demo computed; saved as ``summary.json``."""

    store: str
    n_sentences: int
    n_words: int
    layer_accuracy: list[LayerProbeResult]
    neurons: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    report: str | None = None


def sentence_split(corpus: Corpus, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask over words: True for words of held-out (test) sentences."""
    return split_masks(corpus.sentence_ids(), test_fraction, seed)[1]


def layer_probe_accuracy(
    store: ActivationStore, corpus: Corpus, layer_name: str = "upos", component: str = "hidden"
) -> list[LayerProbeResult]:
    """Accuracy of a logistic-regression probe per layer, on held-out sentences."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    store.check_corpus(corpus)
    y = corpus.labels_array(layer_name)
    test = sentence_split(corpus)
    values, counts = np.unique(y[~test], return_counts=True)
    majority = float(np.mean(y[test] == values[np.argmax(counts)]))
    results = []
    for layer in store.layout.components[component].layers:
        x = store.layer(component, layer)
        scaler = StandardScaler().fit(x[~test])
        probe = LogisticRegression(max_iter=300, C=0.5)
        probe.fit(scaler.transform(x[~test]), y[~test])
        acc = float(probe.score(scaler.transform(x[test]), y[test]))
        results.append(LayerProbeResult(component, layer, acc, majority))
    return results


#: The demo's fitted UPOS probe (``LinearProbe.save``), read by the report.
PROBE_FILE = "probe.upos.pt"

#: Two closed-class and two open-class tags, where the survey expects focused vs spread neurons.
DEMO_CONCEPTS = ("DET", "ADP", "NOUN", "VERB")


def compare_methods(
    store: ActivationStore, corpus: Corpus, layer_name: str = "upos",
    methods: tuple[str, ...] = tuple(METHODS), random_state: int = 0,
    fitted: dict[str, Any] | None = None,
) -> dict[str, tuple[Ranking, float]]:
    """Rank the store's neurons for every concept of a layer with each method (and time it).

    ``fitted``, when given, receives each fitted method object by name (the demo saves the
    linear probe for the report's probe weights).
    """
    labels = corpus.concept_labels(layer_name)
    results = {}
    for name in methods:
        method = build_supervised(name, random_state=random_state)
        start = time.perf_counter()
        ranking = method.rank(store, labels)
        results[name] = (ranking, time.perf_counter() - start)
        if fitted is not None:
            fitted[name] = method
    return results


def evaluate_probe_ranking(
    store: ActivationStore, corpus: Corpus, ranking: Ranking, console: Console,
    ks: tuple[int, ...] = (10, 50, 200), out: str | Path | None = None,
) -> dict[str, Any]:
    """Do the probe's top neurons beat random and bottom ones? Retrain probes to find out.

    With ``out``, the full evaluation of ``neuronscope evaluate`` (selection, ablation in a
    trained probe, control task, layer distribution, figures) is written there, as the demo
    report's evaluation section; without, only the selection is computed.
    """
    if out is not None:
        from neuronscope.evaluation.pipeline import run_evaluation

        summary = run_evaluation(store, corpus, ranking, "upos", out, ks=list(ks), n_random=2,
                                 ablation_steps=5, random_state=0)
        selection = summary["selection"]
    else:
        from neuronscope.evaluation import evaluate_selection

        selection = evaluate_selection(store, corpus.concept_labels("upos"), ranking, ks=ks,
                                       n_random=2, random_state=0).to_dict()
    table = Table(title="Are the top neurons the right ones? UPOS probes on k selected neurons")
    for col in ("k", "top-k", "random-k", "bottom-k", "all neurons"):
        table.add_column(col, justify="right")
    for row in selection["table"]:
        table.add_row(str(row["k"]), f"{row['top']:.3f}",
                      f"{row['random_mean']:.3f} ± {row['random_std']:.3f}",
                      f"{row['bottom']:.3f}", f"{row['full']:.3f}")
    console.print(table)
    return dict(selection)


def run_demo(
    out: str | Path = "neuronscope-demo",
    model: str | None = None,
    console: Console | None = None,
    progress: bool = True,
    device: str | None = None,
    dtype: str = "float32",
) -> DemoResult:
    """Extract the demo corpus with the default model and print a first analysis.

    ``device`` and ``dtype`` (compute dtype) are passed to :func:`load_model`.
    """
    # Markup off: corpus words and paths print literally.
    console = console or Console(markup=False, highlight=False)
    out = Path(out)
    corpus = load_demo_corpus()
    console.print(f"corpus: {corpus.name}: {corpus.n_sentences} sentences, "
                  f"{corpus.n_words} words, layers {', '.join(corpus.layers)}")
    loaded = load_model(model, device=device, dtype=dtype)
    console.print(f"model: {loaded.name} ({loaded.config.model_type}, "
                  f"{loaded.num_layers} layers) on {loaded.device}")
    store_path = out / "store"
    store = extract(
        corpus, store_path, loaded, components=["hidden", "mlp"],
        overwrite=(store_path / META_FILE).exists(), progress=progress,
    )
    console.print(f"store: {store}")

    accuracy = layer_probe_accuracy(store, corpus, "upos")
    table = Table(title="Which layers encode part of speech? (UPOS probe, held-out sentences)")
    table.add_column("layer")
    table.add_column("accuracy", justify="right")
    table.add_column("")
    best = max(r.accuracy for r in accuracy)
    for r in accuracy:
        bar = "█" * int(round(30 * r.accuracy))
        mark = " ← best" if r.accuracy == best else ""
        table.add_row(f"L{r.layer}.{r.component}", f"{r.accuracy:.3f}", bar + mark)
    console.print(table)
    console.print(f"majority-class baseline: {accuracy[0].majority_baseline:.3f}")

    result = DemoResult(str(store_path), corpus.n_sentences, corpus.n_words, accuracy)
    console.print("Which neurons encode a tag? Every ranking method on the same store:",
                  style="bold")
    fitted: dict[str, Any] = {}
    rankings = compare_methods(store, corpus, "upos", fitted=fitted)
    # The fitted probe, for the signed weights on the report's neuron cards.
    fitted["probe"].save(out / PROBE_FILE)
    labels_flat = corpus.labels_array("upos")
    table = Table(title="top neuron per tag and method, with its top words")
    table.add_column("method")
    for concept in DEMO_CONCEPTS:
        table.add_column(concept)
    for name, (ranking, seconds) in rankings.items():
        ranking.to_json(out / f"ranking.{name}.json")
        cells = []
        for concept in DEMO_CONCEPTS:
            neuron = ranking.top(1, concept)[0]
            # A neuron can encode a tag by switching off on it (negative probe weight):
            # then its lowest-activating words are the telling ones.
            values = store.neurons([neuron])[:, 0]
            on_concept = labels_flat == concept
            lowest = values[on_concept].mean() < values[~on_concept].mean()
            words = top_words(store, neuron, k=4, lowest=lowest)
            result.neurons.setdefault(neuron, [asdict(w) for w in words])
            sign = "−" if lowest else "+"
            cells.append(f"{neuron} ({sign})\n" + ", ".join(w.word for w in words))
        table.add_row(f"{name}\n({seconds:.1f} s)", *cells)
        result.methods[name] = {
            "seconds": round(seconds, 3),
            "top": {c: ranking.top(5, c) for c in DEMO_CONCEPTS},
        }
    console.print(table)
    console.print("(+) words that switch the neuron on most, (−) words that switch it off most")

    result.evaluation = evaluate_probe_ranking(store, corpus, rankings["probe"][0], console,
                                               out=out / "evaluation" / "probe")

    summary = out / "summary.json"
    atomic_write_json(summary, {"schema": "neuronscope.demo/1", **asdict(result)})
    console.print(f"summary written to {summary}")

    from neuronscope.report import report_for_demo

    index = report_for_demo(out)
    result.report = str(index)
    console.print(f"report: open {index} in a browser (works offline)")
    return result
