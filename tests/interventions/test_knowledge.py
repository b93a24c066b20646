"""Knowledge neurons: IG completeness, coarse/refined selection, suppress/enhance effects."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.interventions import (
    PromptTooLongError,
    attribute,
    edit_effect,
    intervene,
    knowledge_neurons,
)
from neuronscope.interventions.knowledge import (
    default_other_facts,
    jaccard,
    parse_fact,
    refine,
)

from .conftest import PLANTED

BERT_PROMPT = "the cat sat on the [MASK] ."


def _layer_zeroed_probability(loaded, prompt, target_id, position, layer, width):
    """P(target) with every MLP neuron of ``layer`` zeroed at ``position`` (not via Captum)."""
    enc = loaded.tokenizer(prompt.replace("[MASK]", loaded.tokenizer.mask_token or "[MASK]"),
                           return_tensors="pt")
    names = [f"L{layer}.mlp.{i}" for i in range(width)]
    with torch.no_grad(), intervene(loaded, names, positions=[position]):
        logits = loaded.model(**enc).logits
    return float(torch.softmax(logits[0, position], -1)[target_id])


@pytest.mark.parametrize("family,prompt,target", [
    ("bert", BERT_PROMPT, "mat"),
    ("gpt2", "the cat sat on the", "mat"),
])
def test_integrated_gradients_completeness(tiny_models, family, prompt, target):
    loaded = tiny_models[family]
    exact = attribute(loaded, prompt, target, method="gausslegendre")
    # The paper's right Riemann sum converges more slowly (m = 20 is ~15% off on these tiny
    # random models); with 100 points it is within a few percent.
    riemann = attribute(loaded, prompt, target, steps=100)
    width = exact.scores.shape[1]
    for i, layer in enumerate(exact.layers):
        zeroed = _layer_zeroed_probability(loaded, prompt, exact.target_id, exact.position,
                                           layer, width)
        assert exact.baseline_probability[i] == pytest.approx(zeroed, abs=1e-7)
        change = exact.probability - zeroed
        assert abs(change) > 1e-6
        # sum of attributions == F(x) - F(baseline)
        assert exact.scores[i].sum() == pytest.approx(change, rel=1e-3, abs=1e-7)
        assert riemann.scores[i].sum() == pytest.approx(change, rel=0.05, abs=1e-5)
        assert riemann.gaps[i] == pytest.approx(riemann.scores[i].sum() - change, abs=1e-6)
    assert exact.target_n_tokens >= 1 and exact.probability > 0


def test_ig_finds_the_planted_neuron(planted_det):
    result = attribute(planted_det, "the cat sat on", "the")
    assert result.top(1)[0][0] == PLANTED
    assert result.coarse(0.5) == [PLANTED]  # the rest is far below half of its attribution
    with torch.inference_mode():  # works when the caller is in inference mode too
        again = attribute(planted_det, "the cat sat on", "the", layers=[1])
    assert again.layers == [1] and again.top(1)[0][0] == PLANTED


def test_coarse_and_refined_selection(tiny_bert):
    prompts = [BERT_PROMPT, "a cat sat on the [MASK] .", "the dog sat on the [MASK] ."]
    kn = knowledge_neurons(tiny_bert, prompts[0], "mat", prompts[1:], threshold=0.3, share=0.6)
    assert [a.prompt for a in kn.prompts] == prompts
    coarse = [set(a.coarse(0.3)) for a in kn.prompts]
    for a, names in zip(kn.prompts, coarse, strict=True):
        top = a.scores.max()
        for name in names:
            layer, index = int(name.split(".")[0][1:]), int(name.split(".")[2])
            assert a.scores[a.layers.index(layer), index] >= 0.3 * top
    want = {n for n in set().union(*coarse) if sum(n in c for c in coarse) >= 0.6 * 3}
    assert set(kn.neurons) == want and want
    assert all(kn.counts[n] == sum(n in c for c in coarse) for n in kn.counts)
    effects = kn.effects[kn.effects["kind"] != "other"].set_index("prompt")
    assert list(effects.index) == prompts
    # Suppressing the positively attributed neurons lowers P(target), enhancing raises it.
    assert (effects["suppressed"] < effects["probability"]).all()
    assert (effects["enhanced"] > effects["probability"]).all()
    assert refine([["a", "b"], ["b"], ["c"]], 0.5) == (["b"], {"a": 1, "b": 2, "c": 1})


def test_edit_effect_matches_a_manual_edit(tiny_gpt2):
    neurons = ["L0.mlp.89", "L1.mlp.4"]
    table = edit_effect(tiny_gpt2, neurons, ["the cat sat on the"], "mat")
    enc = tiny_gpt2.tokenizer("the cat sat on the", return_tensors="pt")
    pos = enc["input_ids"].shape[1] - 1
    target = tiny_gpt2.tokenizer(" mat", add_special_tokens=False)["input_ids"][0]
    modules = dict(tiny_gpt2.model.named_modules())
    handles = []
    for name in neurons:
        layer, index = int(name[1]), int(name.split(".")[2])

        def pre(mod, args, index=index):
            x = args[0].clone()
            x[:, pos, index] = 0.0
            return (x, *args[1:])

        handles.append(modules[f"transformer.h.{layer}.mlp.c_proj"].register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            manual = torch.softmax(tiny_gpt2.model(**enc).logits[0, pos], -1)[target].item()
    finally:
        for h in handles:
            h.remove()
    assert table.loc[0, "suppressed"] == pytest.approx(manual, rel=1e-5)
    assert np.isfinite(table.loc[0, ["suppress_change", "enhance_change"]].astype(float)).all()


def test_knowledge_errors(tiny_bert, tiny_gpt2):
    with pytest.raises(NeuronscopeError, match=r"exactly one \[MASK\] \(found 0\)"):
        attribute(tiny_bert, "the cat sat on the mat", "mat")
    with pytest.raises(NeuronscopeError, match="found 2"):
        attribute(tiny_bert, "[MASK] cat sat on the [MASK]", "mat")
    with pytest.raises(UnknownComponentError, match="out of range"):
        attribute(tiny_bert, BERT_PROMPT, "mat", layers=[7])
    with pytest.raises(PromptTooLongError):
        attribute(tiny_gpt2, "the cat sat on the mat " * 20, "mat")
    with pytest.raises(NeuronscopeError, match="share"):
        knowledge_neurons(tiny_bert, BERT_PROMPT, "mat", share=0, measure=False, steps=2)


def test_knowledge_controls(planted_det):
    """The planted determiner neuron: random sets of its layer, other facts, paraphrases."""
    ticks = []
    kn = knowledge_neurons(planted_det, "the cat sat on", "the", ["we visited"],
                           layers=[1], steps=4, threshold=0.5, share=1.0,
                           others=[("the cat sat", "on"), ("my grandmother baked", "delicious"),
                                   ("did you see", "the")],
                           random_repeats=5, progress=lambda d, n: ticks.append((d, n)))
    assert kn.neurons == [PLANTED]
    assert len(kn.random_neurons) == 5
    for names in kn.random_neurons:  # same layer, same size, never the knowledge neuron
        assert len(names) == 1 and names[0].startswith("L1.mlp.") and names[0] != PLANTED
    e = kn.effects
    assert list(e["kind"]) == ["fact", "paraphrase", "other", "other", "other"]
    assert e["random_suppress_change_std"].notna().all()
    # Zeroing the determiner neuron hurts "the" after both prompts much more than random sets.
    fact = e[e["kind"] != "other"]
    assert (fact["suppress_change"] < fact["random_suppress_change"]
            - 2 * fact["random_suppress_change_std"]).all()
    assert kn.agreement.shape == (2, 2) and kn.agreement[0, 1] == 1.0
    summary = kn.summary()
    assert summary["paraphrase_jaccard"] == 1.0
    # "did you see => the" needs the determiner neuron too; the other two facts do not.
    other = e[e["kind"] == "other"].set_index("prompt")["suppress_change"]
    assert other["did you see"] < -0.5 and other.drop("did you see").gt(-0.5).all()
    assert not any("not specific" in n for n in kn.notes())
    data = kn.to_dict()
    assert data["schema"] == "neuronscope.knowledge/1" and data["notes"] == kn.notes()
    json.dumps(data, allow_nan=False)
    assert ticks[-1][0] == ticks[-1][1] == 2 + 5 * 6
    # With only determiner facts as the others, it is not specific, and says so.
    same = knowledge_neurons(planted_det, "the cat sat on", "the", layers=[1], steps=2,
                             threshold=0.5, others=[("did you see", "the")], random_repeats=0)
    assert same.neurons == [PLANTED]
    assert any("not specific" in n for n in same.notes())
    assert any("0 random sets" in n for n in same.notes())


def test_facts_and_defaults(tiny_bert, tiny_gpt2):
    assert parse_fact("The capital of Japan is=>Tokyo") == ("The capital of Japan is", "Tokyo")
    with pytest.raises(NeuronscopeError, match="PROMPT=>ANSWER"):
        parse_fact("The capital of Japan is Tokyo")
    facts = default_other_facts(tiny_gpt2, "Paris")
    assert len(facts) >= 3 and all(t != "Paris" for _, t in facts)
    assert all(p.endswith("[MASK] .") for p, _ in default_other_facts(tiny_bert, "mat"))
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)
