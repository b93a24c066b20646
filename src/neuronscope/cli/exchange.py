"""Commands that exchange files with other tools: ``export`` (NeuroX HDF5),
``import-neurox`` and ``annotate`` (spaCy -> CoNLL-U).

``export`` and ``annotate`` print a summary of the file they wrote (the one
``neuronscope show FILE`` prints, see :mod:`neuronscope.cli.describe`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from neuronscope.cli.options import (
    check_out_file,
    corpus_format_option,
    label_file_option,
    load_corpus_option,
    progress_option,
)
from neuronscope.cli.output import Printer, output_format_option
from neuronscope.errors import NeuronscopeError


def register(app: typer.Typer, console: Console) -> None:
    """Add ``export``, ``import-neurox`` and ``annotate`` to ``app``."""

    @app.command()
    def export(
        store: Path = typer.Argument(..., help="Store directory."),
        out: Path = typer.Option(..., "--out", "-o", help="Output file."),
        fmt: str = typer.Option("neurox-hdf5", "--format", help="Only neurox-hdf5 for now."),
        component: str = typer.Option("hidden", help="Component to export."),
        overwrite: bool = typer.Option(False, help="Replace an existing output file."),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Export activations to NeuroX-compatible HDF5."""
        from neuronscope.cli.describe import describe_file
        from neuronscope.store import ActivationStore
        from neuronscope.store.neurox import export_neurox_hdf5

        p = Printer(console, out_fmt)
        if fmt != "neurox-hdf5":
            raise NeuronscopeError(f"unknown export format {fmt!r}; valid: neurox-hdf5")
        check_out_file(out, overwrite, inputs=(store,))
        export_neurox_hdf5(ActivationStore(store), out, component=component)
        p.note(f"wrote {out}")
        for rows in describe_file(out, "neurox-hdf5"):
            p.table(rows)
        p.flush()

    @app.command("import-neurox")
    def import_neurox_cmd(
        file: Path = typer.Argument(..., help="NeuroX activations (.hdf5/.h5 or .json)."),
        corpus: str = typer.Option(..., help="The corpus the activations were extracted from."),
        out: Path = typer.Option(..., "--out", "-o", help="Store directory to write."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        component: str | None = typer.Option(
            None, help="Component the layers become (default: the one a neuronscope export "
            "recorded in the file, else hidden)."),
        overwrite: bool = typer.Option(False, help="Replace an existing store."),
        progress: bool = progress_option(),
    ) -> None:
        """Import NeuroX activations into a neuronscope store."""
        from neuronscope.io import check_output
        from neuronscope.store.neurox import import_neurox

        check_output(out, kind="dir", overwrite=True, inputs=(file, corpus))
        store = import_neurox(file, load_corpus_option(corpus, fmt, label_file), out,
                              overwrite=overwrite, component=component)
        console.print(f"wrote {store}")

    @app.command()
    def annotate(
        text: Path = typer.Argument(..., help="Plain text, one sentence per line."),
        out: Path = typer.Option(..., "--out", "-o", help="CoNLL-U file to write."),
        overwrite: bool = typer.Option(False, help="Replace an existing output file."),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Tag plain text with spaCy (POS, tags, lemmas, morphology, NER) into CoNLL-U."""
        from neuronscope.cli.describe import describe_file
        from neuronscope.corpus import spacy_annotate_text, write_conllu

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, inputs=(text,))
        corpus = spacy_annotate_text(text)
        write_conllu(corpus, out)
        p.note(f"wrote {out}: {corpus.n_sentences} sentences, {corpus.n_words} words")
        for rows in describe_file(out, "conllu"):
            p.table(rows)
        p.flush()
