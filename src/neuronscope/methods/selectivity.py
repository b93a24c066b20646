"""Concept selectivity of a unit (Na, Choe, Lee & Kim 2019).

"Discovery of Natural Language Concepts in Individual Units of CNNs" (ICLR 2019) measures how
selectively unit ``u`` responds to concept ``c`` by

    selectivity(u, c) = (mu_plus - mu_minus) / (max_s a_u(s) - min_s a_u(s)),

with ``mu_plus`` the unit's mean activation over inputs that contain the concept, ``mu_minus``
its mean over all other inputs, and the maximum and minimum taken over all inputs, so the
score lies in ``[-1, 1]``. (The paper's inputs are sentences built by replicating a concept;
NeuroX's ``selectivity_probe``, which cites the paper, implements the same formula on words:
``(mean(X[y == 1]) - mean(X[y == 0])) / (max(X) - min(X) + 1e-7)``.) Here the inputs are
words and "contains ``c``" means "is labelled ``c``"; a constant neuron gets 0 (no epsilon is
added).

Neurons are ranked by *signed* selectivity, highest first: a strongly positive score means the
neuron fires higher on the concept's words, by a large part of its range. A strongly negative
score means the neuron is *suppressed* by the concept (its activation drops on the concept's
words); such neurons land at the bottom of the concept's ranking (``Ranking.bottom_ids``),
unlike NeuroX, which ranks by the absolute value.

Computation: one streaming pass over row chunks (:func:`~neuronscope.methods.statistics.
grouped_moments`: a compiled per-class reduction, float64 accumulators, Chan merges) gives the
per-concept means and every neuron's minimum and maximum, so a store never has to fit in
memory (``memory`` bounds the chunk); the ranker hygiene's statistics come from the same
moments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.budget import Memory
from neuronscope.methods.column_pass import label_codes
from neuronscope.methods.hygiene import apply_hygiene
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.methods.statistics import grouped_moments


class Selectivity(RankingMethod):
    """Rank neurons per concept by signed selectivity ``(mu_plus - mu_minus) / range``.

    Args:
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        chunk_words: rows per streamed chunk (memory: ``chunk_words * n_neurons * 8``
            bytes; lowered to fit ``memory``).
        n_jobs: threads of the per-chunk reduction (default: the CPUs this process may use).
        memory: memory budget (``"4GB"``, bytes; default: the available memory).

    Fitted attributes: ``scores_`` (``(C, D)`` selectivity), ``mu_plus_``, ``mu_minus_``
    (``(C, D)``), ``minimum_``, ``maximum_`` (per neuron) and ``concepts_``.
    """

    name = "selectivity"

    def __init__(
        self,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        *,
        chunk_words: int = 8192,
        n_jobs: int | None = None,
        memory: Memory = None,
    ) -> None:
        self.concepts = concepts
        self.neurons = neurons
        self.chunk_words = chunk_words
        self.n_jobs = n_jobs
        self.memory = memory

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by selectivity (positive first)."""
        if self.chunk_words < 1:
            raise NeuronscopeError(f"chunk_words must be >= 1, got {self.chunk_words}")
        data = prepare_input(activations, labels, self.neurons, chunk_words=self.chunk_words)
        concepts = require_concepts(data.y, self.concepts)
        n_c = len(concepts)
        codes = label_codes(data.y, concepts).astype(np.int32)
        moments = grouped_moments(data, codes, [*map(str, concepts), "<other>"],
                                  memory=self.memory, n_jobs=self.n_jobs)
        counts = moments.counts
        sums, lo, hi = moments.sums, moments.minimum, moments.maximum

        # Every concept occurs and is not every word (require_concepts), so no division by 0.
        mu_plus = sums[:n_c] / counts[:n_c, None]
        mu_minus = (sums.sum(axis=0) - sums[:n_c]) / (data.n_words - counts[:n_c, None])
        spread = hi - lo
        safe = np.where(spread > 0, spread, 1.0)
        scores = np.where(spread > 0, (mu_plus - mu_minus) / safe, 0.0)

        self.scores_ = scores
        self.mu_plus_ = mu_plus
        self.mu_minus_ = mu_minus
        self.minimum_ = lo
        self.maximum_ = hi
        self.concepts_ = concepts
        extra = {"concept_sizes": dict(zip(concepts, counts[:n_c].tolist(), strict=True))}
        ranking = ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
        return apply_hygiene(ranking, moments.health(data))
