"""NeuronLayout: neuron ids <-> names such as ``L3.mlp.1021`` and ``L2.attn.h5.17``."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.store import ComponentLayout, NeuronLayout


@pytest.fixture()
def layout() -> NeuronLayout:
    """hidden: layers 0-2 x 4; mlp: layers 1, 3 x 6; attn: layers 0-1 x 6 (3 heads of 2)."""
    return NeuronLayout({
        "hidden": ComponentLayout((0, 1, 2), 4),
        "mlp": ComponentLayout((1, 3), 6),
        "attn": ComponentLayout((0, 1), 6, head_dim=2),
    })


def test_sizes_and_offsets(layout):
    assert layout.components["hidden"].size == 12
    assert layout.components["mlp"].size == 12
    assert layout.n_neurons == 36
    assert [layout.offset(c) for c in ("hidden", "mlp", "attn")] == [0, 12, 24]


def test_all_names_in_id_order(layout):
    names = layout.all_names()
    assert len(names) == 36 == len(set(names))
    assert names[:5] == ["L0.hidden.0", "L0.hidden.1", "L0.hidden.2", "L0.hidden.3",
                         "L1.hidden.0"]
    assert names[12:14] == ["L1.mlp.0", "L1.mlp.1"]
    assert names[18] == "L3.mlp.0"
    assert names[24:31] == ["L0.attn.h0.0", "L0.attn.h0.1", "L0.attn.h1.0", "L0.attn.h1.1",
                            "L0.attn.h2.0", "L0.attn.h2.1", "L1.attn.h0.0"]
    assert names[-1] == "L1.attn.h2.1"


def test_round_trip(layout):
    for neuron_id in range(layout.n_neurons):
        name = layout.name(neuron_id)
        assert layout.id(name) == neuron_id
        component, layer, index = layout.locate(neuron_id)
        assert name.startswith(f"L{layer}.{component}.")
    assert layout.names([3, 12]) == ["L0.hidden.3", "L1.mlp.0"]
    np.testing.assert_array_equal(layout.ids(layout.all_names()), np.arange(36))
    assert layout.name(np.int64(30)) == "L1.attn.h0.0"


def test_heads(layout):
    # h{head}.{dim} == flat index head * head_dim + dim.
    assert layout.id("L1.attn.h2.1") == 24 + 6 + 2 * 2 + 1
    assert layout.id("L1.attn.5") == layout.id("L1.attn.h2.1")
    assert layout.id("L0.attn.3") == layout.id("L0.attn.h1.1")
    assert layout.locate(layout.id("L1.attn.h1.0")) == ("attn", 1, 2)


def test_locate_and_layer_of(layout):
    assert layout.locate(0) == ("hidden", 0, 0)
    assert layout.locate(11) == ("hidden", 2, 3)
    assert layout.locate(12) == ("mlp", 1, 0)
    assert layout.locate(23) == ("mlp", 3, 5)
    assert layout.layer_of([0, 19, 35]) == [("hidden", 0), ("mlp", 3), ("attn", 1)]


def test_layer_slice(layout):
    assert layout.layer_slice("hidden", 1) == slice(4, 8)
    assert layout.layer_slice("mlp", 3) == slice(18, 24)
    assert layout.layer_slice("attn", 0) == slice(24, 30)
    everything = [i for c, comp in layout.components.items() for layer in comp.layers
                  for i in range(36)[layout.layer_slice(c, layer)]]
    assert everything == list(range(36))


def test_ids_accept_names_and_ints(layout):
    ids = layout.ids(["L3.mlp.2", 5, np.int32(0), " L0.hidden.1 "])
    assert ids.dtype == np.int64
    assert ids.tolist() == [20, 5, 0, 1]
    assert layout.ids([]).tolist() == []


def test_whitespace_is_tolerated(layout):
    assert layout.id("  L2.hidden.3\n") == 11


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("mlp.3", "bad neuron name"),
        ("L1.mlp", "bad neuron name"),
        ("L1.mlp.x", "bad neuron name"),
        ("l1.mlp.3", "bad neuron name"),
        ("L1.mlp.-3", "bad neuron name"),
        ("L1..3", "bad neuron name"),
        ("", "bad neuron name"),
        ("L1.ffn.3", "unknown component 'ffn'; this store has: hidden, mlp, attn"),
        ("L2.mlp.3", "no layer 2; layers: \\[1, 3\\]"),
        ("L5.hidden.0", "no layer 5"),
        ("L1.mlp.6", "index 6 >= 6 neurons per layer"),
        ("L0.hidden.h0.1", "has no heads"),
        ("L0.attn.h0.2", "head dimension 2 >= head size 2"),
        ("L0.attn.h3.0", "index 6 >= 6"),
        ("L0.attn.6", "index 6 >= 6"),
    ],
)
def test_bad_names(layout, name, pattern):
    with pytest.raises(UnknownComponentError, match=pattern) as info:
        layout.id(name)
    assert isinstance(info.value, NeuronscopeError)
    assert isinstance(info.value, KeyError)
    assert str(info.value) == info.value.args[0]  # plain message, not KeyError's repr


@pytest.mark.parametrize("bad", [-1, 36, 1000])
def test_bad_ids(layout, bad):
    with pytest.raises(UnknownComponentError, match="out of range"):
        layout.name(bad)
    with pytest.raises(UnknownComponentError, match="out of range"):
        layout.ids([0, bad])


def test_unknown_component_and_layer(layout):
    with pytest.raises(UnknownComponentError, match="unknown component 'x'"):
        layout.offset("x")
    with pytest.raises(UnknownComponentError, match="unknown component"):
        layout.layer_slice("x", 0)
    with pytest.raises(UnknownComponentError, match="has no layer 0"):
        layout.layer_slice("mlp", 0)


def test_from_meta_and_custom_names():
    layout = NeuronLayout.from_meta({
        "ffn-out": {"layers": [0, 1], "neurons": 3, "head_dim": None, "source": "output"},
        "attn": {"layers": [4], "neurons": 4, "head_dim": 2},
    })
    assert layout.components["ffn-out"] == ComponentLayout((0, 1), 3, None)
    assert layout.components["attn"].head_dim == 2
    assert layout.name(4) == "L1.ffn-out.1"
    assert layout.id("L1.ffn-out.1") == 4
    assert layout.id("L4.attn.h1.0") == 8
    assert NeuronLayout({}).n_neurons == 0
    assert NeuronLayout({}).all_names() == []


def test_parse_name_is_the_one_grammar():
    from neuronscope.store.names import ParsedName, parse_name

    assert parse_name("L3.mlp.1021") == ParsedName(3, "mlp", None, 1021)
    assert parse_name(" L2.attn.h5.17 ") == ParsedName(2, "attn", 5, 17)
    assert parse_name("L0.my-block_2.7").group == "L0.my-block_2"
    for bad in ("L3.mlp", "3.mlp.1", "L3.mlp.h.1", "L3..1", "L3.2x.1", "cat", "", 17):
        assert parse_name(bad) is None, bad  # type: ignore[arg-type]
