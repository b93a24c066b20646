"""How the CLI prints: user text literally, tables whole, and JSON/CSV on request.

* Every console has Rich markup and highlighting OFF: words, labels, neuron names and paths
  are data, so ``[retiring]`` or ``[/]`` print as they are. Colour comes only from ``style=``.
* When stdout is not a terminal (a pipe or a file) and ``COLUMNS`` is not set, tables get all
  the width they need: nothing is cut. Numeric columns never wrap or shrink below their
  widest value, even in a narrow terminal; text columns fold instead of being cut.
* Commands that print tables take ``--output-format table|json|csv``; JSON and CSV carry the
  full-precision values and informational lines then go to stderr, so stdout stays parseable.
  Each such command prints through one :class:`Printer`: its tables are :class:`Rows`, its
  other lines are notes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table
from rich.text import Text

from neuronscope.errors import NeuronscopeError

FORMATS = ("table", "json", "csv")
#: Longest list of values shown inline in a table cell.
MAX_INLINE = 12
# Width given to tables written to a pipe: wide enough that no real table is cut.
PIPE_WIDTH = 100_000


class LiteralConsole(Console):
    """A Rich console for data: markup, highlighting and emoji codes off, and unlimited width
    when writing to a pipe or file without ``COLUMNS`` (so no table is ever cut there)."""

    def __init__(self, stderr: bool = False, **kwargs: Any) -> None:
        super().__init__(stderr=stderr, markup=False, highlight=False, emoji=False, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS"):
            return ConsoleDimensions(PIPE_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


def make_console(stderr: bool = False) -> Console:
    """A console that prints text literally (no markup, no highlighting)."""
    return LiteralConsole(stderr=stderr)


def output_format_option() -> Any:
    """The ``--output-format`` option of commands that print tables."""
    return typer.Option("table", "--output-format",
                        help="How to print results: table, json or csv (full precision).")


def check_format(fmt: str) -> str:
    """A valid ``--output-format`` value, or a clear error."""
    value = fmt.strip().lower()
    if value not in FORMATS:
        raise NeuronscopeError(f"--output-format {fmt!r} is not one of: {', '.join(FORMATS)}")
    return value


@dataclass(frozen=True)
class Cell:
    """A value shown as ``text`` in the Rich table; JSON and CSV get ``value`` itself."""

    value: Any
    text: str


@dataclass
class Rows:
    """A table as data: printed as a Rich table, JSON or CSV by :func:`emit`.

    Args:
        name: key of the table in JSON output, e.g. ``"top_words"``.
        title: title of the Rich table.
        columns: column headers.
        rows: one list of raw values per row (str, int, float, None).
        formats: column -> format spec for the Rich table only, e.g. ``{"max": ".3f"}``.
        left: columns aligned left (default: text left, numbers right).
        header: whether the Rich table shows its header (off for key/value tables).
        max_rows: rows shown in the Rich table at most (JSON and CSV get them all).
        float_format: format spec of floats in columns without one in ``formats``.
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)
    header: bool = True
    max_rows: int | None = None
    float_format: str | None = None

    def add(self, *values: Any) -> None:
        """Append a row (one value per column)."""
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))

    def cell(self, column: str, value: Any) -> str:
        """The text of a value in the Rich table."""
        if isinstance(value, Cell):
            return value.text
        if value is None:
            return ""
        if isinstance(value, float) and math.isnan(value):
            return "-"
        if isinstance(value, (list, tuple)):
            shown = ", ".join(self.cell(column, v) for v in value[:MAX_INLINE])
            more = f", ... ({len(value)} in all)" if len(value) > MAX_INLINE else ""
            return f"[{shown}{more}]"
        if isinstance(value, Mapping):
            return json.dumps(value, default=str, ensure_ascii=False)[:120]
        spec = self.formats.get(column)
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            return format(value, spec)
        if self.float_format and isinstance(value, float):
            return format(value, self.float_format)
        return str(value)

    def rich_table(self) -> Table:
        """The Rich table: numeric columns never shrink, text columns fold."""
        table = Table(title=Text(self.title), show_header=self.header)
        shown = self.rows if self.max_rows is None else self.rows[:self.max_rows]
        if len(shown) < len(self.rows):
            table.caption = f"first {len(shown)} of {len(self.rows)} rows"
        texts = [[self.cell(c, v) for c, v in zip(self.columns, row, strict=True)]
                 for row in shown]
        for j, col in enumerate(self.columns):
            numeric = col not in self.left and any(
                isinstance(_raw(row[j]), (int, float)) and not isinstance(_raw(row[j]), bool)
                for row in shown
            )
            if numeric:
                widest = max([len(col), *(len(t[j]) for t in texts)])
                table.add_column(Text(col), justify="right", no_wrap=True, min_width=widest)
            else:
                table.add_column(Text(col), justify="left", overflow="fold")
        for t in texts:
            table.add_row(*map(Text, t))
        return table

    def records(self) -> list[dict[str, Any]]:
        """Rows as dictionaries (JSON output; NaN and infinities become null)."""
        return [{c: _finite(_raw(v)) for c, v in zip(self.columns, row, strict=True)}
                for row in self.rows]


