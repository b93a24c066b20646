"""Streamed co-moment (centred Gram) matrices of many neurons, the core of the correlation matrix.

Each chunk of rows is centred on its own (float32-rounded) mean and its Gram matrix merged
into float64 running statistics with the pairwise update of Chan, Golub & LeVeque (1979)::

    M2 += (Xc^T Xc - c d d^T) + (n c / (n + c)) delta delta^T

(``d``: rounding residue of the centre, ``delta``: chunk mean minus running mean). The
rank-one terms only need the ``D``-vectors ``d`` and ``delta``: they are collected and added
in one small matrix product per tile every :data:`_TERMS` chunks, instead of two passes over
the whole ``D x D`` accumulator per chunk.

Layout: the symmetric ``M2`` is accumulated as its upper triangle cut in row **tiles**: tile
``[a, b)`` holds ``M2[a:b, a:]`` (float64), about ``D^2 / 2`` values in all. Each chunk costs
one BLAS matrix product per tile (float32 for ``precision="float32"``), added into the tile.
A pass over the words fills the tiles that fit in the accumulator budget (``max_bytes``); a
wider selection takes several passes (:func:`plan_passes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.linalg import blas

from neuronscope.moments import RunningMoments

if TYPE_CHECKING:
    from neuronscope.unsupervised.correlation import ColumnSource

#: Target size of the float32 product of one tile (``rows x (D - a)``), which sets the tile
#: height. Fewer, taller products run much faster in OpenBLAS (11,904 neurons, 4,096 rows:
#: 5.0 CPU s a chunk with 2,048-row tiles against 6.0 s with 512-row ones, measured), at the
#: cost of the half-wasted squares on the diagonal (``rows / D`` of the work). A selection
#: narrow enough for one tile gets one ``x^T x`` product, which numpy sends to BLAS syrk.
TILE_BYTES = 96 * 2**20
#: Lowest tile height (very wide selections).
_MIN_TILE_ROWS = 256
#: Most rows whose float32 products are summed in float32 before the float64 accumulation:
#: the rounding of a float32 dot product grows with its length; at 4,096 rows it stays
#: near 3e-7 of the correlation scale (measured on MiniLM activations of EWT).
_GRAM_ROWS = 4096
#: Target size of one float32 chunk read for the Gram (two are in flight): whole store chunks
#: of wide selections (11,904 neurons x 4,096 rows = 195 MB) are read once, not in parts.
GRAM_READ_BYTES = 256 * 2**20
#: Target size of a float64 copy of a chunk (``precision="float64"``) and of the column
#: slabs whose squares are summed outside the tiles.
_F64_BYTES = 64 * 2**20
#: Rank-one terms collected before they are added to the tiles (bounds their memory).
_TERMS = 64

Tile = tuple[int, int]


def tile_bytes(tile: Tile, d: int) -> int:
    """Bytes of the float64 accumulator of ``tile`` = ``M2[a:b, a:]`` among ``d`` columns."""
    a, b = tile
    return 8 * (b - a) * (d - a)


def plan_passes(d: int, max_bytes: int, tile_rows: int | None = None) -> list[list[Tile]]:
    """Row tiles of the upper triangle, grouped into passes whose accumulators fit ``max_bytes``.

    A tile is at most ``tile_rows`` high (default: its float32 product near
    :data:`TILE_BYTES`) and never wider than the budget allows (one row at least); a pass
    holds consecutive tiles, at least one.
    """
    d = max(int(d), 1)
    top = max(_MIN_TILE_ROWS, TILE_BYTES // (4 * d)) if tile_rows is None else tile_rows
    rows = max(1, min(top, d, int(max_bytes) // (8 * d)))
    passes: list[list[Tile]] = []
    current: list[Tile] = []
    used = 0
    for a in range(0, d, rows):
        tile = (a, min(a + rows, d))
        need = tile_bytes(tile, d)
        if current and used + need > max_bytes:
            passes.append(current)
            current, used = [], 0
        current.append(tile)
        used += need
    if current:
        passes.append(current)
    return passes


def _rank1_update(acc: np.ndarray, alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``acc += alpha * outer(x, y)`` in place (BLAS ``dger`` on the Fortran view)."""
    if alpha == 0.0 or acc.size == 0:
        return
    out = blas.dger(alpha, y, x, a=acc.T, overwrite_a=True)
    if not np.shares_memory(out, acc):  # dger copied (unexpected layout): write it back
        acc[...] = out.T


