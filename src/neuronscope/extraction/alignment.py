"""Words -> subword pieces that fit the model, and which subwords make up each word.

Words are tokenized one by one, which gives the same subwords as ``is_split_into_words``
and works with every tokenizer. Byte-level BPE tokenizers (GPT-2, Llama 3, SmolLM2) encode a
leading space into the token, so every word after the first gets a space prepended.

Sentences longer than the model's maximum are cut into overlapping windows at word
boundaries; each word is taken from the window where it has the most context (both sides
for bidirectional encoders, left side for causal LMs). No word is dropped: a single word
longer than a whole window keeps its first subwords and is counted as truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.errors import InvalidOptionError

AGGREGATIONS = ("first", "last", "mean", "max")


@dataclass
class Piece:
    """One model input: a sentence or a window of one.

    ``spans`` holds ``(word_position, start, stop)``: the word's subwords are tokens
    ``start:stop`` of ``input_ids`` (special tokens included in the indexing).
    """

    sentence: int
    input_ids: list[int]
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    first_piece: bool = True
    last_piece: bool = True
    content_stop: int = 0  # index after the last non-special token


@dataclass
class WindowStats:
    """What windowing did to a corpus; saved in the store metadata."""

    sentences_windowed: int = 0
    pieces: int = 0
    words_truncated: int = 0
    words_without_subwords: int = 0
    windowed_sentence_ids: list[int] = field(default_factory=list)

    def merge(self, other: WindowStats) -> None:
        """Add another block's counts to these."""
        self.sentences_windowed += other.sentences_windowed
        self.pieces += other.pieces
        self.words_truncated += other.words_truncated
        self.words_without_subwords += other.words_without_subwords
        room = 1000 - len(self.windowed_sentence_ids)
        self.windowed_sentence_ids.extend(other.windowed_sentence_ids[: max(room, 0)])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "sentences_windowed": self.sentences_windowed,
            "pieces": self.pieces,
            "words_truncated": self.words_truncated,
            "words_without_subwords": self.words_without_subwords,
            # A copy: the dict may be saved later (another thread) while these stats grow.
            "windowed_sentence_ids_first_1000": list(self.windowed_sentence_ids),
        }


