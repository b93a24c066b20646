"""Ranker hygiene: dead/constant neurons ranked last, outlier neurons reported.

Real models have neurons no ranking should put first. A final-LayerNorm dimension of MiniLM
is dead (|activation| < 1e-30 everywhere), and a few ratio-based scores (selectivity, AP, IoU
ties) can still rank it first; outlier dimensions (MiniLM's dimension 63 at every depth) and
"massive activations" (Sun et al. 2024; SmolLM2 neurons at -76 to -92 on the first token and
near 0 elsewhere) dominate any score in raw activation units. Every method therefore passes
its ranking through :func:`apply_hygiene`, which

* moves **dead or constant** neurons (standard deviation at most ``DEAD_RELATIVE`` times the
  median standard deviation of the ranked neurons, or exactly 0) to the end of every
  per-concept and the global order, keeping their relative order; and
* **reports** outlier neurons without moving them (they may be genuinely informative):
  ``scale`` outliers, whose root mean square is over ``OUTLIER_FACTOR`` times the median, and
  ``massive`` ones, whose largest |activation| is over ``MASSIVE_FACTOR`` times the median
  root mean square.

Both lists (neuron names, at most ``MAX_LISTED`` each, with counts) are stored in
``Ranking.extra["hygiene"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuronscope.methods.base import MethodInput
from neuronscope.methods.ranking import ConceptRanking, Ranking

DEAD_RELATIVE = 1e-6
OUTLIER_FACTOR = 10.0
MASSIVE_FACTOR = 50.0
MAX_LISTED = 50


@dataclass
class NeuronHealth:
    """Per-neuron statistics of the ranked rows and the flags derived from them."""

    ids: np.ndarray  # global ids
    names: list[str]
    std: np.ndarray
    rms: np.ndarray
    max_abs: np.ndarray

    @property
    def dead(self) -> np.ndarray:
        """Dead or constant neurons (boolean per neuron)."""
        reference = float(np.median(self.std)) if len(self.std) else 0.0
        return (self.std <= DEAD_RELATIVE * reference) | (self.std == 0)

    @property
    def scale_outliers(self) -> np.ndarray:
        """Neurons whose root mean square is far above the median's."""
        return self.rms > OUTLIER_FACTOR * float(np.median(self.rms))

    @property
    def massive(self) -> np.ndarray:
        """Neurons with rare activations far beyond the typical scale."""
        return self.max_abs > MASSIVE_FACTOR * float(np.median(self.rms))

    def report(self) -> dict:
        """JSON-ready summary for ``Ranking.extra["hygiene"]``."""

        def listed(mask: np.ndarray) -> dict:
            where = np.flatnonzero(mask)
            return {"count": int(len(where)),
                    "neurons": [self.names[i] for i in where[:MAX_LISTED]]}

        return {
            "dead": listed(self.dead),
            "scale_outliers": listed(self.scale_outliers),
            "massive": listed(self.massive),
            "policy": "dead/constant neurons are ranked last in every order; outliers are "
                      "reported, not moved",
            "thresholds": {"dead_relative_std": DEAD_RELATIVE,
                           "outlier_rms_factor": OUTLIER_FACTOR,
                           "massive_max_factor": MASSIVE_FACTOR},
        }


def neuron_health(data: MethodInput) -> NeuronHealth:
    """One streaming pass over the method's rows: std, rms and max |a| of every neuron."""
    d = data.n_neurons
    count, total, squares = 0, np.zeros(d), np.zeros(d)
    shift: np.ndarray | None = None
    max_abs = np.zeros(d)
    for _, _, block in data.chunks():
        if shift is None:  # moments about a nearby point: no cancellation for large means
            shift = block[: min(len(block), 1024)].astype(np.float64).mean(0)
        centred = block.astype(np.float64) - shift
        count += len(block)
        total += centred.sum(0)
        squares += np.einsum("ij,ij->j", centred, centred)
        max_abs = np.maximum(max_abs, np.abs(block).max(0) if len(block) else 0)
    return health_from_moments(data, count, total, squares, shift, max_abs)


def health_from_array(data: MethodInput, x: np.ndarray) -> NeuronHealth:
    """The same statistics from an in-memory ``(n_words, n_neurons)`` matrix."""
    shift = x[: min(len(x), 1024)].astype(np.float64).mean(0)
    total, squares = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    max_abs = np.zeros(x.shape[1])
    for start in range(0, len(x), 8192):
        centred = x[start : start + 8192].astype(np.float64) - shift
        total += centred.sum(0)
        squares += np.einsum("ij,ij->j", centred, centred)
        max_abs = np.maximum(max_abs, np.abs(x[start : start + 8192]).max(0))
    return health_from_moments(data, len(x), total, squares, shift, max_abs)


def health_from_moments(data: MethodInput, count: int, total: np.ndarray, squares: np.ndarray,
                        shift: np.ndarray | None, max_abs: np.ndarray) -> NeuronHealth:
    """Assemble :class:`NeuronHealth` from shifted sums."""
    n = max(count, 1)
    mean_c = total / n
    var = np.maximum(squares / n - mean_c**2, 0.0)
    mean = mean_c + (0.0 if shift is None else shift)
    return NeuronHealth(data.ids.copy(), list(data.names), np.sqrt(var),
                        np.sqrt(var + mean**2), max_abs)


def apply_hygiene(ranking: Ranking, health: NeuronHealth) -> Ranking:
    """Move dead neurons last in every order of ``ranking`` and record the report (in place;
    returns ``ranking``)."""
    dead_ids = health.ids[health.dead]
    ranking.extra["hygiene"] = health.report()
    if not len(dead_ids):
        return ranking
    for concept, entry in ranking.concepts.items():
        ranking.concepts[concept] = _demote(entry.ids, entry.scores, dead_ids)
    if ranking.global_order is not None:
        scores = (ranking.global_scores if ranking.global_scores is not None
                  else np.zeros(len(ranking.global_order)))
        moved = _demote(ranking.global_order, scores, dead_ids)
        ranking.global_order = moved.ids
        if ranking.global_scores is not None:
            ranking.global_scores = moved.scores
    return ranking


def _demote(ids: np.ndarray, scores: np.ndarray, dead: np.ndarray) -> ConceptRanking:
    is_dead = np.isin(ids, dead)
    order = np.concatenate([np.flatnonzero(~is_dead), np.flatnonzero(is_dead)])
    return ConceptRanking(np.asarray(ids)[order], np.asarray(scores)[order])
