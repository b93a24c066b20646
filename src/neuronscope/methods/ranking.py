"""``Ranking``: what every neuron-ranking method returns.

For each concept, an ordered list of neurons (global store ids and readable names) with
scores, plus a global ordering across concepts and the provenance needed to trust and
reproduce it (method, parameters, store fingerprint).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope import __version__
from neuronscope.display import esc, fmt, scoped_css, table
from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_write_text
from neuronscope.methods.ranking_schema import load_ranking_json, validate_ranking_dict

GLOBAL = "__all__"


@dataclass
class ConceptRanking:
    """Neurons ordered from most to least relevant for one concept."""

    ids: np.ndarray  # global neuron ids, best first
    scores: np.ndarray  # score of each id, same order

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.ids.shape != self.scores.shape:
            raise ValueError("ids and scores must have the same length")


@dataclass
class Ranking:
    """Per-concept (and global) neuron orderings with their provenance.

    Args:
        method: the method's name, e.g. ``"probeless"``.
        params: the method's parameters (``get_params()``).
        concepts: concept -> :class:`ConceptRanking`.
        names: global id -> readable name for every id that appears.
        global_order: an ordering across all concepts (best first); derived when omitted.
        store_fingerprint: fingerprint of the store the activations came from, if any.
        label_layer: name of the label layer ranked against, if known.
        extra: method-specific results (accuracies, thresholds, ...), JSON-ready.
    """

    method: str
    params: dict[str, Any]
    concepts: dict[str, ConceptRanking]
    names: dict[int, str]
    global_order: np.ndarray | None = None
    global_scores: np.ndarray | None = None
    store_fingerprint: str | None = None
    label_layer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.global_order is None:
            self.global_order, self.global_scores = self._interleave()
        self.global_order = np.asarray(self.global_order, dtype=np.int64)
        if self.global_scores is None:
            self.global_scores = np.zeros(len(self.global_order))
        self.global_scores = np.asarray(self.global_scores, dtype=np.float64)

    def _interleave(self) -> tuple[np.ndarray, np.ndarray]:
        """Round-robin over concepts: a neuron's global rank is its best rank in any concept."""
        best: dict[int, tuple[int, float]] = {}
        for ranking in self.concepts.values():
            for rank, (i, s) in enumerate(zip(ranking.ids.tolist(), ranking.scores.tolist(),
                                              strict=True)):
                if i not in best or (rank, -s) < (best[i][0], -best[i][1]):
                    best[i] = (rank, s)
        order = sorted(best, key=lambda i: (best[i][0], -best[i][1]))
        return np.asarray(order, dtype=np.int64), np.asarray([best[i][1] for i in order])

    # ------------------------------------------------------------------ access
    @property
    def concept_names(self) -> list[str]:
        """Concepts in this ranking."""
        return list(self.concepts)

    @property
    def n_ranked(self) -> int:
        """Neurons in the global order."""
        return len(self._global()[0])

    def _global(self) -> tuple[np.ndarray, np.ndarray]:
        # ``__post_init__`` always fills both; None is only a constructor default.
        assert self.global_order is not None and self.global_scores is not None
        return self.global_order, self.global_scores

    def _get(self, concept: str | None) -> tuple[np.ndarray, np.ndarray]:
        if concept is None or concept == GLOBAL:
            return self._global()
        if concept not in self.concepts:
            raise NeuronscopeError(
                f"ranking has no concept {concept!r}; concepts: {', '.join(self.concepts)}"
            )
        c = self.concepts[concept]
        return c.ids, c.scores

    def top_ids(self, k: int, concept: str | None = None) -> np.ndarray:
        """Global ids of the ``k`` best neurons (of a concept, or overall)."""
        return self._get(concept)[0][:k].copy()

    def top(self, k: int, concept: str | None = None) -> list[str]:
        """Names of the ``k`` best neurons (of a concept, or overall)."""
        return [self.names[int(i)] for i in self.top_ids(k, concept)]

    def bottom_ids(self, k: int, concept: str | None = None) -> np.ndarray:
        """Global ids of the ``k`` least relevant neurons."""
        ids = self._get(concept)[0]
        return ids[len(ids) - k :][::-1].copy() if k > 0 else ids[:0].copy()

    def scores(self, concept: str | None = None) -> dict[str, float]:
        """Neuron name -> score, best first."""
        ids, scores = self._get(concept)
        return {self.names[int(i)]: float(s) for i, s in zip(ids, scores, strict=True)}

    def top_mass(self, fraction: float, concept: str | None = None) -> list[str]:
        """The fewest best neurons whose |score| sum reaches ``fraction`` of the total.

        With probe weights as scores this is the weight-mass rule of Dalvi et al. (2019).
        """
        if not 0 < fraction <= 1:
            raise NeuronscopeError(f"fraction must be in (0, 1], got {fraction}")
        ids, scores = self._get(concept)
        mass = np.abs(scores)
        total = mass.sum()
        if total == 0:
            return []
        k = int(np.searchsorted(np.cumsum(mass) / total, fraction - 1e-12) + 1)
        return [self.names[int(i)] for i in ids[: min(k, len(ids))]]

    def layer_counts(self, k: int, concept: str | None = None) -> dict[str, int]:
        """How many of the top ``k`` neurons sit in each ``L{layer}.{component}``."""
        counts: Counter = Counter()
        for name in self.top(k, concept):
            layer, component = name.split(".")[:2]
            counts[f"{layer}.{component}"] += 1
        return dict(sorted(counts.items(), key=lambda kv: (kv[0].split(".")[1],
                                                            int(kv[0].split(".")[0][1:]))))

    # ------------------------------------------------------------------ views and I/O
    def to_dataframe(self) -> Any:
        """Long table: concept, rank, neuron, id, score (the global order as ``__all__``)."""
        import pandas as pd

        rows = []
        for concept in [*self.concepts, GLOBAL]:
            ids, scores = self._get(concept)
            for rank, (i, s) in enumerate(zip(ids.tolist(), scores.tolist(), strict=True)):
                rows.append((concept, rank, self.names[i], i, s))
        return pd.DataFrame(rows, columns=["concept", "rank", "neuron", "id", "score"])

    def to_pandas(self) -> Any:
        """The same table as :meth:`to_dataframe` (pandas' usual name for it)."""
        return self.to_dataframe()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "format": "neuronscope-ranking",
            "tool_version": __version__,
            "method": self.method,
            "params": _jsonable(self.params),
            "store_fingerprint": self.store_fingerprint,
            "label_layer": self.label_layer,
            "names": {str(k): v for k, v in sorted(self.names.items())},
            "concepts": {
                c: {"ids": r.ids.tolist(), "scores": r.scores.tolist()}
                for c, r in self.concepts.items()
            },
            "global": {"ids": self._global()[0].tolist(), "scores": self._global()[1].tolist()},
            "extra": _jsonable(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ranking:
        """Inverse of :meth:`to_dict`; a malformed dictionary raises ``RankingFormatError``
        naming the field."""
        validate_ranking_dict(data)
        return cls(
            method=data["method"],
            params=dict(data["params"]),
            concepts={
                c: ConceptRanking(np.asarray(r["ids"]), np.asarray(r["scores"]))
                for c, r in data["concepts"].items()
            },
            names={int(k): v for k, v in data["names"].items()},
            global_order=np.asarray(data["global"]["ids"]),
            global_scores=np.asarray(data["global"]["scores"]),
            store_fingerprint=data.get("store_fingerprint"),
            label_layer=data.get("label_layer"),
            extra=dict(data.get("extra", {})),
        )

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Serialize to JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict())
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Ranking:
        """Read a ranking from a JSON file (any :class:`~pathlib.Path`, or a string naming an
        existing file) or from JSON text (a string starting with ``{``)."""
        data, label = load_ranking_json(source)
        validate_ranking_dict(data, label)
        return cls.from_dict(data)

    def _repr_html_(self) -> str:
        """Jupyter display: top neurons per concept (see :func:`ranking_html`)."""
        return ranking_html(self)

    def __repr__(self) -> str:
        return (f"Ranking(method={self.method!r}, concepts={len(self.concepts)}, "
                f"neurons={self.n_ranked}, store={self.store_fingerprint})")


