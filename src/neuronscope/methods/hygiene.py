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

**Special positions** can be left out of a ranker's statistics: :func:`exclude_positions`
restricts the activations to rows that are not the first (or last) word of their sentence,
through the :class:`~neuronscope.store.view.ActivationView` row mask every supervised ranker
reads, using the sentence positions the store carries; :func:`rank_excluding` ranks on that
view and records the policy and the rows left out in ``Ranking.extra["exclude_positions"]``.
A causal LM's first position carries massive activations (SmolLM2: -76 to -92 on the first
token only) unrelated to the word there. The default, :data:`DEFAULT_EXCLUDE_POSITIONS`, is
``"none"``: see the README's defaults section for the held-out measurement behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import Activations, Labels, MethodInput
from neuronscope.methods.families import SupervisedRanker
from neuronscope.methods.ranking import ConceptRanking, Ranking
from neuronscope.store.view import ActivationView

DEAD_RELATIVE = 1e-6
OUTLIER_FACTOR = 10.0
MASSIVE_FACTOR = 50.0
MAX_LISTED = 50

#: Special positions a ranker can leave out: none, the first word, the last word, or both.
EXCLUDE_POSITIONS = ("none", "first", "last", "first-last")
#: The default policy (validated on held-out EWT sentences; README, "Defaults and why").
DEFAULT_EXCLUDE_POSITIONS = "none"


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


# ---------------------------------------------------------------------- special positions
def check_exclude_positions(which: str) -> str:
    """``which`` if it is one of :data:`EXCLUDE_POSITIONS`, else a clear error."""
    if which not in EXCLUDE_POSITIONS:
        raise NeuronscopeError(
            f"exclude_positions must be one of {', '.join(EXCLUDE_POSITIONS)}, got {which!r}")
    return which


def special_position_mask(sentence_ids: np.ndarray, positions: np.ndarray,
                          which: str) -> np.ndarray:
    """Rows at the excluded positions (boolean, one per row).

    ``"first"``: position 0 of its sentence; ``"last"``: the highest position of its
    sentence among the given rows; ``"first-last"``: both; ``"none"``: no row.
    """
    check_exclude_positions(which)
    sentence_ids = np.asarray(sentence_ids, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64)
    if sentence_ids.shape != positions.shape or sentence_ids.ndim != 1:
        raise NeuronscopeError(
            f"sentence ids {sentence_ids.shape} and positions {positions.shape} must be 1-D "
            "and of the same length")
    out = np.zeros(len(positions), dtype=bool)
    if which in ("first", "first-last"):
        out |= positions == 0
    if which in ("last", "first-last") and len(positions):
        _, inverse = np.unique(sentence_ids, return_inverse=True)
        last = np.full(int(inverse.max()) + 1, -1, dtype=np.int64)
        np.maximum.at(last, inverse, positions)
        out |= positions == last[inverse]
    return out


def exclude_positions(activations: Activations, which: str = DEFAULT_EXCLUDE_POSITIONS,
                      ) -> ActivationView:
    """A view of ``activations`` without the rows at special positions.

    Args:
        activations: a store or a view of one (the positions come from the store's words
            table); a plain array only with ``which="none"``.
        which: one of :data:`EXCLUDE_POSITIONS`.

    Labels of every row of the store are restricted to the view's rows by the rankers (see
    :func:`~neuronscope.store.view.align_labels`), so ``ranker.rank(view, labels)`` needs no
    other change.
    """
    view = ActivationView(activations)
    if check_exclude_positions(which) == "none":
        return view
    sentences, positions = view.sentence_ids(), view.positions()
    if sentences is None or positions is None:
        raise NeuronscopeError(
            f"exclude_positions={which!r} needs word positions: pass an ActivationStore (or "
            "a view of one), not a plain array")
    drop = special_position_mask(sentences, positions, which)
    if drop.all():
        raise NeuronscopeError(
            f"exclude_positions={which!r} leaves no row (every sentence has one word?)")
    return view.restrict(~drop)


def rank_excluding(method: SupervisedRanker, activations: Activations, labels: Labels,
                   which: str = DEFAULT_EXCLUDE_POSITIONS) -> Ranking:
    """``method.rank`` on the rows of ``activations`` not at the ``which`` positions.

    Records ``extra["exclude_positions"] = {"policy", "n_rows", "n_excluded"}`` so that the
    ranking says which rows its statistics saw (``neuronscope evaluate`` re-ranks the same
    way).
    """
    n_all = ActivationView(activations).n_words
    view = exclude_positions(activations, which)
    ranking = method.rank(view, labels)
    ranking.extra["exclude_positions"] = {"policy": which, "n_rows": int(view.n_words),
                                          "n_excluded": int(n_all - view.n_words)}
    return ranking


def ranking_exclusion(ranking: Ranking) -> str:
    """The position policy a ranking was computed with (``"none"`` when not recorded)."""
    info: Any = ranking.extra.get("exclude_positions") or {}
    return str(info.get("policy", "none")) if isinstance(info, dict) else "none"
