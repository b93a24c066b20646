"""Validation of ranking JSON files: a hand-edited or damaged file gets an error naming the
field and the problem, never a traceback deep inside ``evaluate`` or ``report``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError

__all__ = ["RankingFormatError", "load_ranking_json", "validate_ranking_dict"]

FORMAT = "neuronscope-ranking"
_MAX_ID_DIGITS = 18


class RankingFormatError(NeuronscopeError, ValueError):
    """A ranking file or dictionary does not follow the ranking format."""


def load_ranking_json(source: str | os.PathLike) -> tuple[Any, str]:
    """The parsed JSON of a ranking and a label for messages (the path, or ``<JSON text>``).

    A :class:`~pathlib.Path` is always a file. A string is a file when such a file exists
    (``{r}.json`` is a valid file name) and JSON text when it starts with ``{``.
    """
    text: str
    if not isinstance(source, str) or not source.lstrip().startswith("{") or _is_file(source):
        path = Path(source)
        label = str(path)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "not found"
            raise RankingFormatError(f"ranking file {label}: {what}")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RankingFormatError(f"{label}: not UTF-8 text (byte {err.start}); a ranking "
                                     "file is JSON written by `neuronscope rank`") from None
    else:
        text, label = source, "<JSON text>"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RankingFormatError(f"{label}:{err.lineno}: not valid JSON: {err.msg} "
                                 f"(column {err.colno})") from None
    except RecursionError:
        raise RankingFormatError(f"{label}: JSON nested too deeply to be a ranking") from None
    return data, label


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # name too long, NUL byte...
        return False


def validate_ranking_dict(data: Any, source: str = "ranking") -> None:
    """Check ``data`` against the ranking format; raise :class:`RankingFormatError` naming the
    field (e.g. ``concepts.NOUN.scores[3]``) and the problem."""
    if not isinstance(data, Mapping):
        raise RankingFormatError(f"{source}: expected a JSON object, got {_kind(data)}")
    if data.get("format") != FORMAT:
        raise RankingFormatError(f"{source}: not a neuronscope ranking (field 'format' must be "
                                 f"{FORMAT!r}, got {_short(data.get('format'))})")
    for key in ("method", "params", "names", "concepts", "global"):
        if key not in data:
            raise RankingFormatError(f"{source}: field {key!r} is missing")
    _expect(data["method"], str, source, "method")
    _expect(data["params"], Mapping, source, "params")
    for key in ("store_fingerprint", "label_layer"):
        if data.get(key) is not None:
            _expect(data[key], str, source, key)
    if "extra" in data:
        _expect(data["extra"], Mapping, source, "extra")
    names = data["names"]
    _expect(names, Mapping, source, "names")
    known: set[int] = set()
    for key, name in names.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit()
                and len(key) <= _MAX_ID_DIGITS):
            raise RankingFormatError(f"{source}: names: key {_short(key)} is not a neuron id "
                                     "(a non-negative integer)")
        _expect(name, str, source, f"names.{key}")
        known.add(int(key))
    concepts = data["concepts"]
    _expect(concepts, Mapping, source, "concepts")
    for concept, entry in concepts.items():
        _check_order(entry, known, source, f"concepts.{concept}")
    _check_order(data["global"], known, source, "global")


def _check_order(entry: Any, known: set[int], source: str, field: str) -> None:
    _expect(entry, Mapping, source, field)
    for key in ("ids", "scores"):
        if key not in entry:
            raise RankingFormatError(f"{source}: field {field}.{key} is missing")
        _expect(entry[key], list, source, f"{field}.{key}")
    ids, scores = entry["ids"], entry["scores"]
    if len(ids) != len(scores):
        raise RankingFormatError(f"{source}: {field} has {len(ids)} ids but {len(scores)} "
                                 "scores")
    for i, value in enumerate(ids):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RankingFormatError(f"{source}: {field}.ids[{i}] must be a non-negative "
                                     f"integer, got {_short(value)}")
        if value not in known:
            raise RankingFormatError(f"{source}: {field}.ids[{i}] = {value} has no entry in "
                                     "names")
    if len(set(ids)) != len(ids):
        seen: set[int] = set()
        dup = next(v for v in ids if v in seen or seen.add(v))  # type: ignore[func-returns-value]
        raise RankingFormatError(f"{source}: {field}.ids lists neuron {dup} more than once")
    for i, value in enumerate(scores):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise RankingFormatError(f"{source}: {field}.scores[{i}] must be a number, got "
                                     f"{_short(value)}")


def _expect(value: Any, kind: Any, source: str, field: str) -> None:
    if not isinstance(value, kind):
        wanted = {str: "a string", list: "a list"}.get(kind, "an object")
        raise RankingFormatError(f"{source}: field {field} must be {wanted}, got {_kind(value)}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value),
                                                                          type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
