"""CLI commands of the interventions stage: ``ablate``, ``attribute`` and ``steer``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from neuronscope.cli.options import label_files as _label_files
from neuronscope.errors import NeuronscopeError


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(frame: Any, title: str, columns: dict[str, str] | None = None) -> Table:
    """A rich table of a DataFrame; ``columns`` maps the columns to show to their headers."""
    from pandas.api.types import is_numeric_dtype

    table = Table(title=title)
    cols = columns or {c: c for c in frame.columns}
    for col, header in cols.items():
        table.add_column(header, justify="right" if is_numeric_dtype(frame[col]) else "left")
    for _, row in frame[list(cols)].iterrows():
        table.add_row(*[_fmt(row[c]) for c in cols])
    return table


def register(app: typer.Typer, console: Console) -> None:
    """Add the intervention commands to the ``neuronscope`` app."""

    @app.command()
    def ablate(
        model: str = typer.Argument(..., help="Hugging Face name or local path of the model."),
        store: Path = typer.Argument(..., help="Store the ranking was computed from."),
        corpus: str = typer.Argument(..., help="Evaluation corpus with the label layer."),
        ranking: Path = typer.Argument(..., help="Ranking JSON."),
        concept: str = typer.Option(..., help="Concept whose top neurons are ablated."),
        k: int = typer.Option(10, "-k", help="Neurons per ablated set."),
        random: bool = typer.Option(False, "--random", help="Also ablate random-k sets."),
        bottom: bool = typer.Option(False, "--bottom", help="Also ablate the bottom-k."),
        repeats: int = typer.Option(5, help="Random sets drawn."),
        labels: str | None = typer.Option(None, help="Word label layer (default: ranking's)."),
        classes: str | None = typer.Option(None, help="Classifiers: sentence label layer."),
        op: str = typer.Option("zero", help="zero, or mean (store means)."),
        head: str = typer.Option("auto", help="auto, causal-lm or masked-lm."),
        batch_size: int = typer.Option(32, help="Pieces per forward pass."),
        seed: int = typer.Option(0, help="Seed of random sets and masking."),
        fmt: str | None = typer.Option(None, "--format", help="Corpus format."),
        label_file: list[str] | None = typer.Option(None, help="NAME=PATH label files."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write the result as JSON."),
    ) -> None:
        """Ablate a concept's top-k neurons (vs random-k, bottom-k); measure the model's loss."""
        from neuronscope.corpus import load_corpus
        from neuronscope.interventions.ablation import ablation_effect
        from neuronscope.methods import Ranking
        from neuronscope.models import load_model
        from neuronscope.store import ActivationStore

        st = ActivationStore(store)
        corp = load_corpus(corpus, format=fmt, label_paths=_label_files(label_file))
        rank = Ranking.from_json(ranking)
        loaded = load_model(model, head=head)
        conditions = ["top"] + (["random"] if random else []) + (["bottom"] if bottom else [])
        result = ablation_effect(
            loaded, corp, rank, concept, k=k, label_layer=labels, class_layer=classes, op=op,
            store=st, conditions=conditions, repeats=repeats, seed=seed, batch_size=batch_size,
        )
        title = f"ablating {k} neurons of {concept!r} ({result.task}, op={op})"
        if result.task == "sequence-classification":
            console.print(_table(result.table, title))
        else:
            console.print(_table(result.table, title, {
                "condition": "ablated", "k": "k", "loss_concept": "loss C",
                "loss_other": "loss other", "delta_concept": "Δ C", "delta_other": "Δ other",
                "selectivity": "Δ C - Δ other", "acc_concept": "acc C",
                "acc_other": "acc other"}))
            console.print(f"C = tokens of {concept!r} words")
            console.print(f"scored tokens: {int(result.table['tokens_concept'].iloc[0])} of "
                          f"{concept!r} words, {int(result.table['tokens_other'].iloc[0])} others")
        if out is not None:
            out.write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
            console.print(f"wrote {out}")

    @app.command()
    def attribute(
        model: str = typer.Argument(..., help="Masked or causal LM (name or path)."),
        prompt: str = typer.Option(..., help="Query; a masked LM needs one [MASK]."),
        target: str = typer.Option(..., help="The answer (its first token is attributed)."),
        paraphrase: list[str] | None = typer.Option(None, help="Paraphrase (repeatable)."),
        threshold: float = typer.Option(0.2, help="Coarse: fraction of the max attribution."),
        share: float = typer.Option(0.5, help="Refined: fraction of prompts sharing a neuron."),
        steps: int = typer.Option(20, help="Integrated-gradients steps."),
        layers: str | None = typer.Option(None, help="MLP layers, e.g. 0-5."),
        head: str = typer.Option("auto", help="auto, causal-lm or masked-lm."),
        top: int = typer.Option(10, help="Neurons shown per prompt."),
    ) -> None:
        """Find knowledge neurons of a fact (Dai et al. 2021) and test suppressing them."""
        from neuronscope.extraction.components import parse_layers
        from neuronscope.interventions.knowledge import knowledge_neurons
        from neuronscope.models import load_model

        loaded = load_model(model, head=head)
        result = knowledge_neurons(loaded, prompt, target, paraphrase or [], threshold=threshold,
                                   share=share, steps=steps, layers=parse_layers(layers))
        per_prompt = Table(title=f"attributions for target {target!r}")
        for col in ("prompt", "P(target)", "coarse", f"top {top} (attribution)"):
            per_prompt.add_column(col)
        for a in result.prompts:
            per_prompt.add_row(a.prompt, f"{a.probability:.4g}", str(len(a.coarse(threshold))),
                               ", ".join(f"{n} ({s:.3g})" for n, s in a.top(top)))
        console.print(per_prompt)
        first = result.prompts[0]
        if first.target_n_tokens > 1:
            console.print(f"target has {first.target_n_tokens} tokens; attributed the "
                          f"first, {first.target_token!r}", style="yellow")
        console.print(f"knowledge neurons (coarse in >= {share:.0%} of {len(result.prompts)} "
                      f"prompts): {', '.join(result.neurons) or '(none)'}")
        if result.effects is not None and result.neurons:
            console.print(_table(result.effects, "P(target) when suppressing / enhancing them", {
                "prompt": "prompt", "probability": "P", "suppressed": "P zeroed",
                "enhanced": "P doubled", "suppress_change": "change zeroed",
                "enhance_change": "change doubled"}))

    @app.command()
    def steer(
        model: str = typer.Argument(..., help="Causal LM (name or path)."),
        ranking: Path = typer.Argument(..., help="Ranking JSON."),
        concept: str = typer.Option(..., help="Concept whose top neurons steer."),
        prompt: list[str] = typer.Option(..., help="Generation prompt (repeatable)."),
        store: Path | None = typer.Option(None, help="Store for default values (with --corpus)."),
        corpus: str | None = typer.Option(None, help="The store's corpus (concept labels)."),
        labels: str | None = typer.Option(None, help="Label layer (default: the ranking's)."),
        k: int = typer.Option(10, "-k", help="Neurons steered."),
        value: float | None = typer.Option(None, help="Value (default: concept median)."),
        op: str = typer.Option("constant", help="constant, scale or add."),
        words: str | None = typer.Option(None, help="Detector: comma-separated words."),
        regex: str | None = typer.Option(None, help="Detector: regular expression."),
        max_new_tokens: int = typer.Option(20, help="Tokens to generate."),
        sample: bool = typer.Option(False, help="Sample (seeded) instead of greedy."),
        seed: int = typer.Option(0, help="Seed of sampling and random neurons."),
        random_repeats: int = typer.Option(1, help="Random neuron sets (0: none)."),
        head: str = typer.Option("auto", help="auto or causal-lm."),
        fmt: str | None = typer.Option(None, "--format", help="Corpus format."),
    ) -> None:
        """Generate with a concept's neurons forced on; compare with none and random-k."""
        from neuronscope.corpus import load_corpus
        from neuronscope.interventions.steering import regex_detector, steer, word_detector
        from neuronscope.methods import Ranking
        from neuronscope.models import load_model
        from neuronscope.store import ActivationStore

        rank = Ranking.from_json(ranking)
        st = ActivationStore(store) if store is not None else None
        concept_labels = None
        if value is None:
            if st is None or corpus is None:
                raise NeuronscopeError(
                    "give --value, or --store with --corpus (the value is then each neuron's "
                    "median activation on the concept's words)"
                )
            corp = load_corpus(corpus, format=fmt)
            st.check_corpus(corp)
            layer = labels or rank.label_layer
            if layer is None:
                raise NeuronscopeError("name the label layer of the concept with --labels")
            concept_labels = corp.concept_labels(layer)
        detector = None
        if words:
            detector = word_detector([w.strip() for w in words.split(",") if w.strip()])
        elif regex:
            detector = regex_detector(regex)
        loaded = load_model(model, head=head)
        result = steer(loaded, rank, concept, prompt, k=k, value=value, store=st,
                       labels=concept_labels, op=op, detector=detector,
                       random_repeats=random_repeats, max_new_tokens=max_new_tokens,
                       do_sample=sample, seed=seed)
        console.print(_table(result.table, f"steering {k} neurons of {concept!r} (op={op})"))
        gens = Table(title="generations")
        gens.add_column("prompt")
        conditions = [c for c in ("none", "top", "random-0") if c in result.generations]
        for c in conditions:
            gens.add_column(c)
        for i, p in enumerate(result.prompts):
            gens.add_row(p, *[result.generations[c][i] for c in conditions])
        console.print(gens)
