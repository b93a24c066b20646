"""The corpus data model: sentences of words plus named word- and sentence-level label layers.

A corpus is immutable in spirit: annotators and views return new objects and never change
the lists they were given. Word order is the flat order used everywhere else: the store's
rows are the corpus' words, sentence by sentence, so ``corpus.labels_array(layer)[i]`` is
the label of store row ``i``.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from neuronscope.errors import CorpusFormatError, EmptyCorpusError, NeuronscopeError

#: Label given to words that carry no value in a layer (CoNLL-U's blank).
NO_LABEL = "_"


@dataclass(frozen=True)
class BinaryView:
    """A "concept C vs rest" view of one label layer.

    ``indices`` are flat word indices (store rows) in increasing order; ``y[j]`` is 1 when word
    ``indices[j]`` carries the concept. Without balancing, ``indices`` covers every word.
    """

    layer: str
    concept: str
    indices: np.ndarray
    y: np.ndarray

    @property
    def n_positive(self) -> int:
        """Number of words carrying the concept in this view."""
        return int(self.y.sum())


@dataclass(frozen=True)
class ConceptLabels:
    """Flat word labels of one layer (aligned with store rows) and where they came from."""

    values: np.ndarray
    layer: str
    corpus_fingerprint: str

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Corpus:
    """Sentences (lists of words) with word-level and sentence-level label layers.

    Args:
        sentences: one list of words per sentence.
        labels: layer name -> one list of labels per sentence, each as long as the sentence.
        sentence_labels: layer name -> one label per sentence.
        name: a short human-readable name (file name, "demo", ...).
        texts: the original text of each sentence where the source has it (CoNLL-U
            ``# text``), so language models can be scored on real text rather than on words
            joined with spaces; not part of the fingerprint or of equality.
    """

    sentences: list[list[str]]
    labels: dict[str, list[list[str]]] = field(default_factory=dict)
    sentence_labels: dict[str, list[str]] = field(default_factory=dict)
    name: str = "corpus"
    texts: list[str | None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Copy so that later changes to the caller's lists cannot reach us (and vice versa).
        object.__setattr__(self, "sentences", [list(map(str, s)) for s in self.sentences])
        object.__setattr__(
            self, "labels", {k: [list(map(str, s)) for s in v] for k, v in self.labels.items()}
        )
        object.__setattr__(
            self, "sentence_labels", {k: list(map(str, v)) for k, v in self.sentence_labels.items()}
        )
        for layer, per_sentence in self.labels.items():
            self._check_layer(layer, per_sentence)
        if self.texts is not None:
            object.__setattr__(self, "texts", list(self.texts))
            if len(self.texts) != len(self.sentences):
                raise CorpusFormatError(
                    f"{len(self.texts)} sentence texts for {len(self.sentences)} sentences"
                )
        for layer, values in self.sentence_labels.items():
            if len(values) != len(self.sentences):
                raise CorpusFormatError(
                    f"sentence label layer {layer!r} has {len(values)} labels "
                    f"for {len(self.sentences)} sentences"
                )

    def _check_layer(self, layer: str, per_sentence: Sequence[Sequence[str]]) -> None:
        if len(per_sentence) != len(self.sentences):
            raise CorpusFormatError(
                f"label layer {layer!r} has {len(per_sentence)} sentences, "
                f"the corpus has {len(self.sentences)}"
            )
        for i, (words, labs) in enumerate(zip(self.sentences, per_sentence, strict=True)):
            if len(words) != len(labs):
                raise CorpusFormatError(
                    f"label layer {layer!r}, sentence {i}: {len(labs)} labels "
                    f"for {len(words)} words"
                )

    # ------------------------------------------------------------------ sizes and indices
    @property
    def n_sentences(self) -> int:
        """Number of sentences."""
        return len(self.sentences)

    @property
    def n_words(self) -> int:
        """Number of words over all sentences."""
        return sum(len(s) for s in self.sentences)

    @property
    def layers(self) -> list[str]:
        """Names of the word-level label layers."""
        return list(self.labels)

    def sentence_lengths(self) -> np.ndarray:
        """Words per sentence as an int64 array."""
        return np.fromiter((len(s) for s in self.sentences), dtype=np.int64, count=self.n_sentences)

    def sentence_offsets(self) -> np.ndarray:
        """Flat index of each sentence's first word; one extra entry holds ``n_words``."""
        return np.concatenate([[0], np.cumsum(self.sentence_lengths())]).astype(np.int64)

    def sentence_ids(self) -> np.ndarray:
        """For every flat word index, the index of its sentence."""
        return np.repeat(np.arange(self.n_sentences, dtype=np.int64), self.sentence_lengths())

    def positions(self) -> np.ndarray:
        """For every flat word index, its position inside its sentence."""
        offsets = self.sentence_offsets()
        return np.arange(self.n_words, dtype=np.int64) - np.repeat(
            offsets[:-1], self.sentence_lengths()
        )

    def words(self) -> list[str]:
        """All words in flat order."""
        return [w for s in self.sentences for w in s]

    def require_nonempty(self) -> None:
        """Raise :class:`EmptyCorpusError` when the corpus has no words."""
        if self.n_sentences == 0 or self.n_words == 0:
            raise EmptyCorpusError(f"corpus {self.name!r} is empty: it has no words")

    # ------------------------------------------------------------------ fingerprint
    @property
    def fingerprint(self) -> str:
        """A stable hash of the words and sentence boundaries (labels excluded).

        Stores record it, so labels added later by annotators still match a store. Every
        sentence and word is length-prefixed, so no character inside a word (``\x1f``
        included) can make two different corpora hash alike.
        """
        h = hashlib.sha256(b"neuronscope-corpus-fingerprint-v2\n")
        step = 4096  # sentences per block: bounded memory, few Python-level calls
        for start in range(0, len(self.sentences), step):
            block = self.sentences[start : start + step]
            words = [w for sent in block for w in sent]
            h.update(len(block).to_bytes(8, "little"))
            h.update(array("Q", map(len, block)).tobytes())  # words per sentence
            # Characters per word: UTF-8 decodes uniquely, so the lengths split the text.
            h.update(array("Q", map(len, words)).tobytes())
            # surrogatepass: a word built in Python with a lone surrogate still hashes.
            h.update("".join(words).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:16]

    @property
    def legacy_fingerprint(self) -> str:
        """The fingerprint of neuronscope <= 0.1.0 (separator-joined words, which a word holding
        U+001F could forge); only used to explain why an old store no longer matches."""
        h = hashlib.sha256()
        for s in self.sentences:
            h.update(b"\x1e")
            h.update("\x1f".join(s).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ labels
    def layer(self, name: str) -> list[list[str]]:
        """The per-sentence labels of a word-level layer, with a clear error when missing."""
        if name not in self.labels:
            raise NeuronscopeError(
                f"corpus {self.name!r} has no label layer {name!r}; "
                f"layers: {', '.join(self.labels) or '(none)'}"
            )
        return self.labels[name]

    def labels_array(self, name: str) -> np.ndarray:
        """Flat labels of a word-level layer, aligned with store rows (dtype object)."""
        return np.array([x for s in self.layer(name) for x in s], dtype=object)

    def concept_labels(self, name: str) -> ConceptLabels:
        """A label layer packaged for ranking methods: flat labels plus the corpus fingerprint.

        Methods check the fingerprint against the store's, so labels from another corpus are
        refused instead of silently misaligned.
        """
        return ConceptLabels(self.labels_array(name), name, self.fingerprint)

    def label_counts(self, name: str) -> Counter:
        """How often each label of a layer occurs."""
        return Counter(x for s in self.layer(name) for x in s)

    def with_layer(self, name: str, per_sentence: Sequence[Sequence[str]]) -> Corpus:
        """A new corpus with one more (or a replaced) word-level label layer."""
        labels = dict(self.labels)
        labels[name] = [list(s) for s in per_sentence]
        return Corpus(self.sentences, labels, self.sentence_labels, self.name, self.texts)

    def with_sentence_layer(self, name: str, values: Sequence[str]) -> Corpus:
        """A new corpus with one more (or a replaced) sentence-level label layer."""
        sentence_labels = dict(self.sentence_labels)
        sentence_labels[name] = list(values)
        return Corpus(self.sentences, self.labels, sentence_labels, self.name, self.texts)

    def subset(self, sentence_indices: Sequence[int]) -> Corpus:
        """A new corpus holding the given sentences (in the given order)."""
        idx = list(sentence_indices)
        return Corpus(
            [self.sentences[i] for i in idx],
            {k: [v[i] for i in idx] for k, v in self.labels.items()},
            {k: [v[i] for i in idx] for k, v in self.sentence_labels.items()},
            self.name,
            None if self.texts is None else [self.texts[i] for i in idx],
        )

    def binary(
        self,
        layer: str,
        concept: str,
        balance: bool = False,
        random_state: int | None = 0,
    ) -> BinaryView:
        """View a layer as "concept vs rest".

        Args:
            layer: label layer name.
            concept: the label that counts as positive.
            balance: subsample the majority side so both sides have the same size.
            random_state: seed of the subsampling.
        """
        labels = self.labels_array(layer)
        y = (labels == concept).astype(np.int8)
        if y.sum() == 0:
            present = sorted(set(labels.tolist()))
            raise NeuronscopeError(
                f"concept {concept!r} does not occur in layer {layer!r}; "
                f"labels: {', '.join(present[:30])}"
            )
        indices = np.arange(len(y), dtype=np.int64)
        if balance:
            rng = np.random.default_rng(random_state)
            pos, neg = indices[y == 1], indices[y == 0]
            n = min(len(pos), len(neg))
            pos = rng.choice(pos, n, replace=False) if len(pos) > n else pos
            neg = rng.choice(neg, n, replace=False) if len(neg) > n else neg
            indices = np.sort(np.concatenate([pos, neg]))
            y = y[indices]
        return BinaryView(layer, concept, indices, y)

    def __repr__(self) -> str:
        return (
            f"Corpus(name={self.name!r}, sentences={self.n_sentences}, words={self.n_words}, "
            f"layers={self.layers}, sentence_layers={list(self.sentence_labels)})"
        )


def corpus_from_records(
    records: Sequence[Mapping[str, Sequence[str]]], words_key: str = "words", name: str = "corpus"
) -> Corpus:
    """Build a corpus from dicts such as ``{"words": [...], "upos": [...], "topic": "x"}``.

    List-valued keys become word-level layers; string-valued keys become sentence-level labels.
    """
    sentences: list[list[str]] = []
    labels: dict[str, list[list[str]]] = {}
    sentence_labels: dict[str, list[str]] = {}
    for i, rec in enumerate(records):
        if words_key not in rec:
            raise CorpusFormatError(f"record {i} has no {words_key!r} key")
        sentences.append(list(rec[words_key]))
    for i, rec in enumerate(records):
        for key, value in rec.items():
            if key == words_key:
                continue
            if isinstance(value, str):
                sentence_labels.setdefault(key, [NO_LABEL] * len(records))[i] = value
            else:
                labels.setdefault(key, [[NO_LABEL] * len(s) for s in sentences])[i] = list(value)
    return Corpus(sentences, labels, sentence_labels, name)
