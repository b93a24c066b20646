"""CLI commands of the unsupervised methods: ``cluster``, ``select``, ``factorize``, ``compare``,
``group``.

Each prints a Rich summary and, with ``--out``, writes the full result as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from neuronscope.cli.options import (
    check_out_file,
    components_option,
    corpus_format_option,
    label_file_option,
    layers_option,
    load_corpus_option,
    out_option,
    progress_option,
    progress_task,
)
from neuronscope.cli.options import select_neurons as _neurons
from neuronscope.cli.options import write_json as _write
from neuronscope.errors import NeuronscopeError
from neuronscope.io import check_output


def _open(store: Path, corpus: str | None = None, fmt: str | None = None,
          label_file: list[str] | None = None) -> tuple[Any, Any]:
    from neuronscope.store import ActivationStore

    st = ActivationStore(store)
    corp = None
    if corpus is not None:
        corp = load_corpus_option(corpus, fmt, label_file)
        st.check_corpus(corp)
    return st, corp


def _check_outs(overwrite: bool, inputs: tuple[Any, ...], out: Path | None,
                *more: tuple[str, Path | None]) -> None:
    """Check ``--out`` and other output files before any work."""
    check_out_file(out, overwrite, inputs)
    for option, path in more:
        if path is not None and option == "--matrix-out" and path.suffix != ".npy":
            path = path.with_suffix(".npy")  # the matrix is written there
        check_out_file(path, overwrite, inputs, option=option)


def _matrix_table(title: str, rows: list[str], cols: list[str], values: Any) -> Table:
    table = Table(title=title)
    table.add_column("")
    for c in cols:
        table.add_column(c, justify="right")
    for r, row in zip(rows, values, strict=True):
        table.add_row(r, *[f"{v:.2f}" for v in row])
    return table


def register(app: typer.Typer, console: Console) -> None:
    """Add the unsupervised commands to ``app``."""

    @app.command()
    def cluster(
        store: Path = typer.Argument(..., help="Store directory."),
        threshold: float = typer.Option(
            0.7, help="Merge neurons/clusters whose average |correlation| is >= this "
            "(average linkage; distance cut 1 - threshold)."),
        components: str | None = components_option(),
        layers: str | None = layers_option(),
        linkage: str = typer.Option("average", help="average, complete, single, weighted."),
        representative: str = typer.Option("random", help="random (the paper) or central."),
        seed: int = typer.Option(0, help="Seed of the random representatives."),
        max_bytes: int = typer.Option(512 * 2**20, help="Accumulator budget (bytes)."),
        matrix_out: Path | None = typer.Option(
            None, help="Also write the correlation matrix here (.npy + .json sidecar)."),
        out: Path | None = out_option("neuronscope.clusters/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        progress: bool = progress_option(),
    ) -> None:
        """Correlation-cluster neurons: redundancy per layer and layer similarity."""
        from neuronscope.unsupervised.clustering import cluster_correlations
        from neuronscope.unsupervised.correlation import correlation_matrix

        _check_outs(overwrite, (store,), out, ("--matrix-out", matrix_out))
        st, _ = _open(store)
        with progress_task(progress, "clustering", "steps", total=2) as tick:
            corr = correlation_matrix(st, _neurons(st, components, layers),
                                      max_bytes=max_bytes, out=matrix_out)
            tick(1)
            result = cluster_correlations(corr, threshold, linkage, representative, seed)
            tick(2)
        red = result.redundancy
        table = Table(title=f"redundancy at |rho| >= {threshold} ({linkage} linkage): "
                            f"{result.n_clusters} clusters of {len(result.names)} neurons")
        for col in ("layer", "neurons", "kept", "redundant", "share", "constant"):
            table.add_column(col, justify="left" if col == "layer" else "right")
        rows = [*red["groups"].items(), ("overall", red["overall"])]
        for group, e in rows:
            table.add_row(group, str(e["neurons"]), str(e["kept"]), str(e["redundant"]),
                          f"{e['share']:.1%}", str(e["constant"]))
        console.print(table)
        biggest = Table(title="largest clusters")
        for col in ("size", "representative", "members"):
            biggest.add_column(col)
        for rep, members in list(zip(result.representative_names, result.clusters(),
                                     strict=True))[:5]:
            shown = ", ".join(members[:8]) + (" ..." if len(members) > 8 else "")
            biggest.add_row(str(len(members)), rep, shown)
        console.print(biggest)
        if result.layers is not None and len(result.layers.labels) > 1:
            lay = result.layers
            console.print(_matrix_table("layer similarity: linear CKA", lay.labels,
                                        lay.labels, lay.cka))
            console.print(_matrix_table("mean max |rho| of row-layer neurons in column layer",
                                        lay.labels, lay.labels, lay.max_corr))
        if result.constant:
            console.print(f"{len(result.constant)} constant neuron(s) left out: "
                          f"{', '.join(result.constant[:10])}", style="yellow")
        _write(out, result.to_dict(), console, schema="neuronscope.clusters/1")

    @app.command()
    def select(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        labels: str = typer.Option(..., help="Label layer of the task, e.g. upos."),
        keep: float = typer.Option(0.97, help="Share of the full probe's accuracy to keep."),
        layer_keep: float = typer.Option(0.99, help="LayerSelector: share of accuracy kept."),
        threshold: float = typer.Option(0.7, help="Clustering |correlation| threshold."),
        components: str | None = components_option(),
        layers: str | None = layers_option(),
        max_words: int | None = typer.Option(
            50000, help="Use whole random sentences up to about this many words (loaded in "
            "memory); 0 for all."),
        test_size: float = typer.Option(0.2, help="Share of sentences held out."),
        max_epochs: int = typer.Option(10, help="Epochs of each probe."),
        seed: int = typer.Option(0, help="Seed of sampling, split, clustering and probes."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        ranking_out: Path | None = typer.Option(
            None, help="Write the representatives' probe ranking (Ranking JSON) here."),
        out: Path | None = out_option("neuronscope.selection/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        progress: bool = progress_option(),
    ) -> None:
        """Select a small set of neurons for a task (LayerSelector + clustering + probe)."""
        from neuronscope.unsupervised.selection import select_neurons

        _check_outs(overwrite, (store, corpus), out, ("--ranking-out", ranking_out))
        st, corp = _open(store, corpus, fmt, label_file)
        with progress_task(progress, "selecting", "probes and clustering"):
            result = select_neurons(
                st, corp.concept_labels(labels), keep=keep, layer_keep=layer_keep,
                threshold=threshold, neurons=_neurons(st, components, layers),
                test_size=test_size, max_words=max_words or None,
                probe_params={"max_epochs": max_epochs}, random_state=seed,
            )
        runs = Table(title=f"probes trained ({labels}, {result.params['n_words']} words)")
        for col in ("step", "neurons", "accuracy", "train s", "predict ms"):
            runs.add_column(col, justify="left" if col == "step" else "right")
        for r in result.runs:
            runs.add_row(r.step, str(r.n_neurons), f"{r.accuracy:.4f}", f"{r.train_s:.2f}",
                         f"{1000 * r.predict_s:.2f}")
        console.print(runs)
        summary = Table(title="selection", show_header=False)
        summary.add_row("top layer kept", str(result.top_layer))
        summary.add_row("neurons after layers / clustering",
                        f"{result.n_after_layers} / {result.n_after_clustering}")
        summary.add_row("selected", f"{len(result.selected)} of {result.n_neurons} "
                        f"({result.fraction_kept:.1%})")
        summary.add_row("accuracy full -> selected",
                        f"{result.full_accuracy:.4f} -> {result.selected_accuracy:.4f} "
                        f"({result.accuracy_kept:.1%} kept; target {result.target:.4f})")
        summary.add_row("speed-up train / predict",
                        f"{result.train_speedup:.1f}x / {result.predict_speedup:.1f}x")
        console.print(summary)
        if not result.reached:
            console.print("no neuron subset reached the target; all cluster "
                          "representatives are returned", style="yellow")
        if ranking_out is not None:
            result.ranking.to_json(ranking_out)
            console.print(f"wrote {ranking_out}")
        _write(out, result.to_dict(), console, schema="neuronscope.selection/1")

    @app.command()
    def factorize(
        store: Path = typer.Argument(..., help="Store directory."),
        corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
        sentence: int | None = typer.Option(
            None, help="Sentence index (local NMF); omit for a corpus sample (global)."),
        k: int = typer.Option(8, "-k", help="Number of factors."),
        components: str | None = components_option(),
        layers: str | None = layers_option(),
        nonneg: str = typer.Option("split", help="Signs: split [relu(x), relu(-x)], clip, "
                                   "shift."),
        standardize: bool = typer.Option(False, help="Divide each neuron by its std first."),
        sample_words: int = typer.Option(20000, help="Words sampled for global NMF."),
        seed: int = typer.Option(0, help="Seed of the sample and of NMF."),
        top: int = typer.Option(5, help="Neurons and words shown per factor."),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        out: Path | None = out_option("neuronscope.nmf/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        progress: bool = progress_option(),
    ) -> None:
        """Non-negative matrix factorization of one sentence's (or a sample's) activations."""
        from neuronscope.unsupervised.factorization import (
            factorize_corpus,
            factorize_sentence,
        )

        _check_outs(overwrite, (store, corpus), out)
        st, corp = _open(store, corpus, fmt, label_file)
        neurons = _neurons(st, components, layers)
        if sentence is not None:
            if not 0 <= sentence < corp.n_sentences:
                raise NeuronscopeError(
                    f"sentence {sentence} out of range (0..{corp.n_sentences - 1})")
            with progress_task(progress, "factorizing", "sentence"):
                result = factorize_sentence(st, sentence, k, neurons, nonneg, standardize,
                                            words=corp.sentences[sentence], random_state=seed)
            loadings = Table(title=f"sentence {sentence}: factor loadings per word "
                                   f"(error {result.reconstruction_error:.3f})")
            loadings.add_column("word")
            for f in range(result.k):
                loadings.add_column(f"F{f}", justify="right")
            for word, row in zip(result.words or [], result.word_loadings, strict=True):
                best = int(row.argmax())
                loadings.add_row(word, *[Text(f"{v:.2f}", style="bold" if i == best else "")
                                         for i, v in enumerate(row)])
            console.print(loadings)
        else:
            with progress_task(progress, "factorizing", "sample"):
                result = factorize_corpus(st, k, sample_words, neurons, nonneg, standardize,
                                          random_state=seed)
            console.print(f"global NMF over {len(result.rows)} sampled words "
                          f"(relative error {result.reconstruction_error:.3f})")
        factors = Table(title="factors: top neurons (signed weight) and words (one per cell)")
        factors.add_column("factor")
        factors.add_column("neurons")
        for i in range(top):
            factors.add_column(f"word {i + 1}")
        for f in range(result.k):
            neurons_txt = ", ".join(f"{n} ({w:+.2f})" for n, w in result.top_neurons(f, top))
            # One word per cell: punctuation such as "," joined with ", " read as ",, ,,".
            words = [Text(w) for _, w, _ in result.top_words(f, top)]
            factors.add_row(f"F{f}", neurons_txt, *words, *[""] * (top - len(words)))
        console.print(factors)
        _write(out, result.to_dict(), console, schema="neuronscope.nmf/1")

    @app.command()
    def compare(
        stores: list[Path] = typer.Argument(..., help="Two or more stores of the same corpus."),
        components: str | None = components_option(),
        layers: str | None = layers_option(),
        methods: str = typer.Option("maxcorr,mincorr,linreg", help="Neuron rankings."),
        ridge: float = typer.Option(1e-4, help="Ridge of the LinReg ranking."),
        top: int = typer.Option(10, help="Neurons shown per model and method."),
        rankings_dir: Path | None = typer.Option(
            None, help="Write each ranking (Ranking JSON) as DIR/<model>.<method>.json."),
        out: Path | None = out_option("neuronscope.model-comparison/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        progress: bool = progress_option(),
    ) -> None:
        """Compare models of the same corpus: MaxCorr/MinCorr/LinReg neurons, SVCCA/PWCCA/CKA."""
        from neuronscope.unsupervised.multimodel import compare_models

        if len(stores) < 2:
            raise NeuronscopeError("compare needs at least two stores")
        _check_outs(overwrite, tuple(stores), out)
        if rankings_dir is not None:
            check_output(rankings_dir, kind="dir", overwrite=overwrite, inputs=tuple(stores),
                         option="--rankings-dir")
        opened = [_open(s)[0] for s in stores]
        selections = [_neurons(s, components, layers) for s in opened]
        wanted = [m.strip() for m in methods.split(",") if m.strip()]
        with progress_task(progress, "comparing", "model pairs"):
            result = compare_models(opened, selections, methods=wanted, ridge=ridge)
        sims = Table(title="representation similarity")
        for col in ("model A", "model B", "CKA", "SVCCA", "PWCCA", "SVCCA dims"):
            sims.add_column(col, justify="left" if col.startswith("model") else "right")
        for p in result.pairs:
            s = p.similarity
            sims.add_row(result.labels[p.a], result.labels[p.b], f"{s.cka:.3f}",
                         f"{s.svcca:.3f}", f"{s.pwcca:.3f}", f"{s.svcca_dims}")
        console.print(sims)
        for m, label in enumerate(result.labels):
            table = Table(title=f"{label}: top {top} neurons")
            table.add_column("method")
            table.add_column("neurons (score)")
            for method in wanted:
                scores = list(result.ranking(method, m).scores(method).items())[:top]
                table.add_row(method, ", ".join(f"{n} ({v:.3f})" for n, v in scores))
            console.print(table)
        if rankings_dir is not None:
            rankings_dir.mkdir(parents=True, exist_ok=True)
            for method in wanted:
                for m, label in enumerate(result.labels):
                    result.ranking(method, m).to_json(rankings_dir / f"{label}.{method}.json")
            console.print(f"wrote {len(wanted) * len(result.labels)} rankings to "
                          f"{rankings_dir}")
        _write(out, result.to_dict(top=max(top, 20)), console,
               schema="neuronscope.model-comparison/1")

    @app.command()
    def group(
        store: Path = typer.Argument(..., help="Store directory."),
        n_groups: int = typer.Option(8, help="Number of groups (k of k-means)."),
        components: str | None = components_option(),
        layers: str | None = layers_option(),
        profile: str = typer.Option(
            "activations", help="activations (z-scored, on a word sample) or correlation."),
        embedding: str = typer.Option("umap", help="umap (umap-learn) or pca."),
        sample_words: int = typer.Option(5000, help="Words sampled for activation profiles."),
        seed: int = typer.Option(0, help="Seed of sampling, UMAP and k-means."),
        out: Path | None = out_option("neuronscope.groups/1"),
        overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
        progress: bool = progress_option(),
    ) -> None:
        """Group neurons into functional populations: UMAP + k-means (Meyes et al. 2020)."""
        from neuronscope.unsupervised.grouping import group_neurons

        _check_outs(overwrite, (store,), out)
        st, _ = _open(store)
        with progress_task(progress, "grouping", "steps"):
            result = group_neurons(st, n_groups=n_groups,
                                   neurons=_neurons(st, components, layers), profile=profile,
                                   embedding=embedding, sample_words=sample_words,
                                   random_state=seed)
        table = Table(title=f"{result.n_groups} groups of {len(result.names)} neurons "
                            f"({profile} profiles, {embedding} embedding)")
        for col in ("group", "size", "layers", "members"):
            table.add_column(col, justify="right" if col in ("group", "size") else "left")
        for g, (members, lay) in enumerate(zip(result.groups, result.layers, strict=True)):
            shown = ", ".join(members[:6]) + (" ..." if len(members) > 6 else "")
            table.add_row(str(g), str(len(members)),
                          ", ".join(f"{k}: {v}" for k, v in sorted(lay.items())), shown)
        console.print(table)
        _write(out, result.to_dict(), console, schema="neuronscope.groups/1")
