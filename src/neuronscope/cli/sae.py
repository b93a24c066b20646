"""``neuronscope sae train|attach`` and ``neuronscope compare-units``: SAE features as units.

Heavy imports (torch) happen inside the commands so that registering them costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from neuronscope.cli.options import (
    MODEL_HELP,
    compute_dtype_option,
    corpus_format_option,
    device_option,
    out_option,
    progress_option,
    progress_task,
    write_json,
)
from neuronscope.cli.output import Printer, Rows, key_values, output_format_option
from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_write_json, atomic_write_text

sae_app = typer.Typer(help="Sparse autoencoders: train one on a store layer, attach its "
                           "latents to a store as a component.", no_args_is_help=True)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise NeuronscopeError(f"{out} already exists and is not empty; pass --overwrite")


def _metrics_table(title: str, metrics: dict[str, Any]) -> Rows:
    dense = f"dense latents (>{metrics['dense_threshold']:.0%})"
    table = Rows("metrics", title, ["FVE", "L0", "dead latents", dense, "rows"],
                 formats={"FVE": ".3f", "L0": ".1f", "dead latents": ".1%", dense: ".1%"})
    table.add(float(metrics["fve"]), float(metrics["l0"]), float(metrics["dead_fraction"]),
              float(metrics["dense_fraction"]), int(metrics["n_rows"]))
    return table


def comparison_rows(result: Any) -> Rows:
    """compare-units' per-concept comparison as rows (full precision)."""
    rows = Rows("concepts", f"{result.layer}: {result.n_neurons} neurons vs "
                f"{result.n_features} SAE features",
                ["concept", "test n", "majority", "neurons 95%", "features 95%",
                 "random-SAE 95%", "best neuron", "best neuron AP", "best feature",
                 "best feature AP", "random-SAE AP", "overlap"])
    for c in result.concepts:
        rows.add(c.concept, c.n_test, c.majority_accuracy, c.neurons.needed,
                 c.features.needed, c.random.needed if c.random else None,
                 c.neurons.best_unit, c.neurons.best_ap, c.features.best_unit,
                 c.features.best_ap, c.random.best_ap if c.random else None, c.overlap_top10)
    return rows


