"""Compiled inner loops of the corpus rankers (numba): one sort per neuron shared by every
concept, and one pass over row chunks for per-class sums.

Why compiled loops: on 204,577 words x 2,688 neurons, numpy needs several full passes and a
comparison sort (plus an argsort) per neuron; here each neuron costs one LSD radix sort of
its 32-bit keys carrying the row index, and one scan that updates every concept's counts as
it goes, so AP, the IoU threshold search and the class moments each finish in about a pass
over the data. Functions are compiled on first use and cached on disk (``cache=True``); they
release the GIL, so callers run them on threads over disjoint neurons or columns.

Conventions: activations are float32 and finite (callers check); ``codes`` give each row's
concept ``0..C-1``, ``C`` for every other label.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(nogil=True, cache=True, boundscheck=False)
_BITS = 11  # radix digit: 2,048 buckets, three passes cover 32-bit keys
_BUCKETS = 1 << _BITS


@_jit
def descending_keys(x: np.ndarray, sign: float, keys: np.ndarray) -> None:
    """uint32 ``keys`` whose ascending order is the descending order of ``sign * x``.

    ``-0.0`` is folded into ``+0.0`` first (scikit-learn ties them), so equal values get equal
    keys. Positive floats: all but the sign bit flipped (larger values first); negative
    floats keep their bits (sign bit set: after every positive, larger magnitude later).
    """
    tmp = np.empty(len(x), np.float32)
    for i in range(len(x)):
        tmp[i] = np.float32(sign) * x[i] + np.float32(0.0)
    bits = tmp.view(np.uint32)
    for i in range(len(x)):
        b = bits[i]
        if b & np.uint32(0x80000000):
            keys[i] = b
        else:
            keys[i] = np.uint32(0x7FFFFFFF) - b


@_jit
def radix_argsort(keys: np.ndarray, tmp_keys: np.ndarray, order: np.ndarray,
                  tmp_order: np.ndarray) -> None:
    """Stable ascending sort of uint32 ``keys`` in place; ``order`` receives the row of each
    sorted key (rows of equal keys stay in row order). ``tmp_*``: buffers of equal length.

    LSD radix sort in three 11-bit passes; a pass whose digit is the same for every key is
    skipped (the data end up in ``keys``/``order`` either way).
    """
    n = len(keys)
    counts = np.zeros((3, _BUCKETS), np.int64)
    for i in range(n):
        k = keys[i]
        counts[0, k & np.uint32(_BUCKETS - 1)] += 1
        counts[1, (k >> np.uint32(_BITS)) & np.uint32(_BUCKETS - 1)] += 1
        counts[2, k >> np.uint32(2 * _BITS)] += 1
    for i in range(n):
        order[i] = i
    src_k, src_o, dst_k, dst_o = keys, order, tmp_keys, tmp_order
    swapped = False
    for p in range(3):
        shift = np.uint32(p * _BITS)
        skip = False
        total = 0
        for b in range(_BUCKETS):
            c = counts[p, b]
            if c == n:
                skip = True
            counts[p, b] = total
            total += c
        if skip:
            continue
        for i in range(n):
            k = src_k[i]
            d = (k >> shift) & np.uint32(_BUCKETS - 1)
            pos = counts[p, d]
            counts[p, d] = pos + 1
            dst_k[pos] = k
            dst_o[pos] = src_o[i]
        src_k, dst_k = dst_k, src_k
        src_o, dst_o = dst_o, src_o
        swapped = not swapped
    if swapped:  # the result sits in the buffers: copy it back
        keys[:] = src_k
        order[:] = src_o


@_jit
def ap_from_sorted(keys: np.ndarray, order: np.ndarray, codes: np.ndarray, n_codes: int,
                   out: np.ndarray) -> None:
    """Unnormalised average precision of every code, from keys sorted by decreasing value.

    ``out[c]`` receives ``sum over words i of code c of TP_c(>= a_i) / #(>= a_i)``, both
    counts taken at the end of ``a_i``'s group of equal values (scikit-learn's thresholds at
    distinct values); divide by the code's word count for AP.
    """
    tp = np.zeros(n_codes, np.float64)
    for c in range(n_codes):
        out[c] = 0.0
    n = len(keys)
    i = 0
    while i < n:
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        for k in range(i, j):
            tp[codes[order[k]]] += 1.0
        seen = float(j)
        for k in range(i, j):
            c = codes[order[k]]
            out[c] += tp[c] / seen
        i = j


@_jit
def column_moments(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, sum of squared deviations and largest ``|value|`` of a column (float64,
    shifted by the first value against cancellation)."""
    n = len(x)
    if n == 0:
        return 0.0, 0.0, 0.0
    shift = float(x[0])
    s = 0.0
    q = 0.0
    top = 0.0
    for i in range(n):
        v = float(x[i])
        d = v - shift
        s += d
        q += d * d
        a = abs(v)
        if a > top:
            top = a
    mean = s / n
    return shift + mean, max(q - s * mean, 0.0), top


@_jit
def best_iou_from_sorted(order: np.ndarray, x: np.ndarray, codes: np.ndarray,
                         sizes: np.ndarray, cuts: np.ndarray, best: np.ndarray,
                         best_m: np.ndarray, best_thr: np.ndarray) -> None:
    """Best IoU per concept over masks "the first ``m`` rows of ``order``" (``m`` in the
    ascending ``cuts``); the chosen ``m`` and ``x`` at the mask's last row.

    ``order`` lists rows by decreasing activation (ties in row order). A concept's IoU at
    ``m`` is ``inter / (m + size - inter)``; the smallest ``m`` wins ties between cuts.
    """
    n_c = len(sizes)
    inter = np.zeros(n_c + 1, np.float64)
    for c in range(n_c):
        best[c] = -1.0
        best_m[c] = 0
        best_thr[c] = 0.0
    k = 0
    for ci in range(len(cuts)):
        m = cuts[ci]
        while k < m:
            inter[codes[order[k]]] += 1.0
            k += 1
        thr = x[order[m - 1]]
        for c in range(n_c):
            iou = inter[c] / (m + sizes[c] - inter[c])
            if iou > best[c]:
                best[c] = iou
                best_m[c] = m
                best_thr[c] = thr


@_jit
def grouped_shifted_sums(block: np.ndarray, codes: np.ndarray, shift: np.ndarray,
                         counts: np.ndarray, sums: np.ndarray, squares: np.ndarray,
                         lo: np.ndarray, hi: np.ndarray, col_lo: int, col_hi: int) -> None:
    """Accumulate per group the sums of ``block - shift[group]`` and of their squares
    (float64), over the columns ``col_lo:col_hi``; update column minima and maxima.

    Rows with a negative code count only towards minima and maxima; ``counts`` is updated
    only by the call that owns column ``0`` (callers split columns between threads). NaN and
    inf reach ``sums``, which is how callers detect them.
    """
    for r in range(block.shape[0]):
        g = codes[r]
        if g < 0:
            for j in range(col_lo, col_hi):
                v = block[r, j]
                lo[j] = min(lo[j], v)
                hi[j] = max(hi[j], v)
                if not np.isfinite(v):
                    sums[0, j] += v  # surfaces NaN/inf in the sums
            continue
        if col_lo == 0:
            counts[g] += 1.0
        for j in range(col_lo, col_hi):
            v = block[r, j]
            lo[j] = min(lo[j], v)
            hi[j] = max(hi[j], v)
            d = float(v) - shift[g, j]
            sums[g, j] += d
            squares[g, j] += d * d
