"""Readers that turn corpus files into :class:`~neuronscope.corpus.corpus.Corpus` objects.

Supported formats:

* **CoNLL-U** (:func:`read_conllu`): words are the FORMs of integer-ID lines. Layers are
  ``upos``, ``xpos``, ``lemma``, ``deprel`` (each dropped when the whole file leaves it blank),
  one layer per FEATS key, and one layer per ``label.KEY=VALUE`` entry of the MISC column.
  Sentence-level labels come from comments of the form ``# label.KEY = VALUE``.
* **Parallel** NeuroX files (:func:`read_parallel`): one sentence per line, words split on
  whitespace, plus one label file per layer with one label per word.
* **Plain text** (:func:`read_text`): one sentence per line, whitespace- or spaCy-tokenized.
* **JSON lines** (:func:`read_jsonl`): one object per line; lists are word layers, strings
  are sentence labels.

:func:`load_corpus` picks the reader from the file extension. Every reader raises
:class:`~neuronscope.errors.CorpusFormatError` with ``path:line:`` for malformed input and
:class:`EmptyCorpusFileError` when a file holds no words.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from neuronscope.corpus.corpus import NO_LABEL, Corpus, corpus_from_records
from neuronscope.errors import CorpusFormatError, EmptyCorpusError, NeuronscopeError

#: Anything naming a file.
PathLike = str | os.PathLike

#: Prefix that marks sentence labels in CoNLL-U comments and word labels in the MISC column.
LABEL_PREFIX = "label."

#: The plain CoNLL-U columns read as word-level layers (the order layers are created in).
CONLLU_COLUMN_LAYERS = ("upos", "xpos", "lemma", "deprel")

_FORMATS = ("conllu", "jsonl", "parallel", "text")
_FORMAT_ALIASES = {"conll": "conllu", "json": "jsonl", "txt": "text", "neurox": "parallel"}
_RANGE_ID = re.compile(r"^[1-9][0-9]*-[1-9][0-9]*$")
_EMPTY_NODE_ID = re.compile(r"^[0-9]+\.[1-9][0-9]*$")
_WORD_ID = re.compile(r"^[1-9][0-9]*$")


class CorpusFileNotFoundError(CorpusFormatError, FileNotFoundError):
    """A corpus or label file does not exist (also catchable as ``FileNotFoundError``)."""


class EmptyCorpusFileError(CorpusFormatError, EmptyCorpusError):
    """A corpus file holds no sentence with words.

    It is both a :class:`CorpusFormatError` (the file is unusable) and an
    :class:`EmptyCorpusError` (the corpus would be empty), and its message names the file.
    """


# ---------------------------------------------------------------------------------- helpers
def _read_lines(path: PathLike) -> list[str]:
    """The lines of a UTF-8 file without line terminators (BOM and CRLF tolerated)."""
    p = Path(path)
    if not p.exists():
        raise CorpusFileNotFoundError("file not found", str(path))
    if p.is_dir():
        raise CorpusFormatError("is a directory, expected a file", str(path))
    try:
        # utf-8-sig drops a BOM; universal newlines turn CRLF/CR into "\n".
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusFormatError(
            f"not valid UTF-8 ({exc.reason} at byte {exc.start})", str(path)
        ) from None
    # split("\n") rather than splitlines(): the latter also breaks on \x1c, \u2028, ... which
    # may legitimately occur inside words.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line terminator
    return lines


def _strip_trailing_blank(lines: list[str]) -> list[str]:
    """Drop blank lines at the end of a file (editors often leave some)."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return lines[:end]


def _default_name(path: PathLike, name: str | None) -> str:
    return name if name is not None else Path(path).stem


def _check_nonempty(corpus: Corpus, path: PathLike) -> Corpus:
    if corpus.n_sentences == 0 or corpus.n_words == 0:
        raise EmptyCorpusFileError("the file holds no sentence with words", str(path))
    return corpus


