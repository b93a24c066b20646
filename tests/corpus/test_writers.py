"""Writers: NeuroX parallel files and CoNLL-U, round trips, validation, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neuronscope.corpus import (
    Corpus,
    read_conllu,
    read_parallel,
    write_conllu,
    write_parallel,
)
from neuronscope.errors import CorpusFormatError, NeuronscopeError


@pytest.fixture()
def corpus() -> Corpus:
    return Corpus(
        [["The", "dogs", "ran", "."], ["Mary", "sleeps"]],
        {
            "upos": [["DET", "NOUN", "VERB", "PUNCT"], ["PROPN", "VERB"]],
            "lemma": [["the", "dog", "run", "."], ["Mary", "sleep"]],
            "Number": [["_", "Plur", "_", "_"], ["Sing", "Sing"]],
            "Tense": [["_", "_", "Past", "_"], ["_", "Pres"]],
            "suffix": [["_", "-s", "_", "_"], ["_", "-s"]],
        },
        {"tense": ["past", "present"], "type": ["statement", "statement"]},
        name="mini",
    )


def test_parallel_round_trip(tmp_path: Path, corpus: Corpus) -> None:
    labels = {"upos": tmp_path / "upos.txt", "Number": tmp_path / "num.txt"}
    write_parallel(corpus, tmp_path / "text.txt", labels)
    assert (tmp_path / "text.txt").read_text() == "The dogs ran .\nMary sleeps\n"
    assert (tmp_path / "num.txt").read_text() == "_ Plur _ _\nSing Sing\n"
    back = read_parallel(tmp_path / "text.txt", labels)
    assert back.sentences == corpus.sentences
    assert back.labels == {k: corpus.labels[k] for k in labels}


def test_parallel_rejects_labels_with_whitespace(tmp_path: Path, corpus: Corpus) -> None:
    bad = corpus.with_layer("ner", [["O", "O", "O", "O"], ["B PER", "O"]])
    with pytest.raises(CorpusFormatError, match=r"ner\.txt: layer 'ner', sentence 1, word 0"):
        write_parallel(bad, tmp_path / "t.txt", {"ner": tmp_path / "ner.txt"})
    # Validation happens before writing: no file appears.
    assert not (tmp_path / "t.txt").exists()
    assert not (tmp_path / "ner.txt").exists()


def test_parallel_rejects_words_with_whitespace(tmp_path: Path) -> None:
    c = Corpus([["New York", "is", "big"]])
    with pytest.raises(CorpusFormatError, match="contains whitespace"):
        write_parallel(c, tmp_path / "t.txt")


def test_parallel_unknown_layer(tmp_path: Path, corpus: Corpus) -> None:
    with pytest.raises(NeuronscopeError, match="no label layer 'xpos'"):
        write_parallel(corpus, tmp_path / "t.txt", {"xpos": tmp_path / "x.txt"})


def test_conllu_round_trip(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "out" / "mini.conllu"  # the folder is created
    write_conllu(corpus, path)
    back = read_conllu(path)
    assert back.sentences == corpus.sentences
    assert back.labels == corpus.labels
    assert back.sentence_labels == corpus.sentence_labels


def test_conllu_columns(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "mini.conllu"
    write_conllu(corpus, path)
    lines = path.read_text().splitlines()
    assert lines[:4] == [
        "# sent_id = 1",
        "# text = The dogs ran .",
        "# label.tense = past",
        "# label.type = statement",
    ]
    # ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC; xpos/deprel/head absent -> "_".
    assert lines[5].split("\t") == [
        "2", "dogs", "dog", "NOUN", "_", "Number=Plur", "_", "_", "_", "label.suffix=-s",
    ]
    assert lines[6].split("\t")[5] == "Tense=Past"
    assert lines[-1] == ""


def test_conllu_head_layer_and_sorted_feats(tmp_path: Path) -> None:
    c = Corpus(
        [["Hi", "there"]],
        {"head": [["0", "1"]], "deprel": [["root", "advmod"]],
         "b": [["x", "_"]], "Zeta": [["1", "2"]], "alpha": [["_", "_"]], "Alpha": [["a", "_"]]},
    )
    path = tmp_path / "h.conllu"
    write_conllu(c, path)
    rows = [line.split("\t") for line in path.read_text().splitlines() if line[:1].isdigit()]
    assert rows[0][5] == "Alpha=a|Zeta=1"
    assert rows[1][5] == "Zeta=2"
    assert [r[6] for r in rows] == ["0", "1"]
    assert rows[0][9] == "label.b=x" and rows[1][9] == "_"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"upos": [["A\tB"]]}, "cannot be written"),
        ({"Number": [["Sing|Plur"]]}, "contains '|'"),
        ({"Bad=Key": [["x"]]}, "contains '='"),
        ({"lemma": [[""]]}, "cannot be written"),
    ],
)
def test_conllu_rejects_unwritable_values(
    tmp_path: Path, labels: dict, message: str
) -> None:
    with pytest.raises(CorpusFormatError, match=message):
        write_conllu(Corpus([["w"]], labels), tmp_path / "bad.conllu")
    assert not (tmp_path / "bad.conllu").exists()


def test_conllu_rejects_empty_sentence(tmp_path: Path) -> None:
    with pytest.raises(NeuronscopeError, match="sentence 1 is empty"):
        write_conllu(Corpus([["a"], []]), tmp_path / "e.conllu")


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "c.conllu"
    path.write_text("old content")
    write_conllu(corpus, path)
    assert read_conllu(path).sentences == corpus.sentences
    assert os.listdir(tmp_path) == ["c.conllu"]


def test_failed_write_keeps_old_file(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "c.conllu"
    path.write_text("old content")
    bad = corpus.with_layer("upos", [["X", "X", "X", "X"], ["X", "Y\nZ"]])
    with pytest.raises(CorpusFormatError):
        write_conllu(bad, path)
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["c.conllu"]
