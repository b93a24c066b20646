"""CLI commands about the store itself: ``neuronscope verify``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from neuronscope.cli.options import (
    check_out_file,
    out_option,
    progress_option,
    progress_task,
    write_json,
)


def register(app: typer.Typer, console: Console) -> None:
    """Add the store commands to ``app``."""

    @app.command()
    def verify(
        store: Path = typer.Argument(..., help="Store directory."),
        out: Path | None = out_option("neuronscope.verify/1"),
        overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
        progress: bool = progress_option(),
    ) -> None:
        """Check a whole store: metadata, every chunk's size and checksum, the words table.

        Prints OK, or each problem on its own line and exits with status 2.
        """
        from neuronscope.store.integrity import verify as verify_store
        from neuronscope.store.meta import read_meta

        check_out_file(out, overwrite, inputs=(store,))
        with progress_task(progress, "verifying", "chunks"):
            problems = verify_store(store)
        write_json(out, {"store": str(store), "ok": not problems, "problems": problems},
                   console, schema="neuronscope.verify/1")
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
