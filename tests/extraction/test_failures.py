"""Bad input fails early with a NeuronscopeError and leaves what is on disk untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import (
    EmptyCorpusError,
    ModelLoadError,
    NeuronscopeError,
    StoreError,
    UnknownComponentError,
)
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def existing_store(tmp_path, small_corpus, tiny_bert) -> Path:
    out = tmp_path / "store"
    extract(small_corpus, out, tiny_bert, components=("hidden",), progress=False)
    return out


def test_existing_store_without_overwrite_is_untouched(existing_store, small_corpus, tiny_bert):
    before = _snapshot(existing_store)
    assert "neuronscope.json" in before
    with pytest.raises(StoreError, match="already exists.*overwrite"):
        extract(small_corpus, existing_store, tiny_bert, components=("hidden", "mlp"),
                aggregation="max", progress=False)
    # The model is not even needed to refuse: a bogus model name fails on the store first.
    with pytest.raises(StoreError, match="already exists"):
        extract(small_corpus, existing_store, "/nonexistent/model", progress=False)
    assert _snapshot(existing_store) == before
    assert ActivationStore(existing_store).complete


def test_overwrite_replaces_an_existing_store(existing_store, small_corpus, tiny_bert):
    store = extract(small_corpus, existing_store, tiny_bert, components=("hidden", "mlp"),
                    aggregation="max", overwrite=True, progress=False)
    assert store.components == ["hidden", "mlp"]
    assert ActivationStore(existing_store).meta["aggregation"] == "max"


def test_overwrite_refuses_a_folder_that_is_not_a_store(tmp_path, small_corpus, tiny_bert):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("do not delete")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _snapshot(folder)
    with pytest.raises(StoreError, match="already exists"):
        extract(small_corpus, folder, tiny_bert, progress=False)
    with pytest.raises(StoreError, match="not a neuronscope store"):
        extract(small_corpus, folder, tiny_bert, overwrite=True, progress=False)
    assert _snapshot(folder) == before


def test_output_path_that_is_a_file(tmp_path, small_corpus, tiny_bert):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(StoreError, match="already exists"):
        extract(small_corpus, path, tiny_bert, progress=False)
    with pytest.raises(StoreError, match="not a neuronscope store"):
        extract(small_corpus, path, tiny_bert, overwrite=True, progress=False)
    assert path.read_text() == "keep me"


def test_empty_existing_folder_is_fine(tmp_path, small_corpus, tiny_bert):
    out = tmp_path / "empty"
    out.mkdir()
    assert extract(small_corpus, out, tiny_bert, progress=False).complete


@pytest.mark.parametrize("corpus", [Corpus([], name="none"), Corpus([[], []], name="blank")])
def test_empty_corpus(corpus, tmp_path, tiny_bert):
    with pytest.raises(EmptyCorpusError, match="empty"):
        extract(corpus, tmp_path / "out", tiny_bert, progress=False)
    assert not (tmp_path / "out").exists()


def test_unknown_component(tmp_path, small_corpus, tiny_bert):
    with pytest.raises(UnknownComponentError) as info:
        extract(small_corpus, tmp_path / "out", tiny_bert, components=("hiden",),
                progress=False)
    assert "hiden" in str(info.value)
    assert all(name in str(info.value) for name in ("hidden", "mlp", "attn"))
    assert not (tmp_path / "out").exists()


def test_unknown_layer(tmp_path, small_corpus, tiny_bert):
    with pytest.raises(UnknownComponentError, match=r"unknown layer\(s\) \[9\]") as info:
        extract(small_corpus, tmp_path / "out", tiny_bert, components=("hidden", "mlp"),
                layers="0,9", progress=False)
    assert "hidden: 0-2" in str(info.value) and "mlp: 0-1" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unknown_module(tmp_path, small_corpus, tiny_bert):
    with pytest.raises(UnknownComponentError, match="did you mean"):
        extract(small_corpus, tmp_path / "out", tiny_bert, components=(),
                modules={"x": ["bert.encoder.layer.0.outpt"]}, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"aggregation": "median"}, "unknown aggregation 'median'"),
        ({"aggregation": "MEAN"}, "unknown aggregation"),
        ({"dtype": "float64"}, "unknown dtype 'float64'"),
        ({"dtype": "int8"}, "unknown dtype"),
        ({"sentence_pooling": "cls"}, "unknown sentence pooling"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings(kwargs, pattern, tmp_path, small_corpus, tiny_bert):
    with pytest.raises(NeuronscopeError, match=pattern):
        extract(small_corpus, tmp_path / "out", tiny_bert, progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_missing_model_path(tmp_path, small_corpus):
    with pytest.raises(ModelLoadError, match="does not exist"):
        extract(small_corpus, tmp_path / "out", "/nonexistent/model", progress=False)
    assert not (tmp_path / "out").exists()


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a neuronscope activation store"):
        ActivationStore(tmp_path)
    (tmp_path / "neuronscope.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt metadata"):
        ActivationStore(tmp_path)
    (tmp_path / "neuronscope.json").write_text('{"format": "something-else"}')
    with pytest.raises(StoreError, match="not a neuronscope store"):
        ActivationStore(tmp_path)


def test_max_length_override_windows_more(tmp_path, small_corpus, tiny_bert, extracted):
    store = extract(small_corpus, tmp_path / "short", tiny_bert, max_length=16, progress=False)
    windows = store.info()["windows"]
    assert windows["sentences_windowed"] > 1
    assert store.meta["windows_config"]["max_length"] == 16
    assert np.isfinite(store.matrix()).all()
    assert store.n_words == small_corpus.n_words
