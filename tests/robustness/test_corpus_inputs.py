"""JSONL corpora and fingerprints under hostile input: deep nesting, lone surrogates, random
lines; U+001F (or any character) inside words cannot make two corpora share a fingerprint."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronscope.corpus import read_jsonl
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import CorpusFormatError, NeuronscopeError
from tests.robustness.conftest import examples

WORD = st.text(min_size=1, max_size=6)
SENTENCES = st.lists(st.lists(WORD, min_size=1, max_size=4), min_size=1, max_size=4)


@pytest.mark.parametrize("line, fragment", [
    ('{"words": [' + "[" * 100_000 + "]" * 100_000 + "]}", "nested too deeply"),
    ("[" * 100_000, "nested too deeply"),
    ('{"words": ["a\\ud800b"]}', "lone surrogate"),
    ('{"words": ["ok"], "upos": ["\\udfff"]}', "lone surrogate"),
    ('{"words": ["ok"], "\\ud83d": "x"}', "lone surrogate"),
    ('{"words": "a b"}', "no 'words' list"),
    ('{"words": ["a"], "upos": ["X", "Y"]}', "2 labels for 1 words"),
    ('{"words": [["a"]]}', "list of strings"),
    ("[1, 2]", "expected a JSON object"),
    ('{"words": ["a"]', "invalid JSON"),
])
def test_bad_jsonl_lines(tmp_path, line, fragment):
    path = tmp_path / "c.jsonl"
    path.write_text('{"words": ["fine"]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CorpusFormatError) as info:
        read_jsonl(path)
    assert f"{path}:2:" in str(info.value) and fragment in str(info.value), str(info.value)


def test_valid_surrogate_pairs_are_kept(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"words": ["smile \\ud83d\\ude00"]}\n', encoding="utf-8")
    assert read_jsonl(path).sentences == [["smile \U0001F600"]]


@settings(max_examples=examples(30, 300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_random_jsonl_lines_fail_clearly_or_parse(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "c.jsonl"
    text = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n"
    path.write_bytes(text.encode("utf-8", "replace"))  # Hypothesis may draw surrogates
    try:
        corpus = read_jsonl(path)
    except NeuronscopeError as err:
        assert str(path) in str(err)
        return
    # Parsed: every word is text that can be written back as UTF-8.
    for sentence in corpus.sentences:
        for word in sentence:
            word.encode("utf-8")


@settings(max_examples=examples(30, 300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=SENTENCES)
def test_jsonl_round_trip_is_exact(tmp_path_factory, sentences):
    path = tmp_path_factory.mktemp("rt") / "c.jsonl"
    path.write_text("".join(json.dumps({"words": s}) + "\n" for s in sentences),
                    encoding="utf-8")
    try:
        corpus = read_jsonl(path)
    except NeuronscopeError as err:  # e.g. surrogates drawn by Hypothesis
        assert str(path) in str(err)
        return
    assert corpus.sentences == sentences
    assert corpus.fingerprint == Corpus(sentences).fingerprint


def test_unit_separator_cannot_merge_words():
    one = Corpus([["a\x1fb"]])
    two = Corpus([["a", "b"]])
    assert one.fingerprint != two.fingerprint
    assert Corpus([["a\x1e", "b"]]).fingerprint != Corpus([["a"], ["b"]]).fingerprint


@settings(max_examples=examples(50, 500), deadline=None)
@given(a=SENTENCES, b=SENTENCES)
def test_different_corpora_have_different_fingerprints(a, b):
    if a == b:
        assert Corpus(a).fingerprint == Corpus(b).fingerprint
    else:
        assert Corpus(a).fingerprint != Corpus(b).fingerprint


@settings(max_examples=examples(30, 200), deadline=None)
@given(sentences=SENTENCES, sep=st.sampled_from(["\x1f", "\x1e", "\x00", " ", ""]))
def test_joining_words_never_collides(sentences, sep):
    joined = [[sep.join(s)] for s in sentences]
    if joined != sentences:
        assert Corpus(joined).fingerprint != Corpus(sentences).fingerprint


def test_old_fingerprint_gets_a_clear_message(tmp_path):
    import numpy as np

    from neuronscope.errors import FingerprintMismatchError
    from neuronscope.store import ActivationStore, store_from_arrays
    from neuronscope.store.store import META_FILE

    corpus = Corpus([["a", "b"], ["c"]])
    store = store_from_arrays(tmp_path / "s", corpus, {"hidden": np.zeros((3, 2), "float32")})
    meta = json.loads((store.path / META_FILE).read_text())
    meta["corpus"]["fingerprint"] = corpus.legacy_fingerprint  # as 0.1.0 wrote it
    (store.path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FingerprintMismatchError, match="older neuronscope"):
        ActivationStore(store.path).check_corpus(corpus)
