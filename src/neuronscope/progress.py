"""One progress bar for every long-running step (extraction, interventions, training).

Rich draws it on the given console (stderr-safe, honours ``--no-progress`` through
``enabled``); the columns are the same everywhere: label, bar, done/total with the unit,
an optional live field (e.g. words/s), elapsed time and the time remaining.
"""

from __future__ import annotations

from typing import Any


def progress_bar(label: str, unit: str, *, enabled: bool = True, console: Any = None,
                 transient: bool = False, rate_field: bool = False) -> Any:
    """A ``rich.progress.Progress`` with the project's columns.

    Args:
        label: shown first (bold).
        unit: what is counted ("words", "runs", ...), shown after done/total.
        enabled: False draws nothing (``--no-progress``).
        console: the Rich console to draw on (default: Rich's own).
        transient: remove the bar when done.
        rate_field: add a column showing the task's ``rate`` field (set with
            ``update(task, rate=...)``).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn(unit)]
    if rate_field:
        columns.append(TextColumn("{task.fields[rate]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=console, disable=not enabled, transient=transient)
