"""Tiny synthetic SAE data: words whose activations are sparse sums of known directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.store import ActivationStore, store_from_arrays
from tests.methods.conftest import word_corpus

N_WORDS, D_IN, N_DICT, K_TRUE = 1400, 12, 24, 2


def sparse_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, codes, dictionary)``: each row is K_TRUE random dictionary directions with
    positive weights; word labels ``A`` when direction 0 is on, else ``B``."""
    rng = np.random.default_rng(seed)
    dictionary = rng.normal(size=(N_DICT, D_IN))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    codes = np.zeros((N_WORDS, N_DICT))
    for i in range(N_WORDS):
        on = rng.choice(N_DICT, K_TRUE, replace=False)
        codes[i, on] = rng.uniform(1.0, 2.0, K_TRUE)
    x = (codes @ dictionary + 0.3).astype(np.float32)  # an offset: b_dec has work to do
    return x, codes, dictionary


@pytest.fixture(scope="session")
def sae_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ActivationStore, object]:
    """A ``hidden`` store with layers 2 and 3 (layer 3 = the sparse data, layer 2 = noise),
    over a corpus labelled by whether direction 0 is on."""
    x, codes, _ = sparse_data()
    rng = np.random.default_rng(1)
    y = np.where(codes[:, 0] > 0, "A", "B")
    corpus = word_corpus(y, name="sparse", layer="tag")
    noise = rng.normal(size=x.shape).astype(np.float32)
    path = Path(tmp_path_factory.mktemp("sae")) / "store"
    store = store_from_arrays(path, corpus, {"hidden": (np.hstack([noise, x]), [2, 3])},
                              model_name="sparse", aggregation="first", chunk_words=128)
    return store, corpus


TRAIN = {"component": "hidden", "layer": 3, "n_latents": 32, "k": 2, "n_epochs": 20,
         "batch_size": 64, "lr": 1e-2, "buffer_rows": 512, "random_state": 0}
