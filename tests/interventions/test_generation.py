"""Corpus generation by Gumbel-softmax input optimization on the tiny models."""

from __future__ import annotations

import pytest
import torch

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError, UnknownComponentError
from neuronscope.interventions.generation import NeuronTextGenerator
from neuronscope.models import wrap_model

FAST = {"steps": 60, "length": 4, "samples": 6, "eval_every": 5, "learning_rate": 0.2}


def real_activation(loaded, ids: list[int], module: str, index: int, position: int,
                    where: str = "input") -> float:
    """The neuron's value for a token sequence, with a plain torch hook (not Trace)."""
    captured = {}
    mod = dict(loaded.model.named_modules())[module]

    def pre(_, args):
        captured["x"] = args[0].detach()

    def post(_, args, out):
        captured["x"] = (out[0] if isinstance(out, tuple) else out).detach()

    handle = (mod.register_forward_pre_hook(pre) if where == "input"
              else mod.register_forward_hook(post))
    try:
        with torch.no_grad():
            loaded.model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return float(captured["x"][0, position, index])


def test_gpt2_mlp_neuron_activation_increases(tiny_gpt2):
    gen = NeuronTextGenerator(**FAST)
    result = gen.generate(tiny_gpt2, "L1.mlp.5")
    assert result.neuron == "L1.mlp.5" and result.position == 3 and result.length == 4
    assert result.best.activation > result.initial.activation
    assert result.gain > 0 and len(result.history) == FAST["steps"]
    acts = [s.activation for s in result.sequences]
    assert acts == sorted(acts, reverse=True) and len({tuple(s.ids) for s in result.sequences}) \
        == len(result.sequences)
    special = set(tiny_gpt2.tokenizer.all_special_ids)
    for seq in result.sequences:
        assert len(seq.ids) == 4 and not special & set(seq.ids)
        assert seq.tokens == tiny_gpt2.tokenizer.convert_ids_to_tokens(seq.ids)
    # The reported value is the real activation of the decoded ids (no special tokens for
    # this GPT-2 tokenizer, so the read position is the last one).
    best = result.best
    assert best.activation == pytest.approx(real_activation(
        tiny_gpt2, best.ids, "transformer.h.1.mlp.c_proj", 5, 3), abs=1e-5)
    # Seeded: the same run gives the same sequences.
    again = NeuronTextGenerator(**FAST).generate(tiny_gpt2, "L1.mlp.5")
    assert [s.ids for s in again.sequences] == [s.ids for s in result.sequences]
    assert result.to_dict()["beats_corpus"] is None


def test_bert_hidden_neuron_with_special_tokens(tiny_bert):
    result = NeuronTextGenerator(**FAST, position=1).generate(tiny_bert, "L2.hidden.7")
    assert result.best.activation > result.initial.activation
    tok = tiny_bert.tokenizer
    ids = [tok.cls_token_id, *result.best.ids, tok.sep_token_id]
    # hidden layer 2 is the output of block 1; position 1 of the free tokens is token 2.
    assert result.best.activation == pytest.approx(real_activation(
        tiny_bert, ids, "bert.encoder.layer.1", 7, 2, where="output"), abs=1e-4)


def test_store_comparison_and_errors(tiny_gpt2, tiny_bert, extracted):
    store = extracted("gpt2", components=("mlp",))
    result = NeuronTextGenerator(**FAST, n_corpus=3).generate(tiny_gpt2, "L0.mlp.2", store)
    assert len(result.corpus_top) == 3
    top = result.corpus_top[0]
    assert "[" in top["text"] and isinstance(top["activation"], float)
    assert result.beats_corpus == (result.best.activation > top["activation"])

    gen = NeuronTextGenerator(steps=2)
    with pytest.raises(UnknownComponentError, match="layer 5 out of range"):
        gen.generate(tiny_gpt2, "L5.mlp.0")
    with pytest.raises(UnknownComponentError, match="index 9999 out of range"):
        gen.generate(tiny_gpt2, "L0.mlp.9999")
    with pytest.raises(UnknownComponentError, match="bad neuron name"):
        gen.generate(tiny_gpt2, "mlp-3")
    # A store of another model: different vocabulary and neurons.
    with pytest.raises(FingerprintMismatchError, match="incompatible vocabularies"):
        gen.generate(tiny_bert, "L0.mlp.2", store)
    # The store must hold the neuron too.
    with pytest.raises(UnknownComponentError, match="unknown component 'attn'"):
        gen.generate(tiny_gpt2, "L0.attn.1", store)
    # A tokenizer with more tokens than the model embeds.
    mixed = wrap_model(tiny_bert.model, tiny_gpt2.tokenizer, name="mixed")
    with pytest.raises(NeuronscopeError, match="incompatible vocabularies: the tokenizer"):
        gen.generate(mixed, "L0.mlp.2")


def test_generation_reports_each_step(tiny_gpt2):
    calls: list[tuple[int, int]] = []
    NeuronTextGenerator(**{**FAST, "steps": 3}).generate(
        tiny_gpt2, "L1.mlp.5", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
