"""Helpers: tiny activation stores written straight from arrays with ``StoreWriter``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.store.store import ActivationStore, StoreWriter


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
    meta_components = {}
    for name, rows in components.items():
        if rows.shape[1] % len(layers):
            raise ValueError("columns must split evenly into layers")
        meta_components[name] = {"layers": list(layers), "neurons": rows.shape[1] // len(layers),
                                 "head_dim": None, "source": "test", "modules": {}}
    meta = {
        "tool_version": "test",
        "model": {"name": "synthetic", "gguf_file": None, "model_type": "test",
                  "config_hash": "c", "fingerprint": model_fingerprint, "random_init": True,
                  "seed": 0, "num_layers": max(layers)},
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint,
                   "n_sentences": corpus.n_sentences, "n_words": corpus.n_words},
        "components": meta_components,
        "aggregation": "first", "sentence_pooling": "none", "dtype": "float32",
        "block_words": 256, "batch_size": 1, "windows_config": None, "windows": {},
    }
    writer = StoreWriter.create(path, meta, corpus, chunk_words=chunk_words)
    for name, rows in components.items():
        writer.write_rows(name, 0, rows.astype(np.float32))
    writer.commit(corpus.n_words, corpus.n_sentences)
    writer.finalize()
    return ActivationStore(path)


@pytest.fixture
def corpus() -> Corpus:
    return make_corpus()
