"""Helpers for the explanation tests: tiny stores written from arrays, synthetic corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.store import ActivationStore, store_from_arrays

TAGS = ("NOUN", "VERB", "DET", "ADJ", "ADP")


def write_store(
    path: Path,
    corpus: Corpus,
    rows: np.ndarray,
    layers: tuple[int, ...] = (0,),
    fingerprint: str = "f" * 16,
) -> ActivationStore:
    """Write ``rows`` (n_words, len(layers) * neurons) as a complete ``hidden`` store of
    ``corpus``; stores share a model when they share ``fingerprint``."""
    return store_from_arrays(path, corpus, {"hidden": (np.asarray(rows, np.float32), layers)},
                             model_name="synthetic", model_fingerprint=fingerprint,
                             aggregation="first", chunk_words=64)


def tagged_corpus(n_sentences: int = 300, seed: int = 0, name: str = "tagged") -> Corpus:
    """Sentences of words ``noun0``..``adp5`` with their tag in a ``upos`` layer.

    Each tag has six word types; words of one tag share the tag's name as a prefix.
    """
    rng = np.random.default_rng(seed)
    vocab = {t: [f"{t.lower()}{i}" for i in range(6)] for t in TAGS}
    sentences, labels = [], []
    for _ in range(n_sentences):
        tags = rng.choice(TAGS, int(rng.integers(3, 10)))
        sentences.append([str(rng.choice(vocab[t])) for t in tags])
        labels.append([str(t) for t in tags])
    return Corpus(sentences, {"upos": labels}, name=name)


@pytest.fixture(scope="module")
def tagged() -> Corpus:
    """A seeded 300-sentence tagged corpus (about 1,800 words)."""
    return tagged_corpus()