class WordTokenizer:
    """Tokenizes pre-split words and lays them out in model-sized pieces.

    Args:
        tokenizer: a Hugging Face tokenizer.
        max_length: longest input the model takes, special tokens included.
        causal: choose windows by left context only.
        stride: tokens between window starts; default half a window.
    """

    def __init__(
        self, tokenizer: Any, max_length: int, causal: bool = False, stride: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.causal = causal
        self.prefix_ids, self.suffix_ids = self._special_layout()
        self.capacity = max_length - len(self.prefix_ids) - len(self.suffix_ids)
        if self.capacity < 2:
            raise InvalidOptionError(
                f"max_length {max_length} leaves no room for words (the model adds "
                f"{max_length - self.capacity} special tokens)"
            )
        self.stride = max(1, stride if stride is not None else self.capacity // 2)
        self.space_prefix = self._needs_space_prefix()
        self.unk_id = self._fallback_id()

    def _special_layout(self) -> tuple[list[int], list[int]]:
        # Find where special tokens go: locate a word's plain ids inside its full encoding.
        for probe in ("hello", "a", "x"):
            full = list(self.tokenizer(probe, add_special_tokens=True)["input_ids"])
            core = list(self.tokenizer(probe, add_special_tokens=False)["input_ids"])
            for i in range(len(full) - len(core) + 1):
                if core and full[i : i + len(core)] == core:
                    return full[:i], full[i + len(core) :]
        return [], []

    def _needs_space_prefix(self) -> bool:
        # Byte-level BPE: " the" and "the" differ, and " the" is no longer than "the".
        plain = self.tokenizer("the", add_special_tokens=False)["input_ids"]
        spaced = self.tokenizer(" the", add_special_tokens=False)["input_ids"]
        return plain != spaced and len(spaced) <= len(plain)

    def _fallback_id(self) -> int:
        for tok in ("unk_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self.tokenizer, tok, None)
            if value is not None:
                return int(value)
        return 0

    def _encode(self, texts: list[str]) -> list[list[int]]:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # The Rust tokenizer directly: the Python wrapper costs ~30 us per word.
            return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def encode_words(self, sentences: list[list[str]]) -> tuple[list[list[list[int]]], int]:
        """Subword ids of every word; words with none get the unknown token (counted)."""
        flat: list[str] = []
        for sentence in sentences:
            for j, word in enumerate(sentence):
                flat.append(" " + word if self.space_prefix and j > 0 else word)
        encoded = self._encode(flat) if flat else []
        out: list[list[list[int]]] = []
        empty = 0
        k = 0
        for sentence in sentences:
            words = []
            for _ in sentence:
                ids = list(encoded[k])
                k += 1
                if not ids:
                    ids = [self.unk_id]
                    empty += 1
                words.append(ids)
            out.append(words)
        return out, empty

    def pieces(
        self, sentence_index: int, word_ids: list[list[int]]
    ) -> tuple[list[Piece], WindowStats]:
        """Lay out one sentence as one piece, or as overlapping windows when too long."""
        stats = WindowStats()
        if not word_ids:
            return [], stats  # a sentence without words: nothing to run
        cap = self.capacity
        truncated = [ids[:cap] for ids in word_ids]
        stats.words_truncated = sum(len(ids) > cap for ids in word_ids)
        if sum(len(ids) for ids in truncated) <= cap:
            # One window (nearly every sentence): the layout below without numpy, whose
            # per-call cost on arrays of a few words is most of the time here.
            piece = Piece(sentence_index, list(self.prefix_ids))
            for j, ids in enumerate(truncated):
                start = len(piece.input_ids)
                piece.input_ids.extend(ids)
                piece.spans.append((j, start, start + len(ids)))
            piece.content_stop = len(piece.input_ids)
            piece.input_ids.extend(self.suffix_ids)
            stats.pieces = 1
            return [piece], stats
        lengths = np.array([len(ids) for ids in truncated], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        windows = self._windows(starts, cap)
        stats.sentences_windowed = 1
        stats.windowed_sentence_ids = [sentence_index]
        # Choose for each word the window where it sees the most context.
        best = np.full(len(truncated), -1)
        best_score = np.full(len(truncated), -1.0)
        for w, (a, b) in enumerate(windows):
            left = starts[a:b] - starts[a]
            right = starts[b] - starts[a + 1 : b + 1]
            score = left if self.causal else np.minimum(left, right)
            better = score > best_score[a:b]
            best[a:b][better] = w
            best_score[a:b][better] = score[better]
        pieces = []
        n_pre = len(self.prefix_ids)
        for w, (a, b) in enumerate(windows):
            content = [t for ids in truncated[a:b] for t in ids]
            piece = Piece(
                sentence_index,
                self.prefix_ids + content + self.suffix_ids,
                first_piece=w == 0,
                last_piece=w == len(windows) - 1,
                content_stop=n_pre + len(content),
            )
            for j in range(a, b):
                if best[j] == w:
                    s = n_pre + int(starts[j] - starts[a])
                    piece.spans.append((j, s, s + int(lengths[j])))
            pieces.append(piece)
        stats.pieces = len(pieces)
        return pieces, stats

    def _windows(self, starts: np.ndarray, cap: int) -> list[tuple[int, int]]:
        """Word ranges ``[a, b)`` of at most ``cap`` tokens, starting every ``stride`` tokens."""
        n = len(starts) - 1
        windows = []
        a = 0
        while True:
            b = a
            while b < n and starts[b + 1] - starts[a] <= cap:
                b += 1
            windows.append((a, b))
            if b >= n:
                return windows
            # Next window starts at the first word at least `stride` tokens further on.
            nxt = int(np.searchsorted(starts, starts[a] + self.stride, side="left"))
            a = min(max(nxt, a + 1), b)
