"""Fixtures of the report tests: a small store of the tiny BERT, rankings, a built report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.extraction import extract
from neuronscope.methods import get_method
from neuronscope.models import load_model
from neuronscope.report import build_report

#: Fast methods, so the whole report suite stays well under a minute on two cores.
METHODS = ("probeless", "selectivity", "iou")

#: Words and labels that must be escaped everywhere they appear.
NASTY_SENTENCES = [
    ["<script>alert(1)</script>", "&", "cats", "sat", "."],
    ['"quoted"', "a&b", "</div>", "<b>bold</b>", "runs", "."],
    ["dogs", "'single'", "<!--", "-->", "sat", "."],
]
NASTY_LABELS = [
    ["<X>", ",", "NOUN", "VERB", "."],
    ["NOUN", ",", "a/b", "<X>", "VERB", "."],
    ["NOUN", "a/b", ",", ",", "VERB", "."],
]


@pytest.fixture(scope="session")
def tiny_loaded(tiny_bert_dir):
    """The tiny BERT loaded from disk, as the CLI would."""
    return load_model(str(tiny_bert_dir))


@pytest.fixture(scope="session")
def report_store(tmp_path_factory, tiny_loaded, small_corpus):
    """``small_corpus`` through the tiny BERT (hidden + mlp), in chunks of 32 words so that
    reads cross chunk boundaries."""
    path = tmp_path_factory.mktemp("report-store") / "store"
    return extract(small_corpus, path, tiny_loaded, components=["hidden", "mlp"],
                   progress=False, chunk_words=32)


@pytest.fixture(scope="session")
def report_rankings(report_store, small_corpus):
    """One ranking per fast method on UPOS."""
    labels = small_corpus.concept_labels("upos")
    return [get_method(name).rank(report_store, labels) for name in METHODS]


def write_evaluation(folder: Path, neurons: list[str]) -> Path:
    """A fake evaluation + intervention output folder, in the shapes the report reads."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    ks = [1, 5, 10, 20]
    summary = {
        "method": "probeless",
        "overall_accuracy": 0.91,
        "concepts": {
            "NOUN": {
                "selection": {"k": ks, "top": [0.6, 0.8, 0.9, 0.93],
                              "random": [0.4, 0.5, 0.6, 0.7], "bottom": [0.3, 0.35, 0.4, 0.5]},
                "ablation": {
                    "top": [{"k": k, "accuracy": a}
                            for k, a in zip(ks, [0.8, 0.6, 0.5, 0.4], strict=True)],
                    "random": [{"k": k, "accuracy": 0.9} for k in ks],
                    "bottom": [{"k": k, "accuracy": 0.91} for k in ks],
                },
            },
        },
        "neurons": {neurons[0]: {"ablation_drop": 0.125}},
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "attribution.json").write_text(
        json.dumps([{"neuron": neurons[1], "attribution": 0.5, "concept": "NOUN"}]),
        encoding="utf-8",
    )
    fig = Figure(figsize=(2, 1.5), dpi=50)
    fig.subplots().plot([0, 1], [1, 0])
    fig.savefig(folder / "accuracy.png")
    return folder


def write_intervention(folder: Path, ranking, concept: str = "NOUN", k: int = 3) -> Path:
    """``neuronscope ablate --out`` output, written through the interventions' own class."""
    import pandas as pd

    from neuronscope.interventions.ablation import AblationResult

    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([
        {"condition": "none", "k": 0, "loss_concept": 2.0, "delta_concept": 0.0},
        {"condition": "top", "k": k, "loss_concept": 2.75, "delta_concept": 0.75},
        {"condition": "random", "k": k, "loss_concept": 2.1, "delta_concept": 0.1},
    ])
    result = AblationResult("masked-lm", concept, k, "zero", "upos", table,
                            {"top": [ranking.top(k, concept)]})
    path = folder / "ablate.json"
    path.write_text(json.dumps(result.to_dict(), default=str), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def real_evaluation(tmp_path_factory, report_store, small_corpus, report_rankings) -> Path:
    """The output of ``neuronscope evaluate`` (the real pipeline, kept small)."""
    from neuronscope.evaluation.pipeline import run_evaluation

    out = tmp_path_factory.mktemp("evaluate") / "probeless"
    run_evaluation(report_store, small_corpus, report_rankings[0], "upos", out, ks=[5, 20],
                   n_random=1, ablation_steps=3, max_epochs=2)
    return out


@pytest.fixture(scope="session")
def report_dir(tmp_path_factory, report_store, small_corpus, report_rankings,
               real_evaluation) -> Path:
    """A report built from ranking JSON files (as the CLI would) with evaluation results of
    three kinds: ``neuronscope evaluate``, ``neuronscope ablate`` and a free-form folder."""
    root = tmp_path_factory.mktemp("report")
    paths = []
    for r in report_rankings:
        path = root / f"ranking.{r.method}.json"
        r.to_json(path)
        paths.append(path)
    first = report_rankings[0]
    free_form = write_evaluation(root / "evaluation",
                                 [first.top(1, "NOUN")[0], first.top(1, "VERB")[0]])
    interventions = write_intervention(root / "interventions", first)
    index = build_report(report_store, small_corpus, paths, root / "site",
                         evaluation_dir=[free_form, real_evaluation, interventions], top_k=5,
                         max_neurons=40)
    return index.parent


@pytest.fixture(scope="session")
def nasty_corpus() -> Corpus:
    """Words and labels full of HTML specials."""
    return Corpus(NASTY_SENTENCES, {"upos": NASTY_LABELS}, name="<nasty & co>")


@pytest.fixture(scope="session")
def nasty_report(tmp_path_factory, tiny_loaded, nasty_corpus) -> Path:
    """A report of the nasty corpus (hidden states, probeless ranking)."""
    root = tmp_path_factory.mktemp("nasty")
    store = extract(nasty_corpus, root / "store", tiny_loaded, components=["hidden"],
                    progress=False)
    ranking = get_method("probeless").rank(store, nasty_corpus.concept_labels("upos"))
    return build_report(store, nasty_corpus, [ranking], root / "site", top_k=3).parent
