"""``neuronscope benchmark``: the planted-neuron benchmark from the command line.

Heavy imports happen inside the command so that registering it costs nothing at start-up.
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
    label_file_option,
    progress_option,
    progress_task,
)
from neuronscope.cli.options import label_files as _label_files
from neuronscope.cli.output import Printer, Rows, output_format_option
from neuronscope.errors import NeuronscopeError
from neuronscope.io import check_output


def _names(text: str | None) -> list[str] | None:
    """Comma-separated names, or None when not given."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise NeuronscopeError(f"expected a comma-separated list, got {text!r}")
    return items


def _numbers(text: str | None, kind: type, option: str) -> list[Any] | None:
    items = _names(text)
    if items is None:
        return None
    try:
        return [kind(t) for t in items]
    except ValueError as err:
        raise NeuronscopeError(f"{option} takes comma-separated numbers, got {text!r}") from err


def benchmark_store(corpus: Any, out: Path, model: str | None, progress: bool,
                    console: Console, device: str | None = None,
                    dtype: str = "float32") -> Any:
    """The store of ``corpus``'s hidden layers under ``out/store``: reused when it holds this
    corpus and model, (re-)extracted otherwise."""
    from neuronscope.errors import StoreError
    from neuronscope.extraction import extract
    from neuronscope.models import load_model
    from neuronscope.store import ActivationStore
    from neuronscope.store.store import META_FILE

    path = out / "store"
    loaded = load_model(model, device=device, dtype=dtype)
    if (path / META_FILE).exists():
        try:
            store = ActivationStore(path)
            if (store.corpus_fingerprint == corpus.fingerprint
                    and store.model_fingerprint == loaded.fingerprint):
                console.print(f"reusing {store}")
                return store
            console.print(f"{path} holds another corpus or model: re-extracting",
                          style="yellow")
        except StoreError as err:
            console.print(f"{path} is unusable ({err}): re-extracting", style="yellow")
    console.print(f"extracting {corpus.name} ({corpus.n_words} words) with {loaded.name} "
                  f"into {path}")
    return extract(corpus, path, loaded, components=["hidden"],
                   overwrite=path.exists(), progress=progress)


def leaderboard_rows(leaderboard: Any, metric: str = "recall", k: str | int | None = None
                     ) -> Rows:
    """The leaderboard's :meth:`summary` as rows: one per method, one column per kind and
    SNR, then ``mean`` and ``seconds`` (full precision, for ``--output-format json|csv``)."""
    wide = leaderboard.summary(metric) if k is None else leaderboard.summary(metric, k)
    name = metric if k is None else f"{metric}_at_{k}"
    rows = Rows(name, f"Planted-neuron benchmark: {metric}@k", ["method", *map(str, wide.columns)],
                formats={str(c): ".3f" for c in wide.columns})
    for method, values in wide.iterrows():
        rows.add(str(method), *[float(v) for v in values])
    return rows


