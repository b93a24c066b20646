"""Compute dtype, device placement (``device_map``) and shipped-model aliases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from neuronscope.errors import ModelLoadError
from neuronscope.extraction import extract
from neuronscope.models import load_model
from neuronscope.models.loading import compute_dtype, resolve_alias


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory, gpt2_tokenizer):
    """A random 2-layer Llama-family causal LM (hidden 32, MLP 64) saved with a tokenizer."""
    config = transformers.LlamaConfig(
        vocab_size=len(gpt2_tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=128, bos_token_id=gpt2_tokenizer.eos_token_id,
        eos_token_id=gpt2_tokenizer.eos_token_id, initializer_range=0.2,
    )
    torch.manual_seed(3)
    model = transformers.LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("llama") / "tiny-llama"
    model.save_pretrained(path)
    gpt2_tokenizer.save_pretrained(path)
    return path


def test_bfloat16_with_device_map_matches_float32(tmp_path, tiny_llama_dir, small_corpus):
    full = load_model(str(tiny_llama_dir), device="cpu")
    half = load_model(str(tiny_llama_dir), dtype="bfloat16", device_map="auto")
    assert full.compute_dtype == "float32" and half.compute_dtype == "bfloat16"
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert half.device.type == "cpu"
    a = extract(small_corpus, tmp_path / "f32", full, components=["hidden", "mlp"],
                progress=False)
    b = extract(small_corpus, tmp_path / "bf16", half, components=["hidden", "mlp"],
                progress=False)
    assert b.meta["model"]["compute_dtype"] == "bfloat16"
    x, y = a.matrix(), b.matrix()
    assert x.shape == y.shape and np.isfinite(y).all()
    # bfloat16 keeps 8 significant bits: relative error about 2**-8 per operation, a few
    # times that after two layers; scaled by each column's spread.
    scale = np.maximum(np.abs(x).max(axis=0), 1e-3)
    assert float(np.max(np.abs(x - y) / scale)) < 0.1
    assert float(np.median(np.abs(x - y) / scale)) < 0.005  # measured 0.001 (max 0.05)


def test_bad_dtype_device_and_aliases(tiny_llama_dir):
    with pytest.raises(ModelLoadError, match="unknown compute dtype 'float8'"):
        compute_dtype("float8")
    with pytest.raises(ModelLoadError, match="cannot place the model on device 'gpu0'"):
        load_model(str(tiny_llama_dir), device="gpu0")
    with pytest.raises(ModelLoadError, match="random_init"):
        load_model(str(tiny_llama_dir), device_map="auto", random_init=True)
    assert resolve_alias("minilm") == resolve_alias(None)
    assert resolve_alias("some/hub-name") == "some/hub-name"