# ---------------------------------------------------------------------------------- CoNLL-U
def _parse_key_values(
    field: str, column: str, path: PathLike, line_no: int
) -> list[tuple[str, str]]:
    """Parse a ``Key=Value|Key=Value`` column (FEATS, or the labels in MISC)."""
    if field == NO_LABEL:
        return []
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in field.split("|"):
        key, eq, value = item.partition("=")
        if not eq or not key or not value or key != key.strip() or value != value.strip():
            raise CorpusFormatError(
                f"malformed {column} {field!r}: expected Key=Value pairs separated by '|'",
                str(path),
                line_no,
            )
        if key in seen:
            raise CorpusFormatError(f"{column} repeats the key {key!r}", str(path), line_no)
        seen.add(key)
        pairs.append((key, value))
    return pairs


def _misc_labels(field: str, path: PathLike, line_no: int) -> list[tuple[str, str]]:
    """The ``label.KEY=VALUE`` entries of a MISC column (other MISC entries are ignored)."""
    out: list[tuple[str, str]] = []
    for item in field.split("|") if field != NO_LABEL else []:
        if item.startswith(LABEL_PREFIX):
            pairs = _parse_key_values(item, "MISC", path, line_no)
            out.extend((k[len(LABEL_PREFIX) :], v) for k, v in pairs)
    return out


