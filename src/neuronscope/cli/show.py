"""``neuronscope show RESULT``: render any saved result again as tables.

Rankings get their own view (top neurons per concept); every other JSON result is rendered
by its structure, so that each verb's ``--out`` file can be shown without a renderer written
for it: scalars become a key/value table, lists of records become one table with a column per
key, nested sections become titled tables in turn. The files verbs write in other formats
(``export``'s NeuroX activations, ``annotate``'s CoNLL-U corpus) get a short summary (see
:mod:`neuronscope.cli.describe`). User text (words, labels, names) is printed literally: no
Rich markup is read from data. ``--output-format json|csv`` prints the same tables as data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from neuronscope.cli.output import Printer, Rows, output_format_option
from neuronscope.errors import NeuronscopeError

#: Longest list rendered as rows in the table format (json and csv get every row).
MAX_ROWS = 50
#: Deepest JSON rendered (every level is a nested table).
MAX_DEPTH = 32
#: Floats in rendered results.
FLOAT_FORMAT = ".6g"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_records(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
            and all(isinstance(v, Mapping) for v in value))


def _records_table(title: str, records: Sequence[Mapping[str, Any]]) -> Rows:
    columns: list[str] = []
    for r in records:
        columns.extend(str(k) for k in r if str(k) not in columns)
    rows = Rows(title, title, columns, max_rows=MAX_ROWS, float_format=FLOAT_FORMAT)
    for r in records:
        values = {str(k): v for k, v in r.items()}
        rows.add(*[values.get(c) for c in columns])
    return rows


def render(data: Any, title: str = "result") -> list[Rows]:
    """Tables showing a JSON value: scalars first, then records and nested sections."""
    if _is_records(data):
        return [_records_table(title, data)]
    if not isinstance(data, Mapping):
        table = Rows(title, title, ["value"], header=False, float_format=FLOAT_FORMAT)
        table.add(data)
        return [table]
    tables: list[Rows] = []
    flat = Rows(title, title, ["key", "value"], left={"key", "value"}, header=False,
                float_format=FLOAT_FORMAT)
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if _is_scalar(value) or (isinstance(value, list) and all(map(_is_scalar, value))):
            flat.add(str(key), value)
        else:
            nested.append((str(key), value))
    if flat.rows:
        tables.append(flat)
    for key, value in nested:
        tables.extend(render(value, f"{title} / {key}"))
    return tables


def ranking_tables(data: Mapping[str, Any], top: int, machine: bool = False) -> list[Rows]:
    """The top neurons of each concept of a saved ranking (``machine``: one row per neuron,
    for JSON and CSV)."""
    from neuronscope.methods.ranking import Ranking

    ranking = Ranking.from_dict(dict(data))
    head = Rows("ranking", f"ranking by {ranking.method}", ["key", "value"],
                left={"key", "value"}, header=False)
    head.add("method", ranking.method)
    head.add("label layer", str(ranking.label_layer))
    head.add("store", str(ranking.store_fingerprint))
    head.add("params", json.dumps(ranking.params, default=str))
    if machine:
        table = Rows("top_neurons", f"top {top} neurons per concept",
                     ["concept", "rank", "neuron", "score"])
        for concept in ranking.concept_names:
            for i, (n, s) in enumerate(list(ranking.scores(concept).items())[:top]):
                table.add(str(concept), i + 1, n, float(s))
        return [head, table]
    table = Rows("top_neurons", f"top {top} neurons per concept", ["concept", "neurons (score)"])
    for concept in ranking.concept_names:
        scores = list(ranking.scores(concept).items())[:top]
        table.add(str(concept), ", ".join(f"{n} ({s:.3g})" for n, s in scores))
    return [head, table]


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, computed without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(value, Mapping):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


#: The result file inside each folder a verb writes with ``--out DIR``, in the order tried.
RESULT_FILES = (
    "summary.json",          # evaluate (neuronscope-evaluation), demo (neuronscope.demo/1)
    "leaderboard.json",      # benchmark
    "compare_units.json",    # compare-units
    "metrics.json",          # sae train
    "neuronscope-report.json",  # report
    "neuronscope.json",      # a store (extract, import-neurox): its metadata
)


def find_result(path: Path) -> Path:
    """``path`` itself, or the result file of a folder written by a verb's ``--out``."""
    if not path.is_dir():
        return path
    for name in RESULT_FILES:
        if (path / name).is_file():
            return path / name
    raise NeuronscopeError(f"{path}: a folder with no result file of a verb (looked for "
                           f"{', '.join(RESULT_FILES)})")


KNOWN = ("show reads a verb's JSON result, a folder a verb wrote, NeuroX .hdf5/.json "
         "activations or a CoNLL-U corpus")


def load_result(path: Path) -> Any:
    """A saved result's JSON, with errors that name the file."""
    if not path.is_file():
        raise NeuronscopeError(f"{path}: no such result file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise NeuronscopeError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                               f"{KNOWN}") from err
    except json.JSONDecodeError as err:
        raise NeuronscopeError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); {KNOWN}"
                               ) from err
    except RecursionError as err:
        raise NeuronscopeError(f"{path}: JSON nested too deeply to read") from err


def show_tables(result: Path, top: int = 10, machine: bool = False) -> list[Rows]:
    """The tables ``show`` prints for a result file or folder."""
    from neuronscope.cli.describe import describe_file, file_kind

    result = find_result(result)
    if result.is_file():
        kind = file_kind(result)
        if kind is not None:
            return describe_file(result, kind)
    data = load_result(result)
    depth = _depth(data)
    if depth > MAX_DEPTH:
        # Each level becomes a nested table: Python's recursion limit comes first.
        raise NeuronscopeError(f"{result}: JSON nested {depth} levels deep; show renders at "
                               f"most {MAX_DEPTH} levels (no --out result is that deep)")
    if isinstance(data, Mapping) and data.get("format") == "neuronscope-ranking":
        return ranking_tables(data, top, machine)
    name = result.name if result.parent.name in ("", ".") else \
        f"{result.parent.name}/{result.name}"
    return render(data, name)


def register(app: typer.Typer, console: Console) -> None:
    """Add ``show`` to ``app``."""

    @app.command()
    def show(
        result: Path = typer.Argument(..., help="A JSON file written by a verb's --out, a "
                                      "folder a verb wrote (evaluate, benchmark, report, "
                                      "compare-units, sae train, demo, a store), export's "
                                      "NeuroX file or annotate's CoNLL-U file."),
        top: int = typer.Option(10, help="Neurons shown per concept for rankings."),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Render a saved result (any verb's --out) again as tables."""
        with Printer(console, out_fmt) as p:
            for rows in show_tables(result, top, p.machine):
                p.table(rows)
