"""Annotators add one layer each, return a new corpus and never change their input."""

from __future__ import annotations

import copy
import re

import pytest

from neuronscope.corpus import (
    AffixAnnotator,
    Annotator,
    CallableAnnotator,
    CasingAnnotator,
    Corpus,
    PositionAnnotator,
    RegexAnnotator,
    SentenceLabelAnnotator,
    WordListAnnotator,
)
from neuronscope.errors import NeuronscopeError

SENTENCES = [
    ["The", "dogs", "were", "running", "quickly", "."],
    ["Unhappy", "NASA", "iPhone", "3.5", "$10", "--"],
    ["Hi"],
]


@pytest.fixture()
def corpus() -> Corpus:
    return Corpus(
        SENTENCES,
        {"gold": [["x"] * len(s) for s in SENTENCES]},
        {"topic": ["a", "b", "c"]},
        name="hand",
    )


def snapshot(c: Corpus) -> tuple:
    return copy.deepcopy((c.sentences, c.labels, c.sentence_labels, c.name))


def test_regex(corpus: Corpus) -> None:
    out = RegexAnnotator("num", r"[0-9]+(\.[0-9]+)?")(corpus)
    assert out.labels["num"] == [["_"] * 6, ["_", "_", "_", "yes", "_", "_"], ["_"]]
    out = RegexAnnotator("cap", "[a-z]+", label="Y", other="N", flags=re.IGNORECASE)(corpus)
    assert out.labels["cap"] == [
        ["Y", "Y", "Y", "Y", "Y", "N"], ["Y", "Y", "Y", "N", "N", "N"], ["Y"]
    ]
    # fullmatch, not search: "dogs" does not match "dog"
    assert RegexAnnotator("d", "dog")(corpus).labels["d"][0][1] == "_"


def test_word_list(corpus: Corpus) -> None:
    out = WordListAnnotator("fn", ["the", "WERE"])(corpus)
    assert out.labels["fn"][0] == ["yes", "_", "yes", "_", "_", "_"]
    out = WordListAnnotator("fn", ["the", "were"], case_sensitive=True)(corpus)
    assert out.labels["fn"][0] == ["_", "_", "yes", "_", "_", "_"]
    out = WordListAnnotator("sem", {"dogs": "animal", "iphone": "device"}, other="none")(corpus)
    assert out.labels["sem"] == [
        ["none", "animal", "none", "none", "none", "none"],
        ["none", "none", "device", "none", "none", "none"],
        ["none"],
    ]


def test_callable(corpus: Corpus) -> None:
    out = CallableAnnotator("prev", lambda ws, i: ws[i - 1] if i else "<s>")(corpus)
    assert out.labels["prev"] == [
        ["<s>", "The", "dogs", "were", "running", "quickly"],
        ["<s>", "Unhappy", "NASA", "iPhone", "3.5", "$10"],
        ["<s>"],
    ]
    out = CallableAnnotator("len", lambda ws, i: len(ws[i]))(corpus)  # non-str -> str
    assert out.labels["len"][2] == ["2"]


def test_callable_cannot_mutate_words(corpus: Corpus) -> None:
    def evil(words: list[str], i: int) -> str:
        words[i] = "x"
        return "y"

    with pytest.raises(TypeError):
        CallableAnnotator("evil", evil)(corpus)
    assert corpus.sentences == SENTENCES


