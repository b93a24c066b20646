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
def sorted_items(x: np.ndarray, sign: float, codes: np.ndarray, keys: np.ndarray,
                 items: np.ndarray, tmp: np.ndarray) -> None:
    """``items`` (uint64): ``key << 32 | code`` of every row, sorted by decreasing ``sign * x``
    with ties in row order (a stable LSD radix sort on the keys, four 8-bit passes; a pass
    whose digit is the same for every key is skipped). ``keys``, ``tmp``: buffers.

    Carrying the concept code (not the row) lets the scans read the sorted items in order,
    without a random access per word.
    """
    n = len(x)
    descending_keys(x, sign, keys)
    counts = np.zeros((4, 256), np.int64)
    for i in range(n):
        k = keys[i]
        items[i] = (np.uint64(k) << np.uint64(32)) | np.uint64(codes[i])
        counts[0, k & np.uint32(255)] += 1
        counts[1, (k >> np.uint32(8)) & np.uint32(255)] += 1
        counts[2, (k >> np.uint32(16)) & np.uint32(255)] += 1
        counts[3, k >> np.uint32(24)] += 1
    src, dst = items, tmp
    swapped = False
    for p in range(4):
        shift = np.uint64(32 + 8 * p)
        skip = False
        total = 0
        for b in range(256):
            c = counts[p, b]
            if c == n:
                skip = True
            counts[p, b] = total
            total += c
        if skip:
            continue
        for i in range(n):
            v = src[i]
            d = (v >> shift) & np.uint64(255)
            pos = counts[p, d]
            counts[p, d] = pos + 1
            dst[pos] = v
        src, dst = dst, src
        swapped = not swapped
    if swapped:  # the result sits in the buffer: copy it back
        items[:] = src


@_jit
def ap_from_items(items: np.ndarray, n_codes: int, out: np.ndarray) -> None:
    """Unnormalised average precision of every code from :func:`sorted_items`.

    ``out[c]`` receives ``sum over words i of code c of TP_c(>= a_i) / #(>= a_i)``, both
    counts taken at the end of ``a_i``'s group of equal values (scikit-learn's thresholds at
    distinct values); divide by the code's word count for AP.
    """
    tp = np.zeros(n_codes, np.float64)
    for c in range(n_codes):
        out[c] = 0.0
    n = len(items)
    low = np.uint64(0xFFFFFFFF)
    i = 0
    while i < n:
        key = items[i] >> np.uint64(32)
        j = i + 1
        while j < n and (items[j] >> np.uint64(32)) == key:
            j += 1
        for k in range(i, j):
            tp[items[k] & low] += 1.0
        seen = float(j)
        for k in range(i, j):
            c = items[k] & low
            out[c] += tp[c] / seen
        i = j


@_jit
def best_iou_from_items(items: np.ndarray, sizes: np.ndarray, cuts: np.ndarray,
                        best: np.ndarray, best_m: np.ndarray, best_key: np.ndarray) -> None:
    """Best IoU per concept over threshold masks near "the first ``m`` sorted items" (``m``
    in the ascending ``cuts``), the chosen ``m`` and the sort key of the mask's last word
    (see :func:`value_of_keys`). A cut inside a group of equal values is moved to the end of
    the group, so every mask is ``value >= threshold`` (a mask that split equal values would
    score a set no threshold selects). A concept's IoU at ``m`` is
    ``inter / (m + size - inter)``; the smallest ``m`` wins ties between cuts.
    """
    n_c = len(sizes)
    n = len(items)
    inter = np.zeros(n_c + 1, np.float64)
    low = np.uint64(0xFFFFFFFF)
    for c in range(n_c):
        best[c] = -1.0
        best_m[c] = 0
        best_key[c] = 0
    k = 0
    for ci in range(len(cuts)):
        m = max(cuts[ci], k, 1)
        last = items[m - 1] >> np.uint64(32)
        while m < n and (items[m] >> np.uint64(32)) == last:
            m += 1
        while k < m:
            inter[items[k] & low] += 1.0
            k += 1
        key = np.uint32(items[m - 1] >> np.uint64(32))
        for c in range(n_c):
            iou = inter[c] / (m + sizes[c] - inter[c])
            if iou > best[c]:
                best[c] = iou
                best_m[c] = m
                best_key[c] = key


def value_of_keys(keys: np.ndarray, sign: float) -> np.ndarray:
    """The float32 values whose :func:`descending_keys` (with ``sign``) are ``keys``."""
    keys = np.asarray(keys, dtype=np.uint32)
    bits = np.where(keys & np.uint32(0x80000000), keys, np.uint32(0x7FFFFFFF) - keys)
    return (bits.astype(np.uint32).view(np.float32) * np.float32(sign)).astype(np.float32)


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
