"""Where the top neurons of each concept sit: counts per layer and component.

The survey (Sajjad, Durrani & Dalvi 2022, Figure 2) shows, per concept, how the salient
neurons are distributed over a model's layers: lexical concepts concentrate in lower layers,
syntactic ones spread higher. :func:`layer_distribution` builds that table from a ranking
(top ``k`` neurons via :meth:`Ranking.layer_counts`, or the fewest neurons holding ``mass`` of
the score mass via :meth:`Ranking.top_mass`); :func:`~neuronscope.evaluation.plots.
plot_layer_distribution` draws it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.ranking import GLOBAL, Ranking
from neuronscope.store.names import parse_name


@dataclass
class LayerDistribution:
    """Counts of top neurons per concept (rows) and ``L{layer}.{component}`` (columns)."""

    method: str
    concepts: list[str]
    columns: list[str]
    counts: np.ndarray  # (n_concepts, n_columns) int
    k: int | None = None
    mass: float | None = None

    def shares(self) -> np.ndarray:
        """Counts divided by each concept's total (rows sum to 1; empty rows stay 0)."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape),
                         where=totals > 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready table: ``counts[concept][column]``."""
        return {
            "method": self.method,
            "k": self.k,
            "mass": self.mass,
            "columns": list(self.columns),
            "counts": {c: {col: int(n) for col, n in zip(self.columns, row, strict=True)}
                       for c, row in zip(self.concepts, self.counts.tolist(), strict=True)},
        }

    def to_dataframe(self) -> Any:
        """Concepts as rows, layer/component columns."""
        import pandas as pd

        return pd.DataFrame(self.counts, index=pd.Index(self.concepts, name="concept"),
                            columns=self.columns)

    def to_pandas(self) -> Any:
        """The same table as :meth:`to_dataframe` (pandas' usual name for it)."""
        return self.to_dataframe()


def _layer_key(name: str) -> tuple[str, int, str]:
    parsed = parse_name(name)
    if parsed is None:
        raise NeuronscopeError(
            f"neuron {name!r} has no layer in its name (expected like 'L3.mlp.1021'); a layer "
            "distribution needs a ranking computed on an activation store"
        )
    return parsed.component, parsed.layer, parsed.group


def layer_distribution(
    ranking: Ranking,
    k: int | None = None,
    mass: float | None = None,
    concepts: Sequence[str] | None = None,
    include_global: bool = False,
) -> LayerDistribution:
    """Per concept, how many of its top neurons lie in each layer and component.

    Args:
        ranking: a ranking computed on a store (names like ``L3.mlp.1021``).
        k: count the top ``k`` neurons of each concept (fewer when a concept orders fewer).
        mass: alternatively, the fewest neurons holding this share of the |score| mass.
        concepts: concepts to include (default: all of the ranking).
        include_global: add a row ``"__all__"`` for the global order.

    Columns are ordered by component, then layer, and cover every layer/component in which
    any counted neuron lies.
    """
    if (k is None) == (mass is None):
        raise NeuronscopeError("pass exactly one of k or mass")
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise NeuronscopeError(f"k must be a positive integer, got {k!r}")
    wanted = list(ranking.concept_names if concepts is None else concepts)
    if include_global:
        wanted.append(GLOBAL)
    if not wanted:
        raise NeuronscopeError("no concept to count")
    rows: list[Counter] = []
    keys: dict[str, tuple[str, int]] = {}
    for concept in wanted:
        names = (ranking.top(int(k), concept) if k is not None
                 else ranking.top_mass(float(mass or 0.0), concept))
        for name in names:
            component, layer, key = _layer_key(name)  # validates before layer_counts parses
            keys[key] = (component, layer)
        if k is not None:
            rows.append(Counter(ranking.layer_counts(int(k), concept)))
        else:
            rows.append(Counter(_layer_key(n)[2] for n in names))
    columns = sorted(keys, key=lambda key: keys[key])
    counts = np.asarray([[row.get(col, 0) for col in columns] for row in rows], dtype=np.int64)
    return LayerDistribution(ranking.method, wanted, columns, counts.reshape(len(wanted), -1),
                             None if k is None else int(k), None if mass is None else float(mass))
