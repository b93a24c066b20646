"""Concept search, neuron -> concepts: the words, contexts, sentences and labels driving a neuron.

The inverse of ranking (concept -> neurons): given one neuron, what makes it fire?

* :func:`neuron_concepts`: the corpus labels (any word-level layer) whose IoU or average
  precision with the neuron is highest.
* :func:`top_words`, :func:`top_contexts`, :func:`top_sentences`: re-exported from
  :mod:`neuronscope.methods.inspection`, their one home.

Every function reads only the neuron's column of the store, chunk by chunk, so the store's
other neurons are never loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.inspection import (
    Context,
    SentenceActivation,
    WordActivation,
    _check_k,
    read_columns,
    top_contexts,
    top_sentences,
    top_words,
)
from neuronscope.store.store import ActivationStore

__all__ = [
    "MAX_CONCEPT_LABELS",
    "ConceptMatch",
    "Context",
    "SentenceActivation",
    "WordActivation",
    "concept_layers",
    "neuron_concepts",
    "top_contexts",
    "top_sentences",
    "top_words",
]

#: Layers with more distinct labels than this (lemmas, word forms) are skipped by
#: :func:`neuron_concepts` unless named explicitly: they are lexical, not concepts, and
#: scoring thousands of labels would dominate the run time.
MAX_CONCEPT_LABELS = 200

_MEASURES = ("iou", "ap")


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ConceptMatch:
    """A corpus label that matches a neuron, with the matching score.

    ``measure`` is ``"iou"`` (Mu & Andreas 2020 style overlap of the neuron's top activations
    with the concept's words) or ``"ap"`` (average precision of the activation as a detector
    of the concept); ``n_words`` is how many words carry the label.
    """

    layer: str
    concept: str
    score: float
    measure: str
    n_words: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


# ---------------------------------------------------------------------------- concepts
def concept_layers(corpus: Corpus, max_labels: int = MAX_CONCEPT_LABELS) -> list[str]:
    """Word-level layers usable as concepts: at most ``max_labels`` distinct labels
    (``NO_LABEL`` not counted) and at least one real label."""
    layers = []
    for layer in corpus.layers:
        n = len(set(corpus.label_counts(layer)) - {NO_LABEL})
        if 0 < n <= max_labels:
            layers.append(layer)
    return layers


def neuron_concepts(
    store: ActivationStore,
    corpus: Corpus,
    neuron: str | int,
    layers: Sequence[str] | None = None,
    k: int = 10,
    measure: str = "iou",
    alpha: float = 0.005,
) -> list[ConceptMatch]:
    """The corpus concepts that best match one neuron, best first.

    Every label of the chosen word-level layers (except ``NO_LABEL``) is scored against the
    neuron with :class:`~neuronscope.methods.iou.IoU` (``measure="iou"``) or
    :class:`~neuronscope.methods.average_precision.AveragePrecision` (``measure="ap"``).
    The neuron's column is read from the store once and handed to the method for every
    layer (a store read of one neuron touches its whole layer's chunks, so reading per
    label layer would multiply the I/O).

    Args:
        store: the activation store.
        corpus: the corpus the store was extracted from (fingerprint-checked).
        neuron: neuron name or global id.
        layers: label layers to search (default: every layer with at most
            ``MAX_CONCEPT_LABELS`` distinct labels, which skips lemmas and word forms;
            layers named here are used whatever their size).
        k: how many concepts to return.
        measure: ``"iou"`` or ``"ap"``.
        alpha: IoU's top-activation quantile (ignored by AP).

    Raises:
        FingerprintMismatchError: ``corpus`` is not the store's corpus.
        NeuronscopeError: unknown neuron, layer or measure.
    """
    _check_k(k)
    if measure not in _MEASURES:
        raise NeuronscopeError(f"measure must be one of {', '.join(_MEASURES)}, got {measure!r}")
    if not isinstance(store, ActivationStore):
        raise NeuronscopeError(f"neuron_concepts needs an ActivationStore, not {type(store)}")
    store.check_corpus(corpus)
    store.layout.ids([neuron])  # unknown neuron: fail before any other work
    if layers is None:
        chosen = concept_layers(corpus)
    else:
        chosen = list(layers)
        for layer in chosen:
            corpus.layer(layer)  # raises the clear "no label layer" error
    if not chosen:
        return []
    # The corpus was checked against the store, so flat labels line up with this column.
    column = read_columns(store, [neuron])
    matches: list[ConceptMatch] = []
    for layer in chosen:
        counts = corpus.label_counts(layer)
        concepts = sorted((c for c in counts if c != NO_LABEL), key=str)
        # Ranking needs two classes; a layer where every word has the same label (or the
        # only real label covers every word) says nothing about this neuron.
        if not concepts or len(counts) < 2:
            continue
        method = _method(measure, alpha, concepts)
        ranking = method.rank(column, corpus.labels_array(layer))
        for concept in concepts:
            # One neuron: each concept's ranking holds exactly its score.
            score = float(ranking.concepts[concept].scores[0])
            matches.append(ConceptMatch(layer, concept, score, measure, int(counts[concept])))
    # NaN scores (undefined measure) go last; ties keep layer and label order.
    matches.sort(key=lambda m: (np.isnan(m.score), -np.nan_to_num(m.score, nan=0.0)))
    return matches[:k]


def _method(measure: str, alpha: float, concepts: list[str]) -> Any:
    # Imported here: the measure modules are optional for the rest of concept search.
    # neurons=[0]: the method sees the one-column array of the searched neuron.
    if measure == "iou":
        from neuronscope.methods.iou import IoU

        return IoU(alpha=alpha, concepts=concepts, neurons=[0])
    from neuronscope.methods.average_precision import AveragePrecision

    return AveragePrecision(concepts=concepts, neurons=[0])
