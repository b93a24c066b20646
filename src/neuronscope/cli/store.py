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
from neuronscope.cli.output import Printer, Rows, key_values, output_format_option


def register(app: typer.Typer, console: Console) -> None:
    """Add the store commands to ``app``."""

    @app.command()
    def verify(
        store: Path = typer.Argument(..., help="Store directory."),
        out: Path | None = out_option("neuronscope.verify/1"),
        overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Check a whole store: metadata, every chunk's size and checksum, the words table.

        Prints OK, or each problem on its own line and exits with status 2 (with
        --output-format json|csv: a "verify" table, and a "problems" table when damaged).
        """
        from neuronscope.store.integrity import verify as verify_store
        from neuronscope.store.meta import read_meta

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, inputs=(store,))
        with progress_task(progress, "verifying", "chunks"):
            problems = verify_store(store)
        write_json(out, {"store": str(store), "ok": not problems, "problems": problems},
                   p.info, schema="neuronscope.verify/1")
        if problems:
            if p.machine:
                p.table(key_values("verify", "verify", [("store", str(store)), ("ok", False),
                                                        ("problems", len(problems))]))
                listed = Rows("problems", "problems", ["problem"])
                for problem in problems:
                    listed.add(problem)
                p.table(listed)
                p.flush()
            else:
                p.note(f"DAMAGED: {store}")
                for problem in problems:
                    p.note(f"  {problem}")
            raise typer.Exit(2)
        meta = read_meta(store)
        state = "" if meta["complete"] else (
            f" (incomplete: {meta['progress']['words_done']} of {meta['corpus']['n_words']} "
            "words written; resume the extraction with --resume)")
        files = "chunks not checked: written before chunk manifests" if (
            meta["format_version"] == 1) else "every file matches its manifest entry"
        if p.machine:
            p.table(key_values("verify", "verify", [
                ("store", str(store)), ("ok", True), ("problems", 0),
                ("complete", bool(meta["complete"])), ("checked", files)]))
            p.flush()
        else:
            p.note(f"OK: {store}: {files}{state}")
