"""Compiled inner loops of the corpus rankers (numba): one sort per neuron shared by every
concept, and one pass over row chunks for per-class sums.

Why compiled loops: on 204,577 words x 2,688 neurons, numpy needs several full passes and a
comparison sort (plus an argsort) per neuron. Here AP costs one LSD radix sort per neuron
(three passes, of 8, 10 and 14 bits, over 32-bit keys carrying the word's concept code) and
one scan that updates every concept's counts as it goes; the IoU threshold search sorts
nothing but the few words that share a key bucket with a cut (two passes over the column,
both signs at once); the class moments take one pass over row chunks. Functions are
compiled on first use and cached on disk (``cache=True``); they release the GIL, so callers
run them on threads over disjoint neurons or columns.

Conventions: activations are float32 and finite (callers check); ``codes`` give each row's
concept ``0..C-1``, ``C`` for every other label.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_jit = njit(nogil=True, cache=True, boundscheck=False)


@_jit
def _key(bits: np.uint32, flip: np.uint32) -> np.uint32:
    """Sort key of one float32 (its raw ``bits``) times ``-1`` if ``flip`` is the sign bit:
    ascending keys are descending values (see :func:`descending_keys`)."""
    # Branch-free (signs are random: a branch would be mispredicted half the time).
    b = bits ^ flip
    b ^= np.uint32(b == np.uint32(0x80000000)) << np.uint32(31)  # -0.0 is +0.0
    # Negative: keep the bits; positive: 0x7FFFFFFF - b, which is b ^ 0x7FFFFFFF.
    return b ^ (((b >> np.uint32(31)) - np.uint32(1)) & np.uint32(0x7FFFFFFF))


@_jit
def descending_keys(x: np.ndarray, sign: float, keys: np.ndarray) -> None:
    """uint32 ``keys`` whose ascending order is the descending order of ``sign * x``
    (``x``: a contiguous float32 array).

    ``-0.0`` is folded into ``+0.0`` first (scikit-learn ties them), so equal values get equal
    keys. Positive floats: all but the sign bit flipped (larger values first); negative
    floats keep their bits (sign bit set: after every positive, larger magnitude later).
    Multiplying by ``-1`` only flips the sign bit, so it is done on the bits.
    """
    bits = x.view(np.uint32)
    flip = np.uint32(0x80000000) if sign < 0 else np.uint32(0)
    for i in range(len(x)):
        keys[i] = _key(bits[i], flip)


_D0, _D1 = 8, 10  # bits of the first two radix digits; the third takes the rest
_B1, _B2 = 1 << _D0, (1 << _D0) + (1 << _D1)  # where each digit's counts start
SORT_COUNTS = _B2 + (1 << (32 - _D0 - _D1))  # ``counts`` of :func:`sorted_items`


@_jit
def sorted_items(x: np.ndarray, sign: float, codes: np.ndarray, items: np.ndarray,
                 tmp: np.ndarray, counts: np.ndarray, stats: np.ndarray) -> None:
    """``items`` (uint64): ``key << 32 | code`` of every row, sorted by decreasing ``sign * x``
    (``x`` contiguous float32) with ties in row order: a stable LSD radix sort on the keys
    in three passes (the key's low 8 bits, the next 10, the top 14). ``tmp``: a buffer as
    long as ``items``; ``counts``: :data:`SORT_COUNTS` uint32 (below ``2**32`` rows; uint64
    beyond).

    Why these digits: a pass costs a write per item to wherever its bucket's run has got to,
    and a pass on the low 16 bits spread its ~3 items per bucket over 65,536 cache lines
    (on EWT, 0.62 ms a column against 0.20 for a byte pass). The top bits of activations
    fill few buckets (sign, exponent, a few mantissa bits), so they take the widest digit;
    8/10/14 sorted EWT columns 3% faster than 8/8/16, 9/9/14 or 8/11/13. The keys are
    computed in a loop of their own (vectorised; kept in ``tmp`` until the second pass);
    carrying the concept code (not the row) lets the scan read the sorted items in order.

    ``stats`` (float64, 3) receives :func:`column_moments` of ``x``, taken in the counting
    pass (whose scattered counts hide the moments' chain of additions: splitting the chain
    in two made the sort no faster).
    """
    n = len(x)
    bits = x.view(np.uint32)
    flip = np.uint32(0x80000000) if sign < 0 else np.uint32(0)
    keys = tmp.view(np.uint32)[:n]
    for i in range(n):
        keys[i] = _key(bits[i], flip)
    counts[:] = 0
    mask0 = np.uint32((1 << _D0) - 1)
    mask1 = np.uint32((1 << _D1) - 1)
    one = counts.dtype.type(1)
    shift = x[0] if n else np.float32(0.0)  # float32, as in column_moments
    s = 0.0
    q = 0.0
    top = 0.0
    for i in range(n):
        s, q, top = _add_moment(x[i], shift, s, q, top)
        k = keys[i]
        counts[k & mask0] += one
        counts[np.uint32(_B1) + ((k >> np.uint32(_D0)) & mask1)] += one
        counts[np.uint32(_B2) + (k >> np.uint32(_D0 + _D1))] += one
    _finish_moments(n, shift, s, q, top, stats)
    total = counts.dtype.type(0)
    for b in range(SORT_COUNTS):
        if b == _B1 or b == _B2:
            total = counts.dtype.type(0)
        c = counts[b]
        counts[b] = total
        total += c
    # Positions are read, the item stored, then the position stored back (not an
    # increment in memory, which the compiler reloads after the store).
    for i in range(n):
        k = keys[i]
        d = k & mask0
        p = counts[d]
        items[p] = (np.uint64(k) << np.uint64(32)) | np.uint64(codes[i])
        counts[d] = p + one
    _radix_pass(items, tmp, counts[_B1:_B2], np.uint64(32 + _D0), mask1)
    _radix_pass(tmp, items, counts[_B2:], np.uint64(32 + _D0 + _D1),
                np.uint32((1 << (32 - _D0 - _D1)) - 1))


@_jit
def _radix_pass(src: np.ndarray, dst: np.ndarray, starts: np.ndarray, shift: np.uint64,
                mask: np.uint32) -> None:
    """Stable scatter of ``src`` into ``dst`` by the digit ``(item >> shift) & mask``
    (``starts``: each digit's first position, advanced as items are placed)."""
    one = starts.dtype.type(1)
    for i in range(len(src)):
        v = src[i]
        d = np.uint32(v >> shift) & mask
        p = starts[d]
        dst[p] = v
        starts[d] = p + one


@_jit
def ap_from_items(items: np.ndarray, n_codes: int, out: np.ndarray) -> None:
    """Unnormalised average precision of every code from :func:`sorted_items`.

    ``out[c]`` receives ``sum over words i of code c of TP_c(>= a_i) / #(>= a_i)``, both
    counts taken at the end of ``a_i``'s group of equal values (scikit-learn's thresholds at
    distinct values); divide by the code's word count for AP.

    One scan in decreasing order: a value of its own (the usual case) updates its code's
    counts; a group of equal values is counted as its end is sought, then each of its words
    adds its term, and the loop skips the rest of the group. A plain loop over positions
    with that one rarely taken branch: on EWT columns about 0.30 ms against 0.32 for a loop
    from group to group, and on the tie-heavy embedding layer (one value per word type)
    about 0.76 ms against 0.88 for the scan without branches per group used there before.
    """
    tp = np.zeros(n_codes, np.float64)
    out[:n_codes] = 0.0
    n = len(items)
    low = np.uint64(0xFFFFFFFF)
    sh = np.uint64(32)
    skip = 0  # items left of a group already taken
    for i in range(n - 1):
        if skip > 0:
            skip -= 1
            continue
        v = items[i]
        if (items[i + 1] ^ v) >> sh:  # the next key differs: a value of its own
            c = v & low
            t = tp[c] + 1.0
            tp[c] = t
            out[c] += t / (i + 1.0)
            continue
        j = i  # count the group as its end is sought (one loop exit to mispredict)
        while j < n and (items[j] ^ v) >> sh == 0:
            tp[items[j] & low] += 1.0
            j += 1
        seen = float(j)
        for k in range(i, j):
            c = items[k] & low
            out[c] += tp[c] / seen
        skip = j - i - 1
    if n and skip == 0:  # the last item, if no group took it
        c = items[n - 1] & low
        out[c] += (tp[c] + 1.0) / n


# ---------------------------------------------------------------------------- IoU search
# The threshold search needs each cut's tie group and the concept counts before it, not a
# sorted column: one pass counts the keys' top 16 bits, which places every cut in a bucket;
# a second pass counts the codes of all other buckets wholesale per run of buckets
# ("segment") between cut buckets and copies out only the items of the cut buckets, which
# are then sorted. Walking segments whole and cut buckets item by item gives the same counts
# at every cut as walking the sorted column.
_TOP = 16
N_TOP = 1 << _TOP  # buckets of the search (the keys' top 16 bits)


@_jit
def _walk_to(m: int, k: int, forward: bool, n: int, unit: int, seg_counts: np.ndarray,
             unit_lo: np.ndarray, unit_hi: np.ndarray, cand: np.ndarray, cand_at: np.ndarray,
             inter: np.ndarray) -> tuple[int, int]:
    """Advance the walk (``k`` items taken, in ``unit``) to ``m`` items; returns the new
    ``(k, unit)``. Units alternate segment, cut bucket, ..., segment in key order; walking
    backward visits them from the last."""
    low = np.uint64(0xFFFFFFFF)
    n_units = len(unit_lo)
    while k < m:
        u = unit if forward else n_units - 1 - unit
        lo, hi = unit_lo[u], unit_hi[u]
        if u % 2 == 0:  # a segment: taken whole (a cut never falls inside one)
            for c in range(inter.shape[0]):
                inter[c] += seg_counts[u // 2, c]
            k += hi - lo
            unit += 1
            continue
        base = cand_at[u // 2] - lo  # cand index of position p is base + p
        while k < m:
            p = k if forward else n - 1 - k
            if p < lo or p >= hi:
                break
            inter[cand[base + p] & low] += 1.0
            k += 1
        if (k if forward else n - 1 - k) < lo or (k if forward else n - 1 - k) >= hi:
            unit += 1
    return k, unit


@_jit
def best_iou_search(x: np.ndarray, codes: np.ndarray, n_codes: int, sizes: np.ndarray,
                    cuts: np.ndarray, signed: bool, starts: np.ndarray, seg_of: np.ndarray,
                    cand: np.ndarray, best: np.ndarray, best_m: np.ndarray,
                    best_key: np.ndarray, stats: np.ndarray) -> None:
    """Best IoU per concept over the masks ``sign * x >= t`` near "the ``m`` largest of
    ``sign * x``" (``m`` in the ascending ``cuts``), for ``sign = 1`` (row 0 of ``best``,
    ``best_m``, ``best_key``) and, if ``signed``, ``sign = -1`` (row 1): the chosen mask
    size and the :func:`descending_keys` key of its threshold (see :func:`value_of_keys`).

    A cut inside a group of equal values is moved to the end of the group, so every mask is
    a threshold (one that split equal values would score a set no threshold selects). A
    concept's IoU at ``m`` is ``inter / (m + size - inter)``; the smallest ``m`` wins ties.
    ``x``: contiguous float32; ``codes`` below ``n_codes``; buffers: ``starts`` (int64,
    ``2**16 + 1``), ``seg_of`` (int64, ``2**16``), ``cand`` (uint64, as long as ``x``).
    ``stats`` (float64, 3) receives :func:`column_moments` of ``x`` (from the counting pass).
    """
    n = len(x)
    n_c = len(sizes)
    bits = x.view(np.uint32)
    zero = np.uint32(0)
    top = np.uint32(32 - _TOP)
    for b in range(N_TOP + 1):
        starts[b] = 0
    shift = x[0] if n else np.float32(0.0)  # float32, as in column_moments
    s = 0.0
    q = 0.0
    largest = 0.0
    for i in range(n):
        s, q, largest = _add_moment(x[i], shift, s, q, largest)
        starts[(_key(bits[i], zero) >> top) + 1] += 1
    _finish_moments(n, shift, s, q, largest, stats)
    for b in range(N_TOP):
        starts[b + 1] += starts[b]
        seg_of[b] = 0
    # Mark the buckets holding the last item of some mask (from either end): the mask of
    # cut m ends at position m - 1 (or n - m from the back), or further within its group,
    # which never leaves the bucket; a later cut never ends before an earlier one's group.
    for ci in range(len(cuts)):
        m = min(max(cuts[ci], 1), n)
        seg_of[np.searchsorted(starts, m - 1, side="right") - 1] = 1
        if signed:
            seg_of[np.searchsorted(starts, n - m, side="right") - 1] = 1
    n_marked = 0
    for b in range(N_TOP):
        n_marked += seg_of[b]
    # Units: segment 0, cut bucket 0, segment 1, ..., segment n_marked (positions lo:hi).
    unit_lo = np.empty(2 * n_marked + 1, np.int64)
    unit_hi = np.empty(2 * n_marked + 1, np.int64)
    cand_at = np.empty(n_marked + 1, np.int64)
    fill = np.empty(n_marked, np.int64)
    j = 0
    unit_lo[0] = 0
    cand_at[0] = 0
    for b in range(N_TOP):
        if seg_of[b]:
            unit_hi[2 * j] = starts[b]
            unit_lo[2 * j + 1] = starts[b]
            unit_hi[2 * j + 1] = starts[b + 1]
            unit_lo[2 * j + 2] = starts[b + 1]
            fill[j] = cand_at[j]
            cand_at[j + 1] = cand_at[j] + starts[b + 1] - starts[b]
            j += 1
            seg_of[b] = -j  # cut bucket j - 1
        else:
            seg_of[b] = j  # segment j
    unit_hi[2 * n_marked] = n
    seg_counts = np.zeros((n_marked + 1, n_codes), np.float64)
    for i in range(n):
        ki = _key(bits[i], zero)
        s = seg_of[ki >> top]
        if s >= 0:
            seg_counts[s, codes[i]] += 1.0
        else:
            cand[fill[-s - 1]] = (np.uint64(ki) << np.uint64(32)) | np.uint64(codes[i])
            fill[-s - 1] += 1
    for j in range(n_marked):  # only the cut buckets are sorted
        cand[cand_at[j]:cand_at[j + 1]].sort()
    inter = np.zeros(n_codes, np.float64)
    for side in range(2 if signed else 1):
        forward = side == 0
        for c in range(n_c):
            best[side, c] = -1.0
            best_m[side, c] = 0
            best_key[side, c] = 0
        for c in range(n_codes):
            inter[c] = 0.0
        k = 0
        unit = 0
        for ci in range(len(cuts)):
            m = max(cuts[ci], k, 1)
            p = m - 1 if forward else n - m  # the mask's last item so far
            j = -seg_of[np.searchsorted(starts, p, side="right") - 1] - 1
            lo, hi = unit_lo[2 * j + 1], unit_hi[2 * j + 1]
            base = cand_at[j] - lo
            key = np.uint32(cand[base + p] >> np.uint64(32))
            if forward:  # take in the rest of the group of equal keys
                while m < hi and np.uint32(cand[base + m] >> np.uint64(32)) == key:
                    m += 1
            else:
                while n - m - 1 >= lo and np.uint32(cand[base + n - m - 1] >> np.uint64(32)) == key:
                    m += 1
                # the key of the same value under sign = -1
                value_bits = key if key & np.uint32(0x80000000) else np.uint32(0x7FFFFFFF) - key
                key = _key(value_bits, np.uint32(0x80000000))
            k, unit = _walk_to(m, k, forward, n, unit, seg_counts, unit_lo, unit_hi, cand,
                               cand_at, inter)
            for c in range(n_c):
                iou = inter[c] / (m + sizes[c] - inter[c])
                if iou > best[side, c]:
                    best[side, c] = iou
                    best_m[side, c] = m
                    best_key[side, c] = key


def value_of_keys(keys: np.ndarray, sign: float) -> np.ndarray:
    """The float32 values whose :func:`descending_keys` (with ``sign``) are ``keys``."""
    keys = np.asarray(keys, dtype=np.uint32)
    bits = np.where(keys & np.uint32(0x80000000), keys, np.uint32(0x7FFFFFFF) - keys)
    return (bits.astype(np.uint32).view(np.float32) * np.float32(sign)).astype(np.float32)


@_jit
def column_moments(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, sum of squared deviations and largest ``|value|`` of a column, shifted by the
    first value against cancellation.

    The sums are float64, but numba's ``float()`` keeps a float32 a float32, so each
    deviation and its square are float32. The sort kernels take the same moments in their
    counting pass (bitwise equal: the same operations in the same order).
    """
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
def _add_moment(value: np.float32, shift: np.float32, s: float, q: float, top: float
                ) -> tuple[float, float, float]:
    """One value folded into the shifted sums and the largest |value| (the counting passes
    of :func:`sorted_items` and :func:`best_iou_search`)."""
    v = float(value)  # float32, as in column_moments
    d = v - shift
    a = abs(v)
    return s + d, q + d * d, a if a > top else top


@_jit
def _finish_moments(n: int, shift: float, s: float, q: float, top: float,
                    stats: np.ndarray) -> None:
    """``stats[:] = column_moments(x)`` from the running sums of the kernels' first pass
    (NaN or inf in ``x`` make ``stats[0]`` non-finite: callers check it)."""
    if n == 0:
        stats[0] = stats[1] = stats[2] = 0.0
        return
    mean = s / n
    stats[0] = shift + mean
    stats[1] = max(q - s * mean, 0.0)
    stats[2] = top


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


@_jit
def transpose_rows(columns: np.ndarray, out: np.ndarray, lo: int, hi: int) -> None:
    """``out[c, r] = columns[r, c]`` for the rows ``lo:hi`` of a ``(n, k)`` float32 block:
    threads transpose a whole block together, each its own rows.

    Tiles of 128 rows x 32 columns, a column at a time: each column's 128 values are one
    512-byte output run, and its read cache lines serve the tile's next columns. On a
    384-neuron block of EWT's 2,688-wide matrix this took 0.67 of the CPU time of reading
    each row whole into runs of 16 rows (0.75 on 4 KiB pages; 64-row tiles, 0.98; 96 or
    160 rows, 0.8).
    """
    k = columns.shape[1]
    for r0 in range(lo, hi, 128):
        r1 = min(r0 + 128, hi)
        for c0 in range(0, k, 32):
            for c in range(c0, min(c0 + 32, k)):
                for r in range(r0, r1):
                    out[c, r] = columns[r, c]


@_jit
def transpose_into(columns: np.ndarray, out: np.ndarray) -> None:
    """``out[c, r] = columns[r, c]``: a ``(n, k)`` float32 block (rows may lie far apart, as
    in a column slice of a wide matrix) as contiguous ``(k, n)`` rows.

    Tiles of 64 rows: each visited source row gives all ``k`` of its values while its cache
    lines and page are at hand, and the tile's ``k`` output runs stay in cache. About twice
    numpy's transposing copy of the same slices here.
    """
    n, k = columns.shape
    for r0 in range(0, n, 64):
        r1 = min(r0 + 64, n)
        for c in range(k):
            for r in range(r0, r1):
                out[c, r] = columns[r, c]