def read_conllu(path: PathLike, name: str | None = None) -> Corpus:
    """Read a CoNLL-U file.

    Words are the FORMs of lines with an integer ID; multiword-token ranges (``3-4``) and
    empty nodes (``8.1``) are skipped. Word-level layers:

    * ``upos``, ``xpos``, ``lemma``, ``deprel`` from their columns; a column that is ``_`` on
      every word of the file gives no layer;
    * one layer per FEATS key found anywhere in the file (``Number``, ``Tense``, ...), with
      :data:`NO_LABEL` for words lacking the key;
    * one layer per ``label.KEY=VALUE`` entry in MISC (how :func:`write_conllu` stores layers
      that are neither columns nor features).

    Comments are ignored, except ``# label.KEY = VALUE`` which sets the sentence-level label
    ``KEY`` of the sentence it precedes (sentences without it get :data:`NO_LABEL`), and
    ``# text = ...``, kept as the sentence's original text (:attr:`Corpus.texts`).

    Args:
        path: the CoNLL-U file (UTF-8; a BOM, CRLF line ends and a missing final blank line
            are tolerated).
        name: corpus name; defaults to the file's stem.

    Raises:
        CorpusFormatError: a malformed line (wrong column count, bad or unsorted ID, empty
            field, malformed FEATS); the message starts with ``path:line:``.
        EmptyCorpusFileError: the file has no sentence.
    """
    lines = _read_lines(path)
    sentences: list[list[str]] = []
    columns: dict[str, list[list[str]]] = {c: [] for c in CONLLU_COLUMN_LAYERS}
    # Feature and MISC layers are sparse: per sentence, {layer: {position: value}}.
    feats: list[dict[str, dict[int, str]]] = []
    misc: list[dict[str, dict[int, str]]] = []
    sent_labels: list[dict[str, str]] = []
    texts: list[str | None] = []
    s_text: str | None = None
    feat_keys: dict[str, None] = {}
    misc_keys: dict[str, None] = {}

    words: list[str] = []
    cols: dict[str, list[str]] = {c: [] for c in CONLLU_COLUMN_LAYERS}
    s_feats: dict[str, dict[int, str]] = {}
    s_misc: dict[str, dict[int, str]] = {}
    s_labels: dict[str, str] = {}

    def flush() -> None:
        nonlocal words, cols, s_feats, s_misc, s_labels, s_text
        if words:
            sentences.append(words)
            texts.append(s_text)
            for c in CONLLU_COLUMN_LAYERS:
                columns[c].append(cols[c])
            feats.append(s_feats)
            misc.append(s_misc)
            sent_labels.append(s_labels)
        # A block of comments without words (or a range line only) is no sentence.
        words, s_feats, s_misc, s_labels, s_text = [], {}, {}, {}, None
        cols = {c: [] for c in CONLLU_COLUMN_LAYERS}

    for line_no, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            flush()
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            key, eq, value = body.partition("=")
            if eq and key.strip() == "text":
                s_text = value.strip()
            elif body.startswith(LABEL_PREFIX):
                key, eq, value = body[len(LABEL_PREFIX) :].partition("=")
                key, value = key.strip(), value.strip()
                if not eq or not key or not value:
                    raise CorpusFormatError(
                        f"malformed sentence label comment {line!r}: "
                        f"expected '# {LABEL_PREFIX}KEY = VALUE'",
                        str(path),
                        line_no,
                    )
                s_labels[key] = value
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise CorpusFormatError(
                f"expected 10 tab-separated columns, found {len(fields)}", str(path), line_no
            )
        tid, form, lemma, upos, xpos, feat_field, _head, deprel, _deps, misc_field = fields
        if _RANGE_ID.match(tid) or _EMPTY_NODE_ID.match(tid):
            continue  # multiword token or empty node: not a word of the sentence
        if not _WORD_ID.match(tid):
            raise CorpusFormatError(f"invalid ID {tid!r}", str(path), line_no)
        if int(tid) != len(words) + 1:
            raise CorpusFormatError(
                f"word ID {tid} out of order: expected {len(words) + 1}", str(path), line_no
            )
        for col_name, value in (("FORM", form), ("LEMMA", lemma), ("UPOS", upos),
                                ("XPOS", xpos), ("FEATS", feat_field), ("DEPREL", deprel),
                                ("MISC", misc_field)):
            if not value:
                raise CorpusFormatError(f"empty {col_name} column", str(path), line_no)
        pos = len(words)
        words.append(form)
        cols["upos"].append(upos)
        cols["xpos"].append(xpos)
        cols["lemma"].append(lemma)
        cols["deprel"].append(deprel)
        for key, value in _parse_key_values(feat_field, "FEATS", path, line_no):
            feat_keys.setdefault(key)
            s_feats.setdefault(key, {})[pos] = value
        for key, value in _misc_labels(misc_field, path, line_no):
            misc_keys.setdefault(key)
            s_misc.setdefault(key, {})[pos] = value
    flush()

    if not sentences:
        raise EmptyCorpusFileError("no sentence found", str(path))

    labels: dict[str, list[list[str]]] = {}
    for c in CONLLU_COLUMN_LAYERS:
        if any(v != NO_LABEL for sent in columns[c] for v in sent):
            labels[c] = columns[c]
    for layers, keys in ((feats, feat_keys), (misc, misc_keys)):
        # Sorted so that two files with the same keys give the same layer order.
        for key in sorted(keys):
            if key in labels:
                raise CorpusFormatError(
                    f"layer {key!r} occurs both as a column/feature and as a MISC label",
                    str(path),
                )
            labels[key] = [
                [s_layers.get(key, {}).get(i, NO_LABEL) for i in range(len(ws))]
                for ws, s_layers in zip(sentences, layers, strict=True)
            ]
    sentence_labels = {
        key: [s.get(key, NO_LABEL) for s in sent_labels]
        for key in dict.fromkeys(k for s in sent_labels for k in s)
    }
    return Corpus(sentences, labels, sentence_labels, _default_name(path, name),
                  texts if any(t is not None for t in texts) else None)


