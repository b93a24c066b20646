"""Helpers: tiny activation stores written straight from arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.store import ActivationStore, store_from_arrays


def make_corpus(n_sentences: int = 40, length: int = 6, seed: int = 0,
                name: str = "synthetic") -> Corpus:
    """Sentences of ``length`` words drawn from a small vocabulary (distinct per seed)."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{seed}_{i}" for i in range(25)]
    sentences = [[vocab[j] for j in rng.integers(0, len(vocab), length)]
                 for _ in range(n_sentences)]
    return Corpus(sentences, name=name)


def write_store(path: Path, corpus: Corpus, components: dict[str, np.ndarray],
                layers: tuple[int, ...], chunk_words: int = 16,
                model_fingerprint: str = "m" * 16) -> ActivationStore:
    """Write a store whose component ``c`` holds ``components[c]`` (rows x layers*neurons)."""
    arrays = {name: (rows.astype(np.float32), layers) for name, rows in components.items()}
    return store_from_arrays(
        path, corpus, arrays,
        model_name="synthetic", model_fingerprint=model_fingerprint, aggregation="first",
        chunk_words=chunk_words,
    )


@pytest.fixture
def corpus() -> Corpus:
    return make_corpus()
