"""Concept search, neuron -> concepts: the words and contexts that activate a neuron most."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from neuronscope.store.store import ActivationStore


@dataclass(frozen=True)
class WordActivation:
    """A word type with its highest activation, mean activation and how often it occurs."""

    word: str
    max_activation: float
    mean_activation: float
    count: int


def top_words(
    store: ActivationStore, neuron: str | int, k: int = 20, lowest: bool = False
) -> list[WordActivation]:
    """The ``k`` word types whose occurrences activate ``neuron`` most (or least).

    Word types are ranked by their strongest occurrence; counts and mean activation over all
    occurrences come with them. Reads one column of the store, streaming by chunks.
    """
    values = np.concatenate([block[:, 0] for _, _, block in store.iter_chunks([neuron])])
    sign = -1.0 if lowest else 1.0
    words = store.words()
    best: dict[str, float] = {}
    sums: dict[str, float] = defaultdict(float)
    counts: Counter = Counter()
    for word, value in zip(words, values.tolist(), strict=True):
        v = sign * value
        if v > best.get(word, -np.inf):
            best[word] = v
        sums[word] += value
        counts[word] += 1
    ranked = sorted(best, key=lambda w: -best[w])[:k]
    return [
        WordActivation(w, sign * best[w], sums[w] / counts[w], counts[w]) for w in ranked
    ]
