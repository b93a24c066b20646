"""Helpers for the explanation tests: tiny stores written from arrays, synthetic corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.store.store import ActivationStore, StoreWriter

TAGS = ("NOUN", "VERB", "DET", "ADJ", "ADP")


def write_store(
    path: Path,
    corpus: Corpus,
    rows: np.ndarray,
    layers: tuple[int, ...] = (0,),
    component: str = "hidden",
    fingerprint: str = "f" * 16,
) -> ActivationStore:
    """Write ``rows`` (n_words, len(layers) * neurons) as a complete store of ``corpus``."""
    rows = np.asarray(rows, dtype=np.float32)
    neurons = rows.shape[1] // len(layers)
    meta = {
        "tool_version": "test",
        "model": {"name": "synthetic", "gguf_file": None, "model_type": "test",
                  "config_hash": "c", "fingerprint": fingerprint, "random_init": True,
                  "seed": 0, "num_layers": max(layers)},
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint,
                   "n_sentences": corpus.n_sentences, "n_words": corpus.n_words},
        "components": {component: {"layers": list(layers), "neurons": neurons,
                                   "head_dim": None, "source": "hidden_states",
                                   "modules": {}}},
        "aggregation": "first", "sentence_pooling": "none", "dtype": "float32",
        "block_words": 256, "batch_size": 1, "windows_config": None, "windows": {},
    }
    writer = StoreWriter.create(path, meta, corpus, chunk_words=64)
    writer.write_rows(component, 0, rows)
    writer.commit(corpus.n_words, corpus.n_sentences)
    writer.finalize()
    return ActivationStore(path)


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
