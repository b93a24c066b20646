"""Steering generation with a concept's neurons, against none and random neurons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.extraction import extract
from neuronscope.interventions import (
    concept_values,
    generate,
    regex_detector,
    steer,
    word_detector,
)
from neuronscope.interventions.sites import model_sites
from neuronscope.interventions.steering import tag_rate
from neuronscope.methods.ranking import ranking_from_scores

from .conftest import PLANTED

PROMPTS = ["the cat sat", "researchers study", "we visited Paris", "my grandmother baked"]
DETERMINERS = word_detector(["the", "a", "their", "my"])


def _det_ranking(loaded, fingerprint=None):
    names = [PLANTED] + [f"L1.mlp.{i}" for i in range(10, 40)]
    layout = model_sites(loaded).layout()
    return ranking_from_scores("manual", {}, np.array([np.linspace(1, 0, len(names))]), ["DET"],
                               layout.ids(names), names, store_fingerprint=fingerprint)


def test_detectors():
    assert DETERMINERS("The dog") and not DETERMINERS("thesis other")
    assert regex_detector(r"\bcat(s)?\b")("Two Cats") and not regex_detector("dog")("cat")
    with pytest.raises(NeuronscopeError):
        word_detector([])


def test_steering_turns_the_concept_on(dormant_det):
    ranking = _det_ranking(dormant_det, dormant_det.fingerprint)
    result = steer(dormant_det, ranking, "DET", PROMPTS, k=1, value=3.0, detector=DETERMINERS,
                   random_repeats=2, max_new_tokens=6)
    assert result.neurons == [PLANTED] and result.values == [3.0]
    assert result.rate("top") == 1.0
    assert result.rate("top") > result.rate("none") + 0.5
    assert result.rate("random") <= result.rate("none") + 0.25
    table = result.table.set_index("condition")
    assert table.loc["top", "changed"] > 0.5 and table.loc["random", "generations"] == 8
    assert all(PLANTED not in names for names in result.random_neurons)
    # Deterministic: greedy twice, and seeded sampling twice, give the same texts.
    again = steer(dormant_det, ranking, "DET", PROMPTS, k=1, value=3.0, detector=DETERMINERS,
                  random_repeats=2, max_new_tokens=6)
    assert again.generations == result.generations
    sampled = [generate(dormant_det, PROMPTS, max_new_tokens=6, do_sample=True, seed=5,
                        top_k=20) for _ in range(2)]
    assert sampled[0] == sampled[1]
    assert sampled[0] != generate(dormant_det, PROMPTS, max_new_tokens=6, do_sample=True,
                                  seed=6, top_k=20)


def test_default_values_are_concept_medians_from_the_store(dormant_det, small_corpus,
                                                           tmp_path):
    store = extract(small_corpus, tmp_path / "store", dormant_det, components=["mlp"],
                    progress=False)
    labels = small_corpus.concept_labels("upos")
    names = [PLANTED, "L0.mlp.3"]
    values = concept_values(store, names, labels, "DET")
    rows = store.neurons(names)[small_corpus.labels_array("upos") == "DET"]
    assert np.allclose(values, np.median(rows, axis=0))
    ranking = _det_ranking(dormant_det, store.fingerprint)
    result = steer(dormant_det, ranking, "DET", PROMPTS[:2], k=3, store=store, labels=labels,
                   detector=DETERMINERS, max_new_tokens=4, random_repeats=0, positions="last")
    assert np.allclose(result.values, concept_values(store, ranking.top(3, "DET"), labels, "DET"))
    assert list(result.table["condition"]) == ["none", "top"]
    with pytest.raises(FingerprintMismatchError, match="another corpus"):
        concept_values(store, names, small_corpus.subset([0, 1]).concept_labels("upos"), "DET")


def test_steering_errors(dormant_det, tiny_bert, tiny_gpt2):
    ranking = _det_ranking(dormant_det)
    with pytest.raises(NeuronscopeError, match="give a value, or a store"):
        steer(dormant_det, ranking, "DET", PROMPTS, k=1)
    with pytest.raises(NeuronscopeError, match="not a causal language model"):
        steer(tiny_bert, _det_ranking(tiny_bert), "DET", PROMPTS, k=1, value=1.0)
    with pytest.raises(FingerprintMismatchError, match="ranking comes from another model"):
        steer(tiny_gpt2, _det_ranking(dormant_det, dormant_det.fingerprint), "DET", PROMPTS,
              k=1, value=1.0)
    with pytest.raises(NeuronscopeError, match="k must be in"):
        steer(dormant_det, ranking, "DET", PROMPTS, k=99, value=1.0)
    with pytest.raises(NeuronscopeError, match="too long|at most"):
        steer(dormant_det, ranking, "DET", ["the cat sat on the mat"], k=1, value=1.0,
              max_new_tokens=70)


def test_steering_controls_scores_and_json(dormant_det):
    ranking = _det_ranking(dormant_det, dormant_det.fingerprint)
    ticks = []

    def det_share(text: str) -> float:
        words = text.lower().split()
        return sum(w in {"the", "a", "their", "my"} for w in words) / len(words) if words else 0

    result = steer(dormant_det, ranking, "DET", PROMPTS[:2], k=1, value=3.0,
                   detector=DETERMINERS, score=det_share, max_new_tokens=5,
                   progress=lambda d, n: ticks.append((d, n)))
    assert len(result.random_neurons) == 5  # five random sets by default, from the top's layer
    assert all(n[0].startswith("L1.mlp.") and n[0] != PLANTED for n in result.random_neurons)
    assert result.random_values == [[3.0]] * 5
    table = result.table.set_index("condition")
    assert table.loc["random", "sets"] == 5 and table.loc["random", "generations"] == 10
    assert table.loc["top", "concept_score"] > table.loc["none", "concept_score"]
    assert np.isfinite(table.loc["random", ["concept_rate_std", "concept_score_std"]]
                       .astype(float)).all()
    assert any("detector rate" in n and "above the random band" in n and "NOT" not in n
               for n in result.notes())
    data = result.to_dict()
    assert data["schema"] == "neuronscope.steering/1" and data["values"] == [3.0]
    assert set(data["generations"]) == {"none", "top", *[f"random-{i}" for i in range(5)]}
    json.dumps(data, allow_nan=False)
    assert ticks[-1] == (14, 14)


def test_tag_rate():
    score = tag_rate("NOUN")
    assert score("") == 0.0
    assert score("The cat sat on the mat.") == pytest.approx(2 / 6)
