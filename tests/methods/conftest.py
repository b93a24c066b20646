"""Helpers for the method tests: labelled corpora of made-up words, and stores over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.store import ActivationStore, store_from_arrays


def word_corpus(y: np.ndarray, name: str = "planted", layer: str = "tag",
                sentence_length: int = 7) -> Corpus:
    """Words ``w0``, ``w1``, ... labelled ``y`` in ``layer``, cut into sentences of
    ``sentence_length`` words."""
    words = [f"w{i}" for i in range(len(y))]

    def cut(seq) -> list[list]:
        return [list(seq[i : i + sentence_length]) for i in range(0, len(seq), sentence_length)]

    return Corpus(cut(words), {layer: cut(y)}, name=name)


def labelled_store(path: Path, rows: np.ndarray, y: np.ndarray, name: str = "planted",
                   layer: str = "tag", sentence_length: int = 7, chunk_words: int = 64,
                   ) -> tuple[ActivationStore, Corpus]:
    """A ``hidden`` store of ``rows`` (2 layers, chunks of 64 words) over
    :func:`word_corpus` of ``y``, and that corpus."""
    corpus = word_corpus(y, name, layer, sentence_length)
    store = store_from_arrays(path, corpus, {"hidden": (rows, [0, 1])}, model_name="planted",
                              aggregation="first", chunk_words=chunk_words)
    return store, corpus
