"""Where a named neuron lives in a running model, resolved from the architecture alone.

Neuron names are the store's (``L3.mlp.1021``, ``L2.attn.h5.17``, ``L4.hidden.7``), but no store
is needed to find them: the architecture patterns of :mod:`neuronscope.models.architectures`
say which module carries each component, and whether to edit its input or its output:

* ``mlp`` / ``attn``: the *input* of the down (output) projection of block ``k``, exactly what
  extraction records;
* ``hidden`` layer 0: the output of the embeddings module (``hidden_states[0]``);
* ``hidden`` layer ``k`` (1..n): the output of block ``k - 1``; for the last layer of models that
  normalize after the last block (GPT-2, Llama, GPT-NeoX), the output of that final norm, since
  that is what ``hidden_states[-1]`` (and so the store) holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from neuronscope.errors import ModelLoadError, UnknownComponentError
from neuronscope.models.architectures import (
    ARCHITECTURES,
    ArchitecturePatterns,
    find_block_modules,
    input_width,
)
from neuronscope.models.loading import LoadedModel
from neuronscope.store.names import ComponentLayout, NeuronLayout, parse_name

BUILTIN = ("hidden", "mlp", "attn")


@dataclass
class ComponentSites:
    """One component of a model: per layer, the module to hook and whether input or output."""

    name: str
    width: int
    sites: dict[int, tuple[str, str]]  # layer -> (module name, "input" | "output")
    head_dim: int | None = None

    @property
    def layers(self) -> list[int]:
        """Layers in increasing order."""
        return sorted(self.sites)


@dataclass
class ModelSites:
    """Every component the model offers to interventions, and why others are missing."""

    components: dict[str, ComponentSites] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # component -> reason

    def layout(self) -> NeuronLayout:
        """A store-like layout (hidden, mlp, attn; all layers) for neuron ids without a store."""
        return NeuronLayout({
            name: ComponentLayout(tuple(c.layers), c.width, c.head_dim)
            for name, c in self.components.items()
        })


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


def _last_match(model: nn.Module, pattern: str) -> str | None:
    if not pattern:
        return None
    regex = re.compile(pattern)
    found = [name for name, _ in model.named_modules() if regex.search(name)]
    return found[-1] if found else None


def model_sites(loaded: LoadedModel) -> ModelSites:
    """Resolve the hidden, mlp and attn components of a model from its architecture patterns."""
    model = loaded.model
    result = ModelSites()
    model_type = getattr(model.config, "model_type", None)
    pats: ArchitecturePatterns | None = (ARCHITECTURES.get(model_type)
                                         if isinstance(model_type, str) else None)
    if pats is None:
        reason = (f"no built-in module patterns for model_type {model_type!r} "
                  f"(known: {', '.join(sorted(ARCHITECTURES))})")
        result.missing = dict.fromkeys(BUILTIN, reason)
        return result
    modules = dict(model.named_modules())
    n_blocks = loaded.num_layers
    blocks = find_block_modules(model, pats.block) if pats.block else {}
    embeddings = _last_match(model, pats.embeddings)
    final_norm = _last_match(model, pats.final_norm)
    if embeddings is None or sorted(blocks) != list(range(n_blocks)):
        result.missing["hidden"] = (f"cannot locate the embeddings and all {n_blocks} blocks of "
                                    f"this {pats.family} model")
    else:
        sites = {0: (embeddings, "output")}
        sites.update({k + 1: (name, "output") for k, name in blocks.items()})
        if final_norm is not None:
            sites[n_blocks] = (final_norm, "output")
        cfg = model.config
        width = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0))
        result.components["hidden"] = ComponentSites("hidden", width, sites)
    for name, pattern in (("mlp", pats.mlp), ("attn", pats.attn)):
        found = find_block_modules(model, pattern)
        if not found:
            result.missing[name] = f"no module of this {pats.family} model matches {pattern!r}"
            continue
        width = input_width(modules[next(iter(found.values()))])
        head_dim = None
        if name == "attn":
            heads = next((v for v in (getattr(model.config, key, None) for key in
                          ("num_attention_heads", "n_head", "n_heads"))
                          if isinstance(v, int) and v > 0), None)
            head_dim = width // heads if heads and width % heads == 0 else None
        result.components[name] = ComponentSites(
            name, width, {k: (m, "input") for k, m in found.items()}, head_dim
        )
    return result


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
