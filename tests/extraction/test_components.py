"""Component and layer resolution: built-ins, custom modules, layer specs and their errors."""

from __future__ import annotations

import pytest

from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.extraction import parse_layers, resolve_components
from neuronscope.models import patterns_for
from neuronscope.models.architectures import find_block_modules, input_width


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("0-2", [0, 1, 2]),
        ("1,3,5", [1, 3, 5]),
        ("0-2,5", [0, 1, 2, 5]),
        (" 4 , 2-3 ,", [2, 3, 4]),
        ("3", [3]),
        ([5, 1, 1], [1, 5]),
        ((2,), [2]),
    ],
)
def test_parse_layers(spec, expected):
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["a", "1-b", "1..3", "x,2"])
def test_parse_layers_rejects_garbage(spec):
    with pytest.raises(UnknownComponentError, match="bad layer spec"):
        parse_layers(spec)


def test_builtin_components_bert(tiny_bert):
    comps = {c.name: c for c in resolve_components(tiny_bert, ("hidden", "mlp", "attn"))}
    assert comps["hidden"].layers == [0, 1, 2] and comps["hidden"].neurons == 32
    assert comps["hidden"].source == "hidden_states" and comps["hidden"].modules == {}
    assert comps["mlp"].layers == [0, 1] and comps["mlp"].neurons == 64
    assert comps["mlp"].modules == {0: "bert.encoder.layer.0.output.dense",
                                    1: "bert.encoder.layer.1.output.dense"}
    assert comps["attn"].neurons == 32 and comps["attn"].head_dim == 8
    assert comps["attn"].modules[1] == "bert.encoder.layer.1.attention.output.dense"
    assert comps["mlp"].head_dim is None
    meta = comps["attn"].meta()
    assert meta["modules"] == {"0": "bert.encoder.layer.0.attention.output.dense",
                               "1": "bert.encoder.layer.1.attention.output.dense"}


def test_builtin_components_gpt2(tiny_gpt2):
    comps = {c.name: c for c in resolve_components(tiny_gpt2, ("mlp", "attn", "hidden"))}
    assert [c for c in comps] == ["mlp", "attn", "hidden"]  # order as requested
    assert comps["mlp"].neurons == 128  # Conv1D weight is (in, out)
    assert comps["mlp"].modules == {0: "transformer.h.0.mlp.c_proj",
                                    1: "transformer.h.1.mlp.c_proj"}
    assert comps["attn"].modules[0] == "transformer.h.0.attn.c_proj"
    assert comps["attn"].head_dim == 8
    assert comps["hidden"].neurons == 32


def test_patterns_match_bare_and_headed_names(tiny_bert):
    pats = patterns_for(tiny_bert.model)
    assert pats.family == "bert"
    # Works on the headless base model too (names without the "bert." prefix).
    bare = find_block_modules(tiny_bert.model.bert, pats.mlp)
    assert bare == {0: "encoder.layer.0.output.dense", 1: "encoder.layer.1.output.dense"}
    assert input_width(tiny_bert.model.bert.encoder.layer[0].output.dense) == 64


def test_unknown_component_lists_valid_ones(tiny_bert):
    with pytest.raises(UnknownComponentError) as info:
        resolve_components(tiny_bert, ("hidden", "neurons"))
    message = str(info.value)
    assert "'neurons'" in message
    for valid in ("hidden", "mlp", "attn"):
        assert valid in message
    assert isinstance(info.value, NeuronscopeError)


def test_no_components_is_an_error(tiny_bert):
    with pytest.raises(UnknownComponentError, match="no components"):
        resolve_components(tiny_bert, ())


def test_unknown_layer_lists_valid_layers(tiny_bert):
    with pytest.raises(UnknownComponentError) as info:
        resolve_components(tiny_bert, ("hidden", "mlp"), layers="1-7")
    message = str(info.value)
    assert "[3, 4, 5, 6, 7]" in message
    assert "hidden: 0-2" in message and "mlp: 0-1" in message


def test_layer_filter_keeps_layers_each_component_has(tiny_bert):
    comps = resolve_components(tiny_bert, ("hidden", "mlp", "attn"), layers="2")
    assert [(c.name, c.layers) for c in comps] == [("hidden", [2])]
    comps = resolve_components(tiny_bert, ("hidden", "mlp"), layers=[0])
    assert [(c.name, c.layers, c.modules) for c in comps] == [
        ("hidden", [0], {}),
        ("mlp", [0], {0: "bert.encoder.layer.0.output.dense"}),
    ]


def test_custom_modules(tiny_bert):
    names = ["bert.encoder.layer.0.intermediate", "bert.encoder.layer.1.intermediate"]
    (comp,) = resolve_components(tiny_bert, (), modules={"ffn": names})
    assert comp.name == "ffn" and comp.source == "output"
    assert comp.layers == [0, 1] and comp.neurons == 64
    assert comp.modules == {0: names[0], 1: names[1]}


def test_custom_module_errors(tiny_bert):
    with pytest.raises(UnknownComponentError, match="already taken"):
        resolve_components(tiny_bert, ("hidden",), modules={"hidden": ["bert.embeddings"]})
    with pytest.raises(UnknownComponentError, match="different widths"):
        resolve_components(tiny_bert, (), modules={
            "mixed": ["bert.encoder.layer.0.intermediate", "bert.encoder.layer.0.output"]})
    with pytest.raises(UnknownComponentError, match="did you mean"):
        resolve_components(tiny_bert, (), modules={"x": ["bert.encoder.layer.0.outptu"]})


def test_architecture_without_patterns(tiny_bert, monkeypatch):
    monkeypatch.setattr(tiny_bert.model.config, "model_type", "mystery")
    with pytest.raises(UnknownComponentError, match="no built-in mlp/attn module patterns"):
        resolve_components(tiny_bert, ("mlp",))
    # The hidden component needs no patterns.
    assert resolve_components(tiny_bert, ("hidden",))[0].layers == [0, 1, 2]
