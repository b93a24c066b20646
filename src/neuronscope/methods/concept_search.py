"""Concept search, neuron -> concepts: the words, contexts, sentences and labels driving a neuron.

The inverse of ranking (concept -> neurons): given one neuron, what makes it fire?

* :func:`top_words`: word types ranked by their strongest occurrence.
* :func:`top_contexts`: the top-k n-gram contexts of Kádár et al. (2017, "Representation of
  linguistic form and function in recurrent neural networks"): the windows around the most
  activating word occurrences.
* :func:`top_sentences`: whole sentences ranked by their max (or mean, min) activation.
* :func:`neuron_concepts`: the corpus labels (any word-level layer) whose IoU or average
  precision with the neuron is highest.

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
from neuronscope.methods.base import check_finite
from neuronscope.store.store import ActivationStore

#: Layers with more distinct labels than this (lemmas, word forms) are skipped by
#: :func:`neuron_concepts` unless named explicitly: they are lexical, not concepts, and
#: scoring thousands of labels would dominate the run time.
MAX_CONCEPT_LABELS = 200

_REDUCERS = ("max", "mean", "min")
_MEASURES = ("iou", "ap")


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class WordActivation:
    """A word type with its highest activation, mean activation and how often it occurs.

    With ``lowest=True`` searches, ``max_activation`` holds the type's *lowest* (most
    extreme in the searched direction) activation.
    """

    word: str
    max_activation: float
    mean_activation: float
    count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class Context:
    """An n-gram window around one strongly activating word occurrence.

    ``words`` is the window (cut at sentence boundaries), ``center`` the index of the
    activating word inside it, ``sentence_id``/``position`` where that word sits in the corpus.
    """

    words: tuple[str, ...]
    center: int
    activation: float
    sentence_id: int
    position: int

    @property
    def word(self) -> str:
        """The activating word."""
        return self.words[self.center]

    @property
    def text(self) -> str:
        """The window as text with the activating word in brackets: ``the [cat] sat``."""
        return " ".join(
            f"[{w}]" if i == self.center else w for i, w in enumerate(self.words)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus ``word`` and ``text``."""
        return {
            "words": list(self.words),
            "center": self.center,
            "word": self.word,
            "text": self.text,
            "activation": self.activation,
            "sentence_id": self.sentence_id,
            "position": self.position,
        }


@dataclass(frozen=True)
class SentenceActivation:
    """One sentence with the neuron's activation on each of its words.

    ``score`` is the value the sentence was ranked by (its max, mean or min activation).
    """

    sentence_id: int
    words: list[str]
    activations: list[float]
    max_activation: float
    mean_activation: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


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


# ---------------------------------------------------------------------------- helpers
def _check_k(k: int) -> None:
    if k < 0:
        raise NeuronscopeError(f"k must be >= 0, got {k}")


def _column(store: ActivationStore, neuron: str | int) -> np.ndarray:
    """The neuron's activation on every row, read chunk by chunk (float32, checked finite)."""
    if not isinstance(store, ActivationStore):
        raise NeuronscopeError(
            f"concept search needs an ActivationStore (for words and sentences), "
            f"not {type(store).__name__}"
        )
    # Resolve the name first: an unknown neuron fails with the layout's clear message
    # before any data is read.
    ids = store.layout.ids([neuron])
    out = np.empty(store.n_words, dtype=np.float32)
    for start, stop, block in store.iter_chunks(ids.tolist()):
        check_finite(block, start)
        out[start:stop] = block[:, 0]
    return out


def _ranked_rows(values: np.ndarray, at_least: int) -> np.ndarray:
    """Row indices of the ``at_least`` highest values (plus ties), highest first.

    Ties are broken by row order, so results are deterministic. Avoids a full sort.
    """
    n = len(values)
    if at_least >= n:
        candidates = np.arange(n)
    else:
        threshold = np.partition(values, n - at_least)[n - at_least]
        candidates = np.nonzero(values >= threshold)[0]
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order]


# ---------------------------------------------------------------------------- words
def top_words(
    store: ActivationStore,
    neuron: str | int,
    k: int = 20,
    lowest: bool = False,
    min_count: int = 1,
) -> list[WordActivation]:
    """The ``k`` word types whose occurrences activate ``neuron`` most (or least).

    Word types are ranked by their strongest occurrence (ties: first occurrence in the
    corpus first); counts and mean activation over all occurrences come with them.

    Args:
        store: the activation store.
        neuron: neuron name (``"L3.mlp.17"``) or global id.
        k: how many word types to return.
        lowest: rank by the lowest activation instead (``max_activation`` then holds it).
        min_count: skip word types occurring fewer times (rare words dominate otherwise).
    """
    _check_k(k)
    values = _column(store, neuron).astype(np.float64)
    words = np.asarray(store.words(), dtype=object)
    if len(words) == 0:
        return []
    types, first, inverse, counts = np.unique(
        words, return_index=True, return_inverse=True, return_counts=True
    )
    signed = -values if lowest else values
    best = np.full(len(types), -np.inf)
    np.maximum.at(best, inverse, signed)
    sums = np.bincount(inverse, weights=values, minlength=len(types))
    keep = np.nonzero(counts >= min_count)[0]
    order = keep[np.lexsort((first[keep], -best[keep]))][:k]
    sign = -1.0 if lowest else 1.0
    return [
        WordActivation(
            str(types[t]), float(sign * best[t]), float(sums[t] / counts[t]), int(counts[t])
        )
        for t in order
    ]


