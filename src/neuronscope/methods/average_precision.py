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
order-preserving 32-bit keys and arg-sorted with two 16-bit radix passes (``np.lexsort``), the
words' concept codes are then stably bucketed by concept (one more radix pass), which lists
every concept's positives in decreasing activation order. Then ``#(>= a_i)`` is the position
in the global order and ``TP(>= a_i)`` the position within the concept's bucket (both moved to
the end of their run of tied values when ties exist). Neurons are read in column blocks
holding all rows (a layer of a store at a time) and processed in sub-blocks of 16 neurons by
``n_jobs`` threads; numpy releases the GIL in the sorts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.iou import iter_column_blocks, label_codes
from neuronscope.methods.ranking import Ranking, ranking_from_scores

_SUB_BLOCK = 16  # neurons transposed together: 16 float32 are one cache line of a row


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Layout:
    """Per-word concept codes and the bucket layout shared by every neuron."""

    def __init__(self, codes: np.ndarray, n_concepts: int) -> None:
        self.codes = codes
        self.n_concepts = n_concepts
        counts = np.bincount(codes, minlength=n_concepts + 1)
        self.counts = counts[:n_concepts].astype(np.float64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.starts = starts[:n_concepts]
        self.end = int(starts[n_concepts])  # words of the other labels come after this
        # Bucket order lists concept 0's words, then concept 1's, ... then the others.
        self.bucket = np.repeat(np.arange(n_concepts + 1), counts)[: self.end]
        # 1-based position of each bucketed word within its concept: its TP count.
        self.within = (np.arange(self.end) - np.repeat(starts, counts)[: self.end] + 1.0)
        self.bucket_last = np.ones(self.end, bool)
        self.bucket_last[:-1] = self.bucket[1:] != self.bucket[:-1]


def _sort_keys(x: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of float32 ``x``.

    ``-0.0`` becomes ``+0.0`` first, so equal floats (the ties scikit-learn groups) get equal
    keys.
    """
    bits = (x + np.float32(0)).view(np.int32)
    # Negative floats: flip the sign bit only; positive: flip all but the sign bit. This
    # orders floats by value descending as unsigned integers.
    flip = np.bitwise_and(np.invert(np.right_shift(bits, 31)), 0x7FFFFFFF)
    return np.bitwise_xor(bits, flip).view(np.uint32)


def neuron_average_precision(x: np.ndarray, layout: _Layout) -> np.ndarray:
    """Average precision of activations ``x`` (float32, one per word) for every concept."""
    n = len(x)
    keys = _sort_keys(x)
    # Two stable 16-bit radix passes: words in decreasing activation.
    order = np.lexsort((keys.astype(np.uint16), (keys >> np.uint32(16)).astype(np.uint16)))
    # Stable bucketing by concept keeps each concept's words in decreasing activation; the
    # values are the words' 0-based positions in the global order.
    pos = np.argsort(layout.codes[order], kind="stable")[: layout.end]
    # Without ties, the i-th positive at global position k contributes i / (k + 1).
    contrib = layout.within / (pos + 1.0)
    sorted_keys = keys[order]
    tied = sorted_keys[1:] == sorted_keys[:-1]  # tied[k]: positions k and k + 1 are equal
    if tied.any():
        _correct_ties(contrib, pos, tied, n, layout)
    return np.add.reduceat(contrib, layout.starts) / layout.counts


def _correct_ties(
    contrib: np.ndarray, pos: np.ndarray, tied: np.ndarray, n: int, layout: _Layout
) -> None:
    """Give every word of a run of equal values the counts at the end of its run.

    scikit-learn evaluates precision only at distinct thresholds, so a tied word sees
    ``#(>= v)`` = its group's last global position + 1, and ``TP(>= v)`` = the within-concept
    count of the concept's last word in that group. Ties are usually rare, so only the words
    in tied groups are touched (all of them when every value repeats).
    """
    in_tie = np.zeros(n, bool)
    in_tie[:-1] = tied
    in_tie[1:] |= tied
    members = np.flatnonzero(in_tie)  # global positions in tied groups, ascending
    is_last = np.ones(len(members), bool)  # last of its group: no tie to the right
    inner = members < n - 1
    is_last[inner] = ~tied[members[inner]]
    # Last position of each member's group: a reversed running minimum over group ends.
    ends = np.where(is_last, members, n)[::-1]
    group_end = np.empty(n, np.int64)  # only read where written
    group_end[members] = np.minimum.accumulate(ends)[::-1]

    j = np.flatnonzero(in_tie[pos])  # bucket slots of tied words, ascending
    k = pos[j]
    end = group_end[k]
    # Consecutive slots of one concept in one group form a run; its last slot holds the TP.
    same_run = (j[1:] == j[:-1] + 1) & (end[1:] == end[:-1]) & ~layout.bucket_last[j[:-1]]
    slot = np.arange(len(j))
    run_last = np.where(np.append(~same_run, True), slot, len(j))[::-1]
    run_last = np.minimum.accumulate(run_last)[::-1]
    contrib[j] = layout.within[j[run_last]] / (end + 1.0)


class AveragePrecision(RankingMethod):
    """Rank neurons per concept by the average precision of their activation as a detector.

    Args:
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        block_neurons: most neurons whose full columns are held in memory at once.
        n_jobs: threads (default: the CPUs this process may use).

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
    ) -> None:
        self.concepts = concepts
        self.neurons = neurons
        self.block_neurons = block_neurons
        self.n_jobs = n_jobs

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by average precision (higher is better)."""
        if self.n_jobs is not None and self.n_jobs < 1:
            raise NeuronscopeError(f"n_jobs must be >= 1, got {self.n_jobs}")
        data = prepare_input(activations, labels, self.neurons)
        concepts = require_concepts(data.y, self.concepts)
        layout = _Layout(label_codes(data.y, concepts), len(concepts))
        scores = np.empty((len(concepts), data.n_neurons))

        def work(block: np.ndarray, cols: np.ndarray, j: int) -> None:
            # Each task writes its own columns of ``scores``.
            sub = np.ascontiguousarray(block[:, j : j + _SUB_BLOCK].T)
            for i, x in enumerate(sub):
                scores[:, cols[j + i]] = neuron_average_precision(x, layout)

        jobs = self.n_jobs or _default_jobs()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for cols, block in iter_column_blocks(data, self.block_neurons):
                list(pool.map(lambda j, b=block, c=cols: work(b, c, j),
                              range(0, len(cols), _SUB_BLOCK)))

        base = layout.counts / data.n_words
        self.scores_ = scores
        self.base_rates_ = base
        self.concepts_ = concepts
        extra = {"base_rates": dict(zip(concepts, base.tolist(), strict=True))}
        return ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
