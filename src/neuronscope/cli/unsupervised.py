"""CLI commands of the unsupervised methods: ``cluster``, ``select``, ``factorize``, ``compare``,
``group``.

Each prints its tables through one :class:`~neuronscope.cli.output.Printer`
(``--output-format table|json|csv``) and, with ``--out``, writes the full result as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from neuronscope.cli.options import (
    check_out_file,
    check_scheduler,
    components_option,
    corpus_format_option,
    label_file_option,
    layers_option,
    load_corpus_option,
    on_scheduler,
    out_option,
    progress_option,
    progress_task,
    scheduler_option,
)
from neuronscope.cli.options import select_neurons as _neurons
from neuronscope.cli.options import write_json as _write
from neuronscope.cli.output import Printer, Rows, key_values, output_format_option
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


def _matrix_table(name: str, title: str, rows: list[str], cols: list[str],
                  values: Any) -> Rows:
    table = Rows(name, title, ["layer", *cols], formats={c: ".2f" for c in cols})
    for r, row in zip(rows, values, strict=True):
        table.add(r, *[float(v) for v in row])
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
        max_bytes: int = typer.Option(
            2**30, help="Accumulator budget (bytes): the correlation takes one pass over the "
            "words while its float64 triangle fits, more passes below."),
        matrix_out: Path | None = typer.Option(
            None, help="Also write the correlation matrix here (.npy + .json sidecar)."),
        out: Path | None = out_option("neuronscope.clusters/1"),
        overwrite: bool = typer.Option(False, help="Replace existing output files."),
        progress: bool = progress_option(),
        scheduler: str | None = scheduler_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Correlation-cluster neurons: redundancy per layer and layer similarity.

        With --scheduler the correlation (Gram) matrix is reduced over the words on the
        Dask workers; the clustering itself runs here."""
        from neuronscope.unsupervised.clustering import cluster_correlations
        from neuronscope.unsupervised.correlation import correlation_matrix

        p = Printer(console, out_fmt)
        _check_outs(overwrite, (store,), out, ("--matrix-out", matrix_out))
        check_scheduler(scheduler)
        st, _ = _open(store)
        with progress_task(progress, "clustering", "steps", total=2) as tick:
            with on_scheduler(scheduler):
                corr = correlation_matrix(st, _neurons(st, components, layers),
                                          max_bytes=max_bytes, out=matrix_out)
            tick(1)
            result = cluster_correlations(corr, threshold, linkage, representative, seed)
            tick(2)
        red = result.redundancy
        table = Rows("redundancy", f"redundancy at |rho| >= {threshold} ({linkage} linkage): "
                     f"{result.n_clusters} clusters of {len(result.names)} neurons",
                     ["layer", "neurons", "kept", "redundant", "share", "constant"],
                     formats={"share": ".1%"})
        for group, e in [*red["groups"].items(), ("overall", red["overall"])]:
            table.add(group, int(e["neurons"]), int(e["kept"]), int(e["redundant"]),
                      float(e["share"]), int(e["constant"]))
        p.table(table)
        biggest = Rows("largest_clusters", "largest clusters",
                       ["size", "representative", "members"])
        for rep, members in list(zip(result.representative_names, result.clusters(),
                                     strict=True))[:5]:
            shown = ", ".join(members[:8]) + (" ..." if len(members) > 8 else "")
            biggest.add(len(members), rep, ", ".join(members) if p.machine else shown)
        p.table(biggest)
        if result.layers is not None and len(result.layers.labels) > 1:
            lay = result.layers
            p.table(_matrix_table("layer_cka", "layer similarity: linear CKA", lay.labels,
                                  lay.labels, lay.cka))
            p.table(_matrix_table("layer_max_corr", "mean max |rho| of row-layer neurons in "
                                  "column layer", lay.labels, lay.labels, lay.max_corr))
        if result.constant:
            p.note(f"{len(result.constant)} constant neuron(s) left out: "
                   f"{', '.join(result.constant[:10])}", style="yellow")
        _write(out, result.to_dict(), p.info, schema="neuronscope.clusters/1")
        p.flush()

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
        out_fmt: str = output_format_option(),
    ) -> None:
        """Select a small set of neurons for a task (LayerSelector + clustering + probe)."""
        from neuronscope.unsupervised.selection import select_neurons

        p = Printer(console, out_fmt)
        _check_outs(overwrite, (store, corpus), out, ("--ranking-out", ranking_out))
        st, corp = _open(store, corpus, fmt, label_file)
        with progress_task(progress, "selecting", "probes and clustering"):
            result = select_neurons(
                st, corp.concept_labels(labels), keep=keep, layer_keep=layer_keep,
                threshold=threshold, neurons=_neurons(st, components, layers),
                test_size=test_size, max_words=max_words or None,
                probe_params={"max_epochs": max_epochs}, random_state=seed,
            )
        runs = Rows("probes", f"probes trained ({labels}, {result.params['n_words']} words)",
                    ["step", "neurons", "accuracy", "train s", "predict ms"],
                    formats={"accuracy": ".4f", "train s": ".2f", "predict ms": ".2f"})
        for r in result.runs:
            runs.add(r.step, int(r.n_neurons), float(r.accuracy), float(r.train_s),
                     1000 * float(r.predict_s))
        p.table(runs)
        p.table(key_values("selection", "selection", [
            ("top layer kept", result.top_layer),
            ("neurons after layers", result.n_after_layers),
            ("neurons after clustering", result.n_after_clustering),
            ("selected", len(result.selected)), ("neurons", result.n_neurons),
            ("fraction kept", float(result.fraction_kept)),
            ("full accuracy", float(result.full_accuracy)),
            ("selected accuracy", float(result.selected_accuracy)),
            ("accuracy kept", float(result.accuracy_kept)), ("target", float(result.target)),
            ("train speed-up", float(result.train_speedup)),
            ("predict speed-up", float(result.predict_speedup)),
            ("reached", bool(result.reached))],
            formats={"fraction kept": ".1%", "full accuracy": ".4f", "target": ".4f",
                     "selected accuracy": ".4f", "accuracy kept": ".1%",
                     "train speed-up": ".1f", "predict speed-up": ".1f"}))
        if not result.reached:
            p.note("no neuron subset reached the target; all cluster representatives are "
                   "returned", style="yellow")
        if ranking_out is not None:
            result.ranking.to_json(ranking_out)
            p.note(f"wrote {ranking_out}")
        _write(out, result.to_dict(), p.info, schema="neuronscope.selection/1")
        p.flush()

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
        out_fmt: str = output_format_option(),
    ) -> None:
        """Non-negative matrix factorization of one sentence's (or a sample's) activations."""
        from neuronscope.unsupervised.factorization import (
            factorize_corpus,
            factorize_sentence,
        )

        p = Printer(console, out_fmt)
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
            loadings = Rows("loadings", f"sentence {sentence}: factor loadings per word "
                            f"(error {result.reconstruction_error:.3f})",
                            ["word", *(f"F{f}" for f in range(result.k)), "best"],
                            formats={f"F{f}": ".2f" for f in range(result.k)})
            for word, row in zip(result.words or [], result.word_loadings, strict=True):
                loadings.add(word, *[float(v) for v in row], f"F{int(row.argmax())}")
            p.table(loadings)
        else:
            with progress_task(progress, "factorizing", "sample"):
                result = factorize_corpus(st, k, sample_words, neurons, nonneg, standardize,
                                          random_state=seed)
            p.note(f"global NMF over {len(result.rows)} sampled words "
                   f"(relative error {result.reconstruction_error:.3f})")
        factors = Rows("factors", "factors: top neurons (signed weight) and words (one per "
                       "cell)", ["factor", "neurons", *(f"word {i + 1}" for i in range(top))],
                       left={f"word {i + 1}" for i in range(top)})
        for f in range(result.k):
            neurons_txt = ", ".join(f"{n} ({w:+.2f})" for n, w in result.top_neurons(f, top))
            # One word per cell: punctuation such as "," joined with ", " read as ",, ,,".
            words = [str(w) for _, w, _ in result.top_words(f, top)]
            factors.add(f"F{f}", neurons_txt, *words, *[None] * (top - len(words)))
        p.table(factors)
        _write(out, result.to_dict(), p.info, schema="neuronscope.nmf/1")
        p.flush()

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
        out_fmt: str = output_format_option(),
    ) -> None:
        """Compare models of the same corpus: MaxCorr/MinCorr/LinReg neurons, SVCCA/PWCCA/CKA."""
        from neuronscope.unsupervised.multimodel import compare_models

        if len(stores) < 2:
            raise NeuronscopeError("compare needs at least two stores")
        p = Printer(console, out_fmt)
        _check_outs(overwrite, tuple(stores), out)
        if rankings_dir is not None:
            check_output(rankings_dir, kind="dir", overwrite=overwrite, inputs=tuple(stores),
                         option="--rankings-dir")
        opened = [_open(s)[0] for s in stores]
        selections = [_neurons(s, components, layers) for s in opened]
        wanted = [m.strip() for m in methods.split(",") if m.strip()]
        with progress_task(progress, "comparing", "model pairs"):
            result = compare_models(opened, selections, methods=wanted, ridge=ridge)
        sims = Rows("similarity", "representation similarity",
                    ["model A", "model B", "CKA", "SVCCA", "PWCCA", "SVCCA dims"],
                    formats={c: ".3f" for c in ("CKA", "SVCCA", "PWCCA")})
        for pair in result.pairs:
            s = pair.similarity
            sims.add(result.labels[pair.a], result.labels[pair.b], float(s.cka),
                     float(s.svcca), float(s.pwcca), str(s.svcca_dims))
        p.table(sims)
        for m, label in enumerate(result.labels):
            # One table per model on screen; one "top_neurons" table in JSON/CSV.
            table = Rows("top_neurons", f"{label}: top {top} neurons",
                         ["model", "method", "neurons (score)"])
            for method in wanted:
                scores = list(result.ranking(method, m).scores(method).items())[:top]
                table.add(label, method, ", ".join(f"{n} ({v:.6g})" if p.machine
                                                   else f"{n} ({v:.3f})" for n, v in scores))
            p.table(table)
        if rankings_dir is not None:
            rankings_dir.mkdir(parents=True, exist_ok=True)
            for method in wanted:
                for m, label in enumerate(result.labels):
                    result.ranking(method, m).to_json(rankings_dir / f"{label}.{method}.json")
            p.note(f"wrote {len(wanted) * len(result.labels)} rankings to {rankings_dir}")
        _write(out, result.to_dict(top=max(top, 20)), p.info,
               schema="neuronscope.model-comparison/1")
        p.flush()

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
        out_fmt: str = output_format_option(),
    ) -> None:
        """Group neurons into functional populations: UMAP + k-means (Meyes et al. 2020)."""
        from neuronscope.unsupervised.grouping import group_neurons

        p = Printer(console, out_fmt)
        _check_outs(overwrite, (store,), out)
        st, _ = _open(store)
        with progress_task(progress, "grouping", "steps"):
            result = group_neurons(st, n_groups=n_groups,
                                   neurons=_neurons(st, components, layers), profile=profile,
                                   embedding=embedding, sample_words=sample_words,
                                   random_state=seed)
        table = Rows("groups", f"{result.n_groups} groups of {len(result.names)} neurons "
                     f"({profile} profiles, {embedding} embedding)",
                     ["group", "size", "layers", "members"])
        for g, (members, lay) in enumerate(zip(result.groups, result.layers, strict=True)):
            shown = ", ".join(members[:6]) + (" ..." if len(members) > 6 else "")
            table.add(g, len(members), ", ".join(f"{k}: {v}" for k, v in sorted(lay.items())),
                      ", ".join(members) if p.machine else shown)
        p.table(table)
        _write(out, result.to_dict(), p.info, schema="neuronscope.groups/1")
        p.flush()
