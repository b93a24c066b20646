"""Sentence texts: CoNLL-U ``# text`` kept beside the words, carried by views, written back."""

from __future__ import annotations

from neuronscope.corpus import read_conllu, write_conllu

CONLLU = """# sent_id = 1
# text = I don't know.
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tI\tI\tPRON\t_\t_\t0\troot\t_\t_
2\tdo\tdo\tAUX\t_\t_\t0\troot\t_\t_
3\tn't\tnot\tPART\t_\t_\t0\troot\t_\t_
4\tknow\tknow\tVERB\t_\t_\t0\troot\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t_\t_\t0\troot\t_\t_

# sent_id = 2
1\tHello\thello\tINTJ\t_\t_\t0\troot\t_\t_

"""


def test_conllu_text_is_kept(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    corpus = read_conllu(path)
    assert corpus.sentences[0] == ["I", "do", "n't", "know", "."]
    assert corpus.texts == ["I don't know.", None]
    assert corpus.with_layer("x", [["a"] * 5, ["b"]]).texts == corpus.texts
    assert corpus.subset([1, 0]).texts == [None, "I don't know."]
    again = tmp_path / "b.conllu"
    write_conllu(corpus, again)
    assert read_conllu(again).texts == ["I don't know.", "Hello"]
    # Texts are not part of the identity of a corpus: stores keep matching it.
    assert read_conllu(again).fingerprint == corpus.fingerprint