# ---------------------------------------------------------------------------------- parallel
def read_parallel(
    text_path: PathLike,
    label_paths: Mapping[str, PathLike] | None = None,
    name: str | None = None,
) -> Corpus:
    """Read NeuroX-style parallel files.

    Args:
        text_path: one sentence per line, words separated by whitespace. Blank lines are an
            error (NeuroX has no empty sentences), except at the very end of the file.
        label_paths: layer name -> label file with one line per sentence and one
            whitespace-separated label per word.
        name: corpus name; defaults to the text file's stem.

    Raises:
        CorpusFormatError: a blank sentence, a label file with a different number of lines
            (the message names both files), or a line whose label count differs from its word
            count (``labelfile:line:`` plus both counts).
    """
    lines = _strip_trailing_blank(_read_lines(text_path))
    sentences: list[list[str]] = []
    for line_no, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            raise CorpusFormatError(
                "blank line: parallel text files need one non-empty sentence per line",
                str(text_path),
                line_no,
            )
        sentences.append(words)
    labels: dict[str, list[list[str]]] = {}
    for layer, label_path in (label_paths or {}).items():
        label_lines = _strip_trailing_blank(_read_lines(label_path))
        if len(label_lines) != len(sentences):
            raise CorpusFormatError(
                f"label file {label_path} has {len(label_lines)} lines but text file "
                f"{text_path} has {len(sentences)}",
                str(label_path),
            )
        per_sentence = []
        for line_no, (words, line) in enumerate(zip(sentences, label_lines, strict=True), start=1):
            labs = line.split()
            if len(labs) != len(words):
                raise CorpusFormatError(
                    f"{len(labs)} labels for {len(words)} words (line {line_no} of {text_path})",
                    str(label_path),
                    line_no,
                )
            per_sentence.append(labs)
        labels[layer] = per_sentence
    corpus = Corpus(sentences, labels, {}, _default_name(text_path, name))
    return _check_nonempty(corpus, text_path)


# ---------------------------------------------------------------------------------- text
@lru_cache(maxsize=1)
def _spacy_tokenizer() -> Any:
    # A blank English pipeline has the same tokenizer rules as the trained English models and
    # loads in milliseconds; no tagging happens here.
    try:
        import spacy
    except ImportError as exc:
        raise NeuronscopeError(
            "the spaCy tokenizer needs spaCy: pip install 'neuronscope[spacy]' (or spacy)"
        ) from exc
    return spacy.blank("en").tokenizer


def tokenize_spacy(text: str) -> list[str]:
    """Split one line into words with spaCy's English tokenizer (whitespace tokens dropped)."""
    return [t.text for t in _spacy_tokenizer()(text) if not t.is_space]


def read_text(path: PathLike, tokenizer: str = "whitespace", name: str | None = None) -> Corpus:
    """Read plain text: one sentence per line, blank lines skipped.

    Args:
        path: the text file.
        tokenizer: ``"whitespace"`` (split on whitespace) or ``"spacy"`` (spaCy's English
            tokenizer, no tagging).
        name: corpus name; defaults to the file's stem.
    """
    split: Callable[[str], list[str]]
    if tokenizer == "whitespace":
        split = str.split
    elif tokenizer == "spacy":
        split = tokenize_spacy
    else:
        raise NeuronscopeError(
            f"unknown tokenizer {tokenizer!r}; choose 'whitespace' or 'spacy'"
        )
    sentences = [split(line) for line in _read_lines(path) if line.strip()]
    corpus = Corpus([s for s in sentences if s], {}, {}, _default_name(path, name))
    return _check_nonempty(corpus, path)


