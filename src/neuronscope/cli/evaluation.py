"""CLI commands of the evaluation stage: ``neuronscope evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuronscope.cli.options import label_files as _label_files
from neuronscope.errors import NeuronscopeError


def parse_ks(text: str | None) -> list[int] | None:
    """``"10,50,100"`` -> ``[10, 50, 100]``; a clear error for anything but integers."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise NeuronscopeError("--ks is empty; give comma-separated integers like 10,50,100")
    try:
        return [int(p) for p in parts]
    except ValueError as err:
        raise NeuronscopeError(f"--ks takes comma-separated integers, got {text!r}") from err


def register(app: typer.Typer, console: Console) -> None:
    """Add the evaluation commands to ``app``."""

    @app.command()
    def evaluate(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        ranking: Path = typer.Argument(..., help="Ranking JSON written by `neuronscope rank`."),
        labels: str = typer.Option(..., help="Label layer to evaluate against, e.g. upos."),
        out: Path = typer.Option(Path("evaluation"), "--out", "-o", help="Output folder."),
        ks: str | None = typer.Option(
            None, help="Neuron counts, e.g. 10,50,100 (default: those of 10,50,100 that fit)."
        ),
        concept: str | None = typer.Option(None, help="Evaluate one concept (one-vs-rest)."),
        n_random: int = typer.Option(5, help="Random draws / orders per k (mean ± sd)."),
        ablation_steps: int = typer.Option(10, help="Ablation grid size."),
        mode: str = typer.Option("zero", help="Ablation: zero or mean."),
        test_size: float = typer.Option(0.2, help="Share of sentences held out."),
        max_epochs: int = typer.Option(50, help="Most epochs of each evaluation LinearProbe "
                                       "(it stops earlier once converged)."),
        seed: int = typer.Option(0, help="Seed of the split, random baselines and probes."),
        fmt: str | None = typer.Option(None, "--format", help="Corpus format."),
        label_file: list[str] | None = typer.Option(None, help="NAME=PATH label files."),
    ) -> None:
        """Evaluate a ranking: selected-neuron probes, ablation, control selectivity, layers."""
        from neuronscope.corpus import load_corpus
        from neuronscope.evaluation.pipeline import run_evaluation
        from neuronscope.methods.ranking import Ranking
        from neuronscope.store import ActivationStore

        wanted = parse_ks(ks)
        rk = Ranking.from_json(ranking)
        st = ActivationStore(store)
        corp = load_corpus(corpus, format=fmt, label_paths=_label_files(label_file))
        summary = run_evaluation(
            st, corp, rk, labels, out, wanted, concept, n_random=n_random,
            ablation_steps=ablation_steps, mode=mode, test_size=test_size,
            max_epochs=max_epochs, random_state=seed,
        )
        _print_summary(console, summary)
        for warning in summary["warnings"]:
            console.print(f"[yellow]warning: {warning}[/]")
        console.print(f"wrote {out / 'summary.json'} and {len(summary['plots'])} figures")


def _print_summary(console: Console, summary: dict) -> None:
    sel = summary["selection"]
    what = f"concept {summary['concept']}" if summary["concept"] else f"all {summary['labels']}"
    table = Table(title=f"{sel['method']} ranking, {what}: probes on selected neurons "
                        f"({sel['n_test']} test words)")
    for col in ("k", "top-k", "random-k", "bottom-k", "all neurons", "selectivity (top-k)"):
        table.add_column(col, justify="right")
    selectivity = {c["k"]: c for c in summary["control"]}
    for row in sel["table"]:
        control = selectivity.get(row["k"])
        # "~" marks a top-k not above the random band (mean + 2 sd): no evidence there.
        mark = "" if row.get("above_random", True) else " ~"
        table.add_row(
            str(row["k"]), f"{row['top']:.3f}{mark}",
            f"{row['random_mean']:.3f} ± {row['random_std']:.3f}", f"{row['bottom']:.3f}",
            f"{row['full']:.3f} ({sel['n_neurons']})",
            "" if control is None else
            f"{control['selectivity']:+.3f} ({control['task_accuracy']:.3f} - "
            f"{control['control_accuracy']:.3f})",
        )
    console.print(table)
    if any(not row.get("above_random", True) for row in sel["table"]):
        console.print("~ top-k not above the random band (random mean + 2 sd)")
    abl = summary["ablation"]
    ablation = Table(title=f"ablation ({abl['mode']}) in the probe on all neurons; majority "
                           f"class {abl['majority']:.3f}")
    for col in ("neurons ablated", "top first", "random order", "bottom first"):
        ablation.add_column(col, justify="right")
    for step, top, rand, bottom in zip(abl["steps"], abl["top"], abl["random_mean"],
                                       abl["bottom"], strict=True):
        ablation.add_row(str(step), f"{top:.3f}", f"{rand:.3f}", f"{bottom:.3f}")
    console.print(ablation)
