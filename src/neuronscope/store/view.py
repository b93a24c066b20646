"""One activation view over one store (or array): chosen neurons, chosen rows, lazily read.

Every stage reads activations the same way: an :class:`ActivationView` selects neurons of a
:class:`~neuronscope.store.ActivationStore` or of a plain ``(n_words, n_neurons)`` array (by
ids, names such as ``L3.mlp.1021``, components, layers) and optionally some rows (a held-out
split, one domain), and yields columns, chunks ``(start, stop, block)`` or the whole matrix.
Nothing is read before it is asked for, a row restriction never copies the store, and every
block handed out is checked for NaN/inf. :func:`align_labels` is the one place labels are
checked against activations (shape, length, corpus fingerprint); the acceptance policy for
rankings lives in :mod:`neuronscope.store.provenance`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.store.memory import check_fits
from neuronscope.store.names import NeuronLayout
from neuronscope.store.provenance import Provenance, RankingLike, check_ranking_compatible
from neuronscope.store.store import ActivationStore
from neuronscope.store.subset import RowSubsetStore

Source = ActivationStore | np.ndarray
Neurons = Sequence[str | int] | np.ndarray
LabelsLike = ConceptLabels | np.ndarray | Sequence[Any]

DEFAULT_CHUNK_WORDS = 8192


def check_finite(block: np.ndarray, row_offset: int) -> None:
    """Raise a clear error naming the first row and column holding NaN or inf."""
    # The sum is NaN/inf whenever an element is (one fast reduction, no boolean copy);
    # overflow to inf on huge finite values just falls through to the exact check.
    if np.isfinite(np.sum(block, dtype=np.float64)):
        return
    if not np.isfinite(block).all():
        r, c = np.argwhere(~np.isfinite(block))[0]
        raise NeuronscopeError(
            f"activations contain NaN or inf (first at row {row_offset + int(r)}, "
            f"column {int(c)}); clean the store or choose other neurons"
        )


def array_column_ids(n_cols: int, neurons: Iterable[Any] | None) -> np.ndarray:
    """Column ids of a plain ``(n_words, n_cols)`` array: all, or the given integers in range."""
    if neurons is None:
        return np.arange(n_cols, dtype=np.int64)
    try:
        ids = np.asarray([int(i) for i in neurons], dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise NeuronscopeError("neurons of a plain array are column indices (integers)") from err
    if len(ids) and (ids.min() < 0 or ids.max() >= n_cols):
        raise NeuronscopeError(
            f"neuron ids must lie in [0, {n_cols}) for this array, got {ids.min()}..{ids.max()}"
        )
    return ids


def select_ids(layout: NeuronLayout, neurons: Neurons | None = None,
               components: Iterable[str] | None = None,
               layers: Iterable[int] | None = None) -> np.ndarray:
    """Global ids of a selection: ``neurons`` (names or ids) or components x layers."""
    if neurons is not None:
        if components is not None or layers is not None:
            raise NeuronscopeError("select neurons either by ids/names or by "
                                   "components/layers, not both")
        return layout.ids(list(neurons))
    if components is None and layers is None:
        return np.arange(layout.n_neurons, dtype=np.int64)
    return layout.select(components, layers)


class ActivationView:
    """Chosen neurons and rows of a store or array, read lazily.

    Args:
        source: an :class:`ActivationStore` or a 2-D ``(n_words, n_neurons)`` array (column
            ``i`` is neuron id ``i``), or another view (its selection is refined).
        neurons: names (``L3.mlp.1021``) or global ids for a store, column indices for an
            array; for a view, ids or names among its own.
        components, layers: select whole components and/or layers of a store instead.
        rows: restrict to these rows (boolean mask or indices of the rows of ``source``). A
            store is read in place; an array is indexed (a copy of those rows).
        chunk_words: rows per chunk of :meth:`chunks`.

    Attributes:
        source: what is read: the array, the store, or a :class:`RowSubsetStore` when rows
            are restricted (arrays are restricted by indexing).
        ids: global neuron id of each column.
        names: readable name of each column.
    """

    source: Source
    ids: np.ndarray
    names: list[str]
    row_index: np.ndarray | None
    _provenance: Provenance
    _source_rows: int

    def __init__(
        self,
        source: Source | ActivationView,
        neurons: Neurons | None = None,
        *,
        components: Iterable[str] | None = None,
        layers: Iterable[int] | None = None,
        rows: np.ndarray | None = None,
        chunk_words: int = DEFAULT_CHUNK_WORDS,
    ) -> None:
        if isinstance(chunk_words, bool) or not isinstance(chunk_words, (int, np.integer)) \
                or chunk_words < 1:
            raise NeuronscopeError(f"chunk_words must be a positive integer, got {chunk_words}")
        self.chunk_words = int(chunk_words)
        if isinstance(source, ActivationView):
            parent = source
            ids = parent.ids if neurons is None and components is None and layers is None \
                else parent._subselect(neurons, components, layers)
            self.source = parent.source
            self.ids = ids
            self.names = list(parent.names) if ids is parent.ids else [
                parent.name_of(int(i)) for i in ids.tolist()]
            self.row_index = parent.row_index
            self._provenance = parent._provenance
            self._source_rows = parent._source_rows
        elif isinstance(source, ActivationStore):
            self._set_source(source)
            self.ids = select_ids(source.layout, neurons, components, layers)
            self.names = source.layout.names(self.ids)
        elif isinstance(source, np.ndarray):
            if source.ndim != 2:
                raise NeuronscopeError(
                    f"activations must be (n_words, n_neurons), got shape {source.shape}")
            if components is not None or layers is not None:
                raise NeuronscopeError("a plain array has no components or layers; select "
                                       "its columns by index")
            self._set_source(source)
            self.ids = array_column_ids(source.shape[1], neurons)
            self.names = [f"n{i}" for i in self.ids.tolist()]
        else:
            raise NeuronscopeError(
                "activations must be an ActivationStore, a 2-D numpy array or an "
                f"ActivationView, not {type(source).__name__}"
            )
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if rows is not None:
            self._restrict(rows)

    @classmethod
    def of_columns(cls, source: Source, ids: np.ndarray, names: list[str],
                   chunk_words: int = DEFAULT_CHUNK_WORDS) -> ActivationView:
        """A view of already checked columns (ids and names taken as given, not re-checked).

        For callers that hold a selection made by a view and narrowed it (e.g. a method's
        candidate neurons); the source is still checked.
        """
        view = cls.__new__(cls)
        view.chunk_words = int(chunk_words)
        view._set_source(source)
        view.ids = np.asarray(ids, dtype=np.int64)
        view.names = list(names)
        return view

    def _set_source(self, source: Source) -> None:
        self.source = source
        if isinstance(source, ActivationStore):
            self.row_index = source.rows if isinstance(source, RowSubsetStore) else None
            self._provenance = Provenance.of_store(source)
            self._source_rows = (source.parent.n_words if isinstance(source, RowSubsetStore)
                                 else source.n_words)
        else:
            self.row_index, self._source_rows = None, int(source.shape[0])
            self._provenance = Provenance(where="the activation array")

    # ---------------------------------------------------------------- description
    @property
    def store(self) -> ActivationStore | None:
        """The store read (a :class:`RowSubsetStore` for restricted rows), ``None`` for arrays."""
        return self.source if isinstance(self.source, ActivationStore) else None

    @property
    def layout(self) -> NeuronLayout | None:
        """The store's neuron layout (``None`` for arrays)."""
        return None if self.store is None else self.store.layout

    @property
    def provenance(self) -> Provenance:
        """Fingerprints of the activations (all ``None`` for arrays)."""
        return self._provenance

    def _source_shape(self) -> tuple[int, int]:
        src = self.source
        if isinstance(src, ActivationStore):
            return src.n_words, src.n_neurons
        return int(src.shape[0]), int(src.shape[1])

    @property
    def n_words(self) -> int:
        """Rows of the view."""
        return self._source_shape()[0]

    @property
    def n_neurons(self) -> int:
        """Columns of the view."""
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_words, n_neurons)``."""
        return self.n_words, self.n_neurons

    @property
    def source_rows(self) -> int:
        """Rows of the unrestricted source (the corpus' words for a store)."""
        return self._source_rows

    @property
    def source_neurons(self) -> int:
        """Columns of the source (all of the store's neurons, or the array's width)."""
        return self._source_shape()[1]

    def __len__(self) -> int:
        return self.n_words

    def name_of(self, neuron_id: int) -> str:
        """Readable name of a global id."""
        if self.layout is not None:
            return self.layout.name(neuron_id)
        return f"n{neuron_id}"

    def all_columns(self) -> bool:
        """Whether the view holds every column of its source, in order."""
        width = self.source_neurons
        return len(self.ids) == width and bool(np.all(self.ids == np.arange(width)))

    def __repr__(self) -> str:
        where = self.provenance.where
        rows = "" if self.row_index is None else f" (rows restricted of {self.source_rows})"
        return f"ActivationView({self.n_words} words{rows} x {self.n_neurons} neurons, {where})"

    # ---------------------------------------------------------------- selection
    def _subselect(self, neurons: Neurons | None, components: Iterable[str] | None,
                   layers: Iterable[int] | None) -> np.ndarray:
        if self.layout is not None:
            wanted = select_ids(self.layout, neurons, components, layers)
        elif components is not None or layers is not None:
            raise NeuronscopeError("a plain array has no components or layers")
        else:
            by_name = {n: int(i) for n, i in zip(self.names, self.ids.tolist(), strict=True)}
            out = []
            for n in (neurons if neurons is not None else []):
                if isinstance(n, str):
                    if n not in by_name:
                        raise NeuronscopeError(
                            f"neuron {n!r} is not in this view of {self.provenance.where}")
                    out.append(by_name[n])
                else:
                    out.append(int(n))
            wanted = np.asarray(out, dtype=np.int64)
        self.columns(wanted)  # every id must be in this view
        return np.asarray(wanted, dtype=np.int64)

    def select(self, neurons: Neurons | None = None, *, components: Iterable[str] | None = None,
               layers: Iterable[int] | None = None) -> ActivationView:
        """A view of some of this view's neurons (same rows)."""
        return ActivationView(self, neurons, components=components, layers=layers,
                              chunk_words=self.chunk_words)

    def columns(self, ids: Iterable[int]) -> np.ndarray:
        """Column index of each global id; a clear error names ids not in the view."""
        index = {int(i): c for c, i in enumerate(self.ids.tolist())}
        wanted = [int(i) for i in ids]
        missing = [i for i in wanted if i not in index]
        if missing:
            raise NeuronscopeError(
                f"{len(missing)} neuron id(s) are not in this view of {self.provenance.where} "
                f"(first: {missing[:5]})"
            )
        return np.asarray([index[i] for i in wanted], dtype=np.int64)

    def restrict(self, rows: np.ndarray) -> ActivationView:
        """The same neurons over some rows (boolean mask or indices of this view's rows)."""
        view = ActivationView(self, chunk_words=self.chunk_words)
        view._restrict(rows)
        return view

    def _restrict(self, rows: np.ndarray) -> None:
        index = np.asarray(rows)
        n = self.n_words
        if index.dtype == bool:
            if index.shape != (n,):
                raise NeuronscopeError(
                    f"a row mask needs one entry per row ({n}), got shape {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False)
        if index.ndim != 1 or (len(index) and (index.min() < 0 or index.max() >= n)):
            raise NeuronscopeError(f"row indices must be 1-D and lie in [0, {n})")
        if isinstance(self.source, ActivationStore):
            self.source = RowSubsetStore(self.source, index)
            self.row_index = self.source.rows
        else:
            self.source = self.source[index]
            self.row_index = index if self.row_index is None else self.row_index[index]

    # ---------------------------------------------------------------- reading
    def matrix(self) -> np.ndarray:
        """All selected activations as float32 ``(n_words, n_neurons)``; checked finite."""
        if isinstance(self.source, ActivationStore):
            check_fits(4 * self.n_words * self.n_neurons,
                       f"loading {self.n_words} x {self.n_neurons} activations")
            # Whole components at once are about twice as fast as a column selection.
            x = self.source.matrix() if self.all_columns() else self.source.neurons(self.ids)
        else:
            x = np.asarray(self.source[:, self.ids], dtype=np.float32)
        check_finite(x, 0)
        return x

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the selected neurons as float32, checked finite.

        With ``out`` (a float32 ``(stop - start, n_neurons)`` array, possibly a slice of a
        wider one) the rows are written there: a store holding every column is then read
        component by component with no concatenated copy. A new array is returned otherwise
        (never a view of the source).
        """
        if out is None:
            out = np.empty((max(stop - start, 0), self.n_neurons), dtype=np.float32)
        src, rows = self.source, slice(start, stop)
        if isinstance(src, ActivationStore):
            if not self.all_columns():
                out[...] = src.neurons(self.ids, rows)
            else:
                col = 0
                for name in src.components:
                    size = src.layout.components[name].size
                    src.read_into(name, rows, slice(None), out[:, col:col + size])
                    col += size
        elif self.all_columns():
            out[...] = src[start:stop]
        else:
            out[...] = src[start:stop, self.ids]
        check_finite(out, start)
        return out

    def column(self, neuron: int | str) -> np.ndarray:
        """One neuron's activations (by global id or name) over the view's rows."""
        nid = int(self._subselect([neuron], None, None)[0])
        if isinstance(self.source, ActivationStore):
            x = self.source.neurons([nid])[:, 0]
        else:
            x = np.asarray(self.source[:, nid], dtype=np.float32)
        check_finite(x[:, None], 0)
        return x

    def chunks(self, chunk_words: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(start, stop, block)`` of the selected activations over the view's rows.

        Peak memory is one block; each block is checked finite. For an array holding every
        column in order, blocks are views (callers must not write to them).
        """
        step = chunk_words or self.chunk_words
        if isinstance(self.source, np.ndarray):
            cols: Any = slice(None) if self.all_columns() else self.ids
            for start in range(0, self.n_words, step):
                stop = min(start + step, self.n_words)
                block = np.asarray(self.source[start:stop, cols], dtype=np.float32)
                check_finite(block, start)
                yield start, stop, block
            return
        neurons = None if self.all_columns() else self.ids
        for start, stop, block in self.source.iter_chunks(neurons, chunk_words=step):
            check_finite(block, start)
            yield start, stop, block

    # ---------------------------------------------------------------- words table
    def sentence_ids(self) -> np.ndarray | None:
        """Sentence index of every row (``None`` for arrays)."""
        return None if self.store is None else self.store.sentence_ids()

    def positions(self) -> np.ndarray | None:
        """Position inside its sentence of every row (``None`` for arrays)."""
        return None if self.store is None else self.store.positions()

    def words(self) -> list[str] | None:
        """The word of every row (``None`` for arrays)."""
        return None if self.store is None else self.store.words()

    # ---------------------------------------------------------------- policy
    def labels(self, labels: LabelsLike) -> np.ndarray:
        """``labels`` aligned with the view's rows (see :func:`align_labels`)."""
        return align_labels(labels, self)

    def check_ranking(self, ranking: RankingLike) -> list[str]:
        """Apply the acceptance policy to a ranking used with these activations."""
        return check_ranking_compatible(ranking, self.provenance, self.layout)


def as_view(activations: Source | ActivationView, neurons: Neurons | None = None,
            chunk_words: int = DEFAULT_CHUNK_WORDS) -> ActivationView:
    """A view of the activations (a given view without a selection is returned as is)."""
    if isinstance(activations, ActivationView) and neurons is None:
        return activations
    return ActivationView(activations, neurons, chunk_words=chunk_words)


def align_labels(labels: LabelsLike, view: ActivationView | Source) -> np.ndarray:
    """Labels as a 1-D array with one entry per row of ``view``, checked.

    ``labels`` is a corpus label layer (:class:`ConceptLabels`, whose corpus fingerprint must
    be the store's), a plain array or a sequence. On a row-restricted view, labels of every
    row of the source (e.g. the whole corpus layer) are restricted to the view's rows.

    Raises:
        FingerprintMismatchError: labels of another corpus than the store's.
        NeuronscopeError: labels that are not 1-D or not one per row.
    """
    if not isinstance(view, ActivationView):
        view = ActivationView(view)
    y = label_values(labels, view.provenance.corpus_fingerprint, view.provenance.where)
    if view.row_index is not None and len(y) == view.source_rows != view.n_words:
        y = y[view.row_index]
    return check_labels(y, view.n_words, where=view.provenance.where)


def check_labels(labels: LabelsLike, n_rows: int, corpus_fingerprint: str | None = None,
                 where: str = "the activations") -> np.ndarray:
    """Labels as a 1-D array of ``n_rows`` entries, from the corpus ``corpus_fingerprint``.

    The same checks as :func:`align_labels`, for rows that are not a view (words of a
    corpus, an in-memory matrix).
    """
    y = label_values(labels, corpus_fingerprint, where)
    if len(y) != n_rows:
        raise NeuronscopeError(
            f"{len(y)} labels for {n_rows} rows of {where}: labels and activations must "
            "describe the same words"
        )
    return y


def label_values(labels: LabelsLike, corpus_fingerprint: str | None = None,
                 where: str = "the activations") -> np.ndarray:
    """The values of ``labels`` as a 1-D array; corpus labels must come from the corpus
    ``corpus_fingerprint`` (not checked when ``None``, e.g. for plain arrays)."""
    if isinstance(labels, ConceptLabels):
        if corpus_fingerprint is not None and labels.corpus_fingerprint != corpus_fingerprint:
            raise FingerprintMismatchError(
                f"labels of layer {labels.layer!r} come from another corpus (fingerprint "
                f"{labels.corpus_fingerprint}), other than the one {where} was extracted "
                f"from ({corpus_fingerprint})"
            )
        y = np.asarray(labels.values)
    else:
        y = np.asarray(labels)
    if y.ndim != 1:
        raise NeuronscopeError(f"labels must be one label per word (1-D), got shape {y.shape}")
    return y


def label_layer(labels: LabelsLike) -> str | None:
    """The layer name of corpus labels (``None`` for plain arrays)."""
    return labels.layer if isinstance(labels, ConceptLabels) else None
