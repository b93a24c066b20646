"""hooks.Trace: capture and edit module inputs/outputs; clean-up; helpful errors."""

from __future__ import annotations

import pytest
import torch

from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.extraction.hooks import Trace, resolve_modules


def _hook_counts(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Forward and pre-forward hook counts of every submodule (transformers installs its own)."""
    return {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in model.named_modules()
    }


@pytest.fixture()
def bert_inputs(tiny_bert):
    enc = tiny_bert.tokenizer(["the cat sat on the mat", "researchers study neurons"],
                              padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _manual(model, names, inputs):
    """Inputs and outputs of the named modules, captured with plain torch hooks."""
    modules = dict(model.named_modules())
    seen_in, seen_out, handles = {}, {}, []
    for name in names:
        def pre(module, args, name=name):
            seen_in[name] = args[0].detach().clone()

        def post(module, args, output, name=name):
            value = output[0] if isinstance(output, tuple) else output
            seen_out[name] = value.detach().clone()

        handles.append(modules[name].register_forward_pre_hook(pre))
        handles.append(modules[name].register_forward_hook(post))
    try:
        with torch.no_grad():
            result = model(**inputs, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return seen_in, seen_out, result


NAMES = [
    "bert.encoder.layer.0.output.dense",
    "bert.encoder.layer.1.attention.output.dense",
    "bert.encoder.layer.1",  # a whole block: its output may be a tuple or a tensor
]


def test_trace_captures_outputs_and_inputs_like_manual_hooks(tiny_bert, bert_inputs):
    model = tiny_bert.model
    want_in, want_out, _ = _manual(model, NAMES, bert_inputs)
    with torch.no_grad(), Trace(model, NAMES, retain_input=True) as trace:
        model(**bert_inputs)
    assert set(trace.outputs) == set(NAMES)
    assert set(trace.inputs) == set(NAMES)
    for name in NAMES:
        assert torch.equal(trace.outputs[name], want_out[name]), name
        assert torch.equal(trace.inputs[name], want_in[name]), name
    # The FFN input is 64 wide (intermediate size), its output 32 (hidden size).
    assert trace.inputs[NAMES[0]].shape[-1] == 64
    assert trace.outputs[NAMES[0]].shape[-1] == 32


def test_trace_module_called_with_keywords_only(tiny_bert, bert_inputs):
    """Embeddings are called with keyword inputs: the output is still captured, no input."""
    model = tiny_bert.model
    with torch.no_grad(), Trace(model, ["bert.embeddings"], retain_input=True) as trace:
        hidden = model(**bert_inputs, output_hidden_states=True).hidden_states
    assert "bert.embeddings" not in trace.inputs
    assert torch.equal(trace.outputs["bert.embeddings"], hidden[0])


def test_trace_retain_flags_and_detach(tiny_bert, bert_inputs):
    model = tiny_bert.model
    name = NAMES[0]
    with Trace(model, [name], retain_output=False, retain_input=True) as trace:
        model(**bert_inputs)
    assert trace.outputs == {}
    assert not trace.inputs[name].requires_grad
    with Trace(model, [name], detach=False) as trace:
        model(**bert_inputs)
    assert trace.outputs[name].requires_grad  # graph kept for attributions
    trace.outputs[name].sum().backward()
    model.zero_grad(set_to_none=True)


def test_trace_duplicate_names_are_hooked_once(tiny_bert, bert_inputs):
    model = tiny_bert.model
    name = NAMES[0]
    calls = []

    def edit(module_name, x):
        calls.append(module_name)
        return x

    with torch.no_grad(), Trace(model, [name, name], edit_output=edit):
        model(**bert_inputs)
    assert calls == [name]


def test_edit_input_zeroing_mlp_matches_manual_computation(tiny_bert, bert_inputs):
    """Zeroing the FFN neurons of the last block leaves LayerNorm(bias + attention output)."""
    model = tiny_bert.model
    block = model.bert.encoder.layer[1]
    dense_name = "bert.encoder.layer.1.output.dense"
    seen = {}
    handle = block.output.register_forward_pre_hook(
        lambda module, args: seen.update(residual=args[1].detach().clone())
    )
    try:
        with torch.no_grad():
            original = model(**bert_inputs, output_hidden_states=True).hidden_states[2]
            with Trace(model, [dense_name], retain_output=False, retain_input=True,
                       edit_input=lambda name, x: torch.zeros_like(x)) as trace:
                edited = model(**bert_inputs, output_hidden_states=True).hidden_states[2]
            expected = block.output.LayerNorm(block.output.dense.bias + seen["residual"])
    finally:
        handle.remove()
    assert torch.count_nonzero(trace.inputs[dense_name]) == 0  # the retained input is the edit
    assert not torch.allclose(edited, original, atol=1e-3)
    torch.testing.assert_close(edited, expected, atol=1e-6, rtol=1e-5)


def test_edit_output_flows_on(tiny_bert, bert_inputs):
    """Doubling block 0's output doubles hidden_states[1] and feeds block 1 the doubled input."""
    model = tiny_bert.model
    name = "bert.encoder.layer.0.output"
    ids = bert_inputs["input_ids"][:1]  # one sentence, no padding: block 1 needs no mask
    with torch.no_grad():
        original = model(input_ids=ids, output_hidden_states=True).hidden_states
        with Trace(model, [name], edit_output=lambda n, x: 2 * x) as trace:
            edited = model(input_ids=ids, output_hidden_states=True).hidden_states
        block1 = model.bert.encoder.layer[1](2 * original[1])
        block1 = block1[0] if isinstance(block1, tuple) else block1
    torch.testing.assert_close(edited[1], 2 * original[1])
    torch.testing.assert_close(trace.outputs[name], 2 * original[1])  # retained after the edit
    torch.testing.assert_close(edited[0], original[0])  # upstream untouched
    torch.testing.assert_close(edited[2], block1, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(edited[2], original[2], atol=1e-3)


def test_edit_receives_module_name(tiny_bert, bert_inputs):
    model = tiny_bert.model
    names = ["bert.encoder.layer.0.output.dense", "bert.encoder.layer.1.output.dense"]
    got = []
    with torch.no_grad(), Trace(model, names, retain_output=False,
                                edit_input=lambda n, x: got.append(n) or x):
        model(**bert_inputs)
    assert got == names


def test_hooks_removed_after_exit(tiny_bert, bert_inputs):
    model = tiny_bert.model
    with torch.no_grad():
        model(**bert_inputs, output_hidden_states=True)  # let transformers install its own hooks
    before = _hook_counts(model)
    with Trace(model, NAMES, retain_input=True, edit_output=lambda n, x: x,
               edit_input=lambda n, x: x) as trace:
        assert _hook_counts(model) != before
        assert len(trace._handles) == 2 * len(NAMES)
    assert _hook_counts(model) == before
    assert len(model._forward_hooks) == 0 and len(model._forward_pre_hooks) == 0
    # After exit, forward passes are not captured any more.
    trace.outputs.clear()
    with torch.no_grad():
        model(**bert_inputs)
    assert trace.outputs == {}


def test_hooks_removed_after_exception(tiny_bert, bert_inputs):
    model = tiny_bert.model
    before = _hook_counts(model)

    def boom(name, x):
        raise RuntimeError("edit failed")

    with pytest.raises(RuntimeError, match="edit failed"), Trace(model, NAMES, edit_output=boom):
        model(**bert_inputs)
    assert _hook_counts(model) == before
    with pytest.raises(KeyError), Trace(model, NAMES):
        raise KeyError("inside the block")
    assert _hook_counts(model) == before
    # The model still works and is unedited.
    with torch.no_grad():
        model(**bert_inputs)


def test_unknown_module_name_has_did_you_mean_hint(tiny_bert):
    model = tiny_bert.model
    before = _hook_counts(model)
    with pytest.raises(UnknownComponentError, match="did you mean") as info:
        Trace(model, ["bert.encoder.layer.0.output.dens"])
    assert "bert.encoder.layer.0.output.dense" in str(info.value)
    assert isinstance(info.value, NeuronscopeError) and isinstance(info.value, KeyError)
    assert not str(info.value).startswith("'")  # plain message, not KeyError's repr
    with pytest.raises(UnknownComponentError, match="no module named 'zzz'"):
        resolve_modules(model, ["zzz"])
    assert _hook_counts(model) == before


def test_resolve_modules_returns_the_modules(tiny_bert):
    model = tiny_bert.model
    found = resolve_modules(model, ["bert.encoder.layer.1.output.dense", ""])
    assert found["bert.encoder.layer.1.output.dense"] is model.bert.encoder.layer[1].output.dense
    assert found[""] is model


# ------------------------------------------------------------------------ early stop
def _calls(model: torch.nn.Module, names: list[str]) -> tuple[list[str], list]:
    """Record which of ``names`` run, in order (plain torch hooks, outside any Trace)."""
    modules = dict(model.named_modules())
    seen: list[str] = []
    handles = [modules[n].register_forward_hook(lambda m, a, o, n=n: seen.append(n))
               for n in names]
    return seen, handles


def test_trace_stop_ends_the_pass_after_the_last_traced_module(tiny_bert, bert_inputs):
    model = tiny_bert.model
    blocks = [f"bert.encoder.layer.{i}" for i in range(model.config.num_hidden_layers)]
    assert len(blocks) >= 2
    target = "bert.encoder.layer.0.output.dense"
    want_in, want_out, _ = _manual(model, [target], bert_inputs)
    before = _hook_counts(model)
    seen, handles = _calls(model, blocks)
    try:
        with torch.no_grad(), Trace(model, [target], retain_input=True, stop=True) as trace:
            model(**bert_inputs)
            pytest.fail("the forward pass should have stopped")  # pragma: no cover
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(trace.inputs[target], want_in[target])
    torch.testing.assert_close(trace.outputs[target], want_out[target])
    assert seen == []  # block 0 never finished, the later blocks never ran
    assert _hook_counts(model) == before  # every hook removed


def test_trace_stop_waits_for_every_module_and_input_only_stops_before_it(tiny_bert,
                                                                          bert_inputs):
    model = tiny_bert.model
    first, second = "bert.encoder.layer.0", "bert.encoder.layer.1"
    seen, handles = _calls(model, [first, second, "bert.encoder.layer.1.output.dense"])
    try:
        with torch.no_grad(), Trace(model, [second, first], stop=True) as trace:
            model(**bert_inputs)
        assert set(trace.outputs) == {first, second}
        assert seen == [first, "bert.encoder.layer.1.output.dense", second]
        seen.clear()
        dense = "bert.encoder.layer.1.output.dense"
        with torch.no_grad(), Trace(model, [dense], retain_output=False, retain_input=True,
                                    stop=True) as trace:
            model(**bert_inputs)
        assert set(trace.inputs) == {dense}
        assert seen == [first]  # the input was read before the dense layer itself ran
    finally:
        for h in handles:
            h.remove()


def test_trace_stop_is_swallowed_only_by_its_own_trace(tiny_bert, bert_inputs):
    model = tiny_bert.model
    name = "bert.encoder.layer.0"
    after = []
    with torch.no_grad(), Trace(model, [name], stop=True) as outer:
        with Trace(model, ["bert.encoder.layer.1"]) as inner:
            model(**bert_inputs)
        after.append("inner exit")  # pragma: no cover - the stop passes through
    assert after == [] and name in outer.outputs and inner.outputs == {}
    # Without stop, an error inside the block is not swallowed.
    with pytest.raises(RuntimeError, match="boom"), Trace(model, [name]):
        raise RuntimeError("boom")
