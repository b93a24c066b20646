"""Corpora: sentences with word- and sentence-level labels, readers, writers and annotators."""

from neuronscope.corpus.annotators import (
    AffixAnnotator,
    Annotator,
    CallableAnnotator,
    CasingAnnotator,
    PositionAnnotator,
    RegexAnnotator,
    SentenceLabelAnnotator,
    SpacyAnnotator,
    WordAnnotator,
    WordListAnnotator,
    load_spacy,
    spacy_annotate_text,
)
from neuronscope.corpus.corpus import NO_LABEL, BinaryView, Corpus, corpus_from_records
from neuronscope.corpus.demo import load_demo_corpus
from neuronscope.corpus.readers import (
    CorpusFileNotFoundError,
    EmptyCorpusFileError,
    detect_format,
    load_corpus,
    read_conllu,
    read_jsonl,
    read_parallel,
    read_text,
)
from neuronscope.corpus.tables import (
    corpus_from_dataset,
    corpus_from_pandas,
    read_hf_dataset,
)
from neuronscope.corpus.writers import write_conllu, write_parallel

__all__ = [
    "NO_LABEL",
    "AffixAnnotator",
    "Annotator",
    "BinaryView",
    "CallableAnnotator",
    "CasingAnnotator",
    "Corpus",
    "CorpusFileNotFoundError",
    "EmptyCorpusFileError",
    "PositionAnnotator",
    "RegexAnnotator",
    "SentenceLabelAnnotator",
    "SpacyAnnotator",
    "WordAnnotator",
    "WordListAnnotator",
    "corpus_from_dataset",
    "corpus_from_pandas",
    "corpus_from_records",
    "detect_format",
    "load_corpus",
    "load_demo_corpus",
    "load_spacy",
    "read_conllu",
    "read_hf_dataset",
    "read_jsonl",
    "read_parallel",
    "read_text",
    "spacy_annotate_text",
    "write_conllu",
    "write_parallel",
]
