"""Extraction stops the forward pass after the last requested layer, with identical values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronscope.extraction import extract
from neuronscope.extraction.components import resolve_components
from neuronscope.extraction.extractor import _early_stop_sites
from neuronscope.extraction.hooks import Trace


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_first_layers_equal_the_full_pass_bitwise(tmp_path, tiny_models, small_corpus, model):
    loaded = tiny_models[model]
    full = extract(small_corpus, tmp_path / "full", loaded, components=["hidden", "mlp"],
                   progress=False)
    early = extract(small_corpus, tmp_path / "early", loaded, components=["hidden", "mlp"],
                    layers="0-1", progress=False)
    for comp in ("hidden", "mlp"):
        layers = early.meta["components"][comp]["layers"]
        for layer in layers:
            assert np.array_equal(early.layer(comp, layer), full.layer(comp, layer)), (
                comp, layer)
    assert np.array_equal(early.sentence_vectors("hidden")[:, :64],
                          full.sentence_vectors("hidden")[:, :64])


def test_which_passes_stop_early(tiny_models):
    bert = tiny_models["bert"]  # 2 blocks: hidden layers 0, 1, 2
    first = resolve_components(bert, ["hidden"], [0, 1])
    assert sorted(_early_stop_sites(bert, first)) == [0, 1]
    assert _early_stop_sites(bert, resolve_components(bert, ["hidden"], None)) is None
    assert _early_stop_sites(bert, resolve_components(bert, ["mlp"], [0])) == {}


def test_the_stopped_pass_skips_the_later_blocks(tiny_models):
    # The hook primitive itself: with stop=True a block after the last traced one never runs.
    loaded = tiny_models["gpt2"]
    ran = []
    handle = loaded.model.transformer.h[1].register_forward_hook(lambda *a: ran.append(1))
    try:
        ids = torch.tensor([[1, 2, 3]])
        with Trace(loaded.model, ["transformer.h.0"], stop=True) as trace:
            assert trace.call(loaded.model, input_ids=ids) is None
            assert trace.call(loaded.model, input_ids=ids) is None  # reusable across passes
        assert ran == [] and trace.outputs["transformer.h.0"].shape[:2] == (1, 3)
    finally:
        handle.remove()
