"""CLI commands of the explanation methods: ``explain``, ``concepts``, ``generate``, ``evolve``
and ``domains``.

Heavy imports happen inside the commands, so registering them costs nothing at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from neuronscope.cli.options import (
    MODEL_HELP,
    check_out_file,
    components_option,
    compute_dtype_option,
    corpus_format_option,
    device_option,
    label_file_option,
    layers_option,
    out_option,
    progress_option,
    progress_task,
)
from neuronscope.cli.options import load_corpus_option as _corpus
from neuronscope.cli.options import open_store_and_corpus as _store_and_corpus
from neuronscope.cli.options import select_neurons as _select
from neuronscope.cli.options import write_json as _write
from neuronscope.cli.output import Printer, Rows, output_format_option
from neuronscope.errors import NeuronscopeError

#: Label layers shown per unexplained cluster by ``concepts`` (the best-aligned first): a
#: CoNLL-U corpus has one layer per FEATS key, too many for a table cell.
MAX_LABELS_SHOWN = 4


def best_labels_text(best: dict[str, tuple[str, float]], limit: int = MAX_LABELS_SHOWN) -> str:
    """``layer:label share`` of a cluster's best-aligned label layers, highest share first,
    at most ``limit`` of them (then how many more); word forms and endings left out."""
    items = sorted(((layer, lab, share) for layer, (lab, share) in best.items()
                    if layer not in ("form", "ending")), key=lambda t: (-t[2], t[0]))
    text = ", ".join(f"{layer}:{lab} {share:.0%}" for layer, lab, share in items[:limit])
    if len(items) > limit:
        text += f" (+{len(items) - limit} more layers)"
    return text


def register(app: typer.Typer, console: Console) -> None:
    """Add the explanation commands to ``app``."""

    @app.command("explain")
    def explain(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        neuron: list[str] = typer.Option(..., "--neuron", "-n",
                                         help="Neuron name, e.g. L3.mlp.17 (repeatable)."),
        max_length: int = typer.Option(3, help="Most atoms in a formula."),
        beam: int = typer.Option(10, help="Beam width (1: greedy)."),
        alpha: float = typer.Option(0.005, help="Top share of activations forming the mask."),
        relu: bool = typer.Option(False, help="Mask = activation > 0 instead (compexp's NLI)."),
        length_penalty: float = typer.Option(1.0, help="Score = IoU * penalty^(length-1)."),
        min_count: int = typer.Option(5, help="Fewest words an atom must cover."),
        or_not: bool = typer.Option(False, help="Also try F OR NOT A."),
        top: int = typer.Option(5, help="Formulas shown per neuron."),
        out: Path | None = out_option("neuronscope.explain/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Explain neurons by logical formulas of concepts (Mu & Andreas 2020)."""
        from neuronscope.explanations.compositional import (
            DEFAULT_OPS,
            CompositionalExplainer,
        )

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, (store, corpus))
        st, corp = _store_and_corpus(store, corpus, fmt, label_file)
        st.layout.ids(neuron)  # unknown neurons fail before the atoms are built
        explainer = CompositionalExplainer(
            alpha=None if relu else alpha, max_length=max_length, beam=beam,
            length_penalty=length_penalty, min_count=min_count, top_n=top,
            ops=(*DEFAULT_OPS, "or_not") if or_not else DEFAULT_OPS,
        )
        atoms = explainer.atoms(corp)
        p.note(f"{atoms.n_atoms} atoms (labels of {', '.join(corp.layers) or 'no layer'}"
               f", word forms, endings) covering >= {min_count} words")
        with progress_task(progress, "explaining", "neurons", total=len(neuron)) as tick:
            results = explainer.explain(st, corp, neuron, atoms=atoms, progress=tick)
        for exp in results:
            # One table per neuron on screen; one "formulas" table in JSON/CSV.
            table = Rows("formulas", f"{exp.neuron}: {exp.mask_size} of {exp.n_words} words "
                         f"above {exp.threshold:.4g}",
                         ["neuron", "formula", "IoU", "coverage", "precision", "examples"],
                         formats={c: ".3f" for c in ("IoU", "coverage", "precision")},
                         left={"neuron", "formula", "examples"})
            for f in exp.formulas:
                table.add(exp.neuron, f.formula, f.iou, f.coverage, f.precision,
                          ", ".join(f.examples))
            if not exp.formulas:
                p.note(f"{exp.neuron}: empty mask: the neuron never exceeds its threshold")
            p.table(table)
        _write(out, {"store": str(st.path), "params": explainer.get_params(),
                     "n_atoms": atoms.n_atoms,
                     "explanations": [e.to_dict() for e in results]}, p.info,
               schema="neuronscope.explain/1")
        p.flush()

    @app.command("concepts")
    def concepts(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        layer: int = typer.Option(..., "--layer", "-l", help="Layer to cluster."),
        k: int = typer.Option(200, "-k", help="Number of clusters (latent concepts)."),
        component: str = typer.Option("hidden", help="Component of the layer."),
        method: str = typer.Option("agglomerative", help="agglomerative (Ward) or kmeans."),
        threshold: float = typer.Option(0.9, help="Share of a label that aligns a cluster."),
        max_fit_words: int = typer.Option(10000, help="Words the clustering is fitted on; 0: "
                                                      "all."),
        min_count: int = typer.Option(1, help="Drop word types rarer than this."),
        max_per_type: int = typer.Option(0, help="Keep at most this many occurrences per "
                                                 "word type; 0: all."),
        show: int = typer.Option(10, help="Unexplained clusters shown."),
        seed: int = typer.Option(0, help="Seed of the sample and of k-means."),
        out: Path | None = out_option("neuronscope.concepts/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Discover latent concepts of a layer and align them with labels (Dalvi et al. 2022)."""
        from neuronscope.explanations.latent import LatentConceptDiscovery

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, (store, corpus))
        st, corp = _store_and_corpus(store, corpus, fmt, label_file)
        with progress_task(progress, "discovering", "clusters"):
            found = LatentConceptDiscovery(
                k=k, method=method, threshold=threshold, max_fit_words=max_fit_words or None,
                min_count=min_count, max_per_type=max_per_type or None, random_state=seed,
            ).discover(st, corp, layer, component)
        shares = found.aligned_share()
        summary = Rows("alignment", f"L{layer}.{component}: {k} clusters of {len(found.rows)} "
                       f"words ({method}); aligned at >= {threshold:.0%}",
                       ["label layer", "clusters explained"],
                       formats={"clusters explained": ".1%"})
        for name, share in shares.items():
            summary.add(name, float(share))
        p.table(summary)
        table = Rows("unexplained", f"unexplained clusters (largest {show} of "
                     f"{len(found.unexplained)})",
                     ["cluster", "size", "words", "best labels", "contexts"])
        for c in found.unexplained[:show]:
            table.add(int(c.id), int(c.size),
                      ", ".join(f"{w} ({n})" for w, n in c.top_words[:6]),
                      best_labels_text(c.best), " | ".join(c.contexts))
        p.table(table)
        _write(out, found.to_dict(), p.info, schema="neuronscope.concepts/1")
        p.flush()

    @app.command("generate")
    def generate(
        model: str = typer.Argument(..., help=MODEL_HELP),
        neuron: str = typer.Option(..., "--neuron", "-n", help="Neuron name, e.g. L3.mlp.17."),
        steps: int = typer.Option(200, help="Optimization steps."),
        length: int = typer.Option(5, help="Tokens to generate."),
        position: int = typer.Option(-1, help="Generated token whose activation counts."),
        samples: int = typer.Option(8, help="Gumbel-softmax samples per step."),
        learning_rate: float = typer.Option(0.5, "--lr", help="Adam step size."),
        n_sequences: int = typer.Option(5, help="Sequences reported."),
        store: Path | None = typer.Option(
            None, help="Store of this model: compare with its top contexts."),
        seed: int = typer.Option(0, help="Seed of the initial logits and the noise."),
        out: Path | None = out_option("neuronscope.generation/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        device: str | None = device_option(),
        compute_dtype: str = compute_dtype_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Generate token sequences that excite a neuron (Poerner et al. 2018)."""
        from neuronscope.interventions.generation import NeuronTextGenerator
        from neuronscope.models import load_model

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, (store,))
        st = None
        if store is not None:
            from neuronscope.store import ActivationStore

            st = ActivationStore(store)
        loaded = load_model(model, device=device, dtype=compute_dtype)
        with progress_task(progress, "generating", "steps", total=steps) as tick:
            result = NeuronTextGenerator(
                length=length, steps=steps, position=position, samples=samples,
                learning_rate=learning_rate, n_sequences=n_sequences, random_state=seed,
            ).generate(loaded, neuron, st, progress=tick)
        table = Rows("sequences", f"{result.neuron} of {loaded.name}: generated (position "
                     f"{result.position} of {result.length})", ["sequence", "activation",
                                                                "tokens"],
                     formats={"activation": ".4g"}, left={"sequence"})
        for i, s in enumerate(result.sequences):
            table.add(f"#{i + 1}", float(s.activation), " ".join(s.tokens))
        table.add("start", float(result.initial.activation), " ".join(result.initial.tokens))
        p.table(table)
        if result.corpus_top:
            corpus_table = Rows("corpus_top", "top corpus contexts (word-level activations)",
                                ["activation", "context"], formats={"activation": ".4g"})
            for c in result.corpus_top:
                corpus_table.add(float(c["activation"]), c["text"])
            p.table(corpus_table)
            verdict = "beats" if result.beats_corpus else "does not beat"
            p.note(f"the best generated sequence {verdict} the corpus' top activation")
        _write(out, result.to_dict(), p.info, schema="neuronscope.generation/1")
        p.flush()

    @app.command("evolve")
    def evolve(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        labels: str = typer.Option(..., help="Label layer to decode, e.g. upos."),
        k: int = typer.Option(10, "-k", help="Neuron budget (largest subset)."),
        components: str | None = components_option("Candidate components."),
        layers: str | None = layers_option("Candidate layers, e.g. 0-3."),
        population: int = typer.Option(50, help="Individuals per generation."),
        generations: int = typer.Option(40, help="Generations."),
        size_penalty: float = typer.Option(0.005, help="Fitness cost per neuron."),
        metric: str = typer.Option("balanced_accuracy", help="balanced_accuracy or accuracy."),
        concept: str | None = typer.Option(None, help="Probe's top-k for this concept."),
        seed: int = typer.Option(0, help="Seed of the split, the GA and the probe."),
        out: Path | None = out_option("neuronscope.evolution/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Search neuron groups with a genetic algorithm; compare with the LinearProbe top-k."""
        from neuronscope.explanations.evolutionary import (
            GeneticSelector,
            compare_with_probe,
        )

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, (store, corpus))
        st, corp = _store_and_corpus(store, corpus, fmt, label_file)
        selector = GeneticSelector(k=k, population=population, generations=generations,
                                   size_penalty=size_penalty, metric=metric,
                                   random_state=seed)
        with progress_task(progress, "evolving", "generations",
                           total=generations + 1) as tick:
            cmp = compare_with_probe(st, corp.concept_labels(labels), k=k, selector=selector,
                                     concept=concept, neurons=_select(st, components, layers),
                                     random_state=seed, progress=tick)
        table = Rows("selection", f"{labels}: held-out {cmp.metric} of a linear discriminant "
                     f"on <= {k} neurons ({cmp.n_test} test words)",
                     ["selection", "neurons", "score"], formats={"score": ".3f"})
        table.add(f"genetic ({cmp.ga.n_evaluations} subsets scored)", ", ".join(cmp.ga.names),
                  float(cmp.ga_accuracy))
        table.add("linear probe top-k", ", ".join(cmp.probe_names), float(cmp.probe_accuracy))
        p.table(table)
        _write(out, cmp.to_dict(), p.info, schema="neuronscope.evolution/1")
        p.flush()

    @app.command("domains")
    def domains(
        store_a: Path = typer.Argument(..., help="Store of domain A (the source)."),
        store_b: Path = typer.Argument(..., help="Store of domain B (the target), same model."),
        names: str = typer.Option("A,B", help="Names of the two domains."),
        measure: str = typer.Option("d", help="d (Cohen's d) or ap (average precision)."),
        top: int = typer.Option(20, help="Domain neurons shown."),
        components: str | None = components_option("Restrict to these components."),
        layers: str | None = layers_option("Restrict to these layers, e.g. 0-3."),
        corpus_a: str | None = typer.Option(None, help="Corpus of store A (for --labels)."),
        corpus_b: str | None = typer.Option(None, help="Corpus of store B (for --labels)."),
        labels: str | None = typer.Option(
            None, help="Label layer of both corpora: report a probe's accuracy on B before "
                       "and after shifting the top-k domain neurons."),
        k: int = typer.Option(10, "-k", help="Domain neurons shifted."),
        alpha: float = typer.Option(1.0, help="Shift strength (1: B's means onto A's)."),
        out: Path | None = out_option("neuronscope.domains/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        fmt: str | None = corpus_format_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Rank neurons by how differently they fire on two domains; IDANI-style shifting."""
        from neuronscope.explanations.domains import DomainNeurons, adaptation_effect
        from neuronscope.store import ActivationStore

        p = Printer(console, out_fmt)
        check_out_file(out, overwrite, (store_a, store_b, corpus_a, corpus_b))
        pair = [n.strip() for n in names.split(",") if n.strip()]
        if len(pair) != 2:
            raise NeuronscopeError(f"--names takes two comma-separated names, got {names!r}")
        if labels is not None and (corpus_a is None or corpus_b is None):
            raise NeuronscopeError("--labels needs --corpus-a and --corpus-b")
        sa, sb = ActivationStore(store_a), ActivationStore(store_b)
        neurons = _select(sa, components, layers)
        with progress_task(progress, "ranking", "domains"):
            ranking = DomainNeurons(measure=measure, domains=(pair[0], pair[1]),
                                    neurons=neurons).rank_pair(sa, sb)
        d = ranking.extra["cohens_d"]
        ap_a, ap_b = f"AP {pair[0]}", f"AP {pair[1]}"
        table = Rows("domain_neurons", f"top {top} domain neurons ({measure}; d > 0: higher "
                     f"on {pair[1]})", ["neuron", "Cohen's d", ap_a, ap_b],
                     formats={"Cohen's d": "+.3f", ap_a: ".3f", ap_b: ".3f"})
        for name in ranking.top(top):
            table.add(name, float(d[name]), float(ranking.extra["ap"][pair[0]][name]),
                      float(ranking.extra["ap"][pair[1]][name]))
        p.table(table)
        data: dict[str, Any] = {"ranking": ranking.to_dict()}
        if labels is not None:
            assert corpus_a is not None and corpus_b is not None  # checked above
            ca = _corpus(corpus_a, fmt, None)
            cb = _corpus(corpus_b, fmt, None)
            sa.check_corpus(ca)
            sb.check_corpus(cb)
            effect = adaptation_effect(sa, ca.concept_labels(labels), sb,
                                       cb.concept_labels(labels), k=k, alpha=alpha,
                                       ranking=ranking, neurons=neurons)
            p.note(
                f"probe on {labels} trained on {pair[0]}: {effect.accuracy_source:.3f} on "
                f"{pair[0]} (held out), {effect.accuracy_before:.3f} on {pair[1]}, "
                f"{effect.accuracy_after:.3f} after shifting {k} neurons "
                f"({effect.gain:+.3f})")
            data["adaptation"] = effect.to_dict()
        _write(out, data, p.info, schema="neuronscope.domains/1")
        p.flush()
