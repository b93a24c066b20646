"""Neuron-by-neuron Pearson correlation, computed by streaming over words.

The activations are never loaded at once: rows are read chunk by chunk (``chunk_words``) and
each chunk's centred Gram matrix is merged into float64 running statistics with the pairwise
update of Chan, Golub & LeVeque (1979), the scheme of baukit's ``RunningCovariance``::

    M2 += (Xc^T Xc - c d d^T) + (n c / (n + c)) delta delta^T

where ``Xc`` is the chunk centred on its (float32-rounded) mean, ``d`` the rounding residue
of that centre and ``delta`` the difference between the chunk mean and the running mean.
Centring each chunk first keeps the float32 products free of the cancellation that
``E[x^2] - E[x]^2`` suffers on neurons with a large mean.

Memory: the float64 accumulator holds the upper triangle of ``M2`` in row tiles (about
``D * D * 4`` bytes, :mod:`.comoments`), all of it in one pass over the words when it fits in
``max_bytes``; wider selections take one pass per group of tiles that fits. Each chunk costs
one float32 BLAS product per tile. The result is a float32 ``D x D`` matrix, in memory or,
with ``out=``, a memory-mapped ``.npy`` file (with a JSON sidecar of neuron names); it is
filled tile by tile as the float64 tiles are freed, so the two are not held whole at once.

Constant neurons (standard deviation <= ``1e-6 * |mean| + 1e-12``, i.e. no variation beyond
float32 rounding) have no defined correlation. They are listed in ``constant`` and given a
correlation of 0 with every other neuron and 1 with themselves (the convention of NeuroX'
``create_correlation_clusters``, which replaces NaN by 0), so no NaN ever reaches the
matrix or the clustering built on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path, atomic_write_json
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView, as_view
from neuronscope.unsupervised.comoments import _rank1_update as _rank1_update
from neuronscope.unsupervised.comoments import band_pass, block_pass, plan_passes

#: A store, a ``(n_words, n_neurons)`` array, or a view of either (chosen neurons and rows).
Activations = ActivationStore | np.ndarray | ActivationView

#: Default budget of the float64 accumulator (bytes): the upper triangle of up to ~15,000
#: neurons in one pass over the words; wider selections take several passes.
DEFAULT_MAX_BYTES = 2**30
PRECISIONS = ("float32", "float64")
#: Target size of one chunk of rows read (bytes); wide selections read fewer rows at once.
_BLOCK_BYTES = 64 * 2**20


# ---------------------------------------------------------------------- column sources
class ColumnSource:
    """Row-aligned activations of one or more stores or arrays, chosen neurons side by side.

    Several parts (e.g. two models' stores of the same corpus) are read chunk by chunk in
    lockstep, so cross-model statistics stream like single-model ones.

    Each part is an :class:`~neuronscope.store.view.ActivationView` (``parts``), which does
    the selection, reading and finiteness checks.

    Args:
        parts: ``(activations, neurons)`` pairs; ``neurons`` are names or global ids for a
            store, column indices for an array, ``None`` for all.
        chunk_words: rows per chunk.
    """

    def __init__(
        self,
        parts: Sequence[tuple[Activations, Sequence[str | int] | np.ndarray | None]],
        chunk_words: int = 8192,
    ) -> None:
        if not parts:
            raise NeuronscopeError("no activations given")
        if not isinstance(chunk_words, (int, np.integer)) or chunk_words < 1:
            raise NeuronscopeError(f"chunk_words must be a positive integer, got {chunk_words}")
        self.chunk_words = int(chunk_words)
        self.parts = [as_view(src, neurons) for src, neurons in parts]
        rows = {p.n_words for p in self.parts}
        if len(rows) != 1:
            raise NeuronscopeError(
                f"activations differ in number of words ({sorted(rows)}); they must describe "
                "the same corpus, row for row"
            )
        self.n_rows = rows.pop()
        sizes = [len(p.ids) for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if self.offsets[-1] == 0:
            raise NeuronscopeError("no neurons selected")
        self.max_words = self.chunk_words  # as asked; chunk_words may be lowered below
        self.chunk_words = self.rows_within(_BLOCK_BYTES)

    def rows_within(self, nbytes: int) -> int:
        """Rows per chunk (at most the ``chunk_words`` asked for) so that a float32 chunk of
        every column stays near ``nbytes``; rounded to whole store chunks, which zarr reads
        whole."""
        fit = max(1, int(nbytes) // (4 * self.n_cols))
        if fit >= self.max_words:
            return self.max_words
        unit = max((p.store.chunk_words for p in self.parts if p.store is not None),
                   default=1)
        if fit >= unit:
            return min(self.max_words, fit // unit * unit)
        # Very wide: a power-of-two part of a store chunk (each chunk file is then read
        # several times, from the page cache) keeps the two blocks in flight near ``nbytes``
        # instead of two whole-chunk reads (11,904 neurons x 4,096 rows = 195 MB each).
        part = unit
        while part > max(fit, 256):
            part //= 2
        return min(self.max_words, max(part, 1))

    @classmethod
    def of(
        cls,
        source: Activations | ColumnSource,
        neurons: Sequence[str | int] | np.ndarray | None = None,
        chunk_words: int = 8192,
    ) -> ColumnSource:
        """A source over one store or array (or ``source`` itself when already one)."""
        if isinstance(source, ColumnSource):
            return source
        return cls([(source, neurons)], chunk_words)

    @property
    def n_cols(self) -> int:
        """Columns over all parts."""
        return int(self.offsets[-1])

    @property
    def names(self) -> list[str]:
        """Names of all columns (parts concatenated)."""
        return [n for p in self.parts for n in p.names]

    @property
    def ids(self) -> np.ndarray:
        """Global ids of all columns (ids restart in each part)."""
        return np.concatenate([p.ids for p in self.parts])

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of every column as a new float32 array (never a view)."""
        out = np.empty((stop - start, self.n_cols), dtype=np.float32)
        for part, off in zip(self.parts, self.offsets[:-1].tolist(), strict=True):
            part.read(start, stop, out=out[:, off:off + part.n_neurons])
        return out

    def chunks(self, rows: np.ndarray | None = None,
               chunk_words: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(start, stop, block)``; the next chunk is read while this one is used.

        ``rows`` (sorted indices) restricts the stream to those rows; ``start``/``stop``
        then count positions in ``rows``. ``chunk_words`` overrides the rows per chunk. A
        consumer that drops its block before asking for the next holds two blocks, not three.
        """
        n = self.n_rows if rows is None else len(rows)
        size = self.chunk_words if chunk_words is None else max(1, int(chunk_words))
        bounds = [(s, min(s + size, n)) for s in range(0, n, size)]
        if rows is None:
            def read(b: tuple[int, int]) -> np.ndarray:
                return self._read(*b)
        else:
            def read(b: tuple[int, int]) -> np.ndarray:
                return self.take(rows[b[0]:b[1]])
        # One reader thread: zarr decoding and BLAS both release the GIL, so reading the next
        # chunk overlaps the multiplication of this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(read, bounds[0]) if bounds else None
            for i, b in enumerate(bounds):
                assert pending is not None  # one is submitted for every bound
                block = pending.result()
                pending = pool.submit(read, bounds[i + 1]) if i + 1 < len(bounds) else None
                yield b[0], b[1], block

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Chosen rows (sorted indices) of every column, float32 ``(len(rows), n_cols)``."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.n_cols), dtype=np.float32)
        out = np.empty((len(rows), self.n_cols), dtype=np.float32)
        # Read contiguous spans of at most chunk_words rows, keep the wanted ones.
        pos = 0
        while pos < len(rows):
            start = int(rows[pos])
            end = int(np.searchsorted(rows, start + self.chunk_words, side="left"))
            end = max(end, pos + 1)
            span = self._read(start, int(rows[end - 1]) + 1)
            out[pos:end] = span[rows[pos:end] - start]
            pos = end
        return out


# ---------------------------------------------------------------------- result
@dataclass
class CorrelationResult:
    """A neuron-by-neuron correlation matrix and the statistics behind it.

    Attributes:
        matrix: float32 ``(D, D)`` Pearson correlations (a ``np.memmap`` when written to disk);
            constant neurons have 0 off the diagonal and 1 on it.
        names: neuron names, one per row/column.
        ids: global store ids (column indices for arrays).
        constant: names of the constant neurons.
        mean: float64 mean of each neuron.
        std: float64 population standard deviation of each neuron (0 for constant ones).
        n_words: rows the statistics were computed on.
        part_offsets: column offsets of the parts when several sources were combined.
        path: the ``.npy`` file holding ``matrix``, if written to disk.
    """

    matrix: np.ndarray
    names: list[str]
    ids: np.ndarray
    constant: list[str]
    mean: np.ndarray
    std: np.ndarray
    n_words: int
    part_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    path: Path | None = None

    @property
    def n_neurons(self) -> int:
        """Rows (= columns) of the matrix."""
        return len(self.names)

    @property
    def constant_mask(self) -> np.ndarray:
        """Boolean mask of the constant neurons."""
        return self.std == 0

    def block(self, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
        """Correlations ``rows x cols``; contiguous index ranges are read as slices (views)."""
        rows, cols = _as_slice(rows), _as_slice(cols)
        if isinstance(rows, slice) and isinstance(cols, slice):
            return np.asarray(self.matrix[rows, cols])
        return np.asarray(self.matrix[rows][:, cols])

    def covariance(self, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
        """Population covariance block ``rows x cols`` (float64), from correlation and std."""
        block = self.block(rows, cols).astype(np.float64)
        return block * self.std[rows][:, None] * self.std[cols][None, :]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (no matrix)."""
        return {
            "n_neurons": self.n_neurons,
            "n_words": int(self.n_words),
            "constant": list(self.constant),
            "path": None if self.path is None else str(self.path),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``matrix`` as ``.npy`` plus a ``.json`` sidecar (names, ids, stats)."""
        path = Path(path)
        if path.suffix != ".npy":
            path = path.with_suffix(".npy")
        if self.path is None or Path(self.path).resolve() != path.resolve():
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.asarray(self.matrix, dtype=np.float32))
        _write_sidecar(path, self)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> CorrelationResult:
        """Read a matrix written by :meth:`save` or by ``correlation_matrix(out=...)``."""
        path = Path(path)
        side = path.with_suffix(".json")
        if not path.exists() or not side.exists():
            raise NeuronscopeError(f"{path}: no correlation matrix (.npy + .json) there")
        meta = json.loads(side.read_text(encoding="utf-8"))
        if meta.get("format") != "neuronscope-correlation":
            raise NeuronscopeError(f"{side}: not a neuronscope correlation sidecar")
        matrix = np.load(path, mmap_mode="r" if mmap else None)
        return cls(
            matrix=matrix, names=list(meta["names"]), ids=np.asarray(meta["ids"], dtype=np.int64),
            constant=list(meta["constant"]), mean=np.asarray(meta["mean"], dtype=np.float64),
            std=np.asarray(meta["std"], dtype=np.float64), n_words=int(meta["n_words"]),
            part_offsets=np.asarray(meta.get("part_offsets", []), dtype=np.int64), path=path,
        )


def _as_slice(index: slice | np.ndarray) -> slice | np.ndarray:
    """A contiguous increasing index array as a slice (cheap views of big matrices)."""
    if isinstance(index, slice):
        return index
    index = np.asarray(index)
    if index.ndim == 1 and len(index) and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _write_sidecar(path: Path, result: CorrelationResult) -> None:
    meta = {
        "format": "neuronscope-correlation",
        "names": result.names,
        "ids": result.ids.tolist(),
        "constant": result.constant,
        "mean": result.mean.tolist(),
        "std": result.std.tolist(),
        "n_words": int(result.n_words),
        "part_offsets": result.part_offsets.tolist(),
    }
    atomic_write_json(path.with_suffix(".json"), meta, indent=None)


# ---------------------------------------------------------------------- streaming statistics
# The distributed statistics reach the co-moment pass through these names.
_block_pass = block_pass


def _row_blocks(d: int, max_bytes: int) -> list[tuple[int, int]]:
    """Neuron row blocks ``[lo, hi)`` whose float64 accumulator ``(hi-lo) x (d-lo)`` fits."""
    blocks, lo = [], 0
    while lo < d:
        width = d - lo
        rows = max(1, min(width, int(max_bytes // (8 * width))))
        blocks.append((lo, lo + rows))
        lo += rows
    return blocks


def _write_tile(matrix: np.ndarray, acc: np.ndarray, a: int, b: int, inv: np.ndarray) -> None:
    """Correlations of the co-moment tile ``M2[a:b, a:]`` into ``matrix`` and its mirror."""
    acc *= inv[a:b, None]
    acc *= inv[None, a:]
    np.clip(acc, -1.0, 1.0, out=acc)
    idx = np.arange(b - a)
    acc[idx, idx] = 1.0
    matrix[a:b, a:] = acc
    matrix[a:, a:b] = acc.T


def constant_neurons(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Mask of neurons with no variation beyond float32 rounding (see the module docstring)."""
    return std <= 1e-6 * np.abs(mean) + 1e-12


def correlation_matrix(
    activations: Activations | ColumnSource,
    neurons: Sequence[str | int] | np.ndarray | None = None,
    chunk_words: int = 8192,
    max_bytes: int = DEFAULT_MAX_BYTES,
    out: str | os.PathLike | None = None,
    precision: str = "float32",
    rows: np.ndarray | None = None,
) -> CorrelationResult:
    """Pearson correlation between every pair of chosen neurons, streamed over words.

    Args:
        activations: a store, a ``(n_words, n_neurons)`` array, or a :class:`ColumnSource`.
        neurons: names or ids to include (default: all); ignored for a ``ColumnSource``.
        chunk_words: rows per chunk read.
        max_bytes: budget of the float64 accumulator; above about ``D * D * 4`` (the upper
            triangle) the matrix is built in several passes over the words, each filling
            the row tiles that fit.
        out: write the float32 matrix to this ``.npy`` file (memory-mapped, plus a ``.json``
            sidecar) instead of keeping it in memory; for very wide selections.
        precision: ``"float32"`` multiplies each centred chunk in float32 (accumulating in
            float64; ~1e-7 error on correlations, twice as fast) or ``"float64"``.
        rows: restrict to these row indices (sorted), e.g. a training split.

    Inside a :func:`neuronscope.distributed.connect` block the words are split over the
    Dask workers (each reads its rows from the store) and their partial Gram matrices
    merged; the result equals the single-process one within float64 rounding.

    Returns:
        :class:`CorrelationResult`.
    """
    if precision not in PRECISIONS:
        raise NeuronscopeError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not isinstance(max_bytes, (int, np.integer)) or max_bytes < 8:
        raise NeuronscopeError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    source = ColumnSource.of(activations, neurons, chunk_words)
    if rows is not None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= source.n_rows):
            raise NeuronscopeError(f"rows must lie in [0, {source.n_rows})")
    n_words = source.n_rows if rows is None else len(rows)
    if n_words < 2:
        raise NeuronscopeError(f"correlations need at least 2 words, got {n_words}")
    d = source.n_cols
    if out is not None:
        path = Path(out)
        if path.suffix != ".npy":
            path = path.with_suffix(".npy")
        matrix: np.ndarray = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=(d, d)
        )
    else:
        path = None
        matrix = np.empty((d, d), dtype=np.float32)
    from neuronscope._backend import active_backend

    remote = active_backend()
    if remote is None:
        passes = plan_passes(d, int(max_bytes))
    else:  # inside ``neuronscope.distributed.use``: one row block per pass, split over workers
        passes = [[block] for block in _row_blocks(d, int(max_bytes))]
    inv = std = mean = None
    for tiles in passes:
        if remote is None:
            moments, accs = band_pass(source, tiles, precision, rows)
        else:
            ((lo, hi),) = tiles
            moments, acc = remote.block_pass(source, lo, hi, precision, rows)
            accs = [acc]
            del acc
        if std is None:  # the first pass starts at 0: its moments cover every column
            mean = moments.mean_[0]
            std = np.sqrt(np.maximum(moments.m2_[0], 0.0) / moments.count_[0])
            const = constant_neurons(mean, std)
            std[const] = 0.0
            # 1/sd with constants -> 0 turns their rows and columns into zeros.
            inv = np.zeros(d)
            inv[~const] = 1.0 / np.sqrt(np.maximum(moments.m2_[0][~const], 1e-300))
        assert inv is not None
        accs.reverse()
        for a, b in tiles:  # each tile is freed once written: the float32 matrix fills in
            _write_tile(matrix, accs.pop(), a, b, inv)  # as the float64 tiles go away
    assert std is not None and mean is not None
    names = source.names
    result = CorrelationResult(
        matrix=matrix, names=names, ids=source.ids,
        constant=[names[i] for i in np.nonzero(std == 0)[0]],
        mean=mean, std=std, n_words=n_words, part_offsets=source.offsets.copy(), path=path,
    )
    if path is not None:
        if isinstance(matrix, np.memmap):  # the matrix lives in ``path``
            matrix.flush()
        _write_sidecar(path, result)
    return result
