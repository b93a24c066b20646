"""Shared plumbing of the evaluation modules: loading neurons once, labels, splits, probes.

Evaluations retrain many small probes on subsets of the same neurons, so activations are read
from a store once into a :class:`NeuronMatrix` (the columns a ranking orders) and every probe
slices that matrix. Functions of this package accept a store, a plain ``(n_words, n_neurons)``
array (column ``i`` is neuron id ``i``), an :class:`~neuronscope.store.view.ActivationView`
of either (e.g. held-out rows) or an already loaded :class:`NeuronMatrix`. Loading, label
alignment and the ranking acceptance policy all go through :mod:`neuronscope.store.view`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.ranking import GLOBAL, Ranking
from neuronscope.splits import split_masks
from neuronscope.store.provenance import Provenance, check_ranking_compatible
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView, align_labels, as_view, check_labels


@runtime_checkable
class Probe(Protocol):
    """What evaluations need from a classifier: scikit-learn's ``fit`` and ``predict``."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Any:
        """Train on rows ``x`` with labels ``y``."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """One predicted label per row."""


ProbeFactory = Callable[[], Probe]


@dataclass
class NeuronMatrix:
    """Activations of chosen neurons held in memory, with the neurons' identities.

    Attributes:
        x: float32 ``(n_words, n_columns)`` activations.
        ids: global neuron id of each column (store ids, or column indices of an array).
        names: readable name of each column.
        store_fingerprint: fingerprint of the store the rows came from (``None`` for arrays).
        corpus_fingerprint: fingerprint of the store's corpus (``None`` for arrays).
        groups: sentence id of each row, used to split by sentence (``None``: split rows).
    """

    x: np.ndarray
    ids: np.ndarray
    names: list[str]
    store_fingerprint: str | None = None
    corpus_fingerprint: str | None = None
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.x.ndim != 2 or self.x.shape[1] != len(self.ids) or len(self.names) != len(
            self.ids
        ):
            raise NeuronscopeError(
                f"NeuronMatrix needs x of shape (n_words, {len(self.ids)}) and one name per "
                f"column; got x {self.x.shape}, {len(self.names)} names"
            )
        self._column = {int(i): c for c, i in enumerate(self.ids.tolist())}

    @property
    def n_words(self) -> int:
        """Rows."""
        return int(self.x.shape[0])

    def columns(self, ids: Iterable[int]) -> np.ndarray:
        """Column index of each global id; a clear error names ids that were not loaded."""
        wanted = [int(i) for i in ids]
        missing = [i for i in wanted if i not in self._column]
        if missing:
            raise NeuronscopeError(
                f"{len(missing)} neuron id(s) are not among the loaded activations "
                f"(first: {missing[:5]}); the ranking does not describe these activations"
            )
        return np.asarray([self._column[i] for i in wanted], dtype=np.int64)

    def select(self, ids: Iterable[int]) -> np.ndarray:
        """Activations of these global ids, as a contiguous float32 array."""
        return np.ascontiguousarray(self.x[:, self.columns(ids)])

    def rows(self, mask: np.ndarray) -> NeuronMatrix:
        """The same neurons restricted to some rows (boolean mask or indices)."""
        return NeuronMatrix(
            np.ascontiguousarray(self.x[mask]), self.ids, list(self.names),
            self.store_fingerprint, self.corpus_fingerprint,
            None if self.groups is None else self.groups[mask],
        )


Activations = ActivationStore | np.ndarray | ActivationView | NeuronMatrix


def load_neurons(
    activations: Activations, neurons: Sequence[str | int] | np.ndarray | None = None
) -> NeuronMatrix:
    """Read chosen neurons (default: all) into memory once, through an :class:`ActivationView`.

    ``neurons`` are names or global ids for a store (or view), column indices for an array,
    and global ids (or names) already loaded for a :class:`NeuronMatrix`.
    """
    if isinstance(activations, NeuronMatrix):
        if neurons is None:
            return activations
        ids = _ids_in_matrix(activations, neurons)
        cols = activations.columns(ids)
        return NeuronMatrix(
            np.ascontiguousarray(activations.x[:, cols]), ids,
            [activations.names[c] for c in cols], activations.store_fingerprint,
            activations.corpus_fingerprint, activations.groups,
        )
    view = as_view(activations, neurons)
    prov = view.provenance
    return NeuronMatrix(view.matrix(), view.ids, view.names, prov.store_fingerprint,
                        prov.corpus_fingerprint, view.sentence_ids())


def _ids_in_matrix(matrix: NeuronMatrix, neurons: Sequence[str | int] | np.ndarray) -> np.ndarray:
    by_name = {n: int(i) for n, i in zip(matrix.names, matrix.ids.tolist(), strict=True)}
    out = []
    for n in neurons:
        if isinstance(n, str):
            if n not in by_name:
                raise NeuronscopeError(f"neuron {n!r} is not among the loaded activations")
            out.append(by_name[n])
        else:
            out.append(int(n))
    return np.asarray(out, dtype=np.int64)


def _view_or_matrix(activations: Activations) -> ActivationView | NeuronMatrix:
    if isinstance(activations, NeuronMatrix):
        return activations
    return as_view(activations)


def n_rows(activations: Activations) -> int:
    """Number of words (rows) of any supported activations."""
    return _view_or_matrix(activations).n_words


def provenance(activations: Activations) -> Provenance:
    """Fingerprints of the activations (all ``None`` for plain arrays)."""
    data = _view_or_matrix(activations)
    if isinstance(data, NeuronMatrix):
        prov = Provenance.from_fingerprint(data.store_fingerprint, where="the activations")
        if prov.corpus_fingerprint is None and data.corpus_fingerprint is not None:
            prov = replace(prov, corpus_fingerprint=data.corpus_fingerprint)
        return prov
    return data.provenance


def fingerprints(activations: Activations) -> tuple[str | None, str | None]:
    """``(store fingerprint, corpus fingerprint)`` of the activations (``None`` if unknown)."""
    prov = provenance(activations)
    return prov.store_fingerprint, prov.corpus_fingerprint


def label_array(activations: Activations, labels: ConceptLabels | np.ndarray | Sequence[Any]
                ) -> np.ndarray:
    """Labels as a 1-D array, checked against the activations (see
    :func:`~neuronscope.store.view.align_labels`: shape, length, corpus fingerprint)."""
    data = _view_or_matrix(activations)
    if isinstance(data, ActivationView):
        return align_labels(labels, data)
    # An in-memory matrix: the same checks against its recorded corpus and row count.
    return check_labels(labels, data.n_words, provenance(data).corpus_fingerprint)


def concept_target(y: np.ndarray, concept: str | None) -> np.ndarray:
    """``y`` itself, or one-vs-rest 0/1 labels (int8) for ``concept``."""
    if concept is None or concept == GLOBAL:
        return y
    binary = (y == concept).astype(np.int8)
    if not binary.any():
        present = sorted({str(v) for v in y.tolist()})
        raise NeuronscopeError(
            f"concept {concept!r} does not occur in the labels; present: "
            f"{', '.join(present[:30])}"
        )
    return binary


def check_ranking(ranking: Ranking, activations: Activations) -> list[str]:
    """The acceptance policy (:func:`~neuronscope.store.provenance.check_ranking_compatible`):
    refuse a ranking of another model, aggregation or neuron layout than these activations'.

    A ranking computed on another corpus of the same model and aggregation is accepted:
    ranking on training text and evaluating on held-out text is the point of a held-out
    evaluation. Returns the policy's notes.
    """
    data = _view_or_matrix(activations)
    if isinstance(data, ActivationView):
        return data.check_ranking(ranking)
    notes = check_ranking_compatible(ranking, provenance(data))
    # A matrix knows the names of the neurons it holds: those must agree with the ranking's.
    known = {int(i): n for i, n in zip(data.ids.tolist(), data.names, strict=True)}
    wrong = [i for i, n in ranking.names.items() if i in known and known[i] != n]
    if wrong and data.store_fingerprint is not None:
        i = wrong[0]
        raise FingerprintMismatchError(
            f"{len(wrong)} neuron name(s) of the {ranking.method} ranking differ from the "
            f"loaded activations' (id {i}: {ranking.names[i]!r} vs {known[i]!r}): it was "
            "computed on another neuron layout"
        )
    return notes


def ranking_order(ranking: Ranking, concept: str | None) -> np.ndarray:
    """All neuron ids a ranking orders for a concept (or globally), best first."""
    n_global = 0 if ranking.global_order is None else len(ranking.global_order)
    total = max(n_global,
                max((len(c.ids) for c in ranking.concepts.values()), default=0))
    order = ranking.top_ids(total, concept)  # raises a clear error for an unknown concept
    if len(order) == 0:
        raise NeuronscopeError(f"the ranking orders no neuron for concept {concept!r}")
    return order


def check_k(k: int, n: int, what: str = "k") -> int:
    """``k`` as an int in ``[1, n]``, or a clear error."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise NeuronscopeError(f"{what} must be an integer, got {k!r}")
    if not 1 <= int(k) <= n:
        raise NeuronscopeError(
            f"{what}={k} is out of range: choose between 1 and {n} (the neurons the ranking "
            "orders)"
        )
    return int(k)


