"""The ``neuronscope`` command line: a thin layer over the Python API.

Every command lives in this package, one module per stage (``core``, ``exchange``,
``evaluation``, ``benchmark``, ``interventions``, ``report``, ``unsupervised``,
``explanations``, ``sae``, ``show``, ``store``); each stage module has
``register(app, console)``. Library packages never import this package or Typer. Commands
import the library lazily inside their bodies so that ``--help`` is fast. Every command that
prints a result table prints it through one ``cli.output.Printer`` (``--output-format``).
"""

from __future__ import annotations

from neuronscope.cli import (
    benchmark,
    evaluation,
    exchange,
    explanations,
    interventions,
    report,
    sae,
    show,
    store,
    unsupervised,
)
from neuronscope.cli.core import app, console, err_console, main

for _stage in (exchange, evaluation, benchmark, interventions, report, unsupervised,
               explanations, sae, show, store):
    _stage.register(app, console)

__all__ = ["app", "console", "err_console", "main"]
