"""Readers: CoNLL-U edge cases, NeuroX parallel files, plain text, JSONL, format detection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuronscope.corpus import (
    NO_LABEL,
    CorpusFileNotFoundError,
    EmptyCorpusFileError,
    detect_format,
    load_corpus,
    read_conllu,
    read_jsonl,
    read_parallel,
    read_text,
)
from neuronscope.errors import CorpusFormatError, EmptyCorpusError, NeuronscopeError


def row(*fields: str) -> str:
    return "\t".join(fields)


# Two sentences: a multiword token ("don't" = do + n't), an empty node, FEATS keys that occur
# only on some words, a sentence-label comment, and no final blank line.
CONLLU = "\n".join(
    [
        "# sent_id = a",
        "# text = I don't run .",
        "# label.tense = present",
        row("1", "I", "I", "PRON", "PRP", "Number=Sing|Person=1", "3", "nsubj", "_", "_"),
        row("2-3", "don't", "_", "_", "_", "_", "_", "_", "_", "_"),
        row("2", "do", "do", "AUX", "VBP", "Mood=Ind|Tense=Pres", "4", "aux", "_", "_"),
        row("3", "n't", "not", "PART", "RB", "Polarity=Neg", "4", "advmod", "_", "_"),
        row("3.1", "ghost", "ghost", "X", "X", "_", "_", "_", "_", "_"),
        row("4", "run", "run", "VERB", "VB", "VerbForm=Inf", "0", "root", "_", "_"),
        row("5", ".", ".", "PUNCT", ".", "_", "4", "punct", "_", "SpaceAfter=No"),
        "",
        "# sent_id = b",
        row("1", "Dogs", "dog", "NOUN", "NNS", "Number=Plur", "2", "nsubj", "_", "_"),
        row("2", "barked", "bark", "VERB", "VBD", "Tense=Past|VerbForm=Fin", "0", "root", "_",
            "label.topic=animals|SpaceAfter=No"),
    ]
)


def write(tmp_path: Path, name: str, text: str, **kw: str) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(kw.get("encoding", "utf-8")))
    return p


class TestConllu:
    def test_words_skip_ranges_and_empty_nodes(self, tmp_path: Path) -> None:
        c = read_conllu(write(tmp_path, "x.conllu", CONLLU))
        assert c.sentences == [["I", "do", "n't", "run", "."], ["Dogs", "barked"]]
        assert c.name == "x"

    def test_column_layers(self, tmp_path: Path) -> None:
        c = read_conllu(write(tmp_path, "x.conllu", CONLLU))
        assert c.labels["upos"] == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["NOUN", "VERB"]]
        assert c.labels["xpos"][1] == ["NNS", "VBD"]
        assert c.labels["lemma"][0] == ["I", "do", "not", "run", "."]
        assert c.labels["deprel"][1] == ["nsubj", "root"]

    def test_each_feats_key_is_a_layer(self, tmp_path: Path) -> None:
        c = read_conllu(write(tmp_path, "x.conllu", CONLLU))
        for key in ("Number", "Person", "Mood", "Tense", "Polarity", "VerbForm"):
            assert key in c.labels
        assert c.labels["Number"] == [["Sing", "_", "_", "_", "_"], ["Plur", "_"]]
        assert c.labels["Tense"] == [["_", "Pres", "_", "_", "_"], ["_", "Past"]]
        assert c.labels["VerbForm"] == [["_", "_", "_", "Inf", "_"], ["_", "Fin"]]

    def test_sentence_labels_and_misc_labels(self, tmp_path: Path) -> None:
        c = read_conllu(write(tmp_path, "x.conllu", CONLLU))
        assert c.sentence_labels == {"tense": ["present", NO_LABEL]}
        # MISC "label.topic=..." is a word layer; other MISC entries (SpaceAfter) are ignored.
        assert c.labels["topic"] == [["_"] * 5, ["_", "animals"]]
        assert "SpaceAfter" not in c.labels

    def test_blank_columns_give_no_layer(self, tmp_path: Path) -> None:
        text = row("1", "Hi", "_", "INTJ", "_", "_", "_", "_", "_", "_") + "\n\n"
        c = read_conllu(write(tmp_path, "x.conllu", text))
        assert c.layers == ["upos"]

    def test_crlf_bom_and_trailing_blank_lines(self, tmp_path: Path) -> None:
        text = "\ufeff" + CONLLU.replace("\n", "\r\n") + "\r\n\r\n\r\n"
        c = read_conllu(write(tmp_path, "x.conllu", text))
        plain = read_conllu(write(tmp_path, "y.conllu", CONLLU))
        assert c.sentences == plain.sentences
        assert c.labels == plain.labels
        assert c.sentence_labels == plain.sentence_labels

    def test_several_blank_lines_between_sentences(self, tmp_path: Path) -> None:
        text = CONLLU.replace("\n\n", "\n\n\n\n")
        assert read_conllu(write(tmp_path, "x.conllu", text)).n_sentences == 2

    @pytest.mark.parametrize(
        ("bad_line", "message"),
        [
            ("1\tcat\tcat\tNOUN\tNN\t_\t0\troot\t_", "expected 10 tab-separated columns, found 9"),
            ("1 cat cat NOUN NN _ 0 root _ _", "expected 10 tab-separated columns, found 1"),
            ("x\tcat\tcat\tNOUN\tNN\t_\t0\troot\t_\t_", "invalid ID 'x'"),
            ("3\tcat\tcat\tNOUN\tNN\t_\t0\troot\t_\t_", "word ID 3 out of order: expected 2"),
            ("2\t\tcat\tNOUN\tNN\t_\t0\troot\t_\t_", "empty FORM"),
            ("2\tcat\tcat\tNOUN\tNN\tNumber\t0\troot\t_\t_", "malformed FEATS 'Number'"),
            ("2\tcat\tcat\tNOUN\tNN\tNumber=\t0\troot\t_\t_", "malformed FEATS"),
            ("2\tcat\tcat\tNOUN\tNN\tA=1||B=2\t0\troot\t_\t_", "malformed FEATS"),
            ("2\tcat\tcat\tNOUN\tNN\tA=1|A=2\t0\troot\t_\t_", "FEATS repeats the key 'A'"),
        ],
    )
    def test_malformed_lines_name_file_and_line(
        self, tmp_path: Path, bad_line: str, message: str
    ) -> None:
        good = row("1", "the", "the", "DET", "DT", "_", "2", "det", "_", "_")
        path = write(tmp_path, "bad.conllu", f"# c\n{good}\n{bad_line}\n\n")
        with pytest.raises(CorpusFormatError, match=re.escape(f"bad.conllu:3: {message}")) as ei:
            read_conllu(path)
        assert ei.value.line == 3
        assert ei.value.path == str(path)

    def test_ids_restart_per_sentence(self, tmp_path: Path) -> None:
        text = CONLLU + "\n\n" + row("1", "Yes", "yes", "INTJ", "UH", "_", "0", "root", "_", "_")
        assert read_conllu(write(tmp_path, "x.conllu", text)).sentences[-1] == ["Yes"]

    def test_malformed_label_comment(self, tmp_path: Path) -> None:
        text = "# label.tense\n" + row("1", "a", "a", "X", "X", "_", "_", "_", "_", "_")
        with pytest.raises(CorpusFormatError, match=r"x\.conllu:1: malformed sentence label"):
            read_conllu(write(tmp_path, "x.conllu", text))

    @pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n\n# another\n"])
    def test_file_without_sentences(self, tmp_path: Path, text: str) -> None:
        path = write(tmp_path, "empty.conllu", text)
        with pytest.raises(CorpusFormatError, match=r"empty\.conllu: no sentence found"):
            read_conllu(path)
        with pytest.raises(EmptyCorpusError, match="empty.conllu"):
            read_conllu(path)

    def test_invalid_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin.conllu"
        path.write_bytes("1\tcaf\xe9\n".encode("latin-1"))
        with pytest.raises(CorpusFormatError, match="not valid UTF-8"):
            read_conllu(path)


class TestParallel:
    def make(self, tmp_path: Path, text: str, **layers: str) -> tuple[Path, dict[str, Path]]:
        text_path = write(tmp_path, "sents.txt", text)
        return text_path, {k: write(tmp_path, f"{k}.txt", v) for k, v in layers.items()}

    def test_reads_words_and_layers(self, tmp_path: Path) -> None:
        text_path, labels = self.make(
            tmp_path, "The cat sat\nDogs  bark .\n", pos="DT NN VBD\nNNS VBP .\n"
        )
        c = read_parallel(text_path, labels)
        assert c.sentences == [["The", "cat", "sat"], ["Dogs", "bark", "."]]
        assert c.labels == {"pos": [["DT", "NN", "VBD"], ["NNS", "VBP", "."]]}
        assert c.name == "sents"

    def test_without_labels_and_without_final_newline(self, tmp_path: Path) -> None:
        text_path, _ = self.make(tmp_path, "a b\nc")
        assert read_parallel(text_path).sentences == [["a", "b"], ["c"]]

    def test_label_count_mismatch_names_label_file_line_and_counts(self, tmp_path: Path) -> None:
        text_path, labels = self.make(tmp_path, "a b c\nd e\n", pos="X X X\nX\n")
        with pytest.raises(
            CorpusFormatError, match=r"pos\.txt:2: 1 labels for 2 words \(line 2 of .*sents\.txt\)"
        ):
            read_parallel(text_path, labels)

    def test_line_count_mismatch_names_both_files(self, tmp_path: Path) -> None:
        text_path, labels = self.make(tmp_path, "a b\nc\nd\n", pos="X X\nX\n")
        with pytest.raises(CorpusFormatError, match=r"pos\.txt has 2 lines but .*sents\.txt.* 3"):
            read_parallel(text_path, labels)

    def test_blank_line_in_text_is_an_error(self, tmp_path: Path) -> None:
        text_path, _ = self.make(tmp_path, "a b\n\nc\n")
        with pytest.raises(CorpusFormatError, match=r"sents\.txt:2: blank line"):
            read_parallel(text_path)

    def test_trailing_blank_lines_tolerated(self, tmp_path: Path) -> None:
        text_path, labels = self.make(tmp_path, "a b\r\nc\r\n\r\n", pos="X Y\nZ\n\n\n")
        c = read_parallel(text_path, labels)
        assert c.labels["pos"] == [["X", "Y"], ["Z"]]

    def test_missing_label_file(self, tmp_path: Path) -> None:
        text_path, _ = self.make(tmp_path, "a\n")
        with pytest.raises(CorpusFileNotFoundError, match="nope.txt: file not found"):
            read_parallel(text_path, {"pos": tmp_path / "nope.txt"})


class TestTextAndJsonl:
    def test_text_whitespace(self, tmp_path: Path) -> None:
        path = write(tmp_path, "t.txt", "Hello world !\n\n   \nA  b\tc\n")
        assert read_text(path).sentences == [["Hello", "world", "!"], ["A", "b", "c"]]

    def test_text_spacy_tokenizer(self, tmp_path: Path) -> None:
        pytest.importorskip("spacy")
        path = write(tmp_path, "t.txt", "I don't like it, really.\n\nGood!\n")
        c = read_text(path, tokenizer="spacy")
        assert c.sentences == [["I", "do", "n't", "like", "it", ",", "really", "."],
                               ["Good", "!"]]
        assert c.layers == []

    def test_text_unknown_tokenizer(self, tmp_path: Path) -> None:
        with pytest.raises(NeuronscopeError, match="unknown tokenizer"):
            read_text(write(tmp_path, "t.txt", "a\n"), tokenizer="bpe")

    def test_jsonl(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "d.jsonl",
            '{"words": ["A", "cat"], "upos": ["DET", "NOUN"], "topic": "pets"}\n'
            "\n"
            '{"words": ["Go"], "upos": ["VERB"], "id": 7}\n',
        )
        c = read_jsonl(path)
        assert c.sentences == [["A", "cat"], ["Go"]]
        assert c.labels == {"upos": [["DET", "NOUN"], ["VERB"]]}
        assert c.sentence_labels == {"topic": ["pets", NO_LABEL], "id": [NO_LABEL, "7"]}

    def test_jsonl_custom_words_key(self, tmp_path: Path) -> None:
        path = write(tmp_path, "d.jsonl", '{"tokens": ["x", "y"]}\n')
        assert read_jsonl(path, words_key="tokens").sentences == [["x", "y"]]

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ('{"words": ["a"]', "invalid JSON"),
            ('["a"]', "expected a JSON object, found list"),
            ('{"upos": ["X"]}', "no 'words' list"),
            ('{"words": ["a", "b"], "upos": ["X"]}', "'upos' has 1 labels for 2 words"),
            ('{"words": ["a"], "meta": {"k": 1}}', "'meta' must be a string or a list"),
        ],
    )
    def test_jsonl_errors_name_line(self, tmp_path: Path, line: str, message: str) -> None:
        path = write(tmp_path, "d.jsonl", '{"words": ["ok"]}\n' + line + "\n")
        with pytest.raises(CorpusFormatError, match=re.escape(f"d.jsonl:2: {message}")):
            read_jsonl(path)


class TestLoadCorpus:
    def test_detection(self, tmp_path: Path) -> None:
        assert detect_format("a.conllu") == "conllu"
        assert detect_format("a.CONLL") == "conllu"
        assert detect_format("a.jsonl") == "jsonl"
        assert detect_format("a.txt") == "text"
        assert detect_format("a.tok", {"pos": "p.txt"}) == "parallel"

    def test_dispatch(self, tmp_path: Path) -> None:
        conllu = write(tmp_path, "c.conllu", CONLLU)
        assert load_corpus(conllu).sentences[1] == ["Dogs", "barked"]
        jsonl = write(tmp_path, "j.jsonl", '{"words": ["a"]}\n')
        assert load_corpus(jsonl).sentences == [["a"]]
        text = write(tmp_path, "t.txt", "a b\n\nc\n")
        assert load_corpus(text).sentences == [["a", "b"], ["c"]]
        labels = write(tmp_path, "l.txt", "X Y\n")
        sents = write(tmp_path, "s.txt", "a b\n")
        c = load_corpus(sents, label_paths={"tag": labels}, name="mine")
        assert c.labels == {"tag": [["X", "Y"]]} and c.name == "mine"

    def test_forced_format(self, tmp_path: Path) -> None:
        path = write(tmp_path, "data.dat", CONLLU)
        assert load_corpus(path, format="conllu").n_sentences == 2
        with pytest.raises(NeuronscopeError, match="unknown corpus format"):
            load_corpus(path, format="xml")

    def test_labels_only_for_parallel(self, tmp_path: Path) -> None:
        path = write(tmp_path, "c.conllu", CONLLU)
        with pytest.raises(NeuronscopeError, match="only apply to the parallel format"):
            load_corpus(path, label_paths={"x": path})

    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing.conllu"
        with pytest.raises(CorpusFileNotFoundError, match=r"missing\.conllu: corpus file not"):
            load_corpus(missing)
        with pytest.raises(FileNotFoundError):
            load_corpus(missing)
        with pytest.raises(NeuronscopeError):
            read_text(missing)

    @pytest.mark.parametrize(("name", "text"), [("e.txt", "\n  \n"), ("e.jsonl", ""),
                                                 ("e.conllu", "# x\n")])
    def test_empty_corpus(self, tmp_path: Path, name: str, text: str) -> None:
        path = write(tmp_path, name, text)
        with pytest.raises(EmptyCorpusError, match=re.escape(name)) as ei:
            load_corpus(path)
        assert isinstance(ei.value, EmptyCorpusFileError)

    def test_jsonl_with_only_empty_sentences_is_empty(self, tmp_path: Path) -> None:
        with pytest.raises(EmptyCorpusError):
            load_corpus(write(tmp_path, "e.jsonl", '{"words": []}\n'))
