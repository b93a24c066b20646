"""Library loops report progress as ``(done, total)``: what the CLI's bars are driven by."""

from __future__ import annotations

import numpy as np

from neuronscope.explanations.compositional import CompositionalExplainer
from neuronscope.explanations.evolutionary import GeneticSelector


def test_explain_reports_each_neuron(small_corpus):
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((small_corpus.n_words, 3)).astype(np.float32)
    calls: list[tuple[int, int]] = []
    explainer = CompositionalExplainer(alpha=0.1, max_length=1, min_count=2, block_neurons=2)
    results = explainer.explain(acts, small_corpus, progress=lambda d, t: calls.append((d, t)))
    assert len(results) == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_genetic_search_reports_each_generation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 6)).astype(np.float32)
    y = (x[:, 2] > 0).astype(np.int64)
    calls: list[tuple[int, int]] = []
    GeneticSelector(k=2, population=6, generations=3, patience=None, random_state=0
                    ).search_array(x, y, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
