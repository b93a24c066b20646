"""LM scoring on real sentence text: BOS, character-offset alignment, windows, HF equality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronscope.corpus.corpus import Corpus
from neuronscope.interventions.scoring import LMScorer, align_words, detokenize, sentence_text


def test_detokenize_and_align():
    words = ["I", "do", "n't", "know", "(", "really", ")", "!"]
    text = detokenize(words)
    assert text == "I don't know (really)!"
    spans = align_words(text, words)
    assert [text[a:b] for a, b in spans] == words
    # A multiword token the text spells differently: its parts share the stretch.
    spans = align_words("vino del mar", ["vino", "de", "el", "mar"])
    assert spans == [(0, 4), (5, 7), (7, 8), (9, 12)]
    spans = align_words("al mar", ["a", "el", "xx", "mar"])
    assert spans == [(0, 1), (1, 2), (3, 3), (3, 6)]


def test_corpus_text_is_used(small_corpus):
    texts = ["The cat sat on the mat."] + [None] * (small_corpus.n_sentences - 1)
    corpus = Corpus(small_corpus.sentences, small_corpus.labels, name="t", texts=texts)
    text, spans = sentence_text(corpus, 0)
    assert text == "The cat sat on the mat."
    assert [text[a:b] for a, b in spans] == corpus.sentences[0]
    assert sentence_text(corpus, 1)[0] == "Researchers study neural networks."
    assert corpus.subset([0]).texts == texts[:1]


def _hf_loss(loaded, text: str) -> float:
    tok = loaded.tokenizer
    ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    x = torch.tensor([ids])
    with torch.no_grad():
        return float(loaded.model(input_ids=x, labels=x).loss)


@pytest.mark.parametrize("sentence", [0, 4, 6])
def test_loss_equals_hugging_face(tiny_gpt2, small_corpus, sentence):
    scorer = LMScorer(tiny_gpt2, small_corpus, sentences=[sentence])
    scores = scorer.baseline
    text = scorer.texts[0]
    n_tokens = len(tiny_gpt2.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert scorer.n_tokens == n_tokens  # every token scored once, the first one after BOS
    assert abs(scores.nll.mean() - _hf_loss(tiny_gpt2, text)) < 1e-4


def test_batched_equals_single(tiny_gpt2, small_corpus, long_sentence_index):
    together = LMScorer(tiny_gpt2, small_corpus, batch_size=4).baseline
    alone = np.concatenate([LMScorer(tiny_gpt2, small_corpus, sentences=[s]).baseline.nll
                            for s in range(small_corpus.n_sentences)])
    np.testing.assert_allclose(np.sort(together.nll), np.sort(alone), atol=1e-4)
    # The long sentence is windowed: still every token once, and every word has its tokens.
    scorer = LMScorer(tiny_gpt2, small_corpus, sentences=[long_sentence_index])
    text = scorer.texts[0]
    n_tokens = len(tiny_gpt2.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_tokens > tiny_gpt2.max_length and scorer.n_tokens == n_tokens
    offset = small_corpus.sentence_offsets()[long_sentence_index]
    words = set((scorer.word - offset).tolist())
    assert words == set(range(len(small_corpus.sentences[long_sentence_index])))
