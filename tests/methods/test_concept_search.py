"""Concept search on a tiny store with planted activations: exact words, contexts, sentences,
concepts, and the error paths."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError, UnknownComponentError
from neuronscope.methods import concept_search, inspection
from neuronscope.methods.concept_search import ConceptMatch, concept_layers, neuron_concepts
from neuronscope.methods.inspection import (
    Context,
    SentenceActivation,
    WordActivation,
    top_contexts,
    top_sentences,
    top_words,
)
from neuronscope.store import ActivationStore, store_from_arrays

# Flat rows:  S0: 0-5, S1: 6-8, S2: 9-14, S3: 15-16, S4: 17-19
SENTENCES = [
    "the cat sat on the mat".split(),
    "a dog ran".split(),
    "the cat sat on the mat".split(),  # same words as S0: its windows duplicate S0's
    "birds fly".split(),
    "the dog sat".split(),
]
UPOS = {"the": "DET", "a": "DET", "cat": "NOUN", "mat": "NOUN", "dog": "NOUN", "birds": "NOUN",
        "sat": "VERB", "ran": "VERB", "fly": "VERB", "on": "ADP"}
ANIMALS = {"cat", "dog", "birds"}
N_WORDS = 20

CAT = "L0.hidden.0"  # planted: cat > dog > everything else
NOUN = "L0.hidden.1"  # planted: high exactly on nouns
SENT = "L1.hidden.0"  # planted: per-sentence patterns


def planted_rows() -> np.ndarray:
    rows = np.zeros((N_WORDS, 6), dtype=np.float32)
    # CAT: distinct small negative background, cat rows 1 and 10, dog rows 7 and 18.
    rows[:, 0] = -np.arange(N_WORDS, dtype=np.float32) / 10
    rows[[1, 10, 7, 18], 0] = [5.0, 4.0, 3.0, 2.0]
    # NOUN: 2 + a little on noun rows (mat highest, so "animal" is not a perfect match).
    words = [w for s in SENTENCES for w in s]
    for i, w in enumerate(words):
        rows[i, 1] = (3.0 if w == "mat" else 2.0 + i / 100) if UPOS[w] == "NOUN" else -i / 100
    # SENT: max ranking S3 > S0 > S1 > S4 > S2, mean ranking S3 > S1 > S4 > S0 > S2.
    rows[:, 3] = [0, 0, 3, 0, 0, 0, 2, 2, 2, -1, -1, -1, -1, -1, -1, 1, 4, 0.5, 0.75, 0.75]
    rows[:, 4] = np.arange(N_WORDS)  # other neurons: must never be read
    return rows


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    labels = {
        "upos": [[UPOS[w] for w in s] for s in SENTENCES],
        "animal": [["yes" if w in ANIMALS else NO_LABEL for w in s] for s in SENTENCES],
        "constant": [["x"] * len(s) for s in SENTENCES],
    }
    return Corpus(SENTENCES, labels, name="planted")


@pytest.fixture(scope="module")
def store(tmp_path_factory, corpus) -> ActivationStore:
    """A ``hidden`` store (layers 0 and 1, 3 neurons each, chunks of 4 words) of the rows."""
    return store_from_arrays(tmp_path_factory.mktemp("cs") / "store", corpus,
                             {"hidden": (planted_rows(), [0, 1])}, chunk_words=4)


@pytest.fixture
def reads(store, monkeypatch) -> list[list[int]]:
    """Record the neuron ids of every read, and fail on any whole-matrix read."""
    seen: list[list[int]] = []
    original = ActivationStore.neurons

    def spy(self, neurons, rows=None):
        ids = self.layout.ids(neurons)
        seen.append(ids.tolist())
        return original(self, ids, rows)

    def no_matrix(self, rows=None):
        raise AssertionError("concept search must not read every neuron")

    monkeypatch.setattr(ActivationStore, "neurons", spy)
    monkeypatch.setattr(ActivationStore, "matrix", no_matrix)
    return seen


# ---------------------------------------------------------------------------- words
def test_top_words_exact(store, reads):
    got = top_words(store, CAT, k=3)
    assert got[0] == WordActivation("cat", 5.0, 4.5, 2)
    assert got[1] == WordActivation("dog", 3.0, 2.5, 2)
    # Third: the highest background value, "the" at row 0 (0.0); mean over its 5 rows.
    the_rows = [0, 4, 9, 13, 17]
    assert got[2].word == "the" and got[2].max_activation == 0.0 and got[2].count == 5
    assert got[2].mean_activation == pytest.approx(np.mean([-r / 10 for r in the_rows]))
    assert reads and all(ids == [0] for ids in reads)  # only the neuron's own column


def test_top_words_lowest_min_count_and_ids(store):
    lowest = top_words(store, CAT, k=2, lowest=True)
    # Lowest rows: 19 "sat" (-1.9), then 17 "the" (-1.7).
    assert [(w.word, w.max_activation) for w in lowest] == [
        ("sat", pytest.approx(-1.9)), ("the", pytest.approx(-1.7))]
    frequent = top_words(store, CAT, k=10, min_count=3)
    assert {w.word for w in frequent} == {"the", "sat"}  # the only words seen >= 3 times
    assert top_words(store, 0, k=3) == top_words(store, CAT, k=3)  # global id == name
    assert top_words(store, CAT, k=0) == []


def test_word_activation_dict_matches_demo_usage(store):
    w = top_words(store, CAT, k=1)[0]
    assert asdict(w) == w.to_dict() == {
        "word": "cat", "max_activation": 5.0, "mean_activation": 4.5, "count": 2}


# ---------------------------------------------------------------------------- contexts
def test_top_contexts_windows_dedupe_and_sentence_edges(store, reads):
    got = top_contexts(store, CAT, k=3)
    assert got == [
        # Row 1 (5.0): cut at the sentence start, so 1 left + word + 2 right.
        Context(("the", "cat", "sat", "on"), 1, 5.0, 0, 1),
        # Row 10 (4.0) has the same window as row 1 and is skipped; row 7 (3.0) is next,
        # cut at both edges of its 3-word sentence.
        Context(("a", "dog", "ran"), 1, 3.0, 1, 1),
        Context(("the", "dog", "sat"), 1, 2.0, 4, 1),
    ]
    assert got[0].word == "cat" and got[0].text == "the [cat] sat on"
    assert json.loads(json.dumps(got[0].to_dict()))["text"] == "the [cat] sat on"
    assert all(ids == [0] for ids in reads)


def test_top_contexts_window_size_lowest_and_exhaustion(store):
    assert top_contexts(store, CAT, k=1, window=3)[0].words == ("the", "cat", "sat")
    assert top_contexts(store, CAT, k=1, window=1)[0].words == ("cat",)
    low = top_contexts(store, CAT, k=1, lowest=True)[0]
    assert (low.words, low.center, low.sentence_id, low.position) == (
        ("the", "dog", "sat"), 2, 4, 2)
    assert low.activation == pytest.approx(-1.9)
    # Asking for more than exist returns every distinct window once (20 rows; the 6 of S2
    # duplicate S0's windows).
    everything = top_contexts(store, CAT, k=100)
    assert len(everything) == 14
    assert len({(c.words, c.center) for c in everything}) == 14


@pytest.mark.parametrize("window", [0, 2, -3])
def test_top_contexts_rejects_bad_window(store, window):
    with pytest.raises(NeuronscopeError, match="odd"):
        top_contexts(store, CAT, window=window)


# ---------------------------------------------------------------------------- sentences
def test_top_sentences_max(store, reads):
    got = top_sentences(store, SENT, k=3)
    assert [s.sentence_id for s in got] == [3, 0, 1]
    assert got[0] == SentenceActivation(3, ["birds", "fly"], [1.0, 4.0], 4.0, 2.5, 4.0)
    assert got[1].words == SENTENCES[0] and got[1].activations == [0, 0, 3, 0, 0, 0]
    assert got[1].mean_activation == pytest.approx(0.5)
    assert all(ids == [3] for ids in reads)


def test_top_sentences_mean_min_lowest(store):
    assert [s.sentence_id for s in top_sentences(store, SENT, k=5, reduce="mean")] == [
        3, 1, 4, 0, 2]
    assert [s.sentence_id for s in top_sentences(store, SENT, k=5, reduce="min")] == [
        1, 3, 4, 0, 2]
    lowest = top_sentences(store, SENT, k=2, lowest=True)
    assert [s.sentence_id for s in lowest] == [2, 4]
    assert lowest[0].score == -1.0
    assert top_sentences(store, SENT, k=10)[-1].sentence_id == 2  # k > sentences: all 5
    assert len(top_sentences(store, SENT, k=10)) == 5
    d = top_sentences(store, SENT, k=1, reduce="mean")[0].to_dict()
    assert d["score"] == d["mean_activation"] == 2.5
    with pytest.raises(NeuronscopeError, match="reduce"):
        top_sentences(store, SENT, reduce="median")


# ---------------------------------------------------------------------------- concepts
def test_concept_layers_skip_lexical_and_empty_layers():
    words = [[f"w{i}" for i in range(250)]]
    c = Corpus(words, {"lemma": words, "blank": [[NO_LABEL] * 250],
                       "parity": [[str(i % 2) for i in range(250)]]})
    assert concept_layers(c) == ["parity"]
    assert concept_layers(c, max_labels=300) == ["lemma", "parity"]


@pytest.mark.parametrize("measure", ["iou", "ap"])
def test_neuron_concepts_finds_planted_concept(store, corpus, reads, measure):
    # alpha 0.35: IoU's top 35% of 20 words are exactly the 7 nouns.
    got = neuron_concepts(store, corpus, NOUN, k=5, measure=measure, alpha=0.35)
    assert isinstance(got[0], ConceptMatch)
    assert (got[0].layer, got[0].concept, got[0].measure) == ("upos", "NOUN", measure)
    assert got[0].score == pytest.approx(1.0)
    assert got[0].n_words == 7
    # Second: the animals (5 of the 7 nouns), below the perfect match.
    assert (got[1].layer, got[1].concept) == ("animal", "yes")
    assert got[1].score < got[0].score
    if measure == "iou":
        assert got[1].score == pytest.approx(5 / 7)
    assert all(m.concept != NO_LABEL for m in got)
    assert all(m.layer != "constant" for m in got)  # one label: nothing to separate
    assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)
    assert all(ids == [1] for ids in reads)
    assert json.loads(json.dumps(got[0].to_dict()))["concept"] == "NOUN"


def test_neuron_concepts_layers_and_k(store, corpus):
    got = neuron_concepts(store, corpus, NOUN, layers=["animal"], k=10, measure="ap")
    assert [(m.layer, m.concept) for m in got] == [("animal", "yes")]
    got = neuron_concepts(store, corpus, NOUN, layers=["upos"], k=2, measure="ap")
    assert len(got) == 2 and got[0].concept == "NOUN"


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("neuron", "message"),
    [("L0.hidden.7", "neurons per layer"), ("L5.hidden.0", "no layer 5"),
     ("L0.mlp.0", "unknown component 'mlp'"), ("cat", "bad neuron name"),
     (99, "out of range")],
)
def test_unknown_neuron_is_a_clear_error(store, corpus, neuron, message):
    for call in (lambda: top_words(store, neuron), lambda: top_contexts(store, neuron),
                 lambda: top_sentences(store, neuron),
                 lambda: neuron_concepts(store, corpus, neuron)):
        with pytest.raises(UnknownComponentError, match=message):
            call()


def test_neuron_concepts_refuses_other_corpus_and_unknown_layer(store, corpus):
    other = Corpus([["another", "text"]], {"upos": [["DET", "NOUN"]]})
    with pytest.raises(FingerprintMismatchError):
        neuron_concepts(store, other, NOUN)
    with pytest.raises(NeuronscopeError, match="no label layer 'xpos'"):
        neuron_concepts(store, corpus, NOUN, layers=["xpos"])
    with pytest.raises(NeuronscopeError, match="measure"):
        neuron_concepts(store, corpus, NOUN, measure="f1")
    with pytest.raises(NeuronscopeError, match="k must be"):
        top_words(store, NOUN, k=-1)


def test_concept_search_serves_the_one_inspection_module():
    for name in ("top_words", "top_contexts", "top_sentences", "WordActivation", "Context"):
        assert getattr(concept_search, name) is getattr(inspection, name)


def test_concept_search_needs_a_store():
    with pytest.raises(NeuronscopeError, match="ActivationStore"):
        top_words(np.zeros((3, 2)), 0)
