"""What the report derives from rankings: concepts, method labels, agreement, layer counts,
probe weights, and the notebook table of a :class:`~neuronscope.methods.ranking.Ranking`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.methods.ranking import Ranking
from neuronscope.store.provenance import Provenance, check_ranking_compatible
from neuronscope.store.store import ActivationStore


@dataclass(frozen=True)
class ConceptKey:
    """A concept of one label layer (``layer`` is None when the ranking did not say)."""

    layer: str | None
    concept: str

    def display(self, qualified: bool) -> str:
        """``NOUN``, or ``upos:NOUN`` when the report mixes label layers."""
        return f"{self.layer}:{self.concept}" if qualified and self.layer else self.concept


def method_labels(rankings: Sequence[Ranking]) -> list[str]:
    """A unique column label per ranking: the method name, qualified only when needed.

    Two rankings of one method (say a probe on ``upos`` and on its control task) would
    otherwise share a column.
    """
    methods = [r.method for r in rankings]
    labels = [f"{r.method} [{r.label_layer}]" if methods.count(r.method) > 1 and r.label_layer
              else r.method for r in rankings]
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if labels.count(label) == 1 else f"{label} #{seen[label]}")
    return out


def check_rankings(store: ActivationStore, rankings: Sequence[Ranking]) -> list[str]:
    """The acceptance policy (:func:`~neuronscope.store.provenance.check_ranking_compatible`),
    the same as ``neuronscope evaluate``'s: refuse rankings of another model, aggregation or
    neuron layout (their ids would name other neurons); accept rankings of another corpus of
    the same model. Returns the policy's notes."""
    target = Provenance.of_store(store)
    return [note for r in rankings
            for note in check_ranking_compatible(r, target, store.layout)]


def overlap_at_k(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the top ``k`` neurons two orderings have in common (``|A ∩ B| / k``)."""
    if k <= 0:
        return float("nan")
    k_eff = min(k, len(a), len(b))
    if k_eff == 0:
        return float("nan")
    return len(set(a[:k_eff].tolist()) & set(b[:k_eff].tolist())) / k_eff


def layer_keys(store: ActivationStore) -> list[str]:
    """Every ``L{layer}.{component}`` of the store, component by component."""
    return [f"L{layer}.{name}" for name, comp in store.layout.components.items()
            for layer in comp.layers]


def layer_counts(store: ActivationStore, ids: Sequence[int]) -> dict[str, int]:
    """How many of ``ids`` sit in each ``L{layer}.{component}``."""
    out: dict[str, int] = {}
    for component, layer in store.layout.layer_of(ids):
        key = f"L{layer}.{component}"
        out[key] = out.get(key, 0) + 1
    return out


_WEIGHT_KEYS = ("probe_weights", "weights", "coef", "coefficients")


def probe_weights(ranking: Ranking, name: str) -> list[tuple[str, float]]:
    """``(concept, weight)`` of a neuron when the ranking's ``extra`` holds probe weights.

    Understood layouts under ``extra["probe_weights" | "weights" | "coef"]``:
    ``{concept: {neuron name: w}}``, ``{concept: [w per neuron]}`` aligned with
    ``extra["neuron_ids"]`` or ``extra["neurons"]`` (ids or names), or a list of rows (one per
    concept, in ``extra["classes"]`` or ranking order) aligned the same way. Anything else
    yields nothing.
    """
    extra = ranking.extra
    weights = next((extra[k] for k in _WEIGHT_KEYS if k in extra), None)
    if weights is None:
        return []
    columns = extra.get("neuron_ids", extra.get("neurons"))
    position = None
    if isinstance(columns, list):
        nid = next((i for i, n in ranking.names.items() if n == name), None)
        for j, c in enumerate(columns):
            if c == name or (nid is not None and c == nid):
                position = j
                break
    if isinstance(weights, list):
        concepts = extra.get("classes", ranking.concept_names)
        weights = dict(zip(map(str, concepts), weights, strict=False))
    if not isinstance(weights, Mapping):
        return []
    out = []
    for concept, row in weights.items():
        value: Any = None
        if isinstance(row, Mapping):
            value = row.get(name)
        elif isinstance(row, list) and position is not None and position < len(row):
            value = row[position]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((str(concept), float(value)))
    return out
