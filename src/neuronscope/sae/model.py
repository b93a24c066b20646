"""A sparse autoencoder (SAE) over one layer's activations, in SAELens's on-disk layout.

An SAE maps an activation ``x`` (``d_in``) to ``d_sae`` sparse, non-negative latents and back:

    f = act((x - b_dec) @ W_enc + b_enc)          # encode
    x_hat = f @ W_dec + b_dec                     # decode

with ``act`` either TopK (keep the ``k`` largest pre-activations, then ReLU; Gao et al. 2024,
SAELens architecture ``"topk"``) or ReLU (SAELens ``"standard"``, trained with an L1 penalty).

On disk (SAELens >= 6, so researchers' pretrained SAEs load and ours load in SAELens)::

    SAE_DIR/cfg.json                  d_in, d_sae, dtype, device, apply_b_dec_to_input,
                                      normalize_activations, reshape_activations, architecture,
                                      k (topk only), metadata{hook_name, model_name, ...}
    SAE_DIR/sae_weights.safetensors   W_enc (d_in, d_sae), b_enc (d_sae),
                                      W_dec (d_sae, d_in), b_dec (d_in)

Weights always act on *raw* activations: a training-time input scale is folded into them
before saving (``normalize_activations`` is ``"none"``; the scale is recorded in
``metadata.neuronscope.input_scale``). neuronscope's own fields (store, component, layer,
training settings and held-out metrics) live under ``metadata.neuronscope``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path, atomic_write_json

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
ARCHITECTURES = ("topk", "standard")
#: The SAELens config layout written (SAELens reads configs without this as pre-6.0 ones).
SAELENS_LAYOUT_VERSION = "6.0.0"


class SAEFormatError(NeuronscopeError):
    """An SAE directory is missing files or holds a config / weights we cannot use."""


class SparseAutoencoder(nn.Module):
    """TopK or ReLU sparse autoencoder with SAELens's parameter names and shapes.

    Args:
        d_in: width of the activations (e.g. 384 for MiniLM's hidden states).
        d_sae: number of latents.
        architecture: ``"topk"`` or ``"standard"`` (ReLU).
        k: active latents per input for ``topk``.
        apply_b_dec_to_input: subtract ``b_dec`` before encoding (SAELens's default).
        metadata: free-form metadata saved in ``cfg.json`` (``hook_name``, ``model_name``...).
    """

    def __init__(self, d_in: int, d_sae: int, architecture: str = "topk", k: int | None = 32,
                 apply_b_dec_to_input: bool = True,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise SAEFormatError(
                f"unknown SAE architecture {architecture!r}; supported: {', '.join(ARCHITECTURES)}"
            )
        if d_in < 1 or d_sae < 1:
            raise SAEFormatError(f"d_in and d_sae must be positive, got {d_in} and {d_sae}")
        if architecture == "topk" and (k is None or not 1 <= k <= d_sae):
            raise SAEFormatError(f"topk needs 1 <= k <= d_sae ({d_sae}), got k={k}")
        self.d_in, self.d_sae = int(d_in), int(d_sae)
        self.architecture = architecture
        self.k = int(k) if architecture == "topk" and k is not None else None
        self.apply_b_dec_to_input = bool(apply_b_dec_to_input)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    # ------------------------------------------------------------------ maths
    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Latent pre-activations ``(x - b_dec) W_enc + b_enc`` (before TopK / ReLU)."""
        x = x.to(self.W_enc.dtype)
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """TopK-then-ReLU (``topk``) or ReLU (``standard``) of pre-activations."""
        if self.k is None:
            return torch.relu(pre)
        values, indices = torch.topk(pre, self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations of ``x`` (``(..., d_in)`` -> ``(..., d_sae)``)."""
        return self.activate(self.pre_activations(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``f W_dec + b_dec`` of latent activations."""
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x``."""
        return self.decode(self.encode(x))

    def edit(self, x: torch.Tensor, change: Any) -> torch.Tensor:
        """``x`` with some latents changed and the reconstruction error kept.

        ``change`` maps the latents ``f = encode(x)`` to edited latents ``f'``; the result is
        ``x + (f' - f) @ W_dec`` = ``decode(f') + (x - decode(f))``, what SAELens's hooked SAEs
        compute with ``use_error_term=True``: everything the SAE does not reconstruct passes
        through untouched, so zeroing a latent removes exactly its decoder contribution.
        """
        f = self.encode(x)
        delta = change(f) - f
        return x + (delta @ self.W_dec).to(x.dtype)

    # ------------------------------------------------------------------ scaling
    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        """Make an SAE trained on ``x * scale`` act on raw ``x`` with identical latents.

        ``W_enc *= scale`` and ``W_dec, b_dec /= scale``: the pre-activations are unchanged,
        the reconstruction comes out in raw units.
        """
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)

    # ------------------------------------------------------------------ disk
    def config(self) -> dict[str, Any]:
        """The ``cfg.json`` content (SAELens 6 field names)."""
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": "none",
            "reshape_activations": "none",
        }
        if self.k is not None:
            cfg["k"] = self.k
            cfg["rescale_acts_by_decoder_norm"] = False
        meta = {"sae_lens_version": SAELENS_LAYOUT_VERSION,
                "sae_lens_training_version": SAELENS_LAYOUT_VERSION}
        meta.update(self.metadata)
        cfg["metadata"] = meta
        return cfg

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``cfg.json`` and ``sae_weights.safetensors`` into directory ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {name: p.detach().to("cpu", torch.float32).contiguous()
                   for name, p in (("W_enc", self.W_enc), ("b_enc", self.b_enc),
                                   ("W_dec", self.W_dec), ("b_dec", self.b_dec))}
        # Weights first, each file atomically: a crash never leaves a config beside half the
        # weights (a folder with weights but no config is refused by `load`).
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp))
        atomic_write_json(path / CFG_FILE, self.config(), default=str)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu"
             ) -> SparseAutoencoder:
        """Load an SAE directory in SAELens's layout (6.x configs and pre-6 ``activation_fn``)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        cfg = read_config(path)
        weights_path = path / WEIGHTS_FILE
        if not weights_path.exists():
            raise SAEFormatError(f"{path}: no {WEIGHTS_FILE} (an SAELens SAE directory has one)")
        try:
            state = load_file(str(weights_path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise SAEFormatError(f"{weights_path}: unreadable safetensors file: {err}") from err
        arch, k = _architecture(cfg, path)
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
        expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in),
                    "b_dec": (d_in,)}
        for name, shape in expected.items():
            if name not in state:
                raise SAEFormatError(f"{weights_path}: tensor {name!r} missing; has "
                                     f"{', '.join(sorted(state)) or 'nothing'}")
            if tuple(state[name].shape) != shape:
                raise SAEFormatError(f"{weights_path}: {name} has shape {tuple(state[name].shape)}"
                                     f", cfg.json (d_in={d_in}, d_sae={d_sae}) implies {shape}")
        if cfg.get("normalize_activations", "none") not in ("none", None):
            raise SAEFormatError(
                f"{path / CFG_FILE}: normalize_activations={cfg['normalize_activations']!r} is "
                "not supported; fold the normalization into the weights first (SAELens: "
                "fold_activation_norm_scaling_factor)"
            )
        if cfg.get("rescale_acts_by_decoder_norm"):
            raise SAEFormatError(
                f"{path / CFG_FILE}: rescale_acts_by_decoder_norm is not supported")
        meta = dict(cfg.get("metadata") or {})
        for key in ("sae_lens_version", "sae_lens_training_version"):
            meta.pop(key, None)
        for key in ("hook_name", "model_name", "hook_layer"):  # pre-6 configs: top level
            if key in cfg and key not in meta:
                meta[key] = cfg[key]
        sae = cls(d_in, d_sae, arch, k, bool(cfg.get("apply_b_dec_to_input", True)), meta)
        with torch.no_grad():
            for name in expected:
                getattr(sae, name).copy_(state[name].to(torch.float32))
        return sae.to(device)

    @property
    def neuronscope(self) -> dict[str, Any]:
        """neuronscope's own metadata (store, component, layer, training, metrics), if any."""
        return dict(self.metadata.get("neuronscope") or {})

    def __repr__(self) -> str:
        act = f"TopK(k={self.k})" if self.k is not None else "ReLU"
        return f"SparseAutoencoder(d_in={self.d_in}, d_sae={self.d_sae}, {act})"


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``cfg.json`` of an SAE directory, checked for the fields every SAE needs."""
    path = Path(path)
    cfg_path = path / CFG_FILE
    if not path.is_dir():
        raise SAEFormatError(f"{path} is not an SAE directory (expected a folder with {CFG_FILE} "
                             f"and {WEIGHTS_FILE})")
    if not cfg_path.exists():
        raise SAEFormatError(f"{path}: no {CFG_FILE} (an SAELens SAE directory has one)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SAEFormatError(f"{cfg_path}: not valid JSON: {err}") from err
    if not isinstance(cfg, dict):
        raise SAEFormatError(f"{cfg_path}: expected a JSON object")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise SAEFormatError(f"{cfg_path}: field {key!r} must be a positive integer, "
                                 f"got {cfg.get(key)!r}")
    return cfg


def _architecture(cfg: dict[str, Any], path: Path) -> tuple[str, int | None]:
    arch = cfg.get("architecture", "standard")
    act = cfg.get("activation_fn", cfg.get("activation_fn_str"))  # pre-6 configs
    if arch == "standard" and act == "topk":
        arch = "topk"
        k = (cfg.get("activation_fn_kwargs") or {}).get("k")
    else:
        k = cfg.get("k")
    if arch not in ARCHITECTURES:
        raise SAEFormatError(f"{path / CFG_FILE}: architecture {arch!r} is not supported "
                             f"(supported: {', '.join(ARCHITECTURES)})")
    if arch == "standard" and act not in (None, "relu"):
        raise SAEFormatError(f"{path / CFG_FILE}: activation_fn {act!r} is not supported")
    if arch == "topk" and not isinstance(k, int):
        raise SAEFormatError(f"{path / CFG_FILE}: a topk SAE needs an integer 'k', got {k!r}")
    return arch, k
