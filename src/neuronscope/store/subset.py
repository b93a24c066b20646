"""Some rows of a store, read through the store's own API without copying the store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from neuronscope.store.store import ActivationStore


class RowSubsetStore(ActivationStore):
    """Some rows of a store, read through the store's own API (nothing is copied).

    Row ``i`` of the subset is row ``rows[i]`` of the parent; every read (``neurons``,
    ``layer``, ``iter_chunks``, ``words``...) is translated, reading contiguous spans of at
    most ``chunk_words`` parent rows and keeping the wanted ones. Fingerprints are the
    parent's: the rows still belong to its corpus.
    """

    def __init__(self, parent: ActivationStore, rows: np.ndarray) -> None:  # noqa: D107
        # Share the parent's opened state instead of reopening (and rechecking) the folder.
        self.path, self.meta, self.complete = parent.path, parent.meta, parent.complete
        self.layout, self._group = parent.layout, parent._group
        base = parent.parent if isinstance(parent, RowSubsetStore) else parent
        if isinstance(parent, RowSubsetStore):
            rows = parent.rows[rows]
        self.parent: ActivationStore = base
        self.rows: np.ndarray = np.asarray(rows, dtype=np.int64)
        self.n_words = len(self.rows)

    def _absolute(self, rows: slice | np.ndarray | None) -> np.ndarray:
        return self.rows if rows is None else self.rows[rows]

    def _read(self, component: str, rows: slice | np.ndarray | None, cols: Any) -> np.ndarray:
        wanted = self._absolute(rows)
        pieces = [self.parent._read(component, slice(lo, hi), cols)[pick]
                  for lo, hi, pick in _spans(wanted, self.parent.chunk_words)]
        if not pieces:
            return self.parent._read(component, slice(0, 0), cols)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def read_into(self, component: str, rows: slice | np.ndarray | None, cols: Any,
                  out: np.ndarray) -> None:
        """See :meth:`ActivationStore.read_into` (rows are the subset's)."""
        out[...] = self._read(component, rows, cols)

    def dask(self, component: str | None = None) -> Any:
        """A lazy Dask array of the subset's rows (see :meth:`ActivationStore.dask`)."""
        return self.parent.dask(component)[self.rows]

    def words(self) -> list[str]:
        """The word of every row of the subset."""
        all_words = self.parent.words()
        return [all_words[i] for i in self.rows.tolist()]

    def sentence_ids(self) -> np.ndarray:
        """The sentence index of every row of the subset."""
        return self.parent.sentence_ids()[self.rows]

    def positions(self) -> np.ndarray:
        """The position inside its sentence of every row of the subset."""
        return self.parent.positions()[self.rows]

    def __repr__(self) -> str:
        return f"RowSubsetStore({self.n_words} of {self.parent.n_words} rows of {self.path})"


def _spans(rows: np.ndarray, width: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(lo, hi, pick)``: parent rows ``lo:hi`` to read, and which of them to keep in order.

    Consecutive wanted rows within ``width`` of the span start share one read; rows need not
    be sorted (an out-of-order row starts a new span).
    """
    pos, n = 0, len(rows)
    while pos < n:
        lo = int(rows[pos])
        end = pos + 1
        while end < n and lo <= rows[end] < lo + width and rows[end] > rows[end - 1]:
            end += 1
        hi = int(rows[end - 1]) + 1
        yield lo, hi, rows[pos:end] - lo
        pos = end
