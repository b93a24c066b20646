"""The planted benchmark as the referee of the default rankers (issue #13, item 3): at SNR
1.0 every default method finds the focused neurons (recall@planted >= 0.9) and the best finds
the group neurons (>= 0.8). Reduced setting: 8,000 words (at 5,000 the
group units' concepts have too few words for any method), 120 background neurons, focused and
group units only, two concepts."""

from __future__ import annotations

import pytest

from neuronscope.benchmark import (
    PlantedBenchmark,
    run_benchmark,
    synthetic_background,
    synthetic_labels,
)
from neuronscope.methods import METHODS


@pytest.fixture(scope="module")
def board():
    n_words = 8000
    background = synthetic_background(n_words, 120, random_state=0)
    labels = synthetic_labels(n_words, 8, random_state=0)
    planted = PlantedBenchmark(kinds=("focused", "group"), snrs=(1.0,), n_concepts=2,
                               random_state=0).build(background, labels)
    return run_benchmark(planted, random_repeats=5)


def recall(board, method: str, kind: str) -> float:
    r = board.results
    row = r[(r["method"] == method) & (r["kind"] == kind) & (r["k"] == "planted")]
    assert len(row) == 1
    return float(row["recall"].iloc[0])


@pytest.mark.parametrize("method", list(METHODS))
def test_every_default_ranker_finds_focused_neurons(board, method):
    assert recall(board, method, "focused") >= 0.9


def test_the_best_ranker_finds_group_neurons(board):
    best = max(recall(board, m, "group") for m in METHODS)
    assert best >= 0.8
    assert recall(board, "chance", "group") < 0.05

