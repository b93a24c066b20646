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
from collections.abc import Iterator, Sequence

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    MethodInput,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.ranking import Ranking, ranking_from_scores

_SAMPLE_ROWS = 16384  # rows of the subsample that places the candidate cut-off


# ---------------------------------------------------------------------------- shared helpers
def label_codes(y: np.ndarray, concepts: Sequence[str]) -> np.ndarray:
    """Row codes ``0..C-1`` for the concepts, ``C`` for every other label (smallest uint)."""
    index = {c: i for i, c in enumerate(concepts)}
    other = len(concepts)
    dtype = np.uint8 if other < 2**8 else np.uint16 if other < 2**16 else np.int64
    return np.fromiter((index.get(v, other) for v in y.tolist()), dtype=dtype, count=len(y))


def check_block_finite(block: np.ndarray, names: Sequence[str], offset: int) -> None:
    """Raise a clear error naming the first row and neuron with NaN or inf in ``block``.

    One cheap pass: NaN and inf survive a float64 column sum, which cannot overflow for
    float32 values, so the exact search runs only when something is wrong.
    """
    if np.isfinite(block.sum(axis=0, dtype=np.float64)).all():
        return
    r, c = np.argwhere(~np.isfinite(block))[0]
    raise NeuronscopeError(
        f"activations contain NaN or inf (first at row {int(r)}, neuron "
        f"{names[offset + int(c)]}); clean the store or choose other neurons"
    )


