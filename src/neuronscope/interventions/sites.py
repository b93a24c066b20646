"""Where a named neuron lives in a running model, resolved from the architecture alone.

Neuron names are the store's (``L3.mlp.1021``, ``L2.attn.h5.17``, ``L4.hidden.7``), but no store
is needed to find them: :func:`~neuronscope.extraction.components.model_sites`, the one
component-site map that extraction uses too, says which module carries each component and
whether to edit its input or its output. This module adds what interventions need on top:
parsing and validating a neuron name against those sites, and a store's custom components.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from neuronscope.errors import ModelLoadError, UnknownComponentError
from neuronscope.extraction.components import (
    BUILTIN_COMPONENTS,
    ComponentSites,
    ModelSites,
    model_sites,
)
from neuronscope.models.loading import LoadedModel
from neuronscope.store.names import parse_name

__all__ = [
    "BUILTIN",
    "ComponentSites",
    "ModelSites",
    "NeuronRef",
    "as_loaded",
    "model_sites",
    "parse_neuron",
    "store_sites",
]

BUILTIN = BUILTIN_COMPONENTS


def as_loaded(model: LoadedModel | nn.Module) -> LoadedModel:
    """Accept a :class:`LoadedModel` or a bare Hugging Face module (tokenizer unknown)."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        if getattr(model, "config", None) is None:
            raise ModelLoadError(
                f"{type(model).__name__} has no Hugging Face config; wrap it with "
                "neuronscope.models.wrap_model(model, tokenizer)"
            )
        return LoadedModel(model, None, type(model).__name__, None, False, None)
    raise ModelLoadError(f"expected a LoadedModel or torch module, got {type(model).__name__}")


def store_sites(meta_components: Mapping[str, Any]) -> dict[str, ComponentSites]:
    """Custom components of a store (``modules={...}`` at extraction): module outputs."""
    out = {}
    for name, comp in meta_components.items():
        if name in BUILTIN or comp.get("source") != "output":
            continue
        mods = {int(k): v for k, v in (comp.get("modules") or {}).items()}
        if mods:
            out[name] = ComponentSites(name, int(comp["neurons"]),
                                       {k: (m, "output") for k, m in mods.items()})
    return out


@dataclass(frozen=True)
class NeuronRef:
    """One parsed neuron: its name, component, layer and index within the layer."""

    name: str
    component: str
    layer: int
    index: int


def parse_neuron(name: str, components: Mapping[str, ComponentSites],
                 missing: Mapping[str, str], model_name: str = "the model") -> NeuronRef:
    """Parse and validate one neuron name against a model's components."""
    if not isinstance(name, str):
        raise UnknownComponentError(
            f"neuron names must be strings like 'L3.mlp.1021', got {name!r}"
        )
    parsed = parse_name(name)
    if parsed is None:
        raise UnknownComponentError(
            f"bad neuron name {name!r}; expected like 'L3.mlp.1021', 'L2.attn.h5.17' or "
            "'L4.hidden.7'"
        )
    layer, component, head, index = parsed.layer, parsed.component, parsed.head, parsed.index
    if component not in components:
        if component in missing:
            raise UnknownComponentError(
                f"{name!r}: {model_name} has no {component!r} neurons: {missing[component]}"
            )
        raise UnknownComponentError(
            f"{name!r}: unknown component {component!r}; {model_name} has: "
            f"{', '.join(components) or '(none)'}"
        )
    comp = components[component]
    if layer not in comp.sites:
        layers = comp.layers
        raise UnknownComponentError(
            f"{name!r}: layer {layer} out of range; {component} layers of {model_name} are "
            f"{layers[0]}-{layers[-1]}"
        )
    if head is not None:
        if not comp.head_dim:
            raise UnknownComponentError(f"{name!r}: component {component!r} has no heads")
        n_heads = comp.width // comp.head_dim
        if head >= n_heads or index >= comp.head_dim:
            raise UnknownComponentError(
                f"{name!r}: {component} has {n_heads} heads of size {comp.head_dim}"
            )
        index = head * comp.head_dim + index
    if index >= comp.width:
        raise UnknownComponentError(
            f"{name!r}: index {index} out of range; {component} has {comp.width} neurons per layer"
        )
    return NeuronRef(name.strip(), component, layer, index)