# ---------------------------------------------------------------------- splits
def train_test_masks(
    n: int,
    test_size: float = 0.2,
    groups: np.ndarray | None = None,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/test split as two boolean masks.

    With ``groups`` (e.g. sentence ids) whole groups go to one side, so words of a test
    sentence never share their context with training words; ``round(test_size * n_groups)``
    groups (at least one, and never all) are held out.
    """
    if groups is not None and len(groups) != n:
        raise NeuronscopeError(f"{len(groups)} group ids for {n} rows")
    return split_masks(groups, test_size, random_state, n_rows=n)


def resolve_split(
    n: int,
    train_mask: np.ndarray | None,
    test_mask: np.ndarray | None,
    test_size: float,
    groups: np.ndarray | None,
    random_state: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Given masks (checked) or a seeded split; ``test_mask`` alone means "train on the rest"."""
    if train_mask is None and test_mask is None:
        return train_test_masks(n, test_size, groups, random_state)
    if test_mask is None:
        raise NeuronscopeError("pass test_mask (train_mask alone does not define a test set)")
    test = _mask(test_mask, n, "test_mask")
    train = ~test if train_mask is None else _mask(train_mask, n, "train_mask")
    if (train & test).any():
        raise NeuronscopeError(
            f"train_mask and test_mask overlap on {int((train & test).sum())} row(s)"
        )
    if not train.any() or not test.any():
        raise NeuronscopeError("train_mask and test_mask must each select at least one row")
    return train, test


def _mask(mask: np.ndarray, n: int, what: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool:
        # Row indices are accepted too.
        idx = m.astype(np.int64)
        m = np.zeros(n, dtype=bool)
        m[idx] = True
    if m.shape != (n,):
        raise NeuronscopeError(f"{what} must have one entry per row ({n}), got {m.shape}")
    return m


# ---------------------------------------------------------------------- probes
def default_probe_factory(random_state: int | None = 0) -> ProbeFactory:
    """A factory of evaluation probes: :meth:`LinearProbe.for_evaluation
    <neuronscope.methods.linear_probe.LinearProbe.for_evaluation>` (one weakly penalized
    fit; the ranking default searches a whole regularization path)."""
    from neuronscope.methods.linear_probe import LinearProbe

    return lambda: LinearProbe.for_evaluation(random_state)


def fit_and_score(
    factory: ProbeFactory, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
    y_test: np.ndarray,
) -> tuple[float, Probe]:
    """Train a fresh probe and return its test accuracy and the probe."""
    probe = factory()
    probe.fit(x_train, y_train)
    return accuracy(probe.predict(x_test), y_test), probe


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Share of rows predicted right (0 for no rows)."""
    return float(np.mean(np.asarray(pred) == np.asarray(y))) if len(y) else 0.0


def majority_accuracy(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent training label (the trivial baseline)."""
    values, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(np.asarray(y_test) == values[np.argmax(counts)])) if len(y_test) else 0.0
