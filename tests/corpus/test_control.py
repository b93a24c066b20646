"""Control tasks (Hewitt & Liang 2019): one random label per word type, drawn from the
layer's empirical label distribution."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from neuronscope.corpus.control import control_layer, control_mapping
from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.probeless import Probeless

SENTENCES = [
    "the cat sat on the mat".split(),
    "a dog ran to the cat".split(),
    "the dog sat".split(),
]
UPOS = {"the": "DET", "a": "DET", "cat": "NOUN", "mat": "NOUN", "dog": "NOUN", "sat": "VERB",
        "ran": "VERB", "on": "ADP", "to": "ADP"}


@pytest.fixture
def corpus() -> Corpus:
    labels = {
        "upos": [[UPOS[w] for w in s] for s in SENTENCES],
        # "cat" is unlabelled in its second occurrence only.
        "partial": [["x", "y", "x", "y", "x", "y"], ["y", "x", "x", "y", "x", NO_LABEL],
                    ["x", "x", "y"]],
    }
    return Corpus(SENTENCES, labels, {"topic": ["a", "b", "c"]}, name="tiny")


def labels_by_type(corpus: Corpus, layer: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for words, labels in zip(corpus.sentences, corpus.layer(layer), strict=True):
        for w, label in zip(words, labels, strict=True):
            if label != NO_LABEL:
                seen[w].add(label)
    return seen


def test_same_type_same_label_and_labels_from_original(corpus):
    new = control_layer(corpus, "upos", random_state=3)
    assert new.layers == ["upos", "partial", "upos-control"]
    by_type = labels_by_type(new, "upos-control")
    assert set(by_type) == set(UPOS)
    assert all(len(labels) == 1 for labels in by_type.values())
    assert set(new.labels_array("upos-control")) <= {"DET", "NOUN", "VERB", "ADP"}
    mapping = control_mapping(corpus, "upos", random_state=3)
    assert [mapping[w] for w in new.words()] == new.labels_array("upos-control").tolist()


def test_corpus_not_mutated_and_still_matches_its_store(corpus):
    before = (corpus.layers, {k: [list(s) for s in v] for k, v in corpus.labels.items()})
    new = control_layer(corpus, "upos", name="ctl")
    assert (corpus.layers, corpus.labels) == before
    assert "ctl" in new.layers and "upos-control" not in new.layers
    assert new.fingerprint == corpus.fingerprint  # same words: same store
    assert new.sentences == corpus.sentences and new.sentence_labels == corpus.sentence_labels
    assert new.labels["upos"] == corpus.labels["upos"]


def test_deterministic_and_seed_dependent():
    # Many types, so that two seeds agreeing everywhere by chance is impossible in practice.
    rng = np.random.default_rng(0)
    sentences = [[f"w{i}" for i in rng.integers(0, 300, 12)] for _ in range(50)]
    labels = {"tag": [[str(int(w[1:]) % 4) for w in s] for s in sentences]}
    corpus = Corpus(sentences, labels)
    a = control_layer(corpus, "tag", random_state=1).labels_array("tag-control")
    b = control_layer(corpus, "tag", random_state=1).labels_array("tag-control")
    c = control_layer(corpus, "tag", random_state=2).labels_array("tag-control")
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_distribution_close_to_original():
    # 4000 types x 5 occurrences, token labels drawn A 50%, B 30%, C 15%, D 5%.
    rng = np.random.default_rng(7)
    probs = {"A": 0.5, "B": 0.3, "C": 0.15, "D": 0.05}
    words = [f"t{i}" for i in range(4000) for _ in range(5)]
    order = rng.permutation(len(words))
    flat = [words[i] for i in order]
    tags = rng.choice(list(probs), size=len(flat), p=list(probs.values())).tolist()
    sentences = [flat[i : i + 20] for i in range(0, len(flat), 20)]
    labels = {"tag": [tags[i : i + 20] for i in range(0, len(flat), 20)]}
    corpus = Corpus(sentences, labels)
    control = control_layer(corpus, "tag", random_state=0).labels_array("tag-control")
    original = Counter(tags)
    got = Counter(control.tolist())
    assert set(got) <= set(original)
    for tag in probs:
        assert got[tag] / len(flat) == pytest.approx(original[tag] / len(flat), abs=0.03)
    # Per type as well: the label drawn for each of the 4000 types follows the distribution.
    mapping = control_mapping(corpus, "tag", random_state=0)
    per_type = Counter(mapping.values())
    for tag, p in probs.items():
        assert per_type[tag] / 4000 == pytest.approx(p, abs=0.03)


def test_unlabelled_words_stay_unlabelled(corpus):
    new = control_layer(corpus, "partial", random_state=0)
    ctl = new.labels_array("partial-control")
    orig = corpus.labels_array("partial")
    assert ((ctl == NO_LABEL) == (orig == NO_LABEL)).all()
    assert set(ctl[orig != NO_LABEL]) <= {"x", "y"}
    # The labelled occurrence of "cat" still carries the type's label.
    mapping = control_mapping(corpus, "partial", random_state=0)
    assert ctl[1] == mapping["cat"] and ctl[11] == NO_LABEL


def test_usable_by_ranking_methods(corpus):
    new = control_layer(corpus, "upos", random_state=0)
    x = np.random.default_rng(0).standard_normal((new.n_words, 5)).astype(np.float32)
    ranking = Probeless().rank(x, new.concept_labels("upos-control"))
    assert set(ranking.concept_names) == set(new.labels_array("upos-control"))
    assert ranking.label_layer == "upos-control"


def test_errors(corpus):
    with pytest.raises(NeuronscopeError, match="no label layer 'xpos'"):
        control_layer(corpus, "xpos")
    with pytest.raises(NeuronscopeError, match="own source layer"):
        control_layer(corpus, "upos", name="upos")
    blank = corpus.with_layer("blank", [[NO_LABEL] * len(s) for s in SENTENCES])
    with pytest.raises(NeuronscopeError, match="no labelled word"):
        control_layer(blank, "blank")