def test_affix(corpus: Corpus) -> None:
    ann = AffixAnnotator("aff", suffixes=["ing", "ly", "s", "-ness"], prefixes=["un", "re-"],
                         min_stem=2)
    out = ann(corpus)
    assert out.labels["aff"] == [
        ["_", "-s", "_", "-ing", "-ly", "_"], ["un-", "_", "_", "_", "_", "_"], ["_"]
    ]
    # longest affix wins; suffix wins ties; min_stem blocks short stems
    assert ann.label_word("unkindness") == "-ness"
    assert ann.label_word("reads") == "re-"
    assert ann.label_word("is") == "_"
    assert AffixAnnotator("a", suffixes=["s"], prefixes=["r"]).label_word("rats") == "-s"
    assert AffixAnnotator("a", suffixes=["ing"], min_stem=3).label_word("sing") == "_"
    assert AffixAnnotator("a", suffixes=["ing"], min_stem=1).label_word("Sing") == "-ing"
    assert AffixAnnotator("a", suffixes=["ING"], case_sensitive=True).label_word("sing") == "_"
    with pytest.raises(NeuronscopeError, match="at least one"):
        AffixAnnotator("a")


def test_casing(corpus: Corpus) -> None:
    out = CasingAnnotator()(corpus)
    assert out.labels["casing"] == [
        ["title", "lower", "lower", "lower", "lower", "punct"],
        ["title", "upper", "mixed", "numeric", "numeric", "punct"],
        ["title"],
    ]
    label = CasingAnnotator.label_word
    assert [label(w) for w in ["I", "A", "3rd", "McDonald", "日本", "x2", "-5"]] == [
        "title", "title", "lower", "mixed", "other", "lower", "numeric"
    ]


def test_position(corpus: Corpus) -> None:
    out = PositionAnnotator()(corpus)
    assert out.labels["position"] == [
        ["first", "middle", "middle", "middle", "middle", "last"],
        ["first", "middle", "middle", "middle", "middle", "last"],
        ["only"],
    ]
    out = PositionAnnotator("bucket", buckets=(0, 1, 2, 4))(corpus)
    assert out.labels["bucket"][0] == ["0", "1", "2-3", "2-3", "4+", "4+"]
    out = PositionAnnotator("index", buckets=range(64))(corpus)
    assert out.labels["index"][1] == ["0", "1", "2", "3", "4", "5"]
    with pytest.raises(NeuronscopeError, match="start at 0"):
        PositionAnnotator(buckets=(1, 2))
    with pytest.raises(NeuronscopeError, match="increasing"):
        PositionAnnotator(buckets=(0, 3, 3))


def test_sentence_label(corpus: Corpus) -> None:
    out = SentenceLabelAnnotator("size", lambda ws: "long" if len(ws) > 3 else "short")(corpus)
    assert out.sentence_labels == {"topic": ["a", "b", "c"], "size": ["long", "long", "short"]}
    assert out.labels == corpus.labels


@pytest.mark.parametrize(
    "annotator",
    [
        RegexAnnotator("r", "[a-z]+"),
        WordListAnnotator("w", ["the"]),
        CallableAnnotator("c", lambda ws, i: "z"),
        AffixAnnotator("a", suffixes=["s"]),
        CasingAnnotator(),
        PositionAnnotator(),
        SentenceLabelAnnotator("s", lambda ws: "q"),
    ],
    ids=lambda a: type(a).__name__,
)
def test_new_corpus_and_input_untouched(corpus: Corpus, annotator: Annotator) -> None:
    before = snapshot(corpus)
    out = annotator.annotate(corpus)
    assert out is not corpus
    assert snapshot(corpus) == before
    assert out.sentences == corpus.sentences and out.name == corpus.name
    assert out.fingerprint == corpus.fingerprint
    assert out.labels["gold"] == corpus.labels["gold"]
    # the new layer's lists are not shared with the input either
    out.sentences[0][0] = "changed"
    assert corpus.sentences[0][0] == "The"


def test_replacing_a_layer(corpus: Corpus) -> None:
    out = RegexAnnotator("gold", "[A-Z].*")(corpus)
    assert out.labels["gold"][2] == ["yes"]
    assert corpus.labels["gold"][2] == ["x"]


def test_empty_name_rejected() -> None:
    with pytest.raises(NeuronscopeError, match="non-empty layer name"):
        RegexAnnotator("", "x")
