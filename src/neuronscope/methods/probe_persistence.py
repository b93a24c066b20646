"""Saving and loading fitted :class:`~neuronscope.methods.linear_probe.LinearProbe` objects.

The file is a ``torch.save`` dictionary of tensors and plain types only, so loading can use
``weights_only=True`` (no arbitrary code runs while reading a probe file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError

FORMAT = "neuronscope-linear-probe"
VERSION = 2


def _plain(value: Any) -> Any:
    """A parameter or fitted value as the plain types ``weights_only`` loading accepts;
    numeric arrays become tagged tensors, string arrays lists."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fiub":
            return {"__array__": torch.from_numpy(np.ascontiguousarray(value))}
        return {"__strings__": value.tolist()}
    if isinstance(value, tuple):
        return {"__tuple__": [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            return value["__array__"].numpy()
        if "__tuple__" in value:
            return tuple(_restore(v) for v in value["__tuple__"])
        if "__strings__" in value:
            return np.asarray(value["__strings__"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def save_probe(probe: Any, path: str | os.PathLike) -> None:
    """Write a fitted probe's parameters and every fitted attribute (trailing ``_``)."""
    fitted = {k: v for k, v in vars(probe).items() if k.endswith("_") and not k.startswith("_")}
    state = {
        "format": FORMAT,
        "version": VERSION,
        "params": {k: _plain(v) for k, v in probe.get_params().items()},
        "fitted": {k: _plain(v) for k, v in fitted.items()},
    }
    torch.save(state, Path(path))


def load_probe(cls: type, path: str | os.PathLike) -> Any:
    """Read a probe written by :func:`save_probe` into a new ``cls`` instance."""
    path = Path(path)
    if not path.exists():
        raise NeuronscopeError(f"probe file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise NeuronscopeError(f"{path}: not a readable probe file: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise NeuronscopeError(f"{path}: not a neuronscope linear probe")
    if state.get("version") != VERSION:
        raise NeuronscopeError(
            f"{path}: probe file version {state.get('version')} is not supported (expected "
            f"{VERSION}); refit the probe"
        )
    probe = cls().set_params(**{k: _restore(v) for k, v in state["params"].items()})
    for key, value in state["fitted"].items():
        setattr(probe, key, _restore(value))
    return probe