def register(app: typer.Typer, console: Console) -> None:
    """Add the ``benchmark`` command to ``app``."""

    @app.command("benchmark")
    def benchmark(
        store: Path | None = typer.Option(
            None, help="Store to take background neurons from (default: extract --corpus)."
        ),
        corpus: str | None = typer.Option(
            None, help="Corpus of --store, or to extract (default: the shipped demo corpus)."
        ),
        labels: str = typer.Option("upos", help="Label layer whose concepts get planted."),
        model: str | None = typer.Option(
            None, help="Model to extract with when no --store is given (default: minilm). "
            + MODEL_HELP),
        out: Path = typer.Option(Path("neuronscope-benchmark"), "--out", "-o",
                                 help="Output folder (leaderboard.json, format "
                                 "neuronscope-benchmark-leaderboard, see docs/results.md; "
                                 "the extracted store)."),
        methods: str | None = typer.Option(
            None, help="Comma-separated methods (default: all), e.g. probe,iou."
        ),
        seed: int = typer.Option(0, help="Seeds planting, random methods and the floor."),
        kinds: str | None = typer.Option(
            None, help="Comma-separated: focused, group, polysemous, redundant (default: all)."
        ),
        snrs: str = typer.Option("0.5,1,2", help="Signal-to-noise ratios (> 0)."),
        n_concepts: int = typer.Option(3, help="Concepts planted per kind and SNR."),
        concepts: str | None = typer.Option(None, help="Plant for these concepts."),
        group_size: int = typer.Option(3, help="Neurons per group unit."),
        n_redundant: int = typer.Option(3, help="Copies per redundant unit."),
        min_concept_words: int = typer.Option(20, help="Fewest words a planted concept needs."),
        max_words: int = typer.Option(4600, help="Words (rows) sampled; 0: all."),
        max_background: int = typer.Option(512, help="Background neurons sampled; 0: all."),
        ks: str = typer.Option("1,10", help="Fixed cut-offs reported next to k = planted."),
        repeats: int = typer.Option(
            5, help="Independent instances (seeds seed, seed+1, ...) pooled in the leaderboard."
        ),
        shuffle_background: bool = typer.Option(
            True, help="Permute background rows against the labels (complete ground truth)."
        ),
        fmt: str | None = corpus_format_option(),
        label_file: list[str] | None = label_file_option(),
        device: str | None = device_option(),
        compute_dtype: str = compute_dtype_option(),
        progress: bool = progress_option(),
        out_fmt: str = output_format_option(),
    ) -> None:
        """Hide neurons with known roles among real ones and score every ranking method."""
        from neuronscope.benchmark import KINDS, PlantedBenchmark, run_benchmark
        from neuronscope.methods import method_spec

        p = Printer(console, out_fmt)
        # Everything that can be refused is checked before any extraction. The folder is
        # reused on purpose (its store is a cache), so only its kind and access are checked.
        check_output(out, kind="dir", overwrite=True, inputs=(store, corpus))
        method_names = _names(methods)
        for name in method_names or []:
            method_spec(name, "supervised")
        bench = PlantedBenchmark(
            kinds=_names(kinds) or KINDS, snrs=_numbers(snrs, float, "--snrs") or [],
            n_concepts=n_concepts, concepts=_names(concepts), group_size=group_size,
            min_concept_words=min_concept_words,
            n_redundant=n_redundant, max_words=max_words or None,
            max_background=max_background or None,
            shuffle_background=shuffle_background, random_state=seed,
        )
        cut_offs = _numbers(ks, int, "--ks")
        if store is not None and corpus is None:
            raise NeuronscopeError("--store needs --corpus, the corpus it was extracted from")
        if store is not None and model is not None:
            raise NeuronscopeError("--model is used only to extract; drop it with --store")

        if corpus is not None:
            from neuronscope.corpus import load_corpus

            corp = load_corpus(corpus, format=fmt, label_paths=_label_files(label_file))
        else:
            from neuronscope.corpus import load_demo_corpus

            corp = load_demo_corpus()
        label_layer = corp.concept_labels(labels)  # a missing layer fails before extraction
        if store is not None:
            from neuronscope.store import ActivationStore

            background = ActivationStore(store)
            background.check_corpus(corp)
        else:
            background = benchmark_store(corp, out, model, progress, p.info, device,
                                         compute_dtype)

        instances = bench.build_repeats(background, label_layer, repeats)
        first = instances[0]
        p.note(
            f"{len(instances)} instance(s), each with {len(first.planted_ids)} planted neurons "
            f"among {first.meta['n_background']} background neurons of {background.path} "
            f"({first.n_words} words); concepts of the first: {', '.join(first.concepts)}"
        )
        # Methods are seeded with each instance's seed (seed, seed + 1, ...).
        from neuronscope.methods import METHODS

        n_runs = len(method_names or METHODS) * len(instances)
        with progress_task(progress, "benchmark", "method runs", total=n_runs) as tick:
            done = [0]

            def log(line: str) -> None:
                # run_benchmark logs "ranking with M ..." then "M: 1.23 s" per method run.
                if not line.endswith("..."):
                    done[0] += 1
                    tick(done[0])

            leaderboard = run_benchmark(instances, method_names, cut_offs,
                                        log=log if progress else None)
        # The screen gets the leaderboard's own layout (methods as columns); JSON and CSV
        # one row per method.
        p.table(leaderboard_rows(leaderboard), rich=leaderboard.rich_table())
        if cut_offs:
            p.table(leaderboard_rows(leaderboard, "precision", cut_offs[-1]),
                    rich=leaderboard.rich_table("precision", cut_offs[-1]))
        paths = leaderboard.save(out)
        p.note(f"wrote {', '.join(str(path) for path in paths.values())}")
        p.flush()