def register(app: typer.Typer, console: Console) -> None:
    """Add ``sae train``, ``sae attach`` and ``compare-units`` to ``app``."""

    @sae_app.command("train")
    def train(
        store: Path = typer.Argument(..., help="Activation store to train on."),
        out: Path = typer.Option(..., "--out", "-o", help="SAE directory to write (SAELens "
                                 "layout: cfg.json + sae_weights.safetensors, and "
                                 "metrics.json, schema neuronscope.sae-train/1)."),
        component: str = typer.Option("hidden", help="Store component."),
        layer: int | None = typer.Option(None, help="Layer (required if several)."),
        latents: int | None = typer.Option(None, help="Latents (default 4 x width)."),
        k: int = typer.Option(32, help="Active latents per word (TopK)."),
        activation: str = typer.Option("topk", help="topk, or relu (with an L1 penalty)."),
        l1_coefficient: float = typer.Option(5.0, help="L1 weight for --activation relu."),
        epochs: int = typer.Option(20, help="Passes over the training rows."),
        batch_size: int = typer.Option(1024, help="Rows per step."),
        lr: float | None = typer.Option(None, help="Adam learning rate (default: "
                                        "2e-4 / sqrt(latents / 2^14))."),
        buffer_rows: int = typer.Option(65536, help="Mixing-buffer rows (bounds memory)."),
        test_size: float = typer.Option(0.1, help="Share of sentences held out for metrics."),
        device: str | None = device_option(),
        random_state: int = typer.Option(0, help="Seed."),
        overwrite: bool = typer.Option(False, help="Replace a non-empty --out."),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Train a TopK (or ReLU + L1) sparse autoencoder on one layer of a store."""
        from neuronscope.sae import SAETrainer
        from neuronscope.store import ActivationStore

        p = Printer(console, out_fmt)
        _check_out(out, overwrite)
        st = ActivationStore(store)
        trainer = SAETrainer(
            component=component, layer=layer, n_latents=latents, k=k, activation=activation,
            l1_coefficient=l1_coefficient, n_epochs=epochs, batch_size=batch_size, lr=lr,
            buffer_rows=buffer_rows, test_size=test_size, device=device,
            random_state=random_state, progress=progress,
        ).fit(st)
        trainer.sae_.save(out)
        m = trainer.metrics_.to_dict()
        # The held-out metrics next to the weights, so that `show OUT` can render them.
        write_json(out / "metrics.json", {
            "store": str(store), "component": component, "layer": trainer.layer_,
            "d_in": trainer.sae_.d_in, "d_sae": trainer.sae_.d_sae, "activation": activation,
            "k": k if activation == "topk" else None, "seconds": trainer.seconds_,
            "metrics": m}, p.info, schema="neuronscope.sae-train/1")
        p.table(_metrics_table(
            f"SAE on L{trainer.layer_}.{component}: {trainer.sae_.d_in} -> {trainer.sae_.d_sae}"
            f" ({activation}{f', k={k}' if activation == 'topk' else ''}), held-out sentences",
            m))
        p.note(f"wrote {out} ({trainer.seconds_:.0f} s)")
        p.flush()

    @sae_app.command("attach")
    def attach_cmd(
        store: Path = typer.Argument(..., help="Activation store of the same model."),
        sae_dir: Path = typer.Argument(..., help="SAE directory (SAELens layout)."),
        name: str = typer.Option("sae", help="Component name: units become L<layer>.NAME.<i>."),
        component: str | None = typer.Option(None, help="Store component the SAE reads "
                                             "(default: from the SAE's metadata)."),
        layer: int | None = typer.Option(None, help="Layer the SAE reads (default: metadata)."),
        device: str | None = device_option(),
        overwrite: bool = typer.Option(False, help="Replace an SAE component of that name."),
        out: Path | None = out_option("neuronscope.sae-attach/1"),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Write an SAE's latents into a store as a component (materialized, streamed)."""
        from neuronscope.cli.options import check_out_file
        from neuronscope.sae import attach

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, inputs=(store, sae_dir))
        with progress_task(progress, "attaching", "rows") as tick:
            st = attach(store, sae_dir, name=name, component=component, layer=layer,
                        overwrite=overwrite, device=device, progress=tick)
        comp = st.layout.components[name]
        write_json(out, {"store": str(store), "sae": str(sae_dir), "component": name,
                         "reads": {"component": component, "layer": comp.layers[0]},
                         "latents": comp.neurons}, p.info, schema="neuronscope.sae-attach/1")
        p.table(key_values("attached", f"attached to {store}", [
            ("store", str(store)), ("sae", str(sae_dir)), ("component", name),
            ("layer", comp.layers[0]), ("latents", comp.neurons)]))
        p.note(f"attached {comp.neurons} latents of {sae_dir} as component {name!r} "
               f"(layer {comp.layers[0]}): {st}")
        p.flush()

    app.add_typer(sae_app, name="sae")

    @app.command("compare-units")
    def compare_units_cmd(
        store: Path = typer.Argument(..., help="Store with the neurons and an SAE component "
                                     "(evaluation data: held-out from the SAE's training)."),
        corpus: str = typer.Argument(..., help="The store's corpus."),
        labels: str = typer.Option("upos", help="Label layer of the corpus."),
        sae: Path = typer.Option(..., "--sae", help="SAE directory (attached to STORE "
                                 "first if it is not yet)."),
        name: str = typer.Option("sae", help="SAE component name in the store."),
        concepts: str | None = typer.Option(None, help="Comma-separated concepts (default: "
                                            "all with enough examples)."),
        max_units: int = typer.Option(64, help="Largest unit count tried per concept."),
        test_size: float = typer.Option(0.3, help="Share of sentences held out."),
        model: str | None = typer.Option(None, help="Model for the LM-loss check of causal "
                                         "LMs (default: the store's model). " + MODEL_HELP),
        lm_sentences: int = typer.Option(200, help="Sentences for the LM-loss check."),
        control: bool = typer.Option(True, help="Also score a random (untrained) SAE of the "
                                     "same shape: the control for the features."),
        random_state: int = typer.Option(0, help="Seed of the split."),
        fmt: str | None = corpus_format_option(),
        out: Path | None = typer.Option(None, "--out", "-o", help="Directory for "
                                        "compare_units.json (schema "
                                        "neuronscope.compare-units/1) and a Markdown table."),
        device: str | None = device_option(),
        compute_dtype: str = compute_dtype_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Neurons vs SAE features per concept: units for 95% of the gain, best single unit."""
        from neuronscope.cli.options import open_store_and_corpus
        from neuronscope.sae.compare import compare_units, render_markdown

        p = Printer(console, out_fmt)
        st, corp = open_store_and_corpus(store, corpus, fmt, None)
        with progress_task(progress, "comparing units", "concepts") as tick:
            result = compare_units(
                st, corp, labels, sae, name=name, max_units=max_units, test_size=test_size,
                concepts=[c.strip() for c in concepts.split(",")] if concepts else None,
                model=model, lm_sentences=lm_sentences, control=control,
                random_state=random_state, device=device, dtype=compute_dtype, progress=tick,
            )
        p.table(comparison_rows(result), rich=result.table())
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "compare_units.json",
                              {"schema": "neuronscope.compare-units/1", **result.to_dict()},
                              default=float)
            atomic_write_text(out / "compare_units.md", render_markdown(result))
            p.note(f"wrote {out / 'compare_units.json'} and {out / 'compare_units.md'}")
        p.flush()