def print_table(console: Console, table: Table) -> None:
    """Print a Rich table; never cropped (a :class:`LiteralConsole` is unlimited on pipes)."""
    console.print(table, crop=False)


def emit(console: Console, tables: Sequence[Rows], fmt: str) -> None:
    """Print ``tables`` in the chosen format (``table``, ``json`` or ``csv``)."""
    fmt = check_format(fmt)
    if fmt == "table":
        for t in tables:
            print_table(console, t.rich_table())
        return
    if fmt == "json":
        text = json.dumps({t.name: t.records() for t in tables}, indent=2, default=_json_default,
                          ensure_ascii=False)
    else:
        buf = io.StringIO()
        for i, t in enumerate(tables):
            if len(tables) > 1:
                buf.write(("\n" if i else "") + f"# {t.name}\n")
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(t.columns)
            writer.writerows([_csv_value(v) for v in row] for row in t.rows)
        text = buf.getvalue().rstrip("\n")
    console.file.write(text + "\n")
    console.file.flush()


def key_values(name: str, title: str, items: Mapping[str, Any] | Sequence[tuple[str, Any]],
               formats: Mapping[str, str] | None = None) -> Rows:
    """A two-column ``key``/``value`` table (no header in the Rich view).

    ``formats`` maps keys to format specs of their numeric values (``{"share": ".1%"}``).
    """
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    rows = Rows(name, title, ["key", "value"], left={"key", "value"}, header=False)
    for key, value in pairs:
        spec = (formats or {}).get(key)
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = Cell(value, format(value, spec))
        rows.add(key, value)
    return rows


class Printer:
    """Everything a verb prints, in its ``--output-format``.

    ``table``: each :meth:`table` prints at once as a Rich table and notes go to stdout.
    ``json`` / ``csv``: the tables are collected and written to stdout as one document when
    the ``with`` block ends without error (or at :meth:`flush`); notes (``wrote X``,
    warnings, summaries) go to stderr, so stdout stays machine-parseable.

    Example::

        with Printer(console, out_fmt) as p:
            p.table(rows)
            p.note("a remark")
            write_json(out, data, p.info, schema=...)
    """

    def __init__(self, console: Console, fmt: str = "table") -> None:
        self.fmt = check_format(fmt)
        self.console = console
        #: Where informational lines go: stdout for tables, stderr for json/csv.
        self.info: Console = console if self.fmt == "table" else make_console(stderr=True)
        self.tables: list[Rows] = []

    @property
    def machine(self) -> bool:
        """True for ``json`` and ``csv`` (stdout is data)."""
        return self.fmt != "table"

    def table(self, rows: Rows, rich: Any = None) -> None:
        """Print ``rows`` (or ``rich``, a Rich renderable showing the same rows, in the table
        format), or keep them for the JSON/CSV document."""
        if not self.machine:
            if rich is None:
                print_table(self.console, rows.rich_table())
            else:
                self.console.print(rich, crop=False)
            return
        for kept in self.tables:  # the same table in parts (e.g. one per item): one table
            if kept.name == rows.name and kept.columns == rows.columns:
                kept.rows.extend(rows.rows)
                return
        if any(kept.name == rows.name for kept in self.tables):
            raise ValueError(f"two tables named {rows.name!r} with different columns")
        self.tables.append(rows)

    def note(self, text: str, style: str | None = None) -> None:
        """An informational line, printed literally."""
        self.info.print(Text(text, style=style or ""))

    def flush(self) -> None:
        """Write the collected tables (json/csv); nothing to do for ``table``."""
        if self.machine:
            emit(self.console, self.tables, self.fmt)
            self.tables = []

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        if kind is None:
            self.flush()


def _raw(value: Any) -> Any:
    return value.value if isinstance(value, Cell) else value


def _csv_value(value: Any) -> Any:
    value = _raw(value)
    if value is None:
        return ""
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
