"""The Corpus model as used by the readers: binary views, fingerprints, immutability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuronscope.corpus import Corpus, corpus_from_records, read_conllu, write_conllu
from neuronscope.errors import CorpusFormatError, NeuronscopeError


@pytest.fixture()
def corpus() -> Corpus:
    return Corpus(
        [["a", "b", "c", "d"], ["e", "f"], ["g", "h", "i", "j"]],
        {"pos": [["N", "V", "N", "X"], ["V", "X"], ["X", "X", "N", "X"]]},
    )


def test_binary_view_unbalanced(corpus: Corpus) -> None:
    view = corpus.binary("pos", "N")
    assert view.indices.tolist() == list(range(10))
    assert view.y.tolist() == [1, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert view.n_positive == 3


def test_binary_view_balanced_is_seeded(corpus: Corpus) -> None:
    view = corpus.binary("pos", "N", balance=True, random_state=3)
    assert int(view.y.sum()) == 3 and len(view.y) == 6  # equal class sizes
    assert view.indices.tolist() == sorted(view.indices.tolist())
    labels = corpus.labels_array("pos")
    assert ((labels[view.indices] == "N").astype(int) == view.y).all()
    again = corpus.binary("pos", "N", balance=True, random_state=3)
    assert np.array_equal(view.indices, again.indices)


def test_binary_view_unknown_concept(corpus: Corpus) -> None:
    with pytest.raises(NeuronscopeError, match="does not occur"):
        corpus.binary("pos", "ADJ")


def test_fingerprint(corpus: Corpus) -> None:
    same_words = Corpus([list(s) for s in corpus.sentences])
    assert same_words.fingerprint == corpus.fingerprint
    relabelled = corpus.with_layer("other", [["z"] * len(s) for s in corpus.sentences])
    assert relabelled.fingerprint == corpus.fingerprint
    two, one = Corpus([["a", "b"], ["c", "d"]]), Corpus([["a", "b", "c", "d"]])
    assert two.fingerprint != one.fingerprint  # sentence boundaries count
    assert Corpus([["a", "b"]]).fingerprint != Corpus([["a", "B"]]).fingerprint


def test_fingerprint_survives_conllu_round_trip(tmp_path: Path, corpus: Corpus) -> None:
    write_conllu(corpus, tmp_path / "c.conllu")
    assert read_conllu(tmp_path / "c.conllu").fingerprint == corpus.fingerprint


def test_with_layer_does_not_mutate(corpus: Corpus) -> None:
    before = {k: [list(s) for s in v] for k, v in corpus.labels.items()}
    new = corpus.with_layer("pos", [["Q"] * len(s) for s in corpus.sentences])
    assert corpus.labels == before
    assert new.labels["pos"][0] == ["Q"] * 4


def test_layer_length_mismatch() -> None:
    with pytest.raises(CorpusFormatError, match="2 labels for 3 words"):
        Corpus([["a", "b", "c"]], {"x": [["1", "2"]]})


def test_corpus_from_records() -> None:
    c = corpus_from_records([{"words": ["a"], "t": "x"}, {"words": ["b", "c"], "p": ["1", "2"]}])
    assert c.sentence_labels == {"t": ["x", "_"]}
    assert c.labels == {"p": [["_"], ["1", "2"]]}
