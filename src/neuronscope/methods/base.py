"""The one interface of neuron-ranking methods, and the input handling they share.

Every method is a class configured in ``__init__`` (scikit-learn style: parameters stored
under their own names, fitted state with a trailing ``_``, ``random_state`` where random) and
used through ``rank(activations, labels) -> Ranking``. ``activations`` is an
:class:`~neuronscope.store.ActivationStore` (streamed by chunks where the algorithm allows),
a ``(n_words, n_neurons)`` array, or an :class:`~neuronscope.store.ActivationView` of either
(chosen neurons, chosen rows such as a training split); ``labels`` is a corpus label layer
(``corpus.concept_labels("upos")``, fingerprint-checked against the store) or a plain
array of one label per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.families import SupervisedRanker
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import (
    ActivationView,
    align_labels,
    array_column_ids,
    check_finite,
    label_layer,
)

__all__ = ["Activations", "Labels", "MethodInput", "RankingMethod", "array_column_ids",
           "check_finite", "prepare_input", "require_concepts"]

#: What ``rank`` accepts: a store, a ``(n_words, n_neurons)`` array, or a view of either.
Activations = ActivationStore | np.ndarray | ActivationView
Labels = ConceptLabels | np.ndarray | Sequence[Any]


@dataclass
class MethodInput:
    """Activations and labels checked against each other, with neuron identities.

    The columns and rows read are an :class:`~neuronscope.store.view.ActivationView`
    (:attr:`view`); the fields stay plain so that methods can narrow a selection with
    :func:`dataclasses.replace`. ``ids`` are global store ids of the columns (column indices
    for plain arrays), ``names`` their readable names, ``source`` what is read (the array,
    the store, or a :class:`~neuronscope.store.subset.RowSubsetStore` of restricted rows) and
    ``y`` the labels aligned with its rows.
    """

    source: ActivationStore | np.ndarray
    ids: np.ndarray
    names: list[str]
    y: np.ndarray
    label_layer: str | None
    store_fingerprint: str | None
    chunk_words: int = 8192

    @property
    def view(self) -> ActivationView:
        """The activation view of these columns (built once per input)."""
        view = self.__dict__.get("_view")
        if view is None or view.ids is not self.ids:
            view = ActivationView.of_columns(self.source, self.ids, self.names,
                                             self.chunk_words)
            self.__dict__["_view"] = view
        return view

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
        return self.view.matrix()

    def chunks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Stream ``(start, stop, block)`` of selected activations; each block checked finite."""
        return self.view.chunks()

    def ranking(self, method: RankingMethod, **kwargs: Any) -> dict[str, Any]:
        """Provenance keyword arguments for a :class:`Ranking` built from this input."""
        return {
            "store_fingerprint": self.store_fingerprint,
            "label_layer": self.label_layer,
            **kwargs,
        }


def prepare_input(
    activations: Activations,
    labels: Labels,
    neurons: Sequence[str | int] | None = None,
    chunk_words: int = 8192,
) -> MethodInput:
    """Check and package a method's inputs: an :class:`ActivationView` and aligned labels.

    ``activations`` may also be an :class:`ActivationView` (e.g. restricted to training rows);
    labels of every corpus word are then restricted to its rows. Raises a clear error when
    labels and activations differ in length, when labels come from another corpus than the
    store, or when activations are not a 2-D array, store or view.
    """
    view = ActivationView(activations, neurons, chunk_words=chunk_words)
    return MethodInput(view.source, view.ids, view.names, align_labels(labels, view),
                       label_layer(labels), view.provenance.store_fingerprint, view.chunk_words)


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
