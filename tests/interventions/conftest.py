"""Fixtures for intervention tests: tiny GPT-2 models with one planted, decisive MLP neuron."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neuronscope.interventions import LMScorer
from neuronscope.models import wrap_model

PLANTED = "L1.mlp.5"


def plant_neuron(loaded, corpus, concept: str | None, layer: int = 1, index: int = 5,
                 scale: float = 10.0, bias: float = 3.0):
    """A copy of a tiny GPT-2 where MLP neuron ``index`` of ``layer`` carries the output.

    The neuron is always on (bias 3, no input weights; bias -3: always off, GELU ~ 0, until
    an intervention sets it) and its down-projection row writes a
    large vector towards the (centered) embeddings of the tokens that follow in the corpus,
    counted over the words of ``concept`` only (or all words): the tied LM head then
    predicts those tokens much better, so ablating this one neuron raises the loss most.
    """
    model = copy.deepcopy(loaded.model)
    planted = wrap_model(model, loaded.tokenizer, name=f"planted-{concept or 'all'}-{bias:g}")
    base = LMScorer(planted, corpus).baseline
    labels = corpus.labels_array("upos")
    sel = np.ones(len(base.target), bool) if concept is None else labels[base.word] == concept
    counts = np.bincount(base.target[sel], minlength=model.config.vocab_size)
    wte = model.transformer.wte.weight.detach()
    direction = torch.tensor(counts, dtype=torch.float32) @ (wte - wte.mean(0))
    with torch.no_grad():
        mlp = model.transformer.h[layer].mlp
        mlp.c_fc.weight[:, index] = 0.0  # Conv1D weights are (in, out)
        mlp.c_fc.bias[index] = bias
        mlp.c_proj.weight[index, :] = direction / direction.norm() * scale
    return planted


@pytest.fixture(scope="session")
def planted_all(tiny_gpt2, small_corpus):
    """Planted neuron helping every next-token prediction."""
    return plant_neuron(tiny_gpt2, small_corpus, None)


@pytest.fixture(scope="session")
def planted_det(tiny_gpt2, small_corpus):
    """Planted neuron helping only the prediction of determiners (DET)."""
    return plant_neuron(tiny_gpt2, small_corpus, "DET")


@pytest.fixture(scope="session")
def dormant_det(tiny_gpt2, small_corpus):
    """Planted determiner neuron that is off unless an intervention turns it on."""
    return plant_neuron(tiny_gpt2, small_corpus, "DET", bias=-3.0)