# ---------------------------------------------------------------------------- contexts
def top_contexts(
    store: ActivationStore,
    neuron: str | int,
    k: int = 20,
    window: int = 5,
    lowest: bool = False,
) -> list[Context]:
    """Top-``k`` n-gram contexts of a neuron (Kádár et al. 2017).

    Takes the word occurrences in order of decreasing activation and returns, for each, the
    ``window`` words centred on it (``window // 2`` on each side, cut at the sentence's
    edges). Identical windows (same words, same centre) are kept once, at their highest
    activation, so a frequent phrase cannot fill the whole list.

    Args:
        store: the activation store.
        neuron: neuron name or global id.
        k: how many distinct contexts to return.
        window: window size in words, odd (5: two left, the word, two right).
        lowest: rank by the lowest activations instead.
    """
    _check_k(k)
    if window < 1 or window % 2 == 0:
        raise NeuronscopeError(f"window must be a positive odd number of words, got {window}")
    values = _column(store, neuron)
    if k == 0 or len(values) == 0:
        return []
    signed = -values if lowest else values
    words = store.words()
    sentence_ids = store.sentence_ids()
    positions = store.positions()
    # Rows are grouped by sentence, so a sentence's rows are [start, start + length).
    _, starts, lengths = np.unique(sentence_ids, return_index=True, return_counts=True)
    row_start = np.repeat(starts, lengths)
    row_stop = row_start + np.repeat(lengths, lengths)
    half = window // 2

    seen: set[tuple[tuple[str, ...], int]] = set()
    out: list[Context] = []
    wanted = max(4 * k, 64)
    done = 0  # candidates already examined, so a wider retry does not revisit them
    while True:
        rows = _ranked_rows(signed, wanted)
        for row in rows[done:].tolist():
            lo = max(row - half, int(row_start[row]))
            hi = min(row + half + 1, int(row_stop[row]))
            key = (tuple(words[lo:hi]), row - lo)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Context(key[0], key[1], float(values[row]), int(sentence_ids[row]),
                        int(positions[row]))
            )
            if len(out) == k:
                return out
        done = len(rows)
        if done >= len(values):
            return out
        # Too many duplicate windows among the candidates: look further down.
        wanted *= 4


# ---------------------------------------------------------------------------- sentences
def top_sentences(
    store: ActivationStore,
    neuron: str | int,
    k: int = 10,
    reduce: str = "max",
    lowest: bool = False,
) -> list[SentenceActivation]:
    """The ``k`` sentences where ``neuron`` is most active.

    Args:
        store: the activation store.
        neuron: neuron name or global id.
        k: how many sentences to return.
        reduce: how a sentence's word activations become its score: ``"max"``, ``"mean"``
            or ``"min"``.
        lowest: return the sentences with the lowest scores instead.
    """
    _check_k(k)
    if reduce not in _REDUCERS:
        raise NeuronscopeError(f"reduce must be one of {', '.join(_REDUCERS)}, got {reduce!r}")
    values = _column(store, neuron).astype(np.float64)
    if k == 0 or len(values) == 0:
        return []
    sentence_ids = store.sentence_ids()
    sids, starts, lengths = np.unique(sentence_ids, return_index=True, return_counts=True)
    maxima = np.maximum.reduceat(values, starts)
    means = np.add.reduceat(values, starts) / lengths
    score = {"max": maxima, "mean": means, "min": np.minimum.reduceat(values, starts)}[reduce]
    order = _ranked_rows(-score if lowest else score, k)[:k]
    words = store.words()
    out = []
    for s in order.tolist():
        lo, hi = int(starts[s]), int(starts[s] + lengths[s])
        out.append(
            SentenceActivation(
                sentence_id=int(sids[s]),
                words=list(words[lo:hi]),
                activations=[float(v) for v in values[lo:hi]],
                max_activation=float(maxima[s]),
                mean_activation=float(means[s]),
                score=float(score[s]),
            )
        )
    return out


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
    column = _column(store, neuron)[:, None]
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
