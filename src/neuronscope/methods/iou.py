"""Intersection over union of a neuron's top activations with a concept (Mu & Andreas 2020).

"Compositional Explanations of Neurons" (NeurIPS 2020), following Network Dissection (Bau et
al. 2017), binarises neuron ``n`` as ``M_n(x) = 1[a_n(x) > T_n]`` where ``T_n`` is the
``1 - alpha`` quantile of all of ``n``'s activations over the dataset, and scores a concept
``C`` (a binary mask over the same inputs) by

    IoU(n, C) = |M_n AND C| / |M_n OR C|.

Mu & Andreas' released code (``jayelm/compexp``) uses ``alpha = 0.005`` (the top 0.5 %) for
vision (``vision/settings.py``: ``QUANTILE = 0.005``) and computes ``T_n`` with
``np.quantile(a_n, 1 - alpha)`` (linear interpolation) and a strict ``>``
(``nli/code/analyze.py``: ``get_quantiles``/``quantile_features``); for their NLI model they
instead threshold at 0 (``ALPHA = None``: the ReLU boundary). This module reproduces the
quantile rule exactly (``thresholds_`` equals ``np.quantile(a, 1 - alpha, axis=0)``) and
offers the fixed-zero threshold as ``alpha=None``. Here the inputs are words and a concept is
"the word's label is ``C``".

Unlike NeuroX's ``iou_probe`` (which computes average precision and zeroes small values of the
caller's array in place), this is a real intersection over union and never writes to its
inputs.

Notes:

* With ties at the threshold the mask can hold fewer than ``alpha * n_words`` words (a
  constant neuron has an empty mask and IoU 0), exactly as with ``np.quantile`` and ``>``.
* ``signed=True`` also forms a low mask ``a_n < q_alpha(a_n)`` (the bottom ``alpha``, strict)
  and scores each neuron by the better of the two IoUs; ``extra["direction"]`` records
  ``+1`` (high activations) or ``-1`` (low activations) per concept and neuron. Mu & Andreas
  only use the high mask; the low one finds neurons that a concept pushes down.

Computation. Exact per-neuron quantiles need every value of a neuron, so neurons are processed
in column blocks holding all rows (for a store: one layer's columns at a time, matching its
on-disk chunks; ``block_neurons`` bounds the block: 204k words x 384 neurons is 300 MB of
float32). Within a block, a row subsample gives a value that lies safely below each neuron's
threshold; only the values above it (about ``1.5 * alpha`` of the rows) are kept, and the two
order statistics ``np.quantile`` interpolates between are selected among them (columns whose
guess was too high fall back to a full partition). The masked words are counted per concept
with ``bincount``, so the cost is a few passes over each block.
"""

from __future__ import annotations

import math
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
from neuronscope.methods.column_pass import (
    check_block_finite,
    column_pass,
    default_jobs,
    iter_column_blocks,
    label_codes,
    plan_blocks,
)
from neuronscope.methods.hygiene import apply_hygiene, neuron_health
from neuronscope.methods.kernels import N_TOP, best_iou_search, value_of_keys
from neuronscope.methods.ranking import Ranking, ranking_from_scores

# The shared column helpers moved to column_pass; re-exported for existing callers.
__all__ = ["IoU", "check_block_finite", "iter_column_blocks", "label_codes", "tail_quantiles"]

_SAMPLE_ROWS = 16384  # rows of the subsample that places the candidate cut-off


# ---------------------------------------------------------------------------- exact quantiles
def _quantile_position(n: int, q: float) -> tuple[int, float]:
    """Lower order-statistic index and interpolation weight of ``np.quantile`` ('linear')."""
    virtual = (n - 1) * q  # float64, as numpy computes it
    lower = min(int(math.floor(virtual)), n - 1)
    return lower, virtual - lower


