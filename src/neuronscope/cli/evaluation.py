"""CLI commands of the evaluation stage: ``neuronscope evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from neuronscope.cli.options import (
    check_positive,
    corpus_format_option,
    label_file_option,
    progress_option,
    progress_task,
)
from neuronscope.cli.options import label_files as _label_files
from neuronscope.cli.output import Rows, check_format, emit, make_console, output_format_option
from neuronscope.errors import InvalidOptionError, NeuronscopeError
from neuronscope.io import check_output


def parse_ks(text: str | None) -> list[int] | None:
    """``"10,50,100"`` -> ``[10, 50, 100]``; a clear error for anything but integers."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise NeuronscopeError("--ks is empty; give comma-separated integers like 10,50,100")
    try:
        values = [int(p) for p in parts]
    except ValueError as err:
        raise NeuronscopeError(f"--ks takes comma-separated integers, got {text!r}") from err
    return values


def register(app: typer.Typer, console: Console) -> None:
    """Add the evaluation commands to ``app``."""
    err_console = make_console(stderr=True)

    @app.command()
    def evaluate(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        ranking: Path = typer.Argument(..., help="Ranking JSON written by `neuronscope rank`."),
        labels: str = typer.Option(..., help="Label layer to evaluate against, e.g. upos."),
        out: Path = typer.Option(Path("evaluation"), "--out", "-o",
                                 help="Output folder: summary.json (format "
                                 "neuronscope-evaluation, see docs/results.md) and figures."),
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
        holdout: str = typer.Option(
            "auto", help="auto: a supervised ranking of this corpus is recomputed on the "
            "train sentences of the split, so the test sentences are held out from the ranker "
            "too (a ranking of another corpus is used as given); rerank: always recompute; "
            "given: evaluate the ranking as it is."),
        exclude_positions: str | None = typer.Option(
            None, "--exclude-positions", help="Position policy of the recomputed ranking: "
            "none, first, last, first-last (default: the one the ranking recorded)."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        overwrite: bool = typer.Option(False, help="Replace the results in an existing --out."),
        out_fmt: str = output_format_option(),
        progress: bool = progress_option(),
    ) -> None:
        """Evaluate a ranking: selected-neuron probes, ablation, control selectivity, layers."""
        from neuronscope.corpus import load_corpus
        from neuronscope.evaluation.pipeline import run_evaluation
        from neuronscope.methods.ranking import Ranking
        from neuronscope.store import ActivationStore

        out_fmt = check_format(out_fmt)
        wanted = parse_ks(ks)
        for value, option in ((n_random, "--n-random"), (ablation_steps, "--ablation-steps"),
                              (max_epochs, "--max-epochs")):
            check_positive(value, option)
        if not 0 < test_size < 1:
            raise InvalidOptionError(f"--test-size must be between 0 and 1, got {test_size}")
        # Checked before training a single probe.
        check_output(out, kind="dir", overwrite=overwrite, inputs=(store, corpus, ranking),
                     marker="summary.json")
        rk = Ranking.from_json(ranking)
        st = ActivationStore(store)
        corp = load_corpus(corpus, format=fmt, label_paths=_label_files(label_file))
        with progress_task(progress, "evaluating", "probes, ablations, controls"):
            summary = run_evaluation(
                st, corp, rk, labels, out, wanted, concept, n_random=n_random,
                ablation_steps=ablation_steps, mode=mode, test_size=test_size,
                max_epochs=max_epochs, random_state=seed, holdout=holdout,
                exclude_positions=exclude_positions,
            )
        _print_summary(console, summary, out_fmt)
        info = console if out_fmt == "table" else err_console
        info.print(f"split: {summary['holdout']['description']}", markup=False)
        for warning in summary["warnings"]:
            info.print(f"warning: {warning}", style="yellow")
        info.print(f"wrote {out / 'summary.json'} and {len(summary['plots'])} figures")


def _print_summary(console: Console, summary: dict, out_fmt: str = "table") -> None:
    sel = summary["selection"]
    what = f"concept {summary['concept']}" if summary["concept"] else f"all {summary['labels']}"
    probes = Rows("selection", f"{sel['method']} ranking, {what}: probes on selected neurons "
                               f"({sel['n_test']} test words)",
                  ["k", "top-k", "random-k", "random-k std", "above random + 2 sd",
                   "bottom-k", "all neurons",
                   "selectivity (top-k)", "task accuracy", "control accuracy"],
                  formats={c: ".3f" for c in ("top-k", "random-k", "random-k std", "bottom-k",
                                              "all neurons", "task accuracy",
                                              "control accuracy")}
                  | {"selectivity (top-k)": "+.3f"})
    selectivity = {c["k"]: c for c in summary["control"]}
    for row in sel["table"]:
        control = selectivity.get(row["k"]) or {}
        # A top-k not above the random band (mean + 2 sd) is no evidence for the ranking.
        probes.add(row["k"], row["top"], row["random_mean"], row["random_std"],
                   "yes" if row.get("above_random", True) else "NO", row["bottom"],
                   row["full"], control.get("selectivity"), control.get("task_accuracy"),
                   control.get("control_accuracy"))
    abl = summary["ablation"]
    ablation = Rows("ablation", f"ablation ({abl['mode']}) in the probe on all "
                                f"{sel['n_neurons']} neurons; majority class "
                                f"{abl['majority']:.3f}",
                    ["neurons ablated", "top first", "random order", "bottom first"],
                    formats={c: ".3f" for c in ("top first", "random order", "bottom first")})
    for step, top, rand, bottom in zip(abl["steps"], abl["top"], abl["random_mean"],
                                       abl["bottom"], strict=True):
        ablation.add(step, top, rand, bottom)
    emit(console, [probes, ablation], out_fmt)