def ranking_from_scores(
    method: str,
    params: Mapping[str, Any],
    scores: np.ndarray,
    concepts: Sequence[str],
    ids: np.ndarray,
    names: Sequence[str],
    **kwargs: Any,
) -> Ranking:
    """Build a ranking from a ``(n_concepts, n_neurons)`` score matrix (higher = better).

    The global order ranks each neuron by its best score over concepts.
    """
    scores = np.asarray(scores, dtype=np.float64)
    per_concept = {}
    for c, row in zip(concepts, scores, strict=True):
        order = np.argsort(-row, kind="stable")
        per_concept[str(c)] = ConceptRanking(ids[order], row[order])
    best = scores.max(axis=0)
    order = np.argsort(-best, kind="stable")
    return Ranking(
        method=method, params=dict(params), concepts=per_concept,
        names={int(i): n for i, n in zip(ids, names, strict=True)},
        global_order=ids[order], global_scores=best[order], **kwargs,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def ranking_html(ranking: Ranking, k: int = 5, max_concepts: int = 30) -> str:
    """The top ``k`` neurons per concept as an HTML table (``Ranking._repr_html_``)."""
    concepts = ranking.concept_names
    rows = []
    for concept in concepts[:max_concepts]:
        scores = list(ranking.scores(concept).items())[:k]
        cells = " ".join(f'<span class="badge">{esc(n)} <span class="muted">{fmt(s)}</span>'
                         "</span>" for n, s in scores)
        rows.append((esc(concept), cells))
    more = len(concepts) - max_concepts
    tail = f'<p class="note">… and {more} more concepts</p>' if more > 0 else ""
    layer = f" on <b>{esc(ranking.label_layer)}</b>" if ranking.label_layer else ""
    head = (f"<p><b>{esc(ranking.method)}</b> ranking{layer}: {len(concepts)} concepts, "
            f"{ranking.n_ranked} neurons; store {esc(ranking.store_fingerprint)}</p>")
    body = table(["concept", f"top {k} neurons (score)"], rows)
    style = f"<style>{scoped_css('.ns-ranking')}</style>"
    return f'<div class="ns-ranking">{style}{head}{body}{tail}</div>'