# ---------------------------------------------------------------------------------- JSONL
def _scalar(value: Any) -> str | None:
    """A JSON scalar as a label string (None when it is not a scalar)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) in parsed JSON holds a surrogate code point."""
    stack = [value]  # iterative: parsed JSON can be nested deeper than Python recursion
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def read_jsonl(path: PathLike, words_key: str = "words", name: str | None = None) -> Corpus:
    """Read JSON lines such as ``{"words": [...], "upos": [...], "topic": "sports"}``.

    List values become word-level layers (one label per word), string or number values become
    sentence-level labels; a key missing from some lines gives :data:`NO_LABEL` there. Blank
    lines are skipped.

    Raises:
        CorpusFormatError: invalid JSON, a line that is not an object, no ``words_key`` list,
            or a list whose length differs from the word count (``path:line:``).
    """
    records: list[dict[str, Any]] = []
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})",
                                    str(path), line_no) from None
        except RecursionError:
            raise CorpusFormatError("JSON nested too deeply", str(path), line_no) from None
        if "\\u" in line and _has_lone_surrogate(obj):
            # "\ud800" escapes decode to text that cannot be written back as UTF-8.
            raise CorpusFormatError("a string holds a lone surrogate escape (\\ud800-\\udfff): "
                                    "not valid Unicode text", str(path), line_no)
        if not isinstance(obj, dict):
            raise CorpusFormatError(
                f"expected a JSON object, found {type(obj).__name__}", str(path), line_no
            )
        words = obj.get(words_key)
        if not isinstance(words, list):
            raise CorpusFormatError(f"no {words_key!r} list", str(path), line_no)
        record: dict[str, Any] = {}
        for key, value in obj.items():
            if isinstance(value, list):
                items = [_scalar(v) for v in value]
                if any(v is None for v in items):
                    raise CorpusFormatError(
                        f"{key!r} must be a list of strings", str(path), line_no
                    )
                if key != words_key and len(items) != len(words):
                    raise CorpusFormatError(
                        f"{key!r} has {len(items)} labels for {len(words)} words",
                        str(path),
                        line_no,
                    )
                record[key] = items
            else:
                scalar = _scalar(value)
                if scalar is None or key == words_key:
                    raise CorpusFormatError(
                        f"{key!r} must be a string or a list of strings", str(path), line_no
                    )
                record[key] = scalar
        records.append(record)
    corpus = corpus_from_records(records, words_key, _default_name(path, name))
    return _check_nonempty(corpus, path)


# ---------------------------------------------------------------------------------- dispatch
def detect_format(path: PathLike, label_paths: Mapping[str, PathLike] | None = None) -> str:
    """The reader :func:`load_corpus` would use for ``path``: conllu, jsonl, parallel or text."""
    suffix = Path(path).suffix.lower()
    if suffix in (".conllu", ".conll"):
        return "conllu"
    if suffix == ".jsonl":
        return "jsonl"
    return "parallel" if label_paths else "text"


def load_corpus(
    path: PathLike,
    format: str | None = None,
    label_paths: Mapping[str, PathLike] | None = None,
    name: str | None = None,
) -> Corpus:
    """Load a corpus, choosing the reader from ``format`` or the file extension.

    ``.conllu``/``.conll`` -> CoNLL-U, ``.jsonl`` -> JSON lines, anything else -> parallel
    files when ``label_paths`` is given, else whitespace-tokenized plain text.

    Args:
        path: the corpus file.
        format: force a reader: ``conllu``, ``jsonl``, ``parallel``, ``text``, or
            ``hf-dataset[:tokens=COL,labels=A+B,sentence-labels=C,split=NAME]`` for a
            Hugging Face dataset saved to disk (or a parquet/arrow file); see
            :mod:`neuronscope.corpus.tables`.
        label_paths: layer name -> label file (parallel format only).
        name: corpus name; defaults to the file's stem.

    Raises:
        CorpusFileNotFoundError: ``path`` (or a label file) does not exist.
        EmptyCorpusError: the file holds no words (an :class:`EmptyCorpusFileError`).
        CorpusFormatError: the file is malformed.
    """
    if not Path(path).exists():
        raise CorpusFileNotFoundError("corpus file not found", str(path))
    if format is not None and format.lower().split(":")[0] in ("hf-dataset", "hf"):
        from neuronscope.corpus.tables import parse_table_format, read_hf_dataset

        return read_hf_dataset(Path(path), name=name, **parse_table_format(format))
    fmt = detect_format(path, label_paths) if format is None else format.lower()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in _FORMATS:
        raise NeuronscopeError(f"unknown corpus format {format!r}; choose one of {_FORMATS}")
    if label_paths and fmt != "parallel":
        raise NeuronscopeError(
            f"label files only apply to the parallel format, not {fmt} ({path})"
        )
    if fmt == "conllu":
        corpus = read_conllu(path, name)
    elif fmt == "jsonl":
        corpus = read_jsonl(path, name=name)
    elif fmt == "parallel":
        corpus = read_parallel(path, label_paths, name)
    else:
        corpus = read_text(path, name=name)
    return _check_nonempty(corpus, path)
