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


#: Environment switches honoured by the libraries that draw their own loading bars; set
#: before they are imported, they silence bars in this process and in its children.
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",      # huggingface_hub downloads
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets map/filter/load
    "TQDM_DISABLE": "1",                       # any tqdm bar (read when tqdm is imported)
}


def silence_third_party_progress() -> None:
    """Turn off the loading bars of transformers, huggingface_hub, datasets and tqdm.

    ``--no-progress`` calls this before any model or dataset is loaded. Environment switches
    cover libraries not yet imported (tqdm reads ``TQDM_DISABLE`` once, at import); libraries
    already imported in this process are switched off through their own functions, and the
    GGUF loader of transformers (a plain ``tqdm`` over the tensors) gets a disabled ``tqdm``.
    """
    import functools
    import os
    import sys

    os.environ.update(QUIET_ENV)
    # Only modules already loaded are touched: importing transformers or datasets here
    # would cost seconds on every command.
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    gguf = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf is not None and hasattr(gguf, "tqdm"):
        from tqdm.auto import tqdm

        setattr(gguf, "tqdm", functools.partial(tqdm, disable=True))  # noqa: B010


def third_party_progress_silenced() -> bool:
    """Whether the loading bars of transformers and huggingface_hub are off (for tests)."""
    import os
    import sys

    if os.environ.get("TQDM_DISABLE") != "1":
        return False
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        if hf_logging.is_progress_bar_enabled():
            return False
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import are_progress_bars_disabled

        if not are_progress_bars_disabled():
            return False
    return True
