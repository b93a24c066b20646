"""Neuron identities: global integer ids <-> readable names such as ``L3.mlp.1021``.

Global ids number the neurons of a store in order: components in store order, then layers
in stored order, then neurons. Attention neurons are named per head: ``L3.attn.h5.17`` is
dimension 17 of head 5 (``h5.17`` == flat index ``5 * head_dim + 17``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from neuronscope.errors import UnknownComponentError

#: The grammar of neuron names: ``L<layer>.<component>.[h<head>.]<index>``.
# 18 digits at most per number: no real index is longer, and Python refuses int() of
# very long digit strings (a traceback instead of a clear error).
NEURON_NAME = re.compile(r"^L(\d{1,18})\.([A-Za-z_][\w-]*)\.(?:h(\d{1,18})\.)?(\d{1,18})$")


@dataclass(frozen=True)
class ParsedName:
    """The parts of a neuron name; ``index`` is within the head when ``head`` is set."""

    layer: int
    component: str
    head: int | None
    index: int

    @property
    def group(self) -> str:
        """The layer group, ``L3.mlp`` (what per-layer summaries count by)."""
        return f"L{self.layer}.{self.component}"


def parse_name(name: str) -> ParsedName | None:
    """Split ``L3.mlp.1021`` / ``L2.attn.h5.17`` into its parts; None if not a neuron name.

    Only the grammar is checked here: whether the component, layer and index exist is a
    question for a :class:`NeuronLayout` (a store) or a model's sites.
    """
    match = NEURON_NAME.match(name.strip()) if isinstance(name, str) else None
    if match is None:
        return None
    layer, component, head, index = match.groups()
    return ParsedName(int(layer), component, None if head is None else int(head), int(index))



@dataclass(frozen=True)
class ComponentLayout:
    """Layers and width of one component in a store."""

    layers: tuple[int, ...]
    neurons: int
    head_dim: int | None = None

    @property
    def size(self) -> int:
        """Number of neurons of this component over all its layers."""
        return len(self.layers) * self.neurons


class NeuronLayout:
    """Maps neuron ids to names and back for an ordered set of components."""

    def __init__(self, components: Mapping[str, ComponentLayout]) -> None:
        self.components: dict[str, ComponentLayout] = dict(components)
        self._offsets: dict[str, int] = {}
        offset = 0
        for name, comp in self.components.items():
            self._offsets[name] = offset
            offset += comp.size
        self.n_neurons = offset

    @classmethod
    def from_meta(cls, meta: Mapping[str, Mapping]) -> NeuronLayout:
        """Build from the ``components`` section of store metadata."""
        return cls(
            {
                name: ComponentLayout(tuple(c["layers"]), int(c["neurons"]), c.get("head_dim"))
                for name, c in meta.items()
            }
        )

    def offset(self, component: str) -> int:
        """Global id of the first neuron of a component."""
        self._check_component(component)
        return self._offsets[component]

    def _check_component(self, component: str) -> ComponentLayout:
        if component not in self.components:
            raise UnknownComponentError(
                f"unknown component {component!r}; this store has: {', '.join(self.components)}"
            )
        return self.components[component]

    def layer_slice(self, component: str, layer: int) -> slice:
        """Global ids of one layer of a component, as a slice."""
        comp = self._check_component(component)
        if layer not in comp.layers:
            raise UnknownComponentError(
                f"component {component!r} has no layer {layer}; layers: {list(comp.layers)}"
            )
        start = self._offsets[component] + comp.layers.index(layer) * comp.neurons
        return slice(start, start + comp.neurons)

    def locate(self, neuron_id: int) -> tuple[str, int, int]:
        """``(component, layer, index within layer)`` of a global id."""
        if not 0 <= neuron_id < self.n_neurons:
            raise UnknownComponentError(
                f"neuron id {neuron_id} out of range (store has {self.n_neurons} neurons)"
            )
        for name, comp in self.components.items():
            local = neuron_id - self._offsets[name]
            if local < comp.size:
                return name, comp.layers[local // comp.neurons], local % comp.neurons
        raise AssertionError("unreachable")

    def name(self, neuron_id: int) -> str:
        """Readable name of a global id, e.g. ``L3.mlp.1021`` or ``L2.attn.h5.17``."""
        component, layer, index = self.locate(int(neuron_id))
        head_dim = self.components[component].head_dim
        if head_dim:
            return f"L{layer}.{component}.h{index // head_dim}.{index % head_dim}"
        return f"L{layer}.{component}.{index}"

    def names(self, neuron_ids: Iterable[int]) -> list[str]:
        """Readable names of several ids."""
        return [self.name(i) for i in neuron_ids]

    def id(self, name: str) -> int:
        """Global id of a readable name; accepts ``L2.attn.h5.17`` and ``L2.attn.337``."""
        parsed = parse_name(name)
        if parsed is None:
            raise UnknownComponentError(
                f"bad neuron name {name!r}; expected like 'L3.mlp.1021' or 'L2.attn.h5.17'"
            )
        component, index = parsed.component, parsed.index
        comp = self._check_component(component)
        index_in_layer = index
        if parsed.head is not None:
            if not comp.head_dim:
                raise UnknownComponentError(f"component {component!r} has no heads: {name!r}")
            if index >= comp.head_dim:
                raise UnknownComponentError(
                    f"{name!r}: head dimension {index} >= head size {comp.head_dim}"
                )
            index_in_layer = parsed.head * comp.head_dim + index
        if index_in_layer >= comp.neurons:
            raise UnknownComponentError(
                f"{name!r}: index {index_in_layer} >= {comp.neurons} neurons per layer"
            )
        return self.layer_slice(component, parsed.layer).start + index_in_layer

    def ids(self, names: Iterable[str | int]) -> np.ndarray:
        """Global ids of names (ints pass through, range-checked)."""
        out = []
        for n in names:
            if isinstance(n, (int, np.integer)):
                self.locate(int(n))
                out.append(int(n))
            else:
                out.append(self.id(n))
        return np.asarray(out, dtype=np.int64)

    def layer_of(self, neuron_ids: Iterable[int]) -> list[tuple[str, int]]:
        """``(component, layer)`` of each id."""
        return [self.locate(int(i))[:2] for i in neuron_ids]

    def select(
        self, components: Iterable[str] | None = None, layers: Iterable[int] | None = None
    ) -> np.ndarray:
        """Global ids of every neuron in the given components and layers (default: all)."""
        names = list(components) if components is not None else list(self.components)
        wanted = None if layers is None else set(layers)
        parts = []
        for component in names:
            comp = self._check_component(component)
            for layer in comp.layers:
                if wanted is None or layer in wanted:
                    sl = self.layer_slice(component, layer)
                    parts.append(np.arange(sl.start, sl.stop, dtype=np.int64))
        if not parts:
            raise UnknownComponentError(
                f"no neurons in components {names} and layers {sorted(wanted or [])}; layers: "
                + "; ".join(f"{n}: {list(self.components[n].layers)}" for n in names)
            )
        return np.concatenate(parts)

    def all_names(self) -> list[str]:
        """Names of every neuron, in id order."""
        return self.names(range(self.n_neurons))
