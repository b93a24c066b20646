"""How the CLI prints: user text literally, tables whole, and JSON/CSV on request.

* Every console has Rich markup and highlighting OFF: words, labels, neuron names and paths
  are data, so ``[retiring]`` or ``[/]`` print as they are. Colour comes only from ``style=``.
* When stdout is not a terminal (a pipe or a file) and ``COLUMNS`` is not set, tables get all
  the width they need: nothing is cut. Numeric columns never wrap or shrink below their
  widest value, even in a narrow terminal; text columns fold instead of being cut.
* Commands that print tables take ``--output-format table|json|csv``; JSON and CSV carry the
  full-precision values and informational lines then go to stderr, so stdout stays parseable.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from neuronscope.errors import NeuronscopeError

FORMATS = ("table", "json", "csv")
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
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)

    def add(self, *values: Any) -> None:
        """Append a row (one value per column)."""
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))

    def cell(self, column: str, value: Any) -> str:
        """The text of a value in the Rich table."""
        if value is None:
            return ""
        if isinstance(value, float) and math.isnan(value):
            return "-"
        spec = self.formats.get(column)
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            return format(value, spec)
        return str(value)

    def rich_table(self) -> Table:
        """The Rich table: numeric columns never shrink, text columns fold."""
        table = Table(title=self.title)
        texts = [[self.cell(c, v) for c, v in zip(self.columns, row, strict=True)]
                 for row in self.rows]
        for j, col in enumerate(self.columns):
            numeric = col not in self.left and any(
                isinstance(row[j], (int, float)) and not isinstance(row[j], bool)
                for row in self.rows
            )
            if numeric:
                widest = max([len(col), *(len(t[j]) for t in texts)])
                table.add_column(col, justify="right", no_wrap=True, min_width=widest)
            else:
                table.add_column(col, justify="left", overflow="fold")
        for t in texts:
            table.add_row(*t)
        return table

    def records(self) -> list[dict[str, Any]]:
        """Rows as dictionaries (JSON output; NaN and infinities become null)."""
        return [{c: _finite(v) for c, v in zip(self.columns, row, strict=True)}
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
            writer.writerows(["" if v is None else v for v in row] for row in t.rows)
        text = buf.getvalue().rstrip("\n")
    console.file.write(text + "\n")
    console.file.flush()


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
