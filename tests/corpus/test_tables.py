"""Corpora from Hugging Face datasets (in memory and saved to disk) and pandas DataFrames."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus import corpus_from_dataset, corpus_from_pandas, load_corpus
from neuronscope.corpus.tables import parse_table_format
from neuronscope.errors import CorpusFormatError, NeuronscopeError
from neuronscope.store import ActivationStore

POS = ["DET", "NOUN", "VERB"]
NER = ["O", "B-PER"]


def conll_like(n: int = 12) -> datasets.Dataset:
    """A CoNLL-2003-shaped dataset: tokens, ClassLabel tags, a sentence ClassLabel, an id."""
    tokens = [["the", "cat", "sleeps"], ["a", "dog", "runs", "Bob"]] * (n // 2)
    pos = [[0, 1, 2], [0, 1, 2, 1]] * (n // 2)
    ner = [[0, 0, 0], [0, 0, 0, 1]] * (n // 2)
    features = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "pos_tags": datasets.Sequence(datasets.ClassLabel(names=POS)),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NER)),
        "topic": datasets.ClassLabel(names=["pets", "people"]),
    })
    return datasets.Dataset.from_dict(
        {"id": [str(i) for i in range(n)], "tokens": tokens, "pos_tags": pos,
         "ner_tags": ner, "topic": [i % 2 for i in range(n)]}, features=features)


def test_dataset_columns_detected_and_classlabels_resolved():
    corpus = corpus_from_dataset(conll_like())
    assert corpus.sentences[1] == ["a", "dog", "runs", "Bob"]
    assert set(corpus.layers) == {"pos_tags", "ner_tags"}  # the id column is no label
    assert corpus.labels["pos_tags"][1] == ["DET", "NOUN", "VERB", "NOUN"]
    assert corpus.labels["ner_tags"][1][3] == "B-PER"
    assert corpus.sentence_labels["topic"][:2] == ["pets", "people"]


def test_named_columns_and_errors():
    ds = conll_like()
    corpus = corpus_from_dataset(ds, label_columns=["ner_tags"], sentence_label_columns=[])
    assert corpus.layers == ["ner_tags"] and not corpus.sentence_labels
    with pytest.raises(NeuronscopeError, match="'nope' not in the table"):
        corpus_from_dataset(ds, tokens_column="nope")
    with pytest.raises(NeuronscopeError, match="pick one"):
        corpus_from_dataset(datasets.DatasetDict({"train": ds, "dev": ds}))
    bad = datasets.Dataset.from_dict({"tokens": [["a", "b"]], "tags": [["X"]]})
    with pytest.raises(CorpusFormatError, match="row 0, column 'tags': 1 labels for 2"):
        corpus_from_dataset(bad, label_columns=["tags"])


def test_pandas_frame():
    frame = pd.DataFrame({"words": [["a", "b"], ["c"]], "tag": [["X", "Y"], ["Z"]],
                          "genre": ["news", "web"]})
    corpus = corpus_from_pandas(frame, sentence_label_columns=["genre"])
    assert corpus.sentences == [["a", "b"], ["c"]]
    assert corpus.labels["tag"] == [["X", "Y"], ["Z"]]
    assert corpus.sentence_labels["genre"] == ["news", "web"]


def test_saved_dataset_dict_needs_a_split(tmp_path):
    ds = conll_like()
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(NeuronscopeError, match="choose one"):
        load_corpus(tmp_path / "dd", format="hf-dataset")
    corpus = load_corpus(tmp_path / "dd", format="hf-dataset:split=validation,labels=pos_tags")
    assert corpus.layers == ["pos_tags"] and corpus.n_sentences == len(ds)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    from_parquet = load_corpus(tmp_path / "d.parquet", format="hf-dataset")
    assert from_parquet.sentences == corpus.sentences


def test_format_options_are_checked():
    assert parse_table_format("hf-dataset:tokens=w,labels=a+b") == {
        "tokens_column": "w", "label_columns": ["a", "b"]}
    with pytest.raises(NeuronscopeError, match="KEY=VALUE"):
        parse_table_format("hf-dataset:colour=red")


def test_extract_reads_a_dataset_saved_to_disk(tmp_path, tiny_bert_dir):
    ds = conll_like()
    ds.save_to_disk(str(tmp_path / "conll"))
    out = tmp_path / "store"
    result = CliRunner().invoke(app, [
        "extract", str(tmp_path / "conll"), "--format", "hf-dataset", "--out", str(out),
        "--model", str(tiny_bert_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    store = ActivationStore(out)
    corpus = load_corpus(tmp_path / "conll", format="hf-dataset")
    store.check_corpus(corpus)
    assert store.n_words == corpus.n_words == sum(len(t) for t in ds["tokens"])
    assert list(store.words()[:3]) == ["the", "cat", "sleeps"]
    assert np.isfinite(store.matrix()).all()
