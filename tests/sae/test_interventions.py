"""Interventions on SAE features in a live model: edit = activation + decoder x change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.extraction import extract
from neuronscope.interventions import encode_prompt, intervene
from neuronscope.sae import SAETrainer, attach


@pytest.fixture(scope="module")
def gpt2_sae_store(tiny_gpt2, small_corpus, tmp_path_factory):
    """tiny GPT-2's hidden layer 1 with a small TopK SAE attached as ``sae``."""
    root = tmp_path_factory.mktemp("gpt2-sae")
    store = extract(small_corpus, root / "store", tiny_gpt2, components=("hidden",),
                    aggregation="mean", progress=False)
    trainer = SAETrainer(component="hidden", layer=1, n_latents=64, k=4, n_epochs=2,
                         batch_size=16, random_state=0).fit(store)
    trainer.sae_.save(root / "sae")
    return attach(store, root / "sae"), trainer.sae_


def hidden1(loaded, batch) -> torch.Tensor:
    """What block 1 receives (hidden layer 1). Read with a pre-hook: recent transformers
    collect ``hidden_states`` with their own hooks, which may run before an intervention's."""
    seen = []
    handle = loaded.model.transformer.h[1].register_forward_pre_hook(
        lambda module, args: seen.append(args[0][0].detach().clone()))
    try:
        loaded.model(**batch)
    finally:
        handle.remove()
    return seen[0]


def test_zeroing_a_feature_removes_its_decoder_direction(tiny_gpt2, gpt2_sae_store):
    store, sae = gpt2_sae_store
    batch = encode_prompt(tiny_gpt2, "the cat sat on the mat")
    with torch.no_grad():
        clean = hidden1(tiny_gpt2, batch)
        f = sae.encode(clean)
        feature = int(torch.argmax((f > 0).sum(0)))  # active on the most tokens
        assert (f[:, feature] > 0).any()
        with intervene(tiny_gpt2, [f"L1.sae.{feature}"], op="zero", store=store) as iv:
            edited = hidden1(tiny_gpt2, batch)
        assert sum(iv.calls.values()) >= 1
        expected = clean - f[:, feature : feature + 1] * sae.W_dec[feature]
        torch.testing.assert_close(edited, expected, atol=1e-5, rtol=1e-5)
        # Steering adds along the decoder direction only, error term untouched.
        with intervene(tiny_gpt2, [f"L1.sae.{feature}"], op="add", value=2.0, store=store):
            steered = hidden1(tiny_gpt2, batch)
        torch.testing.assert_close(steered, clean + 2.0 * sae.W_dec[feature], atol=1e-5,
                                   rtol=1e-5)
        # No hooks left behind.
        torch.testing.assert_close(hidden1(tiny_gpt2, batch), clean)


def test_feature_names_need_the_store(tiny_gpt2, gpt2_sae_store):
    store, _ = gpt2_sae_store
    with pytest.raises(NeuronscopeError, match="unknown component 'sae'"):
        intervene(tiny_gpt2, ["L1.sae.3"], op="zero")
    with pytest.raises(NeuronscopeError, match="same layer"):
        intervene(tiny_gpt2, ["L1.sae.3", "L1.hidden.2"], op="zero", store=store)
    with pytest.raises(NeuronscopeError, match="64 neurons per layer"):
        intervene(tiny_gpt2, ["L1.sae.64"], op="zero", store=store)


def test_mean_op_uses_the_stored_feature_means(tiny_gpt2, gpt2_sae_store):
    store, sae = gpt2_sae_store
    means = store.layer("sae", 1).mean(axis=0)
    feature = int(np.argmax(means))
    batch = encode_prompt(tiny_gpt2, "a dog ran")
    with torch.no_grad():
        clean = hidden1(tiny_gpt2, batch)
        f = sae.encode(clean)
        with intervene(tiny_gpt2, [f"L1.sae.{feature}"], op="mean", store=store):
            edited = hidden1(tiny_gpt2, batch)
    expected = clean + (float(means[feature]) - f[:, feature : feature + 1]) * sae.W_dec[feature]
    torch.testing.assert_close(edited, expected, atol=1e-4, rtol=1e-4)



def test_lm_loss_with_the_reconstruction_spliced_in(tiny_gpt2, tiny_gpt2_dir, small_corpus,
                                                    gpt2_sae_store):
    from neuronscope.sae.compare import lm_loss_increase

    store, sae = gpt2_sae_store
    notes: list[str] = []
    result = lm_loss_increase(store, sae, "hidden", 1, small_corpus, str(tiny_gpt2_dir), 4,
                              notes)
    assert result is not None, notes
    assert result["sentences"] == 4 and result["site"].startswith("transformer.h.0")
    assert np.isfinite(result["clean"]) and result["spliced"] != result["clean"]
    assert result["increase"] == pytest.approx(result["spliced"] - result["clean"])
    # A model that cannot be loaded is skipped with a note, not an error.
    notes = []
    assert lm_loss_increase(store, sae, "hidden", 1, small_corpus, "nonexistent-model-xyz", 4,
                            notes) is None
    assert notes and "skipped" in notes[0]
