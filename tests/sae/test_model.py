"""The SAE module: TopK/ReLU maths, the error-keeping edit, and SAELens's on-disk layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from neuronscope.sae import SAEFormatError, SparseAutoencoder
from neuronscope.sae.model import CFG_FILE, WEIGHTS_FILE


def random_sae(arch: str = "topk", k: int | None = 3, seed: int = 0) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(6, 10, arch, k, metadata={"hook_name": "L1.hidden"})
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    return sae


def test_topk_keeps_k_nonnegative_latents():
    sae = random_sae()
    f = sae.encode(torch.randn(50, 6))
    assert ((f > 0).sum(dim=1) <= 3).all()
    assert (f >= 0).all()
    pre = sae.pre_activations(torch.randn(4, 6))
    top = sae.activate(pre)
    # The kept latents are the k largest pre-activations (when positive).
    for row_pre, row in zip(pre, top, strict=True):
        kept = set(torch.nonzero(row).flatten().tolist())
        assert kept <= set(torch.topk(row_pre, 3).indices.tolist())


def test_relu_sae_and_decode():
    sae = random_sae("standard", None)
    x = torch.randn(5, 6)
    f = sae.encode(x)
    assert torch.allclose(f, torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc))
    assert torch.allclose(sae(x), f @ sae.W_dec + sae.b_dec)


def test_edit_keeps_the_reconstruction_error():
    sae = random_sae()
    x = torch.randn(7, 6)
    f = sae.encode(x)
    unchanged = sae.edit(x, lambda g: g)
    assert torch.allclose(unchanged, x)

    def zero_top(g: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(g)

    edited = sae.edit(x, zero_top)
    # Zeroing every latent removes exactly their decoder contributions.
    assert torch.allclose(edited, x - f @ sae.W_dec, atol=1e-5)
    assert torch.allclose(edited - sae.decode(torch.zeros_like(f)), x - sae(x), atol=1e-5)


def test_fold_input_scale_keeps_latents():
    sae = random_sae()
    x = torch.randn(9, 6)
    f_scaled, recon_scaled = sae.encode(x * 2.5), sae(x * 2.5)
    sae.fold_input_scale(2.5)
    assert torch.allclose(sae.encode(x), f_scaled, atol=1e-5)
    assert torch.allclose(sae(x), recon_scaled / 2.5, atol=1e-5)


def test_saelens_layout_round_trip(tmp_path):
    sae = random_sae()
    sae.save(tmp_path / "sae")
    # The documented SAELens 6 layout: tensor names and shapes, cfg fields.
    tensors = load_file(str(tmp_path / "sae" / WEIGHTS_FILE))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "W_enc": (6, 10), "b_enc": (10,), "W_dec": (10, 6), "b_dec": (6,)}
    cfg = json.loads((tmp_path / "sae" / CFG_FILE).read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 3
    assert (cfg["d_in"], cfg["d_sae"]) == (6, 10)
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["hook_name"] == "L1.hidden"
    assert cfg["metadata"]["sae_lens_version"].startswith("6.")
    back = SparseAutoencoder.load(tmp_path / "sae")
    x = torch.randn(11, 6)
    assert torch.equal(back.encode(x), sae.encode(x))
    assert back.metadata == {"hook_name": "L1.hidden"}


def test_loads_a_pre_6_saelens_topk_config(tmp_path):
    """Older SAELens configs name the activation in activation_fn (+ kwargs) instead."""
    sae = random_sae(k=4)
    folder = tmp_path / "old"
    folder.mkdir()
    save_file({n: p.detach().contiguous() for n, p in sae.named_parameters()},
              str(folder / WEIGHTS_FILE))
    (folder / CFG_FILE).write_text(json.dumps({
        "d_in": 6, "d_sae": 10, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4},
        "hook_point": "blocks.1.hook_resid_post", "model_name": "gpt2",
        "apply_b_dec_to_input": True}))
    back = SparseAutoencoder.load(folder)
    assert back.architecture == "topk" and back.k == 4
    assert back.metadata["model_name"] == "gpt2"
    x = torch.randn(3, 6)
    assert torch.equal(back.encode(x), sae.encode(x))


@pytest.mark.parametrize("change, message", [
    (lambda c, w: c.pop("d_in"), "d_in"),
    (lambda c, w: c.update(architecture="jumprelu"), "jumprelu"),
    (lambda c, w: c.update(normalize_activations="layer_norm"), "normalize_activations"),
    (lambda c, w: c.update(d_sae=11), "W_enc has shape"),
    (lambda c, w: w.pop("b_dec"), "'b_dec' missing"),
])
def test_bad_sae_directories_fail_loudly(tmp_path, change, message):
    sae = random_sae()
    sae.save(tmp_path)
    cfg = json.loads((tmp_path / CFG_FILE).read_text())
    weights = load_file(str(tmp_path / WEIGHTS_FILE))
    change(cfg, weights)
    (tmp_path / CFG_FILE).write_text(json.dumps(cfg))
    save_file(weights, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(SAEFormatError, match=message):
        SparseAutoencoder.load(tmp_path)


def test_missing_files_and_bad_json(tmp_path):
    with pytest.raises(SAEFormatError, match="not an SAE directory"):
        SparseAutoencoder.load(tmp_path / "nowhere")
    with pytest.raises(SAEFormatError, match="no cfg.json"):
        SparseAutoencoder.load(tmp_path)
    (tmp_path / CFG_FILE).write_text("{not json")
    with pytest.raises(SAEFormatError, match="not valid JSON"):
        SparseAutoencoder.load(tmp_path)
    (tmp_path / CFG_FILE).write_text(json.dumps({"d_in": 2, "d_sae": 3}))
    with pytest.raises(SAEFormatError, match="no sae_weights.safetensors"):
        SparseAutoencoder.load(tmp_path)


def test_bad_constructor_arguments():
    with pytest.raises(SAEFormatError, match="k <= d_sae"):
        SparseAutoencoder(4, 8, "topk", 9)
    with pytest.raises(SAEFormatError, match="architecture"):
        SparseAutoencoder(4, 8, "gated", 2)
    assert np.isfinite(random_sae().W_enc.detach().numpy()).all()


def test_round_trip_with_sae_lens(tmp_path):
    """Against SAELens itself (optional extra ``sae-lens``; skipped when not installed)."""
    sae_lens = pytest.importorskip("sae_lens")
    ours = random_sae()
    ours.save(tmp_path / "ours")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "ours"))
    x = torch.randn(5, 6)
    with torch.no_grad():
        assert torch.allclose(theirs.encode(x), ours.encode(x), atol=1e-5)
        assert torch.allclose(theirs.decode(theirs.encode(x)), ours(x), atol=1e-5)
    made = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=6, d_sae=10, k=3))
    made.save_model(str(tmp_path / "theirs"))
    back = SparseAutoencoder.load(tmp_path / "theirs")
    with torch.no_grad():
        assert torch.allclose(back.encode(x), made.encode(x), atol=1e-5)
