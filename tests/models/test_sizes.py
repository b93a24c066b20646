"""Store sizes of model families (the README's "Scale" table)."""

from __future__ import annotations

import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.models.sizes import FAMILIES, size_table, store_bytes


def test_llama_8b_mlp_store_matches_the_issue():
    llama = next(f for f in FAMILIES if f.name == "Llama-3.1-8B")
    assert llama.mlp_neurons == 458_752  # 32 x 14,336
    assert store_bytes(200_000, llama.mlp_neurons, "float16") == 183_500_800_000  # ~184 GB


def test_minilm_matches_its_stores():
    minilm = FAMILIES[0]
    # bench/unsupervised.py's hidden,mlp store of MiniLM: 7 x 384 + 6 x 1536 = 11,904.
    assert minilm.hidden_neurons + minilm.mlp_neurons == 11_904
    assert store_bytes(10, 2688, "float32") == 10 * 2688 * 4
    assert store_bytes(10, 2688, "bfloat16") == store_bytes(10, 2688, "float16")


def test_table_and_errors():
    table = size_table(200_000).splitlines()
    assert len(table) == 2 + len(FAMILIES)
    assert "| Llama-3.1-8B | 135,168 | 458,752 | 237.6 GB | 475.1 GB |" in table
    with pytest.raises(NeuronscopeError, match="dtype"):
        store_bytes(1, 1, "float99")
