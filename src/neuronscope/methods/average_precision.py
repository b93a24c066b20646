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
order-preserving 32-bit keys (``-0.0`` folded into ``+0.0``, which scikit-learn ties with it)
and arg-sorted with stable 16-bit radix passes (``np.lexsort`` on the keys' halves), which
puts the words in decreasing activation and marks the groups of equal values. The words'
concept codes are then stably bucketed by concept (one more radix pass), which lists every
concept's positives in decreasing activation: ``#(>= a_i)`` is the position in the global
order and ``TP(>= a_i)`` the position within the concept's bucket, both taken at the end of
the word's group of equal values. Ties are handled in one of two ways:

* few distinct values (at most 65 % of the words, e.g. embedding-layer units, which repeat
  per word type, or rounded/saturated ones): the words of a concept in one group are
  consecutive in its bucket, and each such run adds ``size * TP / #(>= v)`` at once;
* otherwise (a few ties, as in contextual layers) only the tied words are corrected.

Neurons are read in column blocks holding all rows (a layer of a store at a time), transposed
16 at a time and processed by ``n_jobs`` threads (numpy releases the GIL in the sorts and
array passes), each with its own reused buffers; the next block is read while the threads
work on the current one, so up to two blocks are in memory at once. numpy's comparison sorts
(``np.sort``/``np.argsort`` of 32- or 64-bit keys) are 2-3x slower than these radix passes
on the x86 machines measured, so they are not used.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.hygiene import apply_hygiene, neuron_health
from neuronscope.methods.iou import iter_column_blocks, label_codes
from neuronscope.methods.ranking import Ranking, ranking_from_scores

_SUB_BLOCK = 16  # neurons transposed together: 16 float32 are one cache line of a row
_TRANSPOSE_ROWS = 4096  # rows of a sub-block transposed at a time (256 KiB)
# Sum over runs of tied values when the distinct values are at most this fraction of words.
_RUNS_FRACTION = 0.65
_LITTLE_ENDIAN = sys.byteorder == "little"


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Layout:
    """Per-word concept codes and the bucket layout shared by every neuron."""

    def __init__(self, codes: np.ndarray, n_concepts: int) -> None:
        self.codes = codes
        self.n_words = len(codes)
        self.n_concepts = n_concepts
        counts = np.bincount(codes, minlength=n_concepts + 1)
        self.counts = counts[:n_concepts].astype(np.float64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.starts = starts[:n_concepts]
        self.end = int(starts[n_concepts])  # words of the other labels come after this
        # Bucket order lists concept 0's words, then concept 1's, ... then the others.
        bucket = np.repeat(np.arange(n_concepts + 1), counts)[: self.end]
        # 1-based position of each bucketed word within its concept: its TP count.
        self.within = (np.arange(self.end) - np.repeat(starts, counts)[: self.end] + 1.0)
        self.bucket_last = np.ones(self.end, bool)
        self.bucket_last[:-1] = bucket[1:] != bucket[:-1]


def _transpose(columns: np.ndarray) -> np.ndarray:
    """``(n_words, k)`` float32 columns as a contiguous ``(k, n_words)`` copy.

    Transposed a few thousand rows at a time so that each piece stays in cache (numpy's
    one-shot transposing copy of a tall array is several times slower).
    """
    out = np.empty((columns.shape[1], columns.shape[0]), np.float32)
    for lo in range(0, columns.shape[0], _TRANSPOSE_ROWS):
        out[:, lo : lo + _TRANSPOSE_ROWS] = columns[lo : lo + _TRANSPOSE_ROWS].T
    return out


class _Work:
    """Buffers reused from neuron to neuron (one set per thread)."""

    def __init__(self, layout: _Layout) -> None:
        n = layout.n_words
        self.keys = np.empty(n, np.uint32)
        self.flip = np.empty(n, np.int32)
        self.sorted = np.empty(n, np.uint32)
        self.labels = np.empty(n, layout.codes.dtype)
        self.ends = np.empty(n, bool)
        self.group = np.empty(n, np.intp)
        self.slot_group = np.empty(layout.end, np.intp)
        self.run_end = np.empty(layout.end, bool)
        self.contrib = np.empty(layout.end, np.float64)


def _sort_keys(
    x: np.ndarray, out: np.ndarray | None = None, tmp: np.ndarray | None = None
) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of float32 ``x``.

    ``-0.0`` becomes ``+0.0`` first, so equal floats (the ties scikit-learn groups) get equal
    keys. ``out`` (uint32) and ``tmp`` (int32), of ``x``'s length, avoid allocations.
    """
    out = np.empty(len(x), np.uint32) if out is None else out
    tmp = np.empty(len(x), np.int32) if tmp is None else tmp
    bits = out.view(np.int32)
    np.add(x, np.float32(0), out=bits.view(np.float32))
    # Negative floats: keep the bits (sign bit set: they sort after every positive, larger
    # magnitude later); positive: flip all but the sign bit (larger values sort first).
    np.right_shift(bits, 31, out=tmp)
    np.invert(tmp, out=tmp)
    np.bitwise_and(tmp, 0x7FFFFFFF, out=tmp)
    np.bitwise_xor(bits, tmp, out=bits)
    return out


def _halves(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low and high 16 bits of uint32 ``keys`` (views on little-endian machines)."""
    if _LITTLE_ENDIAN:
        half = keys.view(np.uint16)
        return half[0::2], half[1::2]
    return keys.astype(np.uint16), (keys >> np.uint32(16)).astype(np.uint16)


def neuron_average_precision(
    x: np.ndarray, layout: _Layout, work: _Work | None = None
) -> np.ndarray:
    """Average precision of activations ``x`` for every concept.

    ``x``: float32, one per word. ``work``: reusable buffers.
    """
    work = _Work(layout) if work is None else work
    n = len(x)
    keys = _sort_keys(x, work.keys, work.flip)
    order = np.lexsort(_halves(keys))  # words in decreasing activation (stable radix passes)
    sorted_keys = np.take(keys, order, out=work.sorted)
    labels = np.take(layout.codes, order, out=work.labels)
    ends = work.ends  # ends[k]: position k is the last of its run of equal values
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=ends[:-1])
    ends[-1] = True
    n_groups = int(np.count_nonzero(ends))
    # Stable bucketing by concept keeps each concept's words in decreasing activation; the
    # values are the words' 0-based positions in the global order.
    pos = np.argsort(labels, kind="stable")[: layout.end]
    if n_groups <= _RUNS_FRACTION * n:
        return _run_ap(pos, ends, layout, work)
    # Without ties, the i-th positive at global position k contributes i / (k + 1).
    contrib = np.add(pos, 1.0, out=work.contrib)
    np.divide(layout.within, contrib, out=contrib)
    if n_groups < n:
        _correct_ties(contrib, pos, ends, layout)
    return np.add.reduceat(contrib, layout.starts) / layout.counts


def _run_ap(pos: np.ndarray, ends: np.ndarray, layout: _Layout, work: _Work) -> np.ndarray:
    """AP summed over runs of tied words; for activations with many ties.

    In each concept's bucket, the words of one group of equal values are consecutive: a run.
    A run of ``m`` words adds ``m TP / #(>= v)``, where ``TP`` is the position within the
    bucket of its last word and ``#(>= v)`` 1 + the global position of its group's last word.
    Cost: a few passes over the words, then work in proportion to the number of runs.
    """
    group = work.group  # group of equal values of each global position
    group[0] = 0
    np.cumsum(ends[:-1], out=group[1:])
    slot_group = np.take(group, pos, out=work.slot_group)
    run_end = work.run_end  # the bucket slot ends a run: next is another group or concept
    np.not_equal(slot_group[1:], slot_group[:-1], out=run_end[:-1])
    run_end[-1] = True
    run_end |= layout.bucket_last
    last = np.flatnonzero(run_end)
    size = np.diff(last, prepend=-1)
    count = np.flatnonzero(ends)[slot_group[last]] + 1.0
    first = np.searchsorted(last, layout.starts)  # each concept's first run
    return np.add.reduceat(size * layout.within[last] / count, first) / layout.counts


def _correct_ties(
    contrib: np.ndarray, pos: np.ndarray, ends: np.ndarray, layout: _Layout
) -> None:
    """Give every word of a run of equal values the counts at the end of its run.

    scikit-learn evaluates precision only at distinct thresholds, so a tied word sees
    ``#(>= v)`` = its group's last global position + 1, and ``TP(>= v)`` = the within-concept
    count of the concept's last word in that group. Only the words in tied groups are touched.
    """
    n = len(ends)
    in_tie = np.empty(n, bool)  # in a group of two or more: not both its first and last
    in_tie[0] = ends[0]
    np.logical_and(ends[1:], ends[:-1], out=in_tie[1:])
    np.logical_not(in_tie, out=in_tie)
    members = np.flatnonzero(in_tie)  # global positions in tied groups, ascending
    # Last position of each member's group: a reversed running minimum over group ends.
    last = np.where(ends[members], members, n)[::-1]
    group_end = np.empty(n, np.intp)  # only read where written
    group_end[members] = np.minimum.accumulate(last)[::-1]

    j = np.flatnonzero(in_tie[pos])  # bucket slots of tied words, ascending
    end = group_end[pos[j]]
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
        block_neurons: most neurons per block of full columns; with threads, two blocks are
            in memory at once (the next is read while the current one is processed).
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
        local = threading.local()  # each thread's work buffers

        def work(block: np.ndarray, cols: np.ndarray, j: int) -> None:
            # Each task writes its own columns of ``scores``.
            buffers = getattr(local, "work", None)
            if buffers is None:
                buffers = local.work = _Work(layout)
            sub = _transpose(block[:, j : j + _SUB_BLOCK])
            for i, x in enumerate(sub):
                scores[:, cols[j + i]] = neuron_average_precision(x, layout, buffers)

        blocks = iter_column_blocks(data, self.block_neurons)
        jobs = self.n_jobs or _default_jobs()
        if jobs == 1 or data.n_neurons <= _SUB_BLOCK:
            for cols, block in blocks:
                for j in range(0, len(cols), _SUB_BLOCK):
                    work(block, cols, j)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                pending: list[Future] = []
                # The next block is read (here) while the pool works on the previous one.
                for cols, block in blocks:
                    for task in pending:
                        task.result()
                    pending = [pool.submit(work, block, cols, j)
                               for j in range(0, len(cols), _SUB_BLOCK)]
                for task in pending:
                    task.result()

        base = layout.counts / data.n_words
        self.scores_ = scores
        self.base_rates_ = base
        self.concepts_ = concepts
        extra = {"base_rates": dict(zip(concepts, base.tolist(), strict=True))}
        ranking = ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
        return apply_hygiene(ranking, neuron_health(data))
