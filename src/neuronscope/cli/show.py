"""``neuronscope show RESULT.json``: render any saved result again as tables.

Rankings get their own view (top neurons per concept); every other result is rendered by
its structure, so that each verb's ``--out`` file can be shown without a renderer written for
it: scalars become a key/value table, lists of records become one table with a column per
key, nested sections become titled tables in turn. User text (words, labels, names) is
printed literally: no Rich markup is read from data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from neuronscope.errors import NeuronscopeError

#: Longest list rendered as rows, and longest list of scalars shown inline.
MAX_ROWS = 50
MAX_INLINE = 12
#: Deepest JSON rendered (every level is a nested table).
MAX_DEPTH = 32


def _cell(value: Any) -> Text:
    if isinstance(value, float):
        return Text(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        shown = ", ".join(str(_cell(v)) for v in value[:MAX_INLINE])
        more = f", ... ({len(value)} in all)" if len(value) > MAX_INLINE else ""
        return Text(f"[{shown}{more}]")
    if isinstance(value, Mapping):
        return Text(json.dumps(value, default=str)[:120])
    return Text(str(value))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_records(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
            and all(isinstance(v, Mapping) for v in value))


def _records_table(title: str, records: Sequence[Mapping[str, Any]]) -> Table:
    columns: list[str] = []
    for r in records:
        columns.extend(k for k in r if k not in columns)
    table = Table(title=Text(title))
    for c in columns:
        table.add_column(Text(str(c)))
    for r in records[:MAX_ROWS]:
        table.add_row(*[_cell(r.get(c, "")) for c in columns])
    if len(records) > MAX_ROWS:
        table.caption = f"first {MAX_ROWS} of {len(records)} rows"
    return table


def render(data: Any, title: str = "result") -> list[Table]:
    """Tables showing a JSON value: scalars first, then records and nested sections."""
    if _is_records(data):
        return [_records_table(title, data)]
    if not isinstance(data, Mapping):
        table = Table(title=Text(title), show_header=False)
        table.add_row(_cell(data))
        return [table]
    tables: list[Table] = []
    flat = Table(title=Text(title), show_header=False)
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if _is_scalar(value) or (isinstance(value, list) and all(map(_is_scalar, value))):
            flat.add_row(Text(str(key)), _cell(value))
        else:
            nested.append((str(key), value))
    if flat.row_count:
        tables.append(flat)
    for key, value in nested:
        tables.extend(render(value, f"{title} / {key}"))
    return tables


def ranking_tables(data: Mapping[str, Any], top: int) -> list[Table]:
    """The top neurons of each concept of a saved ranking."""
    from neuronscope.methods.ranking import Ranking

    ranking = Ranking.from_dict(dict(data))
    head = Table(title=Text(f"ranking by {ranking.method}"), show_header=False)
    head.add_row("label layer", Text(str(ranking.label_layer)))
    head.add_row("store", Text(str(ranking.store_fingerprint)))
    head.add_row("params", Text(json.dumps(ranking.params, default=str)))
    table = Table(title=Text(f"top {top} neurons per concept"))
    table.add_column("concept")
    table.add_column("neurons (score)")
    for concept in ranking.concept_names:
        scores = list(ranking.scores(concept).items())[:top]
        table.add_row(Text(str(concept)), Text(", ".join(f"{n} ({s:.3g})" for n, s in scores)))
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


def load_result(path: Path) -> Any:
    """A saved result's JSON, with errors that name the file."""
    if not path.is_file():
        raise NeuronscopeError(f"{path}: no such result file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise NeuronscopeError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})"
                               ) from err
    except json.JSONDecodeError as err:
        raise NeuronscopeError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    except RecursionError as err:
        raise NeuronscopeError(f"{path}: JSON nested too deeply to read") from err


def register(app: typer.Typer, console: Console) -> None:
    """Add ``show`` to ``app``."""

    @app.command()
    def show(
        result: Path = typer.Argument(..., help="A JSON file written by a verb's --out, or "
                                      "a folder a verb wrote (evaluate, benchmark, report, "
                                      "compare-units, sae train, demo, a store)."),
        top: int = typer.Option(10, help="Neurons shown per concept for rankings."),
    ) -> None:
        """Render a saved result (any verb's --out JSON) again as tables."""
        result = find_result(result)
        data = load_result(result)
        depth = _depth(data)
        if depth > MAX_DEPTH:
            # Each level becomes a nested table: Python's recursion limit comes first.
            raise NeuronscopeError(f"{result}: JSON nested {depth} levels deep; show renders at "
                                   f"most {MAX_DEPTH} levels (no --out result is that deep)")
        if isinstance(data, Mapping) and data.get("format") == "neuronscope-ranking":
            tables = ranking_tables(data, top)
        else:
            name = result.name if result.parent.name in ("", ".") else \
                f"{result.parent.name}/{result.name}"
            tables = render(data, name)
        for table in tables:
            console.print(table)
