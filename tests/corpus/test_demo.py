"""The shipped demo corpus: size, variety, and consistency of its gold labels."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from neuronscope.corpus import NO_LABEL, Corpus, load_demo_corpus
from neuronscope.corpus.demo import DEMO_FEATURES

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_demo_corpus.py"


def _load_script() -> ModuleType:
    # The grammar is a build-time script outside the package: import it by path.
    spec = importlib.util.spec_from_file_location("build_demo_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


_script = _load_script()
generate_demo_corpus: Callable[..., Corpus] = _script.generate_demo_corpus
main: Callable[[list[str]], int] = _script.main

UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"}
PTB = {"CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNS", "NNP",
       "NNPS", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB",
       "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB", ".", ",", ":", "``", "''"}


@pytest.fixture(scope="module")
def demo() -> Corpus:
    return load_demo_corpus()


def flat(c: Corpus, layer: str) -> list[str]:
    return [x for s in c.labels[layer] for x in s]


def test_size_and_layers(demo: Corpus) -> None:
    assert demo.name == "demo"
    assert demo.n_sentences == 400
    assert demo.n_words > 4000
    assert set(demo.layers) == {"upos", "xpos", "lemma", "suffix", *DEMO_FEATURES}
    assert set(demo.sentence_labels) == {"tense", "type"}
    for layer in demo.labels.values():
        assert [len(s) for s in layer] == [len(s) for s in demo.sentences]


def test_shipped_file_matches_generator(demo: Corpus) -> None:
    gen = generate_demo_corpus()
    assert gen.sentences == demo.sentences
    assert gen.labels == {k: v for k, v in demo.labels.items() if k != "suffix"}
    assert gen.sentence_labels == demo.sentence_labels


def test_generator_is_seeded() -> None:
    a = generate_demo_corpus(30, seed=5)
    assert a.sentences == generate_demo_corpus(30, seed=5).sentences
    assert a.sentences != generate_demo_corpus(30, seed=6).sentences
    assert a.n_sentences == 30


def test_label_sets(demo: Corpus) -> None:
    assert set(flat(demo, "upos")) <= UPOS
    assert len(set(flat(demo, "upos"))) >= 13
    assert set(flat(demo, "xpos")) <= PTB
    assert set(flat(demo, "Tense")) == {"Past", "Pres", NO_LABEL}
    assert set(flat(demo, "Number")) == {"Sing", "Plur", NO_LABEL}
    assert set(flat(demo, "VerbForm")) == {"Fin", "Inf", "Part", "Ger", NO_LABEL}
    assert set(flat(demo, "Degree")) == {"Pos", "Cmp", "Sup", NO_LABEL}
    assert set(demo.sentence_labels["tense"]) == {"past", "present"}
    assert set(demo.sentence_labels["type"]) == {"statement", "question"}
    suffixes = Counter(flat(demo, "suffix"))
    for s in ("-ing", "-ed", "-ly", "-s", "-er", "-est", "-tion", "-ness"):
        assert suffixes[s] > 0, s


def test_variety(demo: Corpus) -> None:
    lemmas_by_pos: dict[str, set[str]] = {}
    for u, lemma in zip(flat(demo, "upos"), flat(demo, "lemma"), strict=True):
        lemmas_by_pos.setdefault(u, set()).add(lemma)
    assert len(lemmas_by_pos["NOUN"]) >= 60
    assert len(lemmas_by_pos["VERB"]) >= 40
    assert len(lemmas_by_pos["ADJ"]) >= 30
    lengths = sorted(len(s) for s in demo.sentences)
    assert lengths[0] >= 4
    assert sum(n > 25 for n in lengths) <= 15  # only the few long ones
    assert sum(n >= 45 for n in lengths) >= 5
    assert len({" ".join(s) for s in demo.sentences}) == demo.n_sentences  # all distinct
    types = Counter(demo.sentence_labels["type"])
    assert types["question"] >= 40


def test_gold_labels_are_consistent(demo: Corpus) -> None:
    L = demo.labels
    for i, words in enumerate(demo.sentences):
        tense = {"past": "Past", "present": "Pres"}[demo.sentence_labels["tense"][i]]
        qtype = demo.sentence_labels["type"][i]
        assert (words[-1] == "?") == (qtype == "question")
        assert L["upos"][i][-1] == "PUNCT"
        for j in range(len(words)):
            upos, xpos = L["upos"][i][j], L["xpos"][i][j]
            t, vf = L["Tense"][i][j], L["VerbForm"][i][j]
            if t != NO_LABEL:  # every finite verb agrees with the sentence's tense
                assert t == tense and vf == "Fin" and upos in ("VERB", "AUX"), (i, j)
            if vf == "Fin":
                assert t != NO_LABEL
            if xpos in ("VBD", "VBZ", "VBP", "MD"):
                assert vf == "Fin", (i, words[j])
            if xpos == "VBZ":
                assert L["Number"][i][j] == "Sing"
            if xpos in ("NN", "NNP"):
                assert L["Number"][i][j] == "Sing"
            if xpos in ("NNS", "NNPS"):
                assert L["Number"][i][j] == "Plur"
            if xpos == "VBG":
                assert vf in ("Part", "Ger")
            if xpos == "VB":
                assert vf == "Inf"
            if upos == "ADJ":
                assert L["Degree"][i][j] == {"JJ": "Pos", "JJR": "Cmp", "JJS": "Sup"}[xpos]
            else:
                assert L["Degree"][i][j] == NO_LABEL


def test_main_writes_conllu(tmp_path: Path) -> None:
    out = tmp_path / "demo.conllu"
    assert main([str(out)]) == 0
    text = out.read_text()
    assert "# label.tense = " in text and "# label.type = " in text
    # The package ships exactly what the build script writes, byte for byte.
    assert out.read_bytes() == (_script.DEFAULT_OUT).read_bytes()
