"""Average precision of a neuron as a concept detector (Suau et al. 2020).

"Finding Experts in Transformer Models" (Suau, Zappella & Apostoloff, 2020) treats a unit's
response to an input as a detector score for a concept and ranks units by the average
precision of that detector; their code (``apple/ml-selfcond``, ``selfcond/expertise.py``)
calls ``sklearn.metrics.average_precision_score(labels, unit_response)``. Here the inputs are
words and the positives of concept ``c`` are the words labelled ``c``; every other word is a
negative. The score equals scikit-learn's exactly, ties included:

    AP = sum_k (R_k - R_{k-1}) P_k

over the *distinct* activation values ``v_k`` in decreasing order, with precision
``P_k = TP(>= v_k) / #(>= v_k)`` and recall ``R_k = TP(>= v_k) / n_pos``. Equivalently,

    AP = (1 / n_pos) * sum over positive words i of TP(>= a_i) / #(>= a_i),

which is what is computed. Higher is better; a neuron unrelated to the concept scores about
the concept's base rate ``n_pos / n_words`` (stored in ``extra["base_rates"]``), so compare
scores against it rather than against 0. Neurons that a concept *suppresses* score low: AP
only rewards high activations on positives.

Computation. Per neuron, one sort serves all concepts: float32 activations are mapped to
order-preserving 32-bit keys (``-0.0`` folded into ``+0.0``, which scikit-learn ties with it),
radix-sorted carrying the word's concept code (:mod:`~neuronscope.methods.kernels`), and
one scan in decreasing order updates every concept's true-positive count at the end of each
group of equal values: each positive of the group adds ``TP(>= v) / #(>= v)`` to its
concept. Neurons are read in column blocks holding all rows (a layer of a store at
a time; fewer neurons when ``memory`` is tight), transposed and handed to ``n_jobs`` threads
(:mod:`~neuronscope.methods.column_pass`); the sort's counting pass also takes the
statistics of the ranker hygiene.
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
from neuronscope.methods.column_pass import column_pass, default_jobs, label_codes
from neuronscope.methods.hygiene import apply_hygiene
from neuronscope.methods.kernels import SORT_COUNTS, ap_from_items, sorted_items
from neuronscope.methods.ranking import Ranking, ranking_from_scores


class AveragePrecision(RankingMethod):
    """Rank neurons per concept by the average precision of their activation as a detector.

    Args:
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        block_neurons: most neurons per block of full columns; with threads, two blocks are
            in memory at once (the next is read while the current one is processed).
        n_jobs: threads (default: the CPUs this process may use).
        memory: memory budget (``"4GB"``, bytes; default: the available memory); blocks
            shrink to fit it, and a corpus too long for one column is refused.

    Fitted attributes: ``scores_`` (``(C, D)`` AP), ``base_rates_`` (per concept) and
    ``concepts_``.
    """

    name = "ap"

    def __init__(
        self,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        *,
        block_neurons: int = 384,
        n_jobs: int | None = None,
        memory: Memory = None,
    ) -> None:
        self.concepts = concepts
        self.neurons = neurons
        self.block_neurons = block_neurons
        self.n_jobs = n_jobs
        self.memory = memory

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by average precision (higher is better)."""
        if self.n_jobs is not None and self.n_jobs < 1:
            raise NeuronscopeError(f"n_jobs must be >= 1, got {self.n_jobs}")
        data = prepare_input(activations, labels, self.neurons)
        concepts = require_concepts(data.y, self.concepts)
        n, n_c = data.n_words, len(concepts)
        codes = label_codes(data.y, concepts)  # uint8 below 255 concepts: 1 byte per word
        counts = np.bincount(codes, minlength=n_c + 1)[:n_c].astype(np.float64)
        scores = np.empty((n_c, data.n_neurons))
        jobs = self.n_jobs or default_jobs()

        def buffers() -> tuple[np.ndarray, ...]:
            count_type = np.uint32 if n < 2**32 else np.uint64
            return (np.empty(n, np.uint64), np.empty(n, np.uint64),
                    np.empty(SORT_COUNTS, count_type), np.empty(n_c + 1))

        def neuron(buf: tuple[np.ndarray, ...], x: np.ndarray, col: int,
                   stats: np.ndarray) -> None:
            items, tmp, radix_counts, total = buf
            sorted_items(x, 1.0, codes, items, tmp, radix_counts, stats)
            ap_from_items(items, n_c + 1, total)
            scores[:, col] = total[:n_c] / counts

        health = column_pass(data, self.block_neurons, jobs, self.memory, 16,
                             f"average precision of {n} words", buffers, neuron)
        base = counts / n
        self.scores_ = scores
        self.base_rates_ = base
        self.concepts_ = concepts
        extra = {"base_rates": dict(zip(concepts, base.tolist(), strict=True))}
        ranking = ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
        return apply_hygiene(ranking, health)
