"""Which neurons to extract: components (hidden, mlp, attn, or named modules) and layers.

* ``hidden``: the embedding output (layer 0) and every block's output (layer k = block k-1),
  exactly the model's ``hidden_states``.
* ``mlp``: FFN neurons of block k after the nonlinearity.
* ``attn``: per-head attention outputs of block k before the output projection.
* custom: outputs of modules the user names, one per layer, for any torch model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from neuronscope.errors import UnknownComponentError
from neuronscope.extraction.hooks import Trace, resolve_modules
from neuronscope.models.architectures import find_block_modules, input_width, patterns_for
from neuronscope.models.loading import LoadedModel

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
    result: list[Component] = []
    for name in components:
        if name == "hidden":
            width = int(getattr(model.config, "hidden_size", 0) or model.config.n_embd)
            result.append(Component("hidden", list(range(n_blocks + 1)), width, "hidden_states"))
        elif name in ("mlp", "attn"):
            pats = patterns_for(model)
            found = find_block_modules(model, pats.mlp if name == "mlp" else pats.attn)
            if not found:
                raise UnknownComponentError(f"no {name} modules found in {loaded.name}")
            mods = resolve_modules(model, found.values())
            width = input_width(next(iter(mods.values())))
            head_dim = None
            if name == "attn":
                heads = _num_heads(model.config)
                head_dim = width // heads if heads and width % heads == 0 else None
            result.append(Component(name, list(found), width, "input", dict(found), head_dim))
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
