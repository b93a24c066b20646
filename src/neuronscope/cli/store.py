"""CLI commands about the store itself: ``neuronscope verify``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def register(app: typer.Typer, console: Console) -> None:
    """Add the store commands to ``app``."""

    @app.command()
    def verify(
        store: Path = typer.Argument(..., help="Store directory."),
    ) -> None:
        """Check a whole store: metadata, every chunk's size and checksum, the words table.

        Prints OK, or each problem on its own line and exits with status 2.
        """
        from neuronscope.store.integrity import verify as verify_store
        from neuronscope.store.meta import read_meta

        problems = verify_store(store)
        if problems:
            console.print(f"DAMAGED: {store}", markup=False, highlight=False)
            for problem in problems:
                console.print(f"  {problem}", markup=False, highlight=False)
            raise typer.Exit(2)
        meta = read_meta(store)
        state = "" if meta["complete"] else (
            f" (incomplete: {meta['progress']['words_done']} of {meta['corpus']['n_words']} "
            "words written; resume the extraction with --resume)")
        files = "chunks not checked: written before chunk manifests" if (
            meta["format_version"] == 1) else "every file matches its manifest entry"
        console.print(f"OK: {store}: {files}{state}", markup=False, highlight=False)
