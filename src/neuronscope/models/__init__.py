"""Model loading (Hugging Face hub names, local folders, GGUF) and per-architecture layouts."""

from neuronscope.models.architectures import ARCHITECTURES, SUPPORTED, patterns_for
from neuronscope.models.loading import (
    COMPUTE_DTYPES,
    MODEL_ALIASES,
    LoadedModel,
    default_model_path,
    load_model,
    smollm2_gguf_path,
    wrap_model,
)

__all__ = [
    "ARCHITECTURES",
    "COMPUTE_DTYPES",
    "MODEL_ALIASES",
    "SUPPORTED",
    "LoadedModel",
    "default_model_path",
    "load_model",
    "patterns_for",
    "smollm2_gguf_path",
    "wrap_model",
]
