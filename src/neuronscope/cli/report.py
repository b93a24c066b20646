"""``neuronscope report``: the static report site from a store, its corpus and rankings."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from neuronscope.cli.options import (
    corpus_format_option,
    label_file_option,
    progress_option,
    progress_task,
)
from neuronscope.cli.options import label_files as _label_files
from neuronscope.io import check_output


def register(app: typer.Typer, console: Console) -> None:
    """Add the ``report`` command to the CLI."""

    @app.command()
    def report(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        rankings: list[Path] | None = typer.Argument(
            None, help="Ranking JSON files (from `neuronscope rank`), one per method."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Report folder to write (index.html "
                                 "and neuronscope-report.json, see docs/results.md)."),
        evaluation: list[Path] | None = typer.Option(
            None, help="Folder of evaluation / intervention results (repeatable)."
        ),
        top_k: int = typer.Option(10, help="Neurons per concept and method (and overlap@k)."),
        max_neurons: int = typer.Option(200, help="Neuron cards written at most."),
        max_concepts: int = typer.Option(60, help="Concept pages written at most."),
        max_sentences: int = typer.Option(
            10_000, help="Sentences analysed at most (a seeded random sample beyond)."
        ),
        title: str | None = typer.Option(None, help="Report title."),
        probe: list[Path] | None = typer.Option(
            None, help="Saved LinearProbe file (repeatable): its signed weights go on cards."
        ),
        histogram_scale: str = typer.Option(
            "auto", help="Card histograms' count axis: auto (log where the tallest bin holds "
            "over 20x the median non-empty bin), linear or log."
        ),
        layer_k: int = typer.Option(
            50, help="Top neurons per concept whose layer shares the concept pages show."
        ),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        overwrite: bool = typer.Option(False, help="Replace a report written earlier."),
        progress: bool = progress_option(),
    ) -> None:
        """Write a self-contained HTML report: concepts, top neurons, neuron cards, plots."""
        from neuronscope.corpus import load_corpus
        from neuronscope.methods.ranking import Ranking
        from neuronscope.report.rankings import check_rankings
        from neuronscope.report.site import build_report
        from neuronscope.store import ActivationStore

        check_output(out, kind="dir", overwrite=overwrite,
                     inputs=(store, corpus, *(rankings or []), *(evaluation or []),
                             *(probe or [])),
                     marker="neuronscope-report.json")
        st = ActivationStore(store)
        corp = load_corpus(corpus, format=fmt, label_paths=_label_files(label_file))
        st.check_corpus(corp)
        ranks = [Ranking.from_json(r) for r in rankings or []]
        notes = check_rankings(st, ranks)  # build_report checks again; here for the notes
        with progress_task(progress, "report", "pages"):
            index = build_report(
                st, corp, ranks, out, evaluation_dir=evaluation or None,
                max_sentences=max_sentences, top_k=top_k, max_neurons=max_neurons,
                max_concepts=max_concepts, title=title, probes=probe or (),
                histogram_scale=histogram_scale, layer_k=layer_k,
            )
        for note in notes:
            console.print(f"note: {note}", style="yellow", markup=False)
        console.print(f"wrote {index}")
