"""Neuron inspection: the words, contexts and sentences that drive one neuron.

The one implementation behind the ``top-words`` command, the report's neuron cards and
:mod:`neuronscope.methods.concept_search`:

* :func:`top_words`: word types ranked by their strongest occurrence.
* :func:`top_contexts`: the top-k n-gram contexts of Kádár et al. (2017, "Representation of
  linguistic form and function in recurrent neural networks"): the windows around the most
  activating word occurrences.
* :func:`top_sentences`: whole sentences ranked by their max (or mean, min) activation.

Each takes a store and a neuron. Callers that inspect many neurons of one store (the report)
index the corpus side once in a :class:`CorpusIndex`, read columns with
:func:`read_columns`, and call the index's methods of the same names with the same defaults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import check_finite
from neuronscope.store.store import ActivationStore

__all__ = [
    "N_CONTEXTS",
    "N_SENTENCES",
    "N_WORDS",
    "WINDOW",
    "Context",
    "CorpusIndex",
    "SentenceActivation",
    "WordActivation",
    "read_columns",
    "top_contexts",
    "top_sentences",
    "top_words",
]

#: Defaults shared by every caller (CLI, report cards, concept search).
N_WORDS = 20
N_CONTEXTS = 20
N_SENTENCES = 10
#: Context window in words: two left, the word, two right (Kádár et al.'s 5-grams).
WINDOW = 5

_REDUCERS = ("max", "mean", "min")


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


# ---------------------------------------------------------------------------- helpers
def _check_k(k: int, window: int | None = None, reduce: str | None = None) -> None:
    """Refuse bad search settings before any data is read."""
    if k < 0:
        raise NeuronscopeError(f"k must be >= 0, got {k}")
    if window is not None and (window < 1 or window % 2 == 0):
        raise NeuronscopeError(f"window must be a positive odd number of words, got {window}")
    if reduce is not None and reduce not in _REDUCERS:
        raise NeuronscopeError(f"reduce must be one of {', '.join(_REDUCERS)}, got {reduce!r}")


def _ranked_rows(values: np.ndarray, at_least: int) -> np.ndarray:
    """Indices of the ``at_least`` highest values (plus ties), highest first.

    Ties are broken by index, so results are deterministic. Avoids a full sort.
    """
    n = len(values)
    if at_least >= n:
        candidates = np.arange(n)
    else:
        threshold = np.partition(values, n - at_least)[n - at_least]
        candidates = np.nonzero(values >= threshold)[0]
    return candidates[np.lexsort((candidates, -values[candidates]))]


def _sample_sentences(sentence_ids: np.ndarray, n: int, chunk_words: int,
                      seed: int) -> np.ndarray:
    """A seeded sample of ``n`` sentences, drawn as whole store chunks (boolean mask).

    Sentences are taken chunk by chunk (chunks in random order), not one by one: a store is
    read in chunks of ``chunk_words`` rows, so a sample spread over every chunk would cost a
    full read of the store, while this one costs reading about ``n / n_sentences`` of it.
    """
    n_sent = int(sentence_ids.max()) + 1 if len(sentence_ids) else 0
    first_row = np.full(n_sent, len(sentence_ids), dtype=np.int64)
    np.minimum.at(first_row, sentence_ids, np.arange(len(sentence_ids)))
    chunk_of = first_row // max(chunk_words, 1)
    order = np.random.default_rng(seed).permutation(int(chunk_of.max()) + 1)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    # Sentences sorted by (random chunk rank, position): the first n are the sample.
    picked = np.lexsort((np.arange(n_sent), rank[chunk_of]))[:n]
    keep = np.zeros(n_sent, dtype=bool)
    keep[picked] = True
    return keep


def read_columns(
    store: ActivationStore, neurons: Sequence[str | int], rows: np.ndarray | None = None
) -> np.ndarray:
    """Activations ``(len(rows), k)`` of some neurons on some rows (sorted store rows).

    Only the store chunks holding some of ``rows`` are read, and every value is checked
    finite. Pass neurons of the same layer together: the store's chunks hold whole layers,
    so each chunk is then read once for all of them.
    """
    if not isinstance(store, ActivationStore):
        raise NeuronscopeError(
            f"neuron inspection needs an ActivationStore (for words and sentences), "
            f"not {type(store).__name__}"
        )
    # Resolve the names first: an unknown neuron fails with the layout's clear message
    # before any data is read.
    ids = store.layout.ids(neurons).tolist()
    if rows is None:
        rows = np.arange(store.n_words, dtype=np.int64)
    out = np.empty((len(rows), len(ids)), dtype=np.float32)
    step = store.chunk_words
    for chunk in np.unique(rows // step).tolist():
        start, stop = chunk * step, min((chunk + 1) * step, store.n_words)
        lo, hi = np.searchsorted(rows, [start, stop])
        block = store.neurons(ids, rows=slice(start, stop))
        picked = block[rows[lo:hi] - start]
        check_finite(picked, start)
        out[lo:hi] = picked
    return out


# ---------------------------------------------------------------------------- corpus side
@dataclass
class CorpusIndex:
    """Words of the analysed rows with their sentence structure and word-type codes.

    ``rows`` are the store rows analysed (all of them, or those of a sentence sample), in
    increasing order; every other array is aligned with them. Build it with :meth:`build`.
    """

    words: np.ndarray
    sentence_ids: np.ndarray
    positions: np.ndarray
    rows: np.ndarray
    n_sentences_total: int
    n_words_total: int
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.types, self.first, self.inverse, self.counts = np.unique(
            self.words, return_index=True, return_inverse=True, return_counts=True
        )
        self.inverse = self.inverse.reshape(-1)
        # Rows are grouped by sentence, so a sentence's rows are [start, start + length).
        _, self.sent_starts, self.sent_lengths = np.unique(
            self.sentence_ids, return_index=True, return_counts=True
        )
        self.row_start = np.repeat(self.sent_starts, self.sent_lengths)
        self.row_stop = self.row_start + np.repeat(self.sent_lengths, self.sent_lengths)

    @property
    def n_rows(self) -> int:
        """Rows (words) analysed."""
        return len(self.words)

    @property
    def n_sentences(self) -> int:
        """Sentences analysed."""
        return len(self.sent_starts)

    @property
    def sampled(self) -> bool:
        """Whether only a sample of the sentences is analysed."""
        return self.n_sentences < self.n_sentences_total

    def describe(self) -> str:
        """One sentence saying what was analysed, for the pages."""
        if not self.sampled:
            return (f"all {self.n_sentences_total} sentences ({self.n_words_total} words) "
                    "of the corpus")
        return (f"a random sample of {self.n_sentences} of {self.n_sentences_total} sentences "
                f"({self.n_rows} of {self.n_words_total} words; whole store chunks drawn at "
                "random, seed 0)")

    @classmethod
    def build(
        cls,
        store: ActivationStore,
        corpus: Corpus | None = None,
        max_sentences: int | None = None,
        label_layers: Sequence[str] = (),
        seed: int = 0,
    ) -> CorpusIndex:
        """Index the store's words (from ``corpus`` when given: faster than the store's).

        Args:
            store: the activation store.
            corpus: the store's corpus (fingerprint-checked), optional.
            max_sentences: analyse at most this many sentences (a seeded random sample).
            label_layers: corpus label layers to keep, aligned with the analysed rows.
            seed: seed of the sentence sample.
        """
        if corpus is not None:
            store.check_corpus(corpus)
            words = np.asarray(corpus.words(), dtype=object)
            sentence_ids, positions = corpus.sentence_ids(), corpus.positions()
        else:
            words = np.asarray(store.words(), dtype=object)
            sentence_ids, positions = store.sentence_ids(), store.positions()
        n_words = len(words)
        n_sent = store.n_sentences
        rows = np.arange(n_words, dtype=np.int64)
        if max_sentences is not None and max_sentences < n_sent:
            if max_sentences < 1:
                raise NeuronscopeError(f"max_sentences must be >= 1, got {max_sentences}")
            keep = _sample_sentences(sentence_ids, max_sentences, store.chunk_words, seed)
            rows = np.nonzero(keep[sentence_ids])[0]
        labels = {}
        if corpus is not None:
            for layer in label_layers:
                if layer in corpus.labels:
                    labels[layer] = corpus.labels_array(layer)[rows]
        return cls(words[rows], sentence_ids[rows], positions[rows], rows, n_sent, n_words,
                   labels)

    # ------------------------------------------------------------------ searches
    def top_words(self, values: np.ndarray, k: int = N_WORDS, lowest: bool = False,
                  min_count: int = 1) -> list[WordActivation]:
        """Word types ranked by their strongest occurrence (see :func:`top_words`)."""
        _check_k(k)
        values = np.asarray(values, dtype=np.float64)
        if k == 0 or len(values) == 0:
            return []
        signed = -values if lowest else values
        best = np.full(len(self.types), -np.inf)
        np.maximum.at(best, self.inverse, signed)
        sums = np.bincount(self.inverse, weights=values, minlength=len(self.types))
        keep = np.nonzero(self.counts >= min_count)[0]
        order = keep[np.lexsort((self.first[keep], -best[keep]))][:k]
        sign = -1.0 if lowest else 1.0
        return [WordActivation(str(self.types[t]), float(sign * best[t]),
                               float(sums[t] / self.counts[t]), int(self.counts[t]))
                for t in order]

    def top_contexts(self, values: np.ndarray, k: int = N_CONTEXTS, window: int = WINDOW,
                     lowest: bool = False) -> list[Context]:
        """Distinct windows around the most activating occurrences (see :func:`top_contexts`)."""
        _check_k(k, window=window)
        if k == 0 or len(values) == 0:
            return []
        signed = -values if lowest else values
        half = window // 2
        seen: set[tuple[tuple[str, ...], int]] = set()
        out: list[Context] = []
        wanted, done = max(4 * k, 64), 0  # done: candidates a wider retry need not revisit
        while True:
            rows = _ranked_rows(signed, wanted)
            for row in rows[done:].tolist():
                lo = max(row - half, int(self.row_start[row]))
                hi = min(row + half + 1, int(self.row_stop[row]))
                key = (tuple(self.words[lo:hi].tolist()), row - lo)
                if key in seen:
                    continue
                seen.add(key)
                out.append(Context(key[0], key[1], float(values[row]),
                                   int(self.sentence_ids[row]), int(self.positions[row])))
                if len(out) == k:
                    return out
            done = len(rows)
            if done >= len(values):
                return out
            # Too many duplicate windows among the candidates: look further down.
            wanted *= 4

    def top_sentences(self, values: np.ndarray, k: int = N_SENTENCES, reduce: str = "max",
                      lowest: bool = False) -> list[SentenceActivation]:
        """Sentences ranked by their max, mean or min activation (see :func:`top_sentences`)."""
        _check_k(k, reduce=reduce)
        values = np.asarray(values, dtype=np.float64)
        if k == 0 or len(values) == 0:
            return []
        starts, lengths = self.sent_starts, self.sent_lengths
        maxima = np.maximum.reduceat(values, starts)
        means = np.add.reduceat(values, starts) / lengths
        score = {"max": maxima, "mean": means,
                 "min": np.minimum.reduceat(values, starts)}[reduce]
        order = _ranked_rows(-score if lowest else score, k)[:k]
        out = []
        for s in order.tolist():
            lo, hi = int(starts[s]), int(starts[s] + lengths[s])
            out.append(SentenceActivation(
                sentence_id=int(self.sentence_ids[lo]), words=self.words[lo:hi].tolist(),
                activations=[float(v) for v in values[lo:hi]],
                max_activation=float(maxima[s]), mean_activation=float(means[s]),
                score=float(score[s]),
            ))
        return out

    def label_shares(self, values: np.ndarray, n_top: int,
                     max_labels: int = 5) -> dict[str, list[tuple[str, float, float]]]:
        """Per label layer: the labels of the ``n_top`` most activating words.

        Returns ``layer -> [(label, share among the top words, share in the analysed
        corpus)]``, most frequent first; a neuron whose top words are 90% NOUN against a 25%
        base rate is plainly a noun detector.
        """
        if not self.labels or len(values) == 0:
            return {}
        top = _ranked_rows(np.asarray(values, dtype=np.float64), n_top)[:n_top]
        out = {}
        for layer, labels in self.labels.items():
            here = Counter(labels[top].tolist())
            base = Counter(labels.tolist())
            out[layer] = [(str(lab), c / len(top), base[lab] / len(labels))
                          for lab, c in here.most_common(max_labels)]
        return out


# ---------------------------------------------------------------------------- one neuron
def _one(store: ActivationStore, neuron: str | int) -> tuple[CorpusIndex, np.ndarray]:
    values = read_columns(store, [neuron])[:, 0]
    return CorpusIndex.build(store), values


def top_words(
    store: ActivationStore,
    neuron: str | int,
    k: int = N_WORDS,
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
    index, values = _one(store, neuron)
    return index.top_words(values, k, lowest, min_count)


def top_contexts(
    store: ActivationStore,
    neuron: str | int,
    k: int = N_CONTEXTS,
    window: int = WINDOW,
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
    _check_k(k, window=window)
    index, values = _one(store, neuron)
    return index.top_contexts(values, k, window, lowest)


def top_sentences(
    store: ActivationStore,
    neuron: str | int,
    k: int = N_SENTENCES,
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
    _check_k(k, reduce=reduce)
    index, values = _one(store, neuron)
    return index.top_sentences(values, k, reduce, lowest)
