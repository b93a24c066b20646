"""intervene(): exact edits, positions, generation, nesting, clean exit, clear errors."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import nn

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError, UnknownComponentError
from neuronscope.extraction.hooks import Trace
from neuronscope.interventions import (
    Intervention,
    PromptTooLongError,
    encode_prompt,
    encode_words,
    intervene,
    token_positions,
)
from neuronscope.methods.probeless import Probeless
from neuronscope.methods.ranking import ConceptRanking, Ranking

MLP = {"bert": "bert.encoder.layer.{}.output.dense", "gpt2": "transformer.h.{}.mlp.c_proj"}
BLOCK = {"bert": "bert.encoder.layer.{}", "gpt2": "transformer.h.{}"}
HEAD_INPUT = {"bert": "cls", "gpt2": "lm_head"}  # receives hidden_states[-1]


def _inputs(loaded, texts=("the cat sat on the mat", "researchers study neurons")):
    enc = loaded.tokenizer(list(texts), padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _captured(loaded, modules, inputs, *, outputs=False):
    """Run once; return (logits, {module: input or output}) captured after any edits."""
    with torch.no_grad(), Trace(loaded.model, modules, retain_output=outputs,
                                retain_input=not outputs) as trace:
        logits = loaded.model(**inputs).logits
    return logits, (trace.outputs if outputs else trace.inputs)


def _manual(loaded, module_name, columns, fn, inputs):
    """Logits with ``x[..., columns] = fn(x[..., columns])`` applied by a plain torch pre-hook."""
    module = dict(loaded.model.named_modules())[module_name]

    def pre(mod, args):
        x = args[0].clone()
        x[..., columns] = fn(x[..., columns])
        return (x, *args[1:])

    handle = module.register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            return loaded.model(**inputs).logits
    finally:
        handle.remove()


def _hook_counts(model):
    return {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()}


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_zero_changes_exactly_the_named_neurons(tiny_models, family):
    loaded = tiny_models[family]
    inputs = _inputs(loaded)
    mods = [MLP[family].format(i) for i in range(2)]
    base_logits, before = _captured(loaded, mods, inputs)
    with intervene(loaded, ["L1.mlp.3", "L1.mlp.40"], op="zero"):
        logits, after = _captured(loaded, mods, inputs)
    # Layer 0 (upstream) untouched; in layer 1 only columns 3 and 40 differ, and are 0.
    assert torch.equal(after[mods[0]], before[mods[0]])
    edited = after[mods[1]]
    assert torch.all(edited[..., [3, 40]] == 0)
    keep = [i for i in range(edited.shape[-1]) if i not in (3, 40)]
    assert torch.equal(edited[..., keep], before[mods[1]][..., keep])
    assert before[mods[1]][..., [3, 40]].abs().sum() > 0  # the edit was a real change
    manual = _manual(loaded, mods[1], [3, 40], torch.zeros_like, inputs)
    torch.testing.assert_close(logits, manual, rtol=0, atol=1e-6)
    assert not torch.allclose(logits, base_logits)


@pytest.mark.parametrize("op,value,fn", [
    ("constant", [1.5, -2.0], lambda x: torch.tensor([1.5, -2.0]).expand_as(x)),
    ("scale", 3.0, lambda x: x * 3.0),
    ("add", [0.5, 1.0], lambda x: x + torch.tensor([0.5, 1.0])),
])
def test_ops_match_a_manual_edit(tiny_gpt2, op, value, fn):
    inputs = _inputs(tiny_gpt2)
    mod = MLP["gpt2"].format(0)
    _, before = _captured(tiny_gpt2, [mod], inputs)
    with intervene(tiny_gpt2, ["L0.mlp.7", "L0.mlp.9"], op=op, value=value):
        logits, after = _captured(tiny_gpt2, [mod], inputs)
    torch.testing.assert_close(after[mod][..., [7, 9]], fn(before[mod][..., [7, 9]]))
    manual = _manual(tiny_gpt2, mod, [7, 9], fn, inputs)
    torch.testing.assert_close(logits, manual, rtol=0, atol=1e-6)


@pytest.mark.parametrize("positions", ["all", "last"])
@pytest.mark.parametrize("component", ["mlp", "attn"])
@pytest.mark.parametrize("op,value", [
    ("zero", None), ("constant", [1.5, -2.0]), ("scale", 3.0), ("add", [0.5, 1.0]),
    ("mean", [0.25, -0.75]),
])
def test_in_place_edits_under_inference_mode_equal_the_general_path(tiny_gpt2, component, op,
                                                                     value, positions):
    # Under inference_mode the projection inputs are edited in place (a fast path); with
    # autograd on, the general out-of-place path runs. Both must give the same logits.
    inputs = _inputs(tiny_gpt2)
    names = [f"L1.{component}.2", f"L0.{component}.9"]
    with intervene(tiny_gpt2, names, op=op, value=value, positions=positions):
        with torch.inference_mode():
            fast = tiny_gpt2.model(**inputs).logits
        with torch.enable_grad():
            general = tiny_gpt2.model(**inputs).logits.detach()
        with torch.inference_mode():
            plain_in_mode = tiny_gpt2.model(**inputs).logits
    with torch.inference_mode():
        plain = tiny_gpt2.model(**inputs).logits
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-6)
    torch.testing.assert_close(plain_in_mode, fast, rtol=0, atol=0)  # repeatable
    assert not torch.allclose(fast, plain)  # the edit changed the output



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op,value", [
    ("zero", None), ("constant", [1.5, -2.0, 0.3]), ("scale", [3.0, 0.1, -1.7]),
    ("add", [0.5, 1.0, -0.33]), ("mean", [0.25, -0.75, 1e-3]),
])
def test_column_by_column_edit_equals_the_single_index_op(op, value, dtype):
    """Past torch's parallel grain, few columns are edited one at a time; the numbers equal
    one ``index_*`` op's exactly (values rounded to the dtype first), in every dtype, at
    every position and at the last one; small targets and repeated columns take the op."""
    from neuronscope.interventions import editing

    def site(index):
        values = None if value is None else np.asarray(value, np.float32)[: len(index)]
        return editing._Site("m", "input", "mlp", 0, [f"L0.mlp.{i}" for i in index],
                             np.asarray(index), values)

    rng = torch.Generator().manual_seed(0)
    big = torch.randn(4, 3000, 16, generator=rng).to(dtype)  # 12,000 rows x 3 > the grain
    calls = []
    original = torch.Tensor.index_fill_, torch.Tensor.index_copy_
    for target in (big, big[:, -1], big[:1, :5]):  # past the grain, a last position, small
        loop = site([5, 0, 11]).in_place_edit(op, 16, big.device, dtype)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(editing, "LOOP_COLUMNS", 0)  # always the single op
            single = site([5, 0, 11]).in_place_edit(op, 16, big.device, dtype)
            mp.setattr(torch.Tensor, "index_fill_",
                       lambda *a, **k: calls.append(1) or original[0](*a, **k))
            mp.setattr(torch.Tensor, "index_copy_",
                       lambda *a, **k: calls.append(1) or original[1](*a, **k))
            a, b = target.clone(), target.clone()
            calls.clear()
            loop(a)
            used_op = bool(calls)
            single(b)
        assert used_op == (target.numel() // 16 * 3 <= editing._GRAIN)
        assert torch.equal(a, b) and not torch.equal(a, target)
    repeated = site([5, 5, 11]).in_place_edit(op, 16, big.device, dtype)
    a, b = big.clone(), big.clone()
    repeated(a)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(editing, "LOOP_COLUMNS", 0)
        site([5, 5, 11]).in_place_edit(op, 16, big.device, dtype)(b)
    assert torch.equal(a, b)  # repeated columns: the op's semantics, not twice the edit

def test_mean_op_uses_store_means(tiny_gpt2, extracted):
    store = extracted("gpt2", "mean", ("hidden", "mlp"))
    names = ["L1.mlp.2", "L0.mlp.5"]
    want = store.neurons(names).astype(np.float64).mean(axis=0)
    inputs = _inputs(tiny_gpt2)
    mods = [MLP["gpt2"].format(i) for i in range(2)]
    with intervene(tiny_gpt2, names, op="mean", store=store):
        _, after = _captured(tiny_gpt2, mods, inputs)
    assert torch.allclose(after[mods[1]][..., 2], torch.tensor(want[0], dtype=torch.float32))
    assert torch.allclose(after[mods[0]][..., 5], torch.tensor(want[1], dtype=torch.float32))
    with pytest.raises(NeuronscopeError, match="needs a store"):
        intervene(tiny_gpt2, names, op="mean")


def test_positions_last_and_listed(tiny_bert):
    inputs = _inputs(tiny_bert, ["the cat sat on the mat"])
    mod = MLP["bert"].format(0)
    _, before = _captured(tiny_bert, [mod], inputs)
    t = inputs["input_ids"].shape[1]
    with intervene(tiny_bert, ["L0.mlp.1"], op="constant", value=9.0, positions="last"):
        _, last = _captured(tiny_bert, [mod], inputs)
    col = last[mod][0, :, 1]
    assert col[-1] == 9.0 and torch.equal(col[:-1], before[mod][0, :-1, 1])
    with intervene(tiny_bert, ["L0.mlp.1"], op="constant", value=9.0, positions=[1, 3, 99]):
        _, listed = _captured(tiny_bert, [mod], inputs)
    col = listed[mod][0, :, 1]
    changed = [i for i in range(t) if col[i] == 9.0]
    assert changed == [1, 3]
    others = [i for i in range(t) if i not in (1, 3)]
    assert torch.equal(col[others], before[mod][0, others, 1])


def test_word_positions_map_to_the_words_subwords(tiny_bert, tiny_gpt2, ref):
    words = "Interpretation of individual neurons is fascinating !".split()
    for loaded in (tiny_bert, tiny_gpt2):
        enc = encode_words(loaded, words)
        ids, word_ids = ref.tokens(loaded, words)
        assert enc.input_ids == ids
        for j in range(len(words)):
            assert token_positions(loaded, words, [j]) == [
                i for i, w in enumerate(word_ids) if w == j]
        first = token_positions(loaded, words, [0, 3], which="first")
        assert first == [word_ids.index(0), word_ids.index(3)]
    with pytest.raises(NeuronscopeError, match="out of range"):
        token_positions(tiny_bert, words, [len(words)])


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_hidden_neurons_edit_the_residual_stream(tiny_models, family):
    """Embeddings output, block outputs and the final norm, checked where they flow on."""
    loaded = tiny_models[family]
    inputs = _inputs(loaded)
    with torch.no_grad():
        hs = loaded.model(**inputs, output_hidden_states=True).hidden_states
    # Where hidden layer k is consumed: block k's input (k < 2) or the LM head's input (k = 2).
    consumers = [BLOCK[family].format(0), BLOCK[family].format(1), HEAD_INPUT[family]]
    _, plain = _captured(loaded, consumers, inputs)
    for k in range(3):
        assert torch.allclose(plain[consumers[k]], hs[k], atol=1e-6)  # the patterns are right
        with intervene(loaded, [f"L{k}.hidden.4"], op="constant", value=5.0):
            _, edited = _captured(loaded, consumers, inputs)
        x = edited[consumers[k]]
        assert torch.all(x[..., 4] == 5.0)
        keep = [i for i in range(x.shape[-1]) if i != 4]
        assert torch.equal(x[..., keep], hs[k][..., keep])
        for j in range(k):  # upstream consumers unchanged
            assert torch.equal(edited[consumers[j]], plain[consumers[j]])


def test_model_is_restored_after_the_context(tiny_gpt2):
    model = tiny_gpt2.model
    inputs = _inputs(tiny_gpt2)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model(**inputs, output_hidden_states=True)  # transformers installs its own hooks once
        before = model(**inputs).logits
    hooks = _hook_counts(model)
    with intervene(tiny_gpt2, ["L0.mlp.1", "L1.attn.h2.3", "L1.hidden.0"], op="scale",
                   value=4.0) as iv:
        assert iv.active and _hook_counts(model) != hooks
        with torch.no_grad():
            during = model(**inputs).logits
    assert not iv.active
    assert _hook_counts(model) == hooks
    with pytest.raises(RuntimeError, match="boom"), intervene(tiny_gpt2, ["L0.mlp.1"]):
        raise RuntimeError("boom")
    assert _hook_counts(model) == hooks
    for n, p in model.named_parameters():
        assert torch.equal(p, params[n]), n
    with torch.no_grad():
        after = model(**inputs).logits
    assert torch.equal(after, before) and not torch.allclose(during, before)


def _generate(loaded, prompt="the cat sat", n=8, **kw):
    enc = loaded.tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        out = loaded.model.generate(**enc, max_new_tokens=n, do_sample=False,
                                    pad_token_id=loaded.tokenizer.pad_token_id, **kw)
    return out[0, enc["input_ids"].shape[1]:].tolist()


def test_generation_under_intervention_differs_and_is_deterministic(tiny_gpt2):
    plain = _generate(tiny_gpt2)
    iv = intervene(tiny_gpt2, ["L1.mlp.3", "L0.mlp.7"], op="constant", value=20.0,
                   positions="last")
    with iv:
        first = _generate(tiny_gpt2)
    with iv:
        second = _generate(tiny_gpt2)
    assert first == second and first != plain
    # "last" under KV cache: one edit per forward step (prefill + 7 one-token steps).
    assert set(iv.calls.values()) == {8}
    assert _generate(tiny_gpt2) == plain


def test_token_positions_keep_their_meaning_with_kv_cache(tiny_gpt2):
    """Absolute positions: cached decoding (1-token steps) == recomputing the full sequence."""
    prompt_len = tiny_gpt2.tokenizer(["the cat sat"], return_tensors="pt")["input_ids"].shape[1]
    neurons = ["L0.mlp.3", "L1.mlp.9", "L0.hidden.2"]
    with intervene(tiny_gpt2, neurons, op="constant", value=15.0,
                   positions=[1, prompt_len + 1]) as iv:
        cached = _generate(tiny_gpt2, use_cache=True)
        iv.reset()
        full = _generate(tiny_gpt2, use_cache=False)
    assert cached == full
    assert cached != _generate(tiny_gpt2)


def test_nested_interventions_compose(tiny_bert):
    inputs = _inputs(tiny_bert)
    with torch.no_grad():
        with intervene(tiny_bert, ["L0.mlp.1", "L1.mlp.2"], op="zero"):
            both = tiny_bert.model(**inputs).logits
        with intervene(tiny_bert, ["L0.mlp.1"]), intervene(tiny_bert, ["L1.mlp.2"]):
            nested = tiny_bert.model(**inputs).logits
    assert torch.equal(both, nested)
    # On one neuron, the outer edit runs first: (x * 2) + 1.
    mod = MLP["bert"].format(0)
    _, before = _captured(tiny_bert, [mod], inputs)
    with intervene(tiny_bert, ["L0.mlp.5"], op="scale", value=2.0), \
            intervene(tiny_bert, ["L0.mlp.5"], op="add", value=1.0):
        _, after = _captured(tiny_bert, [mod], inputs)
    torch.testing.assert_close(after[mod][..., 5], before[mod][..., 5] * 2 + 1)


def test_ranking_slice_and_ranking_from_another_model(tiny_gpt2, extracted, small_corpus):
    store = extracted("gpt2", "mean", ("hidden", "mlp"))
    ranking = Probeless(neurons=store.layout.select(["mlp"]).tolist()).rank(
        store, small_corpus.concept_labels("upos"))
    iv = Intervention(tiny_gpt2, (ranking, "NOUN", 5))
    assert iv.names == ranking.top(5, "NOUN")
    assert Intervention(tiny_gpt2, (ranking, 3)).names == ranking.top(3)
    other = Ranking("x", {}, {"NOUN": ConceptRanking([0], [1.0])}, {0: "L0.mlp.0"},
                    store_fingerprint="0123456789abcdef-corpus-mean")
    with pytest.raises(FingerprintMismatchError, match="ranking comes from another model"):
        intervene(tiny_gpt2, (other, "NOUN", 1))
    with pytest.raises(FingerprintMismatchError, match="another model"):
        intervene(tiny_gpt2, ["L0.mlp.0"], op="mean", store=extracted("bert", "mean"))
    with pytest.raises(NeuronscopeError, match=r"\(ranking, concept, k\)"):
        intervene(tiny_gpt2, ranking)


@pytest.mark.parametrize("name,match", [
    ("bad-name", "bad neuron name"),
    ("L0.ffn.3", "unknown component 'ffn'"),
    ("L5.mlp.3", "layer 5 out of range"),
    ("L0.mlp.128", "index 128 out of range"),
    ("L0.attn.h4.0", "4 heads of size 8"),
    ("L0.mlp.h1.2", "has no heads"),
    ("L3.hidden.0", "layer 3 out of range"),
])
def test_unknown_neuron_names_are_refused(tiny_gpt2, name, match):
    with pytest.raises(UnknownComponentError, match=match):
        intervene(tiny_gpt2, ["L0.mlp.1", name])


def test_bad_arguments(tiny_gpt2):
    with pytest.raises(NeuronscopeError, match="unknown op"):
        intervene(tiny_gpt2, ["L0.mlp.1"], op="double")
    with pytest.raises(NeuronscopeError, match="needs a value"):
        intervene(tiny_gpt2, ["L0.mlp.1"], op="scale")
    with pytest.raises(NeuronscopeError, match="one value per neuron"):
        intervene(tiny_gpt2, ["L0.mlp.1", "L0.mlp.2"], op="constant", value=[1, 2, 3])
    with pytest.raises(NeuronscopeError, match="more than once"):
        intervene(tiny_gpt2, ["L0.mlp.1", "L0.mlp.1"])
    with pytest.raises(NeuronscopeError, match="positions"):
        intervene(tiny_gpt2, ["L0.mlp.1"], positions="first")
    with pytest.raises(NeuronscopeError, match=">= 0"):
        intervene(tiny_gpt2, ["L0.mlp.1"], positions=[-1])
    iv = intervene(tiny_gpt2, ["L0.mlp.1"])
    with iv, pytest.raises(NeuronscopeError, match="already active"), iv:
        pass


def test_missing_component_of_an_unknown_architecture():
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = types.SimpleNamespace(model_type="toy", num_hidden_layers=1,
                                                hidden_size=4)
            self.lin = nn.Linear(4, 4)

    with pytest.raises(UnknownComponentError, match="no 'mlp' neurons.*model_type 'toy'"):
        intervene(Toy(), ["L0.mlp.1"])
    with pytest.raises(UnknownComponentError, match="no 'hidden' neurons"):
        intervene(Toy(), ["L0.hidden.1"])


def test_too_long_prompts_are_refused(tiny_gpt2, tiny_bert):
    long_text = " ".join(["extraordinarily wonderful"] * 60)
    with pytest.raises(PromptTooLongError, match="at most 64"):
        encode_prompt(tiny_gpt2, long_text)
    with pytest.raises(PromptTooLongError, match="plus 60 new tokens"):
        encode_prompt(tiny_gpt2, "the cat sat on the mat " * 5, extra_tokens=60)
    with pytest.raises(PromptTooLongError, match="sentence has"):
        encode_words(tiny_bert, long_text.split())
