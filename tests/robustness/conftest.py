"""Shared fixtures of the robustness suite: a tiny store whose words and labels are hostile to
markup and parsers, a ranking of it, and a way to run the CLI behind its error boundary.

``NEURONSCOPE_FUZZ=1`` (``make fuzz``) runs every case and many more generated inputs; without
it, tests marked ``fuzz`` and two of every three cases of a parametrized test are deselected
and Hypothesis draws a few examples per test, so the sampled subset in ``make test`` is fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus import load_corpus
from neuronscope.methods.ranking import ranking_from_scores
from neuronscope.store.store import store_from_arrays
from tests.cli_outcome import Outcome

FUZZ = os.environ.get("NEURONSCOPE_FUZZ", "") not in ("", "0")


def examples(fast: int, full: int) -> int:
    """Hypothesis examples per test: few in ``make test``, many in ``make fuzz``."""
    return full if FUZZ else fast


SAMPLE_EVERY = 3  # make test runs every 3rd case of a parametrized robustness test


def pytest_collection_modifyitems(config, items):
    """Without NEURONSCOPE_FUZZ: deselect tests marked ``fuzz`` and all but a fixed sample
    (the first and every third) of the cases of each parametrized test in this folder."""
    if FUZZ:
        return
    here = Path(__file__).parent
    seen: dict[str, int] = {}
    kept, dropped = [], []
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            kept.append(item)
            continue
        if "fuzz" in item.keywords:
            dropped.append(item)
            continue
        if getattr(item, "callspec", None) is not None:
            key = f"{item.fspath}::{item.originalname}"
            index = seen.get(key, 0)
            seen[key] = index + 1
            if index % SAMPLE_EVERY:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# Words and labels that Rich markup, CSV, JSON or a naive joiner would mangle.
SENTENCES = [
    ["to", "replace", "retiring", "jurists"],
    ["the", "[/]", "closes", "[bold]tags"],
    ["a\x1fb", "c", "[link=x]", "end"],
    ["retiring", "judges", "say", "[retiring]"],
    ["x,y", "\"quoted\"", "tab\there", "ok"],
]
LABELS = [
    ["PART", "VERB", "ADJ", "NOUN"],
    ["DET", "[/]", "VERB", "NOUN"],
    ["X", "NOUN", "[red]", "NOUN"],
    ["ADJ", "NOUN", "VERB", "NOUN"],
    ["X", "NOUN", "NOUN", "ADJ"],
]


@dataclass
class Fixture:
    """Paths of the robustness store, its corpus and a ranking of it."""

    root: Path
    store: Path
    corpus: Path
    ranking: Path


@pytest.fixture(scope="session")
def rb(tmp_path_factory) -> Fixture:
    root = tmp_path_factory.mktemp("robustness")
    corpus_path = root / "hostile corpus [x].jsonl"
    with open(corpus_path, "w", encoding="utf-8") as fh:
        for words, labels in zip(SENTENCES, LABELS, strict=True):
            fh.write(json.dumps({"words": words, "upos": labels}) + "\n")
    corpus = load_corpus(corpus_path)
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(corpus.n_words, 8)).astype(np.float32)
    flat = [w for s in corpus.sentences for w in s]
    acts[flat.index("retiring"), 0] = 10.0  # L0.hidden.0 fires most on "retiring"
    store_path = root / "store [/]"
    store = store_from_arrays(store_path, corpus, {"hidden": (acts, [0, 1])})
    concepts = sorted(set(corpus.labels_array("upos")))
    scores = rng.normal(size=(len(concepts), 8))
    ids = np.arange(8)
    ranking = ranking_from_scores("probeless", {}, scores, concepts, ids,
                                  store.layout.names(ids), store_fingerprint=store.fingerprint,
                                  label_layer="upos")
    ranking_path = root / "ranking.json"
    ranking.to_json(ranking_path)
    return Fixture(root, store_path, corpus_path, ranking_path)




def assert_user_error(result: Outcome, *fragments: str) -> None:
    """Exit code 2, one ``error:`` line naming ``fragments``, and no traceback anywhere."""
    assert result.code == 2, result.text
    assert "Traceback" not in result.text, result.text
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