def iter_column_blocks(
    data: MethodInput, block_neurons: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(lo, hi, block)``: all rows of selected columns ``lo:hi`` as float32.

    For a store, blocks never straddle a (component, layer) boundary, so each on-disk chunk
    (4096 words x one layer) is read once. For an array, a contiguous run of columns is a view
    (callers must not write to blocks). Every block is checked for NaN/inf.
    """
    if block_neurons < 1:
        raise NeuronscopeError(f"block_neurons must be >= 1, got {block_neurons}")
    n = data.n_neurons
    if isinstance(data.source, np.ndarray):
        cuts = list(range(0, n, block_neurons)) + [n]
    else:
        groups = data.source.layout.layer_of(data.ids)
        cuts = [0]
        for i in range(1, n):
            if groups[i] != groups[i - 1] or i - cuts[-1] >= block_neurons:
                cuts.append(i)
        cuts.append(n)
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        ids = data.ids[lo:hi]
        if isinstance(data.source, np.ndarray):
            if len(ids) > 1 and np.all(np.diff(ids) == 1):
                block = data.source[:, ids[0] : ids[-1] + 1]
            else:
                block = data.source[:, ids]
            block = np.asarray(block, dtype=np.float32)
        else:
            block = data.source.neurons(ids)
        check_block_finite(block, data.names, lo)
        yield lo, hi, block


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


def _order_stats(
    block: np.ndarray, index: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ascending order statistics ``index`` and ``index + 1`` of every column.

    Returns ``(a, b, rows, cols, values)``: the two statistics per column and the candidate
    entries (every entry on the tail side of a cut-off that lies beyond both statistics:
    above for an upper ``index``, below for a lower one), so masks can be read off them.
    """
    n, k = block.shape
    upper = index >= n // 2
    need = n - index if upper else index + 2  # candidates that must lie beyond the cut-off
    nxt = min(index + 1, n - 1)
    if need > n // 4:  # a wide tail: candidates would not save anything
        part = np.partition(block, [index, nxt], axis=0)
        cols = np.tile(np.arange(k), n)
        return part[index], part[nxt], np.repeat(np.arange(n), k), cols, block.ravel()
    # Cut-off from a row subsample, placed well beyond the sample's share of the tail.
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
    for j in range(k):
        m = int(counts[j])
        if m < need:  # the sample misjudged this column: select on all of it
            col = np.ascontiguousarray(block[:, j])
            part = np.partition(col, [index, nxt])
            a[j], b[j] = part[index], part[nxt]
            continue
        seg = values[ends[j] - m : ends[j]]
        # Position of the order statistic among the candidates.
        pos = index - (n - m) if upper else index
        pos_next = min(pos + 1, m - 1)
        part = np.partition(seg, [pos, pos_next])
        a[j], b[j] = part[pos], part[pos_next]
    if (counts < need).any():  # masks of fallback columns: use all their entries
        bad = np.flatnonzero(counts < need)
        extra_rows = np.repeat(np.arange(n), len(bad))
        extra_cols = np.tile(bad, n)
        keep = counts[cols] >= need
        rows = np.concatenate([rows[keep], extra_rows])
        cols = np.concatenate([cols[keep], extra_cols])
        values = np.concatenate([values[keep], block[extra_rows, extra_cols]])
    return a, b, rows, cols, values


def tail_quantiles(
    block: np.ndarray, q: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``np.quantile(block, q, axis=0)`` for a tail ``q``, with the entries beyond it.

    Returns ``(thresholds, rows, cols, values)`` where the candidates include every entry
    strictly beyond its column's threshold (above for ``q >= 0.5``, below otherwise).
    """
    n = block.shape[0]
    index, gamma = _quantile_position(n, q)
    a, b, rows, cols, values = _order_stats(block, index, np.random.default_rng(seed))
    return _lerp32(a, b, gamma), rows, cols, values


# ---------------------------------------------------------------------------- the method
class IoU(RankingMethod):
    """Rank neurons by the IoU of their top-``alpha`` activation mask with each concept.

    Args:
        alpha: fraction of each neuron's activations that is "on" (Mu & Andreas: 0.005, the
            top 0.5 %); ``None`` thresholds at 0 instead (their NLI setting).
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        signed: also score the bottom-``alpha`` mask and keep the better IoU per neuron and
            concept (see the module notes).
        block_neurons: most neurons whose full columns are held in memory at once.

    Fitted attributes: ``thresholds_`` (per neuron, the upper cut-off ``T_n``),
    ``low_thresholds_`` (with ``signed``), ``mask_sizes_`` (words on per neuron),
    ``scores_`` (``(C, D)`` IoU) and ``concepts_``.
    """

    name = "iou"

    def __init__(
        self,
        alpha: float | None = 0.005,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        *,
        signed: bool = False,
        block_neurons: int = 384,
    ) -> None:
        self.alpha = alpha
        self.concepts = concepts
        self.neurons = neurons
        self.signed = signed
        self.block_neurons = block_neurons

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by intersection over union (higher is better)."""
        alpha = self.alpha
        if alpha is not None and not 0 < alpha < 1:
            raise NeuronscopeError(f"alpha must be in (0, 1) or None, got {alpha}")
        if alpha is None and self.signed:
            raise NeuronscopeError("signed=True needs a quantile alpha, not a fixed threshold")
        data = prepare_input(activations, labels, self.neurons)
        concepts = require_concepts(data.y, self.concepts)
        codes = label_codes(data.y, concepts).astype(np.int64)
        n_c = len(concepts)
        sizes = np.bincount(codes, minlength=n_c + 1)[:n_c].astype(np.float64)
        members = [np.flatnonzero(codes == i) for i in range(n_c)] if alpha is None else []

        d = data.n_neurons
        high = np.empty((n_c, d))
        low = np.empty((n_c, d)) if self.signed else None
        thresholds = np.empty(d, np.float32)
        low_thresholds = np.empty(d, np.float32) if self.signed else None
        mask_sizes = np.empty(d, np.int64)
        for lo, hi, block in iter_column_blocks(data, self.block_neurons):
            if alpha is None:
                # Half of all entries may be on: count per concept rather than list them.
                thresholds[lo:hi] = 0
                mask = np.count_nonzero(block > 0, axis=0)
                inter = np.stack([np.count_nonzero(block[r] > 0, axis=0) for r in members])
                high[:, lo:hi] = inter / (mask[None, :] + sizes[:, None] - inter)
                mask_sizes[lo:hi] = mask
                continue
            thr, rows, cols, vals = tail_quantiles(block, 1 - alpha, seed=lo)
            thresholds[lo:hi] = thr
            high[:, lo:hi], mask_sizes[lo:hi] = self._iou(
                rows, cols, vals > thr[cols], codes, sizes, hi - lo
            )
            if self.signed:
                thr_low, rows, cols, vals = tail_quantiles(block, alpha, seed=lo)
                low_thresholds[lo:hi] = thr_low
                low[:, lo:hi], _ = self._iou(rows, cols, vals < thr_low[cols], codes, sizes,
                                             hi - lo)

        extra: dict = {"alpha": alpha, "concept_sizes": dict(zip(concepts, sizes.tolist(),
                                                                     strict=True))}
        scores = high
        if self.signed:
            direction = np.where(low > high, -1, 1)
            scores = np.maximum(high, low)
            extra["direction"] = {c: row.tolist() for c, row in zip(concepts, direction,
                                                                    strict=True)}
            self.low_thresholds_ = low_thresholds
        self.thresholds_ = thresholds
        self.mask_sizes_ = mask_sizes
        self.scores_ = scores
        self.concepts_ = concepts
        return ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )

    @staticmethod
    def _iou(
        rows: np.ndarray, cols: np.ndarray, on: np.ndarray, codes: np.ndarray,
        sizes: np.ndarray, k: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(C, k)`` IoU of the masks given as candidate entries, and the mask sizes."""
        n_c = len(sizes)
        r, c = rows[on], cols[on]
        mask = np.bincount(c, minlength=k)
        inter = np.bincount(codes[r] * k + c, minlength=(n_c + 1) * k)[: n_c * k]
        inter = inter.reshape(n_c, k).astype(np.float64)
        # The concept is never empty, so the union is never 0.
        return inter / (mask[None, :] + sizes[:, None] - inter), mask
