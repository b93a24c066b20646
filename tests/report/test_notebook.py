"""Jupyter displays: ``Ranking._repr_html_`` and ``NeuronView._repr_html_``."""

from __future__ import annotations

import re

from neuronscope.methods import Ranking
from neuronscope.report import NeuronView


def test_ranking_repr_html(report_rankings):
    ranking = report_rankings[0]
    html = ranking._repr_html_()
    assert html.startswith('<div class="ns-ranking">')
    for concept in ranking.concept_names:
        assert f"<td>{concept}</td>" in html
        for name in ranking.top(5, concept):
            assert name in html
    # Styles are scoped to the fragment, so they cannot restyle the notebook around it.
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert all(line.startswith(".ns-ranking ") for line in style.splitlines() if "{" in line)
    assert "http" not in html


def test_ranking_repr_html_caps_concepts_and_escapes():
    ranking = Ranking.from_dict({
        "format": "neuronscope-ranking", "method": "<m>", "params": {},
        "names": {"0": "L0.hidden.0"},
        "concepts": {f"<c{i}>": {"ids": [0], "scores": [1.0]} for i in range(40)},
        "global": {"ids": [0], "scores": [1.0]},
    })
    html = ranking._repr_html_()
    assert "<m>" not in html and "&lt;m&gt;" in html and "<c1>" not in html
    assert "and 10 more concepts" in html


def test_neuron_view(report_store, small_corpus):
    view = NeuronView(report_store, "L1.mlp.7", corpus=small_corpus, label_layers=["upos"])
    html = view._repr_html_()
    assert html.startswith('<div class="ns-card">') and "L1.mlp.7" in html
    assert "layer 1, component mlp, neuron 7" in html
    assert '<svg class="plot hist"' in html and 'class="hm"' in html
    assert "Top words" in html and "Top contexts" in html
    assert "Top sentences" not in html  # the preview is short
    assert view.summary() is view.summary()  # computed once
    assert repr(view) == "NeuronView(L1.mlp.7)"
    full = view.html(preview=False)
    assert "Top sentences" in full and "Labels of its top" in full
    # Global ids work too; without a corpus the words come from the store.
    by_id = NeuronView(report_store, report_store.layout.id("L1.mlp.7"))
    assert by_id.neuron == "L1.mlp.7"
    assert by_id.summary().top_words == view.summary().top_words
