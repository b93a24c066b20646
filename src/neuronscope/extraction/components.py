"""Which neurons to extract: components (hidden, mlp, attn, or named modules) and layers.

* ``hidden``: the embedding output (layer 0) and every block's output (layer k = block k-1),
  exactly the model's ``hidden_states``.
* ``mlp``: FFN neurons of block k after the nonlinearity.
* ``attn``: per-head attention outputs of block k before the output projection.
* custom: outputs of modules the user names, one per layer, for any torch model.

:func:`model_sites` is the one map from component names to the modules that carry them, and
whether their input or output holds the neurons; extraction (:func:`resolve_components`) and
the interventions (:mod:`neuronscope.interventions.sites`) both read it:

* ``mlp`` / ``attn``: the *input* of the down (output) projection of block ``k``;
* ``hidden`` layer 0: the output of the embeddings module (``hidden_states[0]``);
* ``hidden`` layer ``k`` (1..n): the output of block ``k - 1``; for the last layer of models that
  normalize after the last block (GPT-2, Llama, GPT-NeoX), the output of that final norm, since
  that is what ``hidden_states[-1]`` (and so the store) holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from neuronscope.errors import UnknownComponentError
from neuronscope.extraction.hooks import Trace
from neuronscope.models.architectures import (
    ARCHITECTURES,
    ArchitecturePatterns,
    find_block_modules,
    input_width,
    patterns_for,
)
from neuronscope.models.loading import LoadedModel
from neuronscope.store.names import ComponentLayout, NeuronLayout

BUILTIN_COMPONENTS = ("hidden", "mlp", "attn")


@dataclass
class Component:
    """One extracted component: where its neurons come from and how wide it is.

    ``source`` is ``hidden_states``, ``input`` (first input of each module) or ``output``.
    """

    name: str
    layers: list[int]
    neurons: int
    source: str
    modules: dict[int, str] = field(default_factory=dict)
    head_dim: int | None = None

    def meta(self) -> dict:
        """The store-metadata description of this component."""
        return {
            "layers": self.layers,
            "neurons": self.neurons,
            "head_dim": self.head_dim,
            "source": self.source,
            "modules": {str(k): v for k, v in self.modules.items()},
        }


_MAX_LAYER = 100_000  # no model has more layers; keeps "0-10**12" from filling memory


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
        result.missing = dict.fromkeys(BUILTIN_COMPONENTS, reason)
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
        result.components["hidden"] = ComponentSites("hidden", _hidden_width(model.config), sites)
    for name, pattern in (("mlp", pats.mlp), ("attn", pats.attn)):
        found = find_block_modules(model, pattern)
        if not found:
            result.missing[name] = f"no module of this {pats.family} model matches {pattern!r}"
            continue
        width = input_width(modules[next(iter(found.values()))])
        head_dim = None
        if name == "attn":
            heads = _num_heads(model.config)
            head_dim = width // heads if heads and width % heads == 0 else None
        result.components[name] = ComponentSites(
            name, width, {k: (m, "input") for k, m in found.items()}, head_dim
        )
    return result


def parse_layers(spec: str | Sequence[int] | None) -> list[int] | None:
    """Parse ``"0-6"``, ``"1,3,5"`` or ``"0-2,5"`` into a sorted list of layer indices."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        return sorted({int(x) for x in spec})
    layers: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
            else:
                lo = hi = int(part)
        except ValueError as err:
            raise UnknownComponentError(
                f"bad layer spec {spec!r}; use e.g. '0-6' or '1,3,5'"
            ) from err
        if lo > hi or hi >= _MAX_LAYER:
            # A reversed range selected nothing and ended in a division by zero downstream.
            raise UnknownComponentError(
                f"bad layer range {part!r} in {spec!r}: give low-high with low <= high "
                f"< {_MAX_LAYER}"
            )
        layers.update(range(lo, hi + 1))
    if not layers:
        raise UnknownComponentError(f"layer spec {spec!r} names no layer; use e.g. '0-6'")
    return sorted(layers)


def _hidden_width(config: object) -> int:
    return int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))


def _num_heads(config: object) -> int | None:
    for key in ("num_attention_heads", "n_head", "n_heads"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_components(
    loaded: LoadedModel,
    components: Sequence[str] = ("hidden",),
    layers: str | Sequence[int] | None = None,
    modules: Mapping[str, Sequence[str]] | None = None,
) -> list[Component]:
    """Turn component names (and optional layer filter) into concrete :class:`Component` s.

    Args:
        loaded: the model.
        components: any of ``hidden``, ``mlp``, ``attn``.
        layers: keep only these layers (each component keeps the ones it has); a layer that
            no requested component has is an error.
        modules: extra components, ``{name: [module name per layer]}``, capturing outputs.
    """
    model = loaded.model
    n_blocks = loaded.num_layers
    wanted = parse_layers(layers)
    sites: ModelSites | None = None
    result: list[Component] = []
    for name in components:
        if name == "hidden":
            # Read from ``hidden_states``, not hooks: every model returns them.
            width = _hidden_width(model.config)
            result.append(Component("hidden", list(range(n_blocks + 1)), width, "hidden_states"))
        elif name in ("mlp", "attn"):
            patterns_for(model)  # an unknown architecture: the error says what to do instead
            if sites is None:
                sites = model_sites(loaded)
            if name not in sites.components:
                raise UnknownComponentError(
                    f"no {name} modules found in {loaded.name}: {sites.missing.get(name)}")
            found = sites.components[name]
            modules_of = {layer: module for layer, (module, _) in found.sites.items()}
            result.append(Component(name, found.layers, found.width, "input", modules_of,
                                    found.head_dim))
        else:
            raise UnknownComponentError(
                f"unknown component {name!r}; valid: {', '.join(BUILTIN_COMPONENTS)} "
                "(or name modules yourself with modules={'name': [...]})"
            )
    for name, module_names in (modules or {}).items():
        if name in BUILTIN_COMPONENTS or any(c.name == name for c in result):
            raise UnknownComponentError(f"component name {name!r} is already taken")
        result.append(
            Component(name, list(range(len(module_names))), _probe_width(loaded, module_names),
                      "output", dict(enumerate(module_names)))
        )
    if not result:
        raise UnknownComponentError(f"no components given; valid: {', '.join(BUILTIN_COMPONENTS)}")
    if wanted is not None:
        available = sorted({layer for c in result for layer in c.layers})
        missing = [layer for layer in wanted if layer not in available]
        if missing:
            raise UnknownComponentError(
                f"unknown layer(s) {missing}; valid layers: "
                + "; ".join(f"{c.name}: {c.layers[0]}-{c.layers[-1]}" for c in result)
            )
        for c in result:
            c.layers = [layer for layer in c.layers if layer in wanted]
            c.modules = {k: v for k, v in c.modules.items() if k in wanted}
        result = [c for c in result if c.layers]
    return result


def _probe_width(loaded: LoadedModel, module_names: Sequence[str]) -> int:
    """Width of user-named modules, from one tiny forward pass."""
    ids = torch.tensor([[loaded.tokenizer.pad_token_id or 0] * 2], device=loaded.device)
    with torch.inference_mode(), Trace(loaded.model, module_names) as trace:
        loaded.model(input_ids=ids)
    widths = {trace.outputs[m].shape[-1] for m in module_names}
    if len(widths) != 1:
        raise UnknownComponentError(f"modules {list(module_names)} have different widths {widths}")
    return int(widths.pop())
