"""CLI commands of the interventions stage: ``ablate``, ``attribute`` and ``steer``.

Each prints its tables (through one :class:`~neuronscope.cli.output.Printer`, so
``--output-format json|csv`` gives the raw columns, sd included) with the controls beside the
result (random sets from the same
layers: mean ± sd; other facts; none / top / random generations), states in plain words what
the controls say, writes the full result with ``--out`` as versioned JSON
(``neuronscope.ablation/1``, ``neuronscope.knowledge/1``, ``neuronscope.steering/1``; see
the ``to_dict`` of each result class), and shows a progress bar unless ``--no-progress``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from neuronscope.cli.options import (
    MODEL_HELP,
    check_out_file,
    compute_dtype_option,
    corpus_format_option,
    device_option,
    label_file_option,
    layers_option,
    out_option,
    progress_option,
    progress_task,
    write_json,
)
from neuronscope.cli.options import label_files as _label_files
from neuronscope.cli.output import Printer, Rows, output_format_option
from neuronscope.errors import NeuronscopeError


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _band(mean: Any, sd: Any) -> str:
    """``mean ± sd`` (just the mean when there is no sd)."""
    if isinstance(sd, float) and not math.isnan(sd):
        return f"{_fmt(float(mean))} ± {sd:.2g}"
    return _fmt(float(mean)) if isinstance(mean, (int, float)) else _fmt(mean)


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _frame(p: Printer, name: str, frame: Any, title: str,
           columns: dict[str, str] | None = None, bands: tuple[str, ...] = ()) -> None:
    """Print a DataFrame through ``p``. In the table format ``columns`` maps the columns shown
    to their headers and each column of ``bands`` shows ``mean ± sd`` (its ``COL_std``
    beside it); JSON and CSV get every column of the frame with its raw values."""
    from pandas.api.types import is_float_dtype

    frame = frame.copy()
    if p.machine:
        columns = {c: c for c in frame.columns}
    else:
        for col in bands:
            frame[col] = [_band(m, s) for m, s in zip(frame[col], frame[f"{col}_std"],
                                                      strict=True)]
        columns = columns or {c: c for c in frame.columns}
    rows = Rows(name, title, list(columns.values()),
                formats={h: ".4g" for c, h in columns.items() if is_float_dtype(frame[c])},
                left={h for c, h in columns.items() if c in bands})
    for record in frame[list(columns)].to_dict(orient="records"):
        rows.add(*[_python(record[c]) for c in columns])
    p.table(rows)


def _notes(p: Printer, notes: list[str]) -> None:
    for note in notes:
        p.note(note, style="bold yellow" if "NOT" in note or "not specific" in note
               or "hurts other" in note or "within the random" in note else "yellow")


def _ablation_tables(p: Printer, result: Any, concept: str, k: int, op: str) -> None:
    title = f"ablating {k} neurons of {concept!r} ({result.task}, op={op})"
    if result.task == "sequence-classification":
        _frame(p, "ablation", result.table, title)
        return
    frame = result.table
    _frame(p, "ablation", frame, title, bands=("delta_concept", "delta_other", "selectivity"),
           columns={
        "condition": "ablated", "k": "k", "sets": "sets", "loss_concept": "loss C",
        "loss_other": "loss other", "delta_concept": "Δ C", "delta_other": "Δ other",
        "selectivity": "selectivity (Δ C - Δ other)", "acc_concept": "acc C",
        "acc_other": "acc other"})
    rows = frame.set_index("condition")
    control = (f"random: mean ± sd over {int(rows.loc['random', 'sets'])} sets from the "
               "top-k's layers" if "random" in rows.index else "no random control")
    p.note(f"C = tokens of {concept!r} words; losses in nats per token; {control}")
    p.note(f"scored tokens: {int(frame['tokens_concept'].iloc[0])} of {concept!r} "
           f"words, {int(frame['tokens_other'].iloc[0])} others")
    _notes(p, result.notes)


def register(app: typer.Typer, console: Console) -> None:
    """Add the intervention commands to the ``neuronscope`` app."""

    @app.command()
    def ablate(
        model: str = typer.Argument(..., help=MODEL_HELP),
        store: Path = typer.Argument(..., help="Store the ranking was computed from."),
        corpus: str = typer.Argument(..., help="Evaluation corpus with the label layer."),
        ranking: Path = typer.Argument(..., help="Ranking JSON."),
        concept: str = typer.Option(..., help="Concept whose top neurons are ablated."),
        k: int = typer.Option(10, "-k", help="Neurons per ablated set."),
        random: bool = typer.Option(True, "--random/--no-random",
                                    help="Also ablate random-k sets (same layers as top-k)."),
        bottom: bool = typer.Option(True, "--bottom/--no-bottom", help="Also ablate bottom-k."),
        repeats: int = typer.Option(5, help="Random sets drawn (5 or more for a band)."),
        labels: str | None = typer.Option(None, help="Word label layer (default: ranking's)."),
        classes: str | None = typer.Option(None, help="Classifiers: sentence label layer."),
        op: str = typer.Option("zero", help="zero, or mean (store means)."),
        head: str = typer.Option("auto", help="auto, causal-lm or masked-lm."),
        batch_size: int = typer.Option(32, help="Pieces per forward pass."),
        seed: int = typer.Option(0, help="Seed of random sets and masking."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        device: str | None = device_option(),
        compute_dtype: str = compute_dtype_option(),
        progress: bool = progress_option(),
        out: Path | None = out_option("neuronscope.ablation/1"),
        overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Ablate a concept's top-k neurons (vs random-k, bottom-k); measure the model's loss."""
        from neuronscope.corpus import load_corpus
        from neuronscope.interventions.ablation import ablation_effect
        from neuronscope.methods import Ranking
        from neuronscope.models import load_model
        from neuronscope.store import ActivationStore

        p = Printer(console, out_fmt)
        if repeats < 1:
            raise NeuronscopeError(f"--repeats must be at least 1, got {repeats}")
        check_out_file(out, overwrite, inputs=(store, corpus, ranking))  # before any work
        st = ActivationStore(store)
        corp = load_corpus(corpus, format=fmt, label_paths=_label_files(label_file))
        rank = Ranking.from_json(ranking)
        loaded = load_model(model, head=head, device=device, dtype=compute_dtype)
        conditions = ["top"] + (["random"] if random else []) + (["bottom"] if bottom else [])
        with progress_task(progress, "ablating", "batches") as tick:
            result = ablation_effect(
                loaded, corp, rank, concept, k=k, label_layer=labels, class_layer=classes,
                op=op, store=st, conditions=conditions, repeats=repeats, seed=seed,
                batch_size=batch_size, progress=tick,
            )
        _ablation_tables(p, result, concept, k, op)
        write_json(out, result.to_dict(), p.info)
        p.flush()

    @app.command()
    def attribute(
        model: str = typer.Argument(..., help="Masked or causal LM: " + MODEL_HELP),
        prompt: str = typer.Option(..., help="Query; a masked LM needs one [MASK]."),
        target: str = typer.Option(..., help="The answer (its first token is attributed)."),
        paraphrase: list[str] | None = typer.Option(None, help="Paraphrase (repeatable)."),
        other: list[str] | None = typer.Option(
            None, help="Another fact 'PROMPT=>ANSWER' for the specificity check (repeatable; "
            "default: capital cities and general facts)."),
        threshold: float = typer.Option(0.2, help="Coarse: fraction of the max attribution."),
        share: float = typer.Option(0.5, help="Refined: fraction of prompts sharing a neuron."),
        steps: int = typer.Option(20, help="Integrated-gradients steps."),
        layers: str | None = layers_option("MLP layers, e.g. 0-5."),
        random_repeats: int = typer.Option(5, help="Random neuron sets (same layers)."),
        seed: int = typer.Option(0, help="Seed of the random sets."),
        head: str = typer.Option("auto", help="auto, causal-lm or masked-lm."),
        top: int = typer.Option(10, help="Neurons shown per prompt."),
        device: str | None = device_option(),
        compute_dtype: str = compute_dtype_option(),
        progress: bool = progress_option(),
        out: Path | None = out_option("neuronscope.knowledge/1"),
        overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Find knowledge neurons of a fact (Dai et al. 2021); test them against controls."""
        from neuronscope.extraction.components import parse_layers
        from neuronscope.interventions.knowledge import knowledge_neurons, parse_fact
        from neuronscope.models import load_model

        p = Printer(console, out_fmt)
        others = [parse_fact(f) for f in other] if other else None
        check_out_file(out, overwrite)  # before any work
        loaded = load_model(model, head=head, device=device, dtype=compute_dtype)
        with progress_task(progress, "attributing", "steps") as tick:
            result = knowledge_neurons(
                loaded, prompt, target, paraphrase or [], threshold=threshold, share=share,
                steps=steps, layers=parse_layers(layers), others=others,
                random_repeats=random_repeats, seed=seed, progress=tick)
        per_prompt = Rows("prompts", f"attributions for target {target!r}",
                          ["prompt", "P(target)", "coarse", f"top {top} (attribution)"],
                          formats={"P(target)": ".4g"})
        for a in result.prompts:
            per_prompt.add(a.prompt, float(a.probability), len(a.coarse(threshold)),
                           ", ".join(f"{n} ({s:.3g})" for n, s in a.top(top)))
        p.table(per_prompt)
        first = result.prompts[0]
        if first.target_n_tokens > 1:
            p.note(f"target has {first.target_n_tokens} tokens; attributed the first, "
                   f"{first.target_token!r}", style="yellow")
        p.note(f"knowledge neurons (coarse in >= {share:.0%} of {len(result.prompts)} "
               f"prompts): {', '.join(result.neurons) or '(none)'}")
        summary = result.summary()
        if len(result.prompts) > 1:
            p.note(f"paraphrase agreement: mean Jaccard of coarse sets "
                   f"{summary['paraphrase_jaccard']:.3f}")
        if result.effects is not None and result.neurons:
            frame = result.effects.copy()
            frame["random"] = frame["random_suppress_change"]
            frame["random_std"] = frame["random_suppress_change_std"]
            if p.machine:
                frame = frame.drop(columns=["random", "random_std"])
            _frame(p, "effects", frame, "P(answer) when suppressing / enhancing them, and "
                   f"when zeroing {len(result.random_neurons)} random sets of the same layers",
                   {"kind": "fact", "prompt": "prompt", "target": "answer",
                    "probability": "P", "suppressed": "P zeroed",
                    "suppress_change": "change zeroed", "random": "change, random (mean ± sd)",
                    "enhanced": "P doubled", "enhance_change": "change doubled"},
                   bands=("random",))
            p.note(f"mean change when zeroed: this fact {summary['fact_suppress_change']:+.1%}, "
                   f"other facts {summary['other_suppress_change']:+.1%}, random sets on this "
                   f"fact {summary['random_fact_suppress_change']:+.1%}")
        _notes(p, result.notes())
        write_json(out, result.to_dict(), p.info)
        p.flush()

    @app.command()
    def steer(
        model: str = typer.Argument(..., help="Causal LM: " + MODEL_HELP),
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
        tag: str | None = typer.Option(
            None, help="Concept score: share of generated tokens spaCy tags TAG (UPOS); "
            "default: the concept when the label layer is upos."),
        max_new_tokens: int = typer.Option(20, help="Tokens to generate."),
        sample: bool = typer.Option(False, help="Sample (seeded) instead of greedy."),
        seed: int = typer.Option(0, help="Seed of sampling and random neurons."),
        random_repeats: int = typer.Option(5, help="Random neuron sets (same layers; 0: none)."),
        head: str = typer.Option("auto", help="auto or causal-lm."),
        fmt: str | None = corpus_format_option(),
        device: str | None = device_option(),
        compute_dtype: str = compute_dtype_option(),
        progress: bool = progress_option(),
        out: Path | None = out_option("neuronscope.steering/1"),
        overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Generate with a concept's neurons forced on; compare with none and random-k."""
        from neuronscope.corpus import load_corpus
        from neuronscope.interventions.steering import (
            regex_detector,
            spacy_detector,
            steer,
            tag_rate,
            word_detector,
        )
        from neuronscope.methods import Ranking
        from neuronscope.models import load_model
        from neuronscope.store import ActivationStore

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, inputs=(store, corpus, ranking))  # before any work
        rank = Ranking.from_json(ranking)
        st = ActivationStore(store) if store is not None else None
        layer = labels or rank.label_layer
        concept_labels = None
        if value is None:
            if st is None or corpus is None:
                raise NeuronscopeError(
                    "give --value, or --store with --corpus (the value is then each neuron's "
                    "median activation on the concept's words)"
                )
            corp = load_corpus(corpus, format=fmt)
            st.check_corpus(corp)
            if layer is None:
                raise NeuronscopeError("name the label layer of the concept with --labels")
            concept_labels = corp.concept_labels(layer)
        if tag is None and layer == "upos":
            tag = concept
        detector = None
        if words:
            detector = word_detector([w.strip() for w in words.split(",") if w.strip()])
        elif regex:
            detector = regex_detector(regex)
        elif tag:
            detector = spacy_detector(tag)
        score = tag_rate(tag) if tag else None
        loaded = load_model(model, head=head, device=device, dtype=compute_dtype)
        with progress_task(progress, "generating", "texts") as tick:
            result = steer(loaded, rank, concept, prompt, k=k, value=value, store=st,
                           labels=concept_labels, op=op, detector=detector, score=score,
                           random_repeats=random_repeats, max_new_tokens=max_new_tokens,
                           do_sample=sample, seed=seed, progress=tick)
        _frame(p, "steering", result.table, f"steering {k} neurons of {concept!r} (op={op})", {
            "condition": "condition", "k": "k", "sets": "sets", "generations": "texts",
            "concept_rate": "detector rate", "concept_score": f"share tagged {tag}"
            if tag else "concept score", "changed": "changed"},
            bands=("concept_rate", "concept_score"))
        used = Rows("neurons", "neurons and values", ["set", "neurons", "values"],
                    left={"values"})
        sets = [("top", result.neurons, result.values), *(
            (f"random-{i}", names, vals) for i, (names, vals) in enumerate(
                zip(result.random_neurons, result.random_values, strict=True)))]
        for name, names, vals in sets:
            used.add(name, ", ".join(names), " ".join(f"{float(v):.6g}" for v in vals)
                     if p.machine else ", ".join(f"{v:.3g}" for v in vals))
        p.table(used)
        conditions = [c for c in ("none", "top", "random-0") if c in result.generations]
        gens = Rows("generations", "generations", ["prompt", *conditions])
        for i, text in enumerate(result.prompts):
            gens.add(text, *[result.generations[c][i] for c in conditions])
        p.table(gens)
        _notes(p, result.notes())
        write_json(out, result.to_dict(), p.info)
        p.flush()
