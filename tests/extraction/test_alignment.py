"""WordTokenizer: word-by-word subwords and windows for sentences longer than the model."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.extraction.alignment import AGGREGATIONS, WindowStats, WordTokenizer


def _check_pieces(wt: WordTokenizer, word_ids: list[list[int]], max_length: int, pieces) -> None:
    """Invariants every layout must satisfy; returns nothing, asserts everything."""
    cap = wt.capacity
    truncated = [ids[:cap] for ids in word_ids]
    flat = [t for ids in truncated for t in ids]
    starts = np.concatenate([[0], np.cumsum([len(ids) for ids in truncated])])
    n_pre = len(wt.prefix_ids)
    assigned = []
    for k, piece in enumerate(pieces):
        assert len(piece.input_ids) <= max_length
        assert piece.input_ids[:n_pre] == wt.prefix_ids
        if wt.suffix_ids:
            assert piece.input_ids[-len(wt.suffix_ids):] == wt.suffix_ids
        content = piece.input_ids[n_pre: len(piece.input_ids) - len(wt.suffix_ids)]
        assert piece.content_stop == n_pre + len(content)
        # The content is a contiguous run of whole words of the sentence.
        lo = next(i for i in range(len(flat) + 1) if flat[i: i + len(content)] == content)
        assert lo in starts and lo + len(content) in starts
        assert piece.first_piece == (k == 0)
        assert piece.last_piece == (k == len(pieces) - 1)
        for word, start, stop in piece.spans:
            assert piece.input_ids[start:stop] == truncated[word]
            assert n_pre <= start < stop <= piece.content_stop
            assigned.append(word)
    assert sorted(assigned) == list(range(len(word_ids))), "every word exactly once"


def _word_ranges(wt: WordTokenizer, word_ids, pieces):
    """Word ranges [a, b) of each piece, recovered from its content."""
    cap = wt.capacity
    lengths = [len(ids[:cap]) for ids in word_ids]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    flat = [t for ids in word_ids for t in ids[:cap]]
    n_pre = len(wt.prefix_ids)
    ranges = []
    for piece in pieces:
        content = piece.input_ids[n_pre: piece.content_stop]
        lo = next(int(starts[i]) for i in range(len(starts))
                  if flat[starts[i]: starts[i] + len(content)] == content)
        a = int(np.searchsorted(starts, lo))
        b = int(np.searchsorted(starts, lo + len(content)))
        ranges.append((a, b))
    return ranges, starts


def test_special_layout_and_space_prefix(tiny_bert, tiny_gpt2):
    bert = WordTokenizer(tiny_bert.tokenizer, 64)
    tok = tiny_bert.tokenizer
    assert bert.prefix_ids == [tok.cls_token_id] and bert.suffix_ids == [tok.sep_token_id]
    assert bert.capacity == 62 and bert.stride == 31
    assert bert.space_prefix is False
    assert bert.unk_id == tok.unk_token_id

    gpt = WordTokenizer(tiny_gpt2.tokenizer, 64, causal=True)
    assert gpt.prefix_ids == [] and gpt.suffix_ids == []
    assert gpt.capacity == 64 and gpt.stride == 32
    assert gpt.space_prefix is True


def test_too_small_max_length_is_refused(tiny_bert):
    with pytest.raises(ValueError, match="no room"):
        WordTokenizer(tiny_bert.tokenizer, 3)


def test_encode_words_matches_whole_sentence_tokenization(tiny_models, small_corpus, ref):
    """Word-by-word subwords concatenate to the tokenization of the whole sentence."""
    for loaded in tiny_models.values():
        wt = WordTokenizer(loaded.tokenizer, 10_000, causal=loaded.is_causal)
        encoded, empty = wt.encode_words(small_corpus.sentences)
        assert empty == 0
        assert len(encoded) == small_corpus.n_sentences
        for words, word_ids in zip(small_corpus.sentences, encoded, strict=True):
            assert len(word_ids) == len(words)
            ids, owners = ref.tokens(loaded, words)
            content = [t for t, w in zip(ids, owners, strict=True) if w is not None]
            assert [t for w in word_ids for t in w] == content
            for j, wids in enumerate(word_ids):
                assert wids == [t for t, w in zip(ids, owners, strict=True) if w == j]


def test_multi_subword_words_exist(tiny_models, small_corpus):
    """The fixtures really exercise aggregation: many words have several subwords."""
    for loaded in tiny_models.values():
        wt = WordTokenizer(loaded.tokenizer, 64, causal=loaded.is_causal)
        encoded, _ = wt.encode_words(small_corpus.sentences)
        lengths = [len(w) for s in encoded for w in s]
        assert max(lengths) >= 4
        assert sum(n > 1 for n in lengths) >= 20


def test_words_without_subwords_get_unknown_token(tiny_bert):
    wt = WordTokenizer(tiny_bert.tokenizer, 64)
    encoded, empty = wt.encode_words([["the", "", "cat"], []])
    assert empty == 1
    assert encoded[0][1] == [tiny_bert.tokenizer.unk_token_id]
    assert encoded[1] == []
    assert wt.encode_words([]) == ([], 0)


def test_short_sentence_is_one_piece(tiny_bert):
    wt = WordTokenizer(tiny_bert.tokenizer, 64)
    (word_ids,), _ = wt.encode_words([["The", "grandmother", "baked", "cakes", "."]])
    pieces, stats = wt.pieces(7, word_ids)
    assert len(pieces) == 1 and stats.pieces == 1 and stats.sentences_windowed == 0
    piece = pieces[0]
    assert piece.sentence == 7
    flat = [t for w in word_ids for t in w]
    assert piece.input_ids == wt.prefix_ids + flat + wt.suffix_ids
    assert [s[0] for s in piece.spans] == [0, 1, 2, 3, 4]
    _check_pieces(wt, word_ids, 64, pieces)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_long_sentence_windows(family, tiny_models, small_corpus, long_sentence_index):
    loaded = tiny_models[family]
    wt = WordTokenizer(loaded.tokenizer, 64, causal=loaded.is_causal)
    (word_ids,), _ = wt.encode_words([small_corpus.sentences[long_sentence_index]])
    assert sum(len(w) for w in word_ids) > 64
    pieces, stats = wt.pieces(long_sentence_index, word_ids)
    assert len(pieces) >= 3
    assert stats.sentences_windowed == 1 and stats.pieces == len(pieces)
    assert stats.windowed_sentence_ids == [long_sentence_index]
    assert stats.words_truncated == 0
    assert all(p.sentence == long_sentence_index for p in pieces)
    _check_pieces(wt, word_ids, 64, pieces)
    # Consecutive windows overlap (stride is half a window) and start at word boundaries.
    ranges, _ = _word_ranges(wt, word_ids, pieces)
    for (a0, b0), (a1, b1) in zip(ranges[:-1], ranges[1:], strict=True):
        assert a0 < a1 < b0 <= b1


def _brute_force_best(ranges, starts, causal):
    """For each word, the score of the best window containing it (first best wins)."""
    n = len(starts) - 1
    best = []
    for j in range(n):
        scores = []
        for a, b in ranges:
            if a <= j < b:
                left = starts[j] - starts[a]
                right = starts[b] - starts[j + 1]
                scores.append(left if causal else min(left, right))
        best.append(max(scores))
    return best


@pytest.mark.parametrize("causal", [False, True])
def test_windows_properties_randomized(tiny_bert, causal):
    """Random word lengths, capacities and strides: coverage, fit and best-context choice."""
    rng = np.random.default_rng(0 if causal else 1)
    for trial in range(60):
        max_length = int(rng.integers(6, 40))
        stride = None if trial % 3 == 0 else int(rng.integers(1, max_length))
        wt = WordTokenizer(tiny_bert.tokenizer, max_length, causal=causal, stride=stride)
        n_words = int(rng.integers(1, 60))
        # Fake ids (>= 1000, so they never match special tokens); some words longer than a window.
        word_ids = [[1000 + 7 * j + i for i in range(int(rng.integers(1, 6)))]
                    for j in range(n_words)]
        if trial % 5 == 0:
            word_ids[n_words // 2] = list(range(5000, 5000 + wt.capacity + 3))
        pieces, stats = wt.pieces(trial, word_ids)
        _check_pieces(wt, word_ids, max_length, pieces)
        assert stats.words_truncated == sum(len(w) > wt.capacity for w in word_ids)
        assert stats.sentences_windowed == int(len(pieces) > 1)
        ranges, starts = _word_ranges(wt, word_ids, pieces)
        assert ranges[0][0] == 0 and ranges[-1][1] == n_words
        chosen = {}
        for (a, b), piece in zip(ranges, pieces, strict=True):
            for word, _, _ in piece.spans:
                left = starts[word] - starts[a]
                right = starts[b] - starts[word + 1]
                chosen[word] = left if causal else min(left, right)
        assert [chosen[j] for j in range(n_words)] == _brute_force_best(ranges, starts, causal)


def test_truncated_word_keeps_first_subwords(tiny_bert):
    wt = WordTokenizer(tiny_bert.tokenizer, 6)  # [CLS] + 4 + [SEP]
    word_ids = [[1001], list(range(2000, 2010)), [1002]]
    pieces, stats = wt.pieces(0, word_ids)
    assert stats.words_truncated == 1 and stats.sentences_windowed == 1
    spans = {w: p.input_ids[s:e] for p in pieces for w, s, e in p.spans}
    assert spans[1] == [2000, 2001, 2002, 2003]
    assert spans[0] == [1001] and spans[2] == [1002]


def test_smaller_stride_gives_more_windows(tiny_bert):
    word_ids = [[1000 + j] for j in range(100)]
    counts = [len(WordTokenizer(tiny_bert.tokenizer, 22, stride=s).pieces(0, word_ids)[0])
              for s in (20, 10, 5)]
    assert counts[0] < counts[1] < counts[2]
    wide = WordTokenizer(tiny_bert.tokenizer, 22, stride=20)
    assert wide.stride == 20
    assert WordTokenizer(tiny_bert.tokenizer, 22, stride=0).stride == 1


def test_window_stats_merge_and_dict():
    a = WindowStats(sentences_windowed=1, pieces=3, words_truncated=1,
                    windowed_sentence_ids=[4])
    b = WindowStats(sentences_windowed=2, pieces=5, words_without_subwords=2,
                    windowed_sentence_ids=[7, 9])
    a.merge(b)
    d = a.as_dict()
    assert d == {
        "sentences_windowed": 3,
        "pieces": 8,
        "words_truncated": 1,
        "words_without_subwords": 2,
        "windowed_sentence_ids_first_1000": [4, 7, 9],
    }
    # The dict is a snapshot: stats that keep growing do not change a dict already handed out.
    a.merge(WindowStats(sentences_windowed=1, windowed_sentence_ids=[11]))
    assert d["windowed_sentence_ids_first_1000"] == [4, 7, 9]
    assert d["sentences_windowed"] == 3
    big = WindowStats(windowed_sentence_ids=list(range(999)))
    big.merge(WindowStats(windowed_sentence_ids=[1000, 1001, 1002]))
    assert len(big.windowed_sentence_ids) == 1000


def test_aggregations_constant():
    assert AGGREGATIONS == ("first", "last", "mean", "max")