class _Terms:
    """Rank-one terms ``coef * v v^T`` of the merges, added to the tiles in batches."""

    def __init__(self, lo: int, tiles: list[Tile], accs: list[np.ndarray]) -> None:
        self.lo, self.tiles, self.accs = lo, tiles, accs
        self.coefs: list[float] = []
        self.vectors: list[np.ndarray] = []

    def add(self, coef: float, vector: np.ndarray) -> None:
        if coef != 0.0:
            self.coefs.append(coef)
            self.vectors.append(vector)
        if len(self.coefs) >= _TERMS:
            self.flush()

    def flush(self) -> None:
        """``M2[a:b, a:] += V[:, a:b]^T diag(coefs) V[:, a:]`` for every tile."""
        if not self.coefs:
            return
        v = np.stack(self.vectors)
        scaled = v * np.asarray(self.coefs)[:, None]
        for (a, b), acc in zip(self.tiles, self.accs, strict=True):
            acc += scaled[:, a - self.lo:b - self.lo].T @ v[:, a - self.lo:]
        self.coefs.clear()
        self.vectors.clear()


def band_pass(
    source: ColumnSource, tiles: list[Tile], precision: str, rows: np.ndarray | None,
) -> tuple[RunningMoments, list[np.ndarray]]:
    """One pass over the words: moments of columns ``lo:`` and the tiles ``M2[a:b, a:]``.

    ``tiles`` are consecutive (``lo`` is the first one's start). Returns the moments of the
    columns ``lo:`` and one float64 accumulator per tile; the square part ``M2[a:b, a:b]``
    of each is exactly symmetric.
    """
    d = source.n_cols
    lo, hi = tiles[0][0], tiles[-1][1]
    width = d - lo
    moments = RunningMoments(width)
    accs = [np.zeros((b - a, d - a)) for a, b in tiles]
    terms = _Terms(lo, tiles, accs)
    dtype = np.float32 if precision == "float32" else np.float64
    # One reused product buffer (a fresh 12-50 MB array per product costs page faults).
    height = max(b - a for a, b in tiles)
    buf = np.empty(height * width, dtype=dtype)
    if precision == "float32":
        step, read = _GRAM_ROWS, source.rows_within(GRAM_READ_BYTES)
    else:  # the float64 copy of each piece stays near _F64_BYTES
        step = read = max(1, min(_GRAM_ROWS, _F64_BYTES // (8 * width)))
    for _, _, block in source.chunks(rows, read):
        for s in range(0, len(block), step):
            _merge_piece(block[s:s + step, lo:], tiles, accs, buf, moments, terms, hi - lo,
                         dtype)
        del block  # before the next read is submitted: two chunks in memory, not three
    terms.flush()
    for (a, b), acc in zip(tiles, accs, strict=True):
        # The float32 product of a square is not always bitwise symmetric: mirror its upper
        # triangle, as BLAS syrk would have.
        low = np.tril_indices(b - a, -1)
        acc[low] = acc[:, :b - a].T[low]
    return moments, accs


def _merge_piece(
    x: np.ndarray, tiles: list[Tile], accs: list[np.ndarray], buf: np.ndarray,
    moments: RunningMoments, terms: _Terms, h: int, dtype: type,
) -> None:
    """Centre a piece of rows (columns ``lo:``, a private copy) and merge it into the tiles."""
    c, width = x.shape
    if c == 0:
        return
    lo = tiles[0][0]
    chunk_mean = x.mean(axis=0, dtype=np.float64)
    if dtype is np.float32:
        centre = chunk_mean.astype(np.float32)
        x -= centre  # in place: chunks are private copies
    else:
        centre = chunk_mean.astype(np.float32).astype(np.float64)
        x = x.astype(np.float64) - centre
    # Centring on a rounded mean leaves sum(x) = c * resid; corrected exactly below.
    resid = chunk_mean - centre.astype(np.float64)
    m2 = np.empty(width, dtype=np.float64)
    for (a, b), acc in zip(tiles, accs, strict=True):
        i, j = a - lo, b - lo
        gram = buf[:(j - i) * (width - i)].reshape(j - i, width - i)
        np.matmul(x[:, i:j].T, x[:, i:], out=gram)  # one BLAS product per tile
        acc += gram
        m2[i:j] = np.diagonal(gram)
    slab = max(1, _F64_BYTES // (8 * c))
    for a in range(h, width, slab):  # columns right of the tiles: squares summed in float64
        sl = x[:, a:a + slab]
        m2[a:a + sl.shape[1]] = np.einsum("ij,ij->j", sl, sl, dtype=np.float64)
    m2 -= c * resid * resid
    terms.add(-float(c), resid)
    delta, weight = moments.merge(float(c), chunk_mean, m2)
    terms.add(weight, delta)


def block_pass(
    source: ColumnSource, lo: int, hi: int, precision: str, rows: np.ndarray | None,
) -> tuple[RunningMoments, np.ndarray]:
    """One pass over the words: moments of columns ``lo:`` and ``M2[lo:hi, lo:]`` (one tile)."""
    moments, accs = band_pass(source, [(lo, hi)], precision, rows)
    return moments, accs[0]
