"""The one interface of neuron-ranking methods, and the input handling they share.

Every method is a class configured in ``__init__`` (scikit-learn style: parameters stored
under their own names, fitted state with a trailing ``_``, ``random_state`` where random) and
used through ``rank(activations, labels) -> Ranking``. ``activations`` is an
:class:`~neuronscope.store.ActivationStore` (streamed by chunks where the algorithm allows)
or a ``(n_words, n_neurons)`` array; ``labels`` is a corpus label layer
(``corpus.concept_labels("upos")``, fingerprint-checked against the store) or a plain
array of one label per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.families import SupervisedRanker
from neuronscope.store.store import ActivationStore

Activations = ActivationStore | np.ndarray
Labels = ConceptLabels | np.ndarray | Sequence[Any]


@dataclass
class MethodInput:
    """Activations and labels checked against each other, with neuron identities.

    ``ids`` are global store ids of the columns (column indices for plain arrays) and
    ``names`` their readable names.
    """

    source: Activations
    ids: np.ndarray
    names: list[str]
    y: np.ndarray
    label_layer: str | None
    store_fingerprint: str | None
    chunk_words: int = 8192

    @property
    def n_words(self) -> int:
        """Rows."""
        return len(self.y)

    @property
    def n_neurons(self) -> int:
        """Columns."""
        return len(self.ids)

    def concepts(self, exclude: Iterable[str] = ()) -> list[str]:
        """Distinct labels, sorted (for classification targets)."""
        skip = set(exclude)
        return [c for c in sorted(set(self.y.tolist()), key=str) if c not in skip]

    def matrix(self) -> np.ndarray:
        """All selected activations as float32 ``(n_words, n_neurons)``; checked finite."""
        if isinstance(self.source, np.ndarray):
            x = np.asarray(self.source[:, self.ids], dtype=np.float32)
        else:
            x = self.source.neurons(self.ids)
        check_finite(x, 0)
        return x

    def chunks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(start, stop, block)`` of selected activations; each block checked finite."""
        if isinstance(self.source, np.ndarray):
            # All columns in order: a row slice is a view, no copy of the block.
            cols = slice(None) if self._all_columns() else self.ids
            for start in range(0, self.n_words, self.chunk_words):
                stop = min(start + self.chunk_words, self.n_words)
                block = np.asarray(self.source[start:stop, cols], dtype=np.float32)
                check_finite(block, start)
                yield start, stop, block
            return
        for start, stop, block in self.source.iter_chunks(
            None if self._all_columns() else self.ids, chunk_words=self.chunk_words
        ):
            check_finite(block, start)
            yield start, stop, block

    def _all_columns(self) -> bool:
        width = self.source.shape[1] if isinstance(self.source, np.ndarray) else (
            self.source.n_neurons)
        return len(self.ids) == width and bool(np.all(self.ids == np.arange(width)))

    def ranking(self, method: RankingMethod, **kwargs: Any) -> dict[str, Any]:
        """Provenance keyword arguments for a :class:`Ranking` built from this input."""
        return {
            "store_fingerprint": self.store_fingerprint,
            "label_layer": self.label_layer,
            **kwargs,
        }


def array_column_ids(n_cols: int, neurons: Sequence[Any] | None) -> np.ndarray:
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


def prepare_input(
    activations: Activations,
    labels: Labels,
    neurons: Sequence[str | int] | None = None,
    chunk_words: int = 8192,
) -> MethodInput:
    """Check and package a method's inputs.

    Raises a clear error when labels and activations differ in length, when labels come
    from another corpus than the store, or when activations are not a 2-D array or store.
    """
    layer, fingerprint = None, None
    if isinstance(labels, ConceptLabels):
        y, layer, fingerprint = np.asarray(labels.values), labels.layer, labels.corpus_fingerprint
    else:
        y = np.asarray(labels)
    if y.ndim != 1:
        raise NeuronscopeError(f"labels must be one label per word (1-D), got shape {y.shape}")
    if isinstance(activations, ActivationStore):
        store = activations
        if fingerprint is not None and fingerprint != store.corpus_fingerprint:
            raise FingerprintMismatchError(
                f"labels of layer {layer!r} come from a corpus (fingerprint {fingerprint}) "
                f"other than the one store {store.path} was extracted from "
                f"({store.corpus_fingerprint})"
            )
        n_rows = store.n_words
        ids = (np.arange(store.n_neurons, dtype=np.int64) if neurons is None
               else store.layout.ids(neurons))
        names = store.layout.names(ids)
        store_fp = store.fingerprint
    elif isinstance(activations, np.ndarray):
        if activations.ndim != 2:
            raise NeuronscopeError(
                f"activations must be (n_words, n_neurons), got shape {activations.shape}"
            )
        n_rows = activations.shape[0]
        ids = array_column_ids(activations.shape[1], neurons)
        names = [f"n{i}" for i in ids]
        store_fp = None
    else:
        raise NeuronscopeError(
            f"activations must be an ActivationStore or a numpy array, not {type(activations)}"
        )
    if len(y) != n_rows:
        raise NeuronscopeError(
            f"{len(y)} labels for {n_rows} activation rows: labels and activations must "
            "describe the same words"
        )
    return MethodInput(activations, ids, names, y, layer, store_fp, chunk_words)


def require_concepts(y: np.ndarray, concepts: Sequence[str] | None) -> list[str]:
    """The concepts to rank: all labels, or the requested ones (each must occur).

    A layer with a single label cannot separate anything and is refused.
    """
    present = sorted(set(y.tolist()), key=str)
    if len(present) < 2:
        raise NeuronscopeError(
            f"labels have a single class ({present[0] if present else 'none'}); "
            "ranking needs at least two"
        )
    if concepts is None:
        return present
    missing = [c for c in concepts if c not in set(present)]
    if missing:
        raise NeuronscopeError(
            f"concept(s) {missing} absent from the labels; "
            f"present: {', '.join(map(str, present[:40]))}"
        )
    return list(concepts)


#: The supervised family's base class under its historical name (see
#: :mod:`neuronscope.methods.families` for the families and their ``rank`` signatures).
RankingMethod = SupervisedRanker
