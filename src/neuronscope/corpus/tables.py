"""Corpora from tables: Hugging Face ``datasets`` and pandas DataFrames.

Researchers usually hold token-classification data as a table with one row per sentence: a
column of tokens plus one column of tags per layer (CoNLL-2003 has ``tokens``, ``pos_tags``,
``chunk_tags``, ``ner_tags``). This module turns such a table into a :class:`Corpus`:

* the **token column** is the one named, else the first of ``tokens``, ``words``, ``token``,
  ``form`` that exists;
* **word label layers** are the columns named, else every other column whose value in every
  row is a list as long as that row's tokens;
* **sentence label layers** are the columns named, else every scalar column whose feature is a
  ``ClassLabel`` (an ``id`` column is therefore never taken as a label by accident);
* integer tags of a ``ClassLabel`` feature are resolved to their names (``3`` -> ``B-PER``).

``datasets`` is imported only when a dataset is read from disk; a ``Dataset`` object passed in
is read through its public ``features``/``column_names``/iteration API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import CorpusFormatError, NeuronscopeError

#: Column names tried, in order, when no token column is named.
TOKEN_COLUMNS = ("tokens", "words", "token", "form")


def _names_of(feature: Any) -> list[str] | None:
    """Label names of a ClassLabel feature (or a list feature of ClassLabels), else None."""
    inner = getattr(feature, "feature", None)  # List/Sequence features wrap their items
    target = inner if inner is not None else feature
    names = getattr(target, "names", None)
    return list(names) if names is not None and type(target).__name__ == "ClassLabel" else None


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _choose_token_column(columns: Sequence[str], tokens_column: str | None) -> str:
    if tokens_column is not None:
        if tokens_column not in columns:
            raise NeuronscopeError(
                f"token column {tokens_column!r} not in the table; columns: {', '.join(columns)}"
            )
        return tokens_column
    for name in TOKEN_COLUMNS:
        if name in columns:
            return name
    raise NeuronscopeError(
        f"no token column found (tried {', '.join(TOKEN_COLUMNS)}); name it with "
        f"tokens_column= (CLI: --format hf-dataset:tokens=COLUMN); columns: {', '.join(columns)}"
    )


def corpus_from_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    features: Mapping[str, Any] | None = None,
    tokens_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    sentence_label_columns: Sequence[str] | None = None,
    name: str = "table",
) -> Corpus:
    """A corpus from rows (one mapping per sentence) of a table with the given columns.

    Args:
        rows: one mapping column -> value per sentence.
        columns: the table's column names, in order.
        features: optional column -> Hugging Face feature (for ClassLabel names).
        tokens_column: the column of token lists (default: detected, see module doc).
        label_columns: word-level label columns (default: every per-token list column).
        sentence_label_columns: sentence-level label columns (default: ClassLabel scalars).
        name: the corpus name.

    Raises:
        CorpusFormatError: a row's tokens are not a list of strings, or a label list's
            length differs from its row's tokens (the message names row and column).
    """
    features = dict(features or {})
    token_col = _choose_token_column(columns, tokens_column)
    for col in [*(label_columns or []), *(sentence_label_columns or [])]:
        if col not in columns:
            raise NeuronscopeError(f"column {col!r} not in the table; columns: "
                                   f"{', '.join(columns)}")
    names = {c: _names_of(features.get(c)) for c in columns}
    table = [dict(r) for r in rows]
    if not table:
        raise CorpusFormatError(f"table {name!r} has no rows")
    word_cols = list(label_columns) if label_columns is not None else [
        c for c in columns if c != token_col and all(
            _is_sequence(r[c]) and _is_sequence(r[token_col]) and len(r[c]) == len(r[token_col])
            for r in table)
    ]
    sentence_cols = list(sentence_label_columns) if sentence_label_columns is not None else [
        c for c in columns
        if c not in (token_col, *word_cols) and names[c] is not None
        and not _is_sequence(table[0][c])
    ]

    def label(col: str, value: Any, row: int) -> str:
        mapping = names[col]
        if mapping is not None and isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(mapping):
                raise CorpusFormatError(
                    f"row {row}, column {col!r}: tag {value} outside the ClassLabel's "
                    f"{len(mapping)} names")
            return mapping[value]
        return str(value)

    sentences: list[list[str]] = []
    layers: dict[str, list[list[str]]] = {c: [] for c in word_cols}
    sentence_layers: dict[str, list[str]] = {c: [] for c in sentence_cols}
    for i, r in enumerate(table):
        tokens = r[token_col]
        if not _is_sequence(tokens) or not all(isinstance(t, str) for t in tokens):
            raise CorpusFormatError(f"row {i}, column {token_col!r}: expected a list of "
                                    f"strings, got {type(tokens).__name__}")
        if not tokens:
            raise CorpusFormatError(f"row {i}, column {token_col!r}: a sentence without tokens")
        sentences.append(list(tokens))
        for col in word_cols:
            values = r[col]
            if not _is_sequence(values) or len(values) != len(tokens):
                got = len(values) if _is_sequence(values) else type(values).__name__
                raise CorpusFormatError(f"row {i}, column {col!r}: {got} labels for "
                                        f"{len(tokens)} tokens")
            layers[col].append([label(col, v, i) for v in values])
        for col in sentence_cols:
            sentence_layers[col].append(label(col, r[col], i))
    return Corpus(sentences, layers, sentence_layers, name=name)


def corpus_from_dataset(
    dataset: Any,
    tokens_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    sentence_label_columns: Sequence[str] | None = None,
    name: str | None = None,
) -> Corpus:
    """A corpus from a Hugging Face ``datasets.Dataset`` (one row per sentence).

    A ``DatasetDict`` is refused with the list of its splits: choose one
    (``corpus_from_dataset(ds["validation"])``).
    """
    if not hasattr(dataset, "column_names") or isinstance(dataset.column_names, dict):
        splits = list(dataset.keys()) if hasattr(dataset, "keys") else []
        raise NeuronscopeError(
            "expected one split of a dataset (a datasets.Dataset); this holds splits "
            f"{', '.join(map(str, splits)) or '?'}: pick one, e.g. dataset['train']"
        )
    info_name = getattr(getattr(dataset, "info", None), "dataset_name", None)
    return corpus_from_rows(
        iter(dataset), list(dataset.column_names), dict(dataset.features), tokens_column,
        label_columns, sentence_label_columns, name or info_name or "dataset",
    )


def corpus_from_pandas(
    frame: Any,
    tokens_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    sentence_label_columns: Sequence[str] | None = None,
    name: str = "dataframe",
) -> Corpus:
    """A corpus from a pandas DataFrame with one row per sentence (list-valued columns).

    Without a ClassLabel feature, sentence-level layers must be named explicitly.
    """
    columns = [str(c) for c in frame.columns]
    rows = ({str(k): (list(v) if hasattr(v, "tolist") and not isinstance(v, str) else v)
             for k, v in rec.items()} for rec in frame.to_dict(orient="records"))
    return corpus_from_rows(rows, columns, None, tokens_column, label_columns,
                            sentence_label_columns, name)


def read_hf_dataset(
    path: str | Path,
    tokens_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    sentence_label_columns: Sequence[str] | None = None,
    split: str | None = None,
    name: str | None = None,
) -> Corpus:
    """A corpus from a dataset on disk: a ``save_to_disk`` folder, or parquet/arrow files.

    Args:
        path: a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or
            a ``.parquet`` / ``.arrow`` file.
        split: the split of a saved ``DatasetDict`` (required when it has several).
    """
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is a core dependency
        raise NeuronscopeError("reading Hugging Face datasets needs the package `datasets`"
                               ) from err
    p = Path(path)
    if not p.exists():
        raise NeuronscopeError(f"{p}: no such dataset folder or file")
    try:
        if p.is_dir():
            loaded = datasets.load_from_disk(str(p))
        elif p.suffix == ".parquet":
            loaded = datasets.Dataset.from_parquet(str(p))
        elif p.suffix == ".arrow":
            loaded = datasets.Dataset.from_file(str(p))
        else:
            raise NeuronscopeError(f"{p}: a Hugging Face dataset is a save_to_disk folder or a "
                                   ".parquet/.arrow file")
    except (FileNotFoundError, ValueError, OSError) as err:
        raise NeuronscopeError(f"{p}: not a readable Hugging Face dataset ({err})") from err
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded.keys())
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in loaded:
            raise NeuronscopeError(
                f"{p} holds splits {', '.join(splits)}: choose one "
                f"(CLI: --format hf-dataset:split=NAME)")
        loaded = loaded[split]
    elif split is not None:
        raise NeuronscopeError(f"{p} holds a single dataset, not splits; drop split={split!r}")
    return corpus_from_dataset(loaded, tokens_column, label_columns, sentence_label_columns,
                               name or p.stem)


def parse_table_format(fmt: str) -> dict[str, Any]:
    """Options of a CLI format ``hf-dataset[:key=value,...]`` as keyword arguments.

    Keys: ``tokens`` (token column), ``labels`` and ``sentence-labels`` (``+``-separated
    column lists), ``split``. Example: ``hf-dataset:tokens=words,labels=pos_tags+ner_tags``.
    """
    _, _, spec = fmt.partition(":")
    out: dict[str, Any] = {}
    keys = {"tokens": "tokens_column", "labels": "label_columns",
            "sentence-labels": "sentence_label_columns", "split": "split"}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in keys or not value:
            raise NeuronscopeError(
                f"--format hf-dataset option {item!r}: expected KEY=VALUE with KEY one of "
                f"{', '.join(keys)}")
        out[keys[key]] = value.split("+") if key in ("labels", "sentence-labels") else value
    return out