def _lerp32(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """numpy's quantile interpolation in float32, so thresholds match ``np.quantile`` bitwise."""
    diff = b - a
    if gamma >= 0.5:
        return (b - diff * np.float32(1 - gamma)).astype(np.float32)
    return (a + diff * np.float32(gamma)).astype(np.float32)


Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, columns, values


def _order_stats(
    block: np.ndarray, index: int, upper: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, Candidates | None]:
    """Ascending order statistics ``index`` and ``index + 1`` (``index < n - 1``) per column.

    Returns ``(a, b, candidates)``: the two statistics per column and the entries on the
    ``upper`` or lower tail side of them (``>= a``, respectively ``<= b``), so that
    masks beyond any threshold between ``a`` and ``b`` can be read off the candidates.
    ``candidates`` is None for a wide tail (more than a quarter of the rows), where listing
    entries would cost more than counting masks densely.
    """
    n, k = block.shape
    need = n - index if upper else index + 2  # entries from the tail's end through a or b
    if need > n // 4:
        part = np.partition(block, [index, index + 1], axis=0)
        return part[index], part[index + 1], None
    # Cut-off from a row subsample, placed well beyond the sample's share of the tail, so
    # that almost always at least ``need`` entries lie beyond it.
    step = max(1, n // _SAMPLE_ROWS)
    sample = block[rng.integers(0, step) :: step] if step > 1 else block
    s = len(sample)
    expect = need * s / n
    rank = min(s, int(math.ceil(expect + 4 * math.sqrt(expect) + 8)))
    kth = s - rank if upper else rank - 1
    cut = np.partition(sample, kth, axis=0)[kth]
    rows, cols = np.nonzero(block >= cut if upper else block <= cut)
    values = block[rows, cols]
    counts = np.bincount(cols, minlength=k)
    order = np.argsort(cols.astype(np.uint16) if k < 2**16 else cols, kind="stable")
    rows, cols, values = rows[order], cols[order], values[order]
    ends = np.cumsum(counts)
    a = np.empty(k, np.float32)
    b = np.empty(k, np.float32)
    missed = []
    for j in range(k):
        m = int(counts[j])
        if m < need:  # the sample misjudged this column: select on all of it
            col = np.ascontiguousarray(block[:, j])
            part = np.partition(col, [index, index + 1])
            a[j], b[j] = part[index], part[index + 1]
            hit = np.flatnonzero(col >= a[j] if upper else col <= b[j])
            missed.append((hit, np.full(len(hit), j), col[hit]))
            continue
        seg = values[ends[j] - m : ends[j]]
        # The candidates are the column's m most extreme entries.
        pos = index - (n - m) if upper else index
        part = np.partition(seg, [pos, pos + 1])
        a[j], b[j] = part[pos], part[pos + 1]
    if missed:  # swap the misjudged columns' too few candidates for their exact ones
        keep = counts[cols] >= need
        rows = np.concatenate([rows[keep], *(hit for hit, _, _ in missed)])
        cols = np.concatenate([cols[keep], *(col for _, col, _ in missed)])
        values = np.concatenate([values[keep], *(val for _, _, val in missed)])
    return a, b, (rows, cols, values)


def tail_quantiles(
    block: np.ndarray, q: float, seed: int = 0
) -> tuple[np.ndarray, Candidates | None]:
    """``np.quantile(block, q, axis=0)`` (bitwise) and the entries beyond the thresholds.

    The candidates ``(rows, cols, values)`` include every entry strictly beyond its column's
    threshold (above it for ``q >= 0.5``, below otherwise); None for a wide tail.
    ``seed`` only steers the subsample that speeds the search, never the result.
    """
    n = block.shape[0]
    index, gamma = _quantile_position(n, q)
    if index >= n - 1:  # q == 1 (or a single row): the maximum
        return block.max(axis=0), None
    a, b, candidates = _order_stats(block, index, q >= 0.5, np.random.default_rng(seed))
    return _lerp32(a, b, gamma), candidates


# ---------------------------------------------------------------------------- the method
class IoU(RankingMethod):
    """Rank neurons by the IoU of their top-``alpha`` activation mask with each concept.

    Args:
        alpha: fraction of each neuron's activations that is "on" (Mu & Andreas: 0.005, the
            top 0.5 %); ``None`` thresholds at 0 instead (their NLI setting); ``"auto"``
            (default) searches the threshold per neuron and concept: the best IoU over masks
            of the top ``m`` words, ``m`` on a grid of fractions (0.1 % to ``max_fraction``,
            log-spaced) plus the concept's own frequency (compexp's matched quantile). A
            fixed top 0.5 % misses a neuron that fires for a concept of 5 % of the words
            (IoU at most 0.1 however focused it is) and ranks rare-firing noise above it.
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        signed: also score the bottom-``alpha`` mask and keep the better IoU per neuron and
            concept (see the module notes).
        block_neurons: most neurons whose full columns are held in memory at once (lowered
            to fit ``memory``).
        max_fraction: largest mask (share of the words) tried by ``alpha="auto"``.
        n_fractions: grid points of ``alpha="auto"`` (besides the concepts' frequencies).
        n_jobs: threads of the threshold search (default: the CPUs this process may use).
        memory: memory budget (``"4GB"``, bytes; default: the available memory); the
            column blocks shrink to fit it, and a corpus too long for one column is refused.

    Fitted attributes: ``thresholds_`` (per neuron, the upper cut-off ``T_n``; with
    ``alpha="auto"`` per concept and neuron, ``(C, D)``, with ``mask_fractions_`` the chosen
    share of words),
    ``low_thresholds_`` (with ``signed``), ``mask_sizes_`` (words on per neuron),
    ``scores_`` (``(C, D)`` IoU) and ``concepts_``.
    """

    name = "iou"

    def __init__(
        self,
        alpha: float | str | None = "auto",
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        *,
        signed: bool = False,
        block_neurons: int = 384,
        max_fraction: float = 0.3,
        n_fractions: int = 12,
        n_jobs: int | None = None,
        memory: Memory = None,
    ) -> None:
        self.alpha = alpha
        self.max_fraction = max_fraction
        self.n_fractions = n_fractions
        self.concepts = concepts
        self.neurons = neurons
        self.signed = signed
        self.block_neurons = block_neurons
        self.n_jobs = n_jobs
        self.memory = memory

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by intersection over union (higher is better)."""
        alpha = self.alpha
        if alpha == "auto":
            return self._rank_searched(activations, labels)
        if alpha is not None and (isinstance(alpha, str) or not 0 < alpha < 1):
            raise NeuronscopeError(f"alpha must be 'auto', in (0, 1) or None, got {alpha!r}")
        if alpha is None and self.signed:
            raise NeuronscopeError("signed=True needs a quantile alpha, not a fixed threshold")
        data = prepare_input(activations, labels, self.neurons)
        # A block, its boolean masks and the candidate lists: about 12 bytes per value.
        block = plan_blocks(data.n_words, self.block_neurons, 1, self.memory, 8,
                            f"IoU of {data.n_words} words")
        concepts = require_concepts(data.y, self.concepts)
        codes = label_codes(data.y, concepts).astype(np.int64)
        n_c = len(concepts)
        sizes = np.bincount(codes, minlength=n_c + 1)[:n_c].astype(np.float64)
        members = [np.flatnonzero(codes == i) for i in range(n_c)]

        d = data.n_neurons
        high = np.empty((n_c, d))
        low = np.empty((n_c, d)) if self.signed else None
        thresholds = np.empty(d, np.float32)
        low_thresholds = np.empty(d, np.float32) if self.signed else None
        mask_sizes = np.empty(d, np.int64)
        for cols, values in iter_column_blocks(data, block):
            check_block_finite(values, [data.names[c] for c in cols])
            seed = int(cols[0])  # the subsample only affects speed, never the result
            if alpha is None:
                thresholds[cols] = 0
                high[:, cols], mask_sizes[cols] = _dense_iou(values > 0, members, sizes)
                continue
            thresholds[cols], high[:, cols], mask_sizes[cols] = _tail_iou(
                values, 1 - alpha, codes, members, sizes, seed
            )
            if low is not None and low_thresholds is not None:
                low_thresholds[cols], low[:, cols], _ = _tail_iou(
                    values, alpha, codes, members, sizes, seed
                )

        extra: dict = {
            "alpha": alpha,
            "concept_sizes": dict(zip(concepts, sizes.tolist(), strict=True)),
        }
        scores = high
        if low is not None:
            # +1: the high mask scored better (or equal); -1: the low mask did.
            direction = np.where(low > high, -1, 1)
            scores = np.maximum(high, low)
            extra["direction"] = dict(zip(concepts, direction.tolist(), strict=True))
            self.low_thresholds_ = low_thresholds
        self.thresholds_: np.ndarray = thresholds
        self.mask_sizes_ = mask_sizes
        self.scores_ = scores
        self.concepts_ = concepts
        ranking = ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
        return apply_hygiene(ranking, neuron_health(data))


    def _rank_searched(self, activations: Activations, labels: Labels) -> Ranking:
        """``alpha="auto"``: the best IoU over a grid of mask sizes per neuron and concept."""
        if not 0 < self.max_fraction < 1:
            raise NeuronscopeError(f"max_fraction must be in (0, 1), got {self.max_fraction}")
        if not isinstance(self.n_fractions, int) or self.n_fractions < 1:
            raise NeuronscopeError(f"n_fractions must be a positive integer, "
                                   f"got {self.n_fractions!r}")
        data = prepare_input(activations, labels, self.neurons)
        concepts = require_concepts(data.y, self.concepts)
        codes = label_codes(data.y, concepts)  # uint8 below 255 concepts: 1 byte per word
        n, n_c, d = data.n_words, len(concepts), data.n_neurons
        sizes = np.bincount(codes, minlength=n_c + 1)[:n_c].astype(np.float64)
        grid = np.geomspace(min(1e-3, self.max_fraction), self.max_fraction,
                            self.n_fractions) * n
        cuts = np.unique(np.clip(np.concatenate([grid, sizes]).round().astype(np.int64),
                                 1, max(n - 1, 1)))
        signs = (1.0, -1.0) if self.signed else (1.0,)
        scores = np.full((n_c, d), -1.0)
        thresholds: np.ndarray = np.zeros((n_c, d), np.float32)
        fractions = np.zeros((n_c, d))
        direction = np.ones((n_c, d), np.int64)
        jobs = self.n_jobs or default_jobs()

        def buffers() -> tuple[np.ndarray, ...]:
            return (np.empty(N_TOP + 1, np.int64), np.empty(N_TOP, np.int64),
                    np.empty(n, np.uint64), np.empty((2, n_c)), np.empty((2, n_c), np.int64),
                    np.empty((2, n_c), np.uint32))

        def neuron(buf: tuple[np.ndarray, ...], x: np.ndarray, col: int,
                   stats: np.ndarray) -> None:
            starts, seg_of, cand, iou, m, key = buf
            # One pass serves both signs: the low masks are walked from the other end.
            best_iou_search(x, codes, n_c + 1, sizes, cuts, self.signed, starts, seg_of, cand,
                            iou, m, key, stats)
            for side, sign in enumerate(signs):
                better = iou[side] > scores[:, col]
                scores[better, col] = iou[side, better]
                thresholds[better, col] = value_of_keys(key[side], sign)[better]
                fractions[better, col] = m[side, better] / n
                direction[better, col] = sign

        health = column_pass(data, self.block_neurons, jobs, self.memory, 8,
                             f"IoU of {n} words", buffers, neuron)
        extra: dict = {"alpha": "auto", "mask_fractions_tried": (cuts / n).tolist(),
                       "concept_sizes": dict(zip(concepts, sizes.tolist(), strict=True)),
                       "mask_fraction": dict(zip(concepts, fractions.tolist(), strict=True))}
        if self.signed:
            extra["direction"] = dict(zip(concepts, direction.tolist(), strict=True))
        self.thresholds_ = thresholds
        self.mask_fractions_ = fractions
        self.scores_ = scores
        self.concepts_ = concepts
        ranking = ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
        return apply_hygiene(ranking, health)


def _tail_iou(
    block: np.ndarray, q: float, codes: np.ndarray, members: Sequence[np.ndarray],
    sizes: np.ndarray, seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds ``np.quantile(block, q, axis=0)``, the ``(C, k)`` IoU of the masks beyond
    them (``>`` for ``q >= 0.5``, ``<`` otherwise) and the mask sizes."""
    thr, cand = tail_quantiles(block, q, seed)
    above = q >= 0.5
    if cand is None:
        iou, size = _dense_iou(block > thr if above else block < thr, members, sizes)
    else:
        rows, cols, vals = cand
        on = vals > thr[cols] if above else vals < thr[cols]
        iou, size = _sparse_iou(rows, cols, on, codes, sizes, block.shape[1])
    return thr, iou, size


def _sparse_iou(
    rows: np.ndarray, cols: np.ndarray, on: np.ndarray, codes: np.ndarray, sizes: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(C, k)`` IoU of masks given as the candidate entries that are ``on``; mask sizes."""
    n_c = len(sizes)
    r, c = rows[on], cols[on]
    mask = np.bincount(c, minlength=k)
    inter = np.bincount(codes[r] * k + c, minlength=(n_c + 1) * k)[: n_c * k]
    return _ratio(inter.reshape(n_c, k), mask, sizes), mask


def _dense_iou(
    mask: np.ndarray, members: Sequence[np.ndarray], sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(C, k)`` IoU of a boolean ``(n_words, k)`` mask matrix; mask sizes."""
    on = np.count_nonzero(mask, axis=0)
    inter = np.stack([np.count_nonzero(mask[rows], axis=0) for rows in members])
    return _ratio(inter, on, sizes), on


def _ratio(inter: np.ndarray, mask: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    inter = inter.astype(np.float64)
    # The concept is never empty, so the union is never 0.
    return inter / (mask[None, :] + sizes[:, None] - inter)
