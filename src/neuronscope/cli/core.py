"""Core commands of the ``neuronscope`` CLI: extract, info, rank, methods, top-words and demo.
The other stages' commands live in sibling modules of this package (``export``,
``import-neurox`` and ``annotate`` in ``exchange``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from neuronscope.cli.errors import run, set_debug
from neuronscope.cli.options import (
    MODEL_HELP,
    check_max_length,
    check_out_file,
    check_positive,
    check_scheduler,
    components_option,
    compute_dtype_option,
    corpus_format_option,
    device_option,
    label_file_option,
    layers_option,
    method_params,
    on_scheduler,
    out_option,
    progress_option,
    progress_task,
    scheduler_option,
    select_neurons,
    write_json,
)
from neuronscope.cli.options import load_corpus_option as _load_corpus
from neuronscope.cli.options import open_store_and_corpus as _open_store_and_corpus
from neuronscope.cli.output import (
    Rows,
    check_format,
    emit,
    make_console,
    output_format_option,
    print_table,
)
from neuronscope.errors import NeuronscopeError

app = typer.Typer(
    help="Neuron-level interpretation of deep NLP models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Markup off: words, labels, neuron names and paths print literally (see cli/output.py).
console = make_console()
err_console = make_console(stderr=True)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of any error."),
) -> None:
    """Neuron-level interpretation of deep NLP models."""
    set_debug(debug)


@app.command()
def extract(
    corpus: str = typer.Argument(..., help="Corpus: .conllu, .jsonl, or text (+ --label-file)."),
    out: Path = typer.Option(..., "--out", "-o", help="Store directory to write."),
    model: str | None = typer.Option(None, help=MODEL_HELP + " Default: minilm."),
    gguf_file: str | None = typer.Option(None, help="GGUF file name inside --model's folder."),
    components: str = typer.Option("hidden", help="Comma-separated: hidden, mlp, attn."),
    layers: str | None = layers_option("Layers to keep, e.g. 0-6 or 1,3,5."),
    aggregation: str = typer.Option("mean", help="Subwords -> word: first, last, mean, max."),
    sentence_pooling: str = typer.Option("mean", help="mean, first-token, last-token, none."),
    batch_size: int = typer.Option(32, help="Sentences (windows) per forward pass."),
    dtype: str = typer.Option("float32", "--store-dtype", "--dtype",
                              help="Storage dtype: float32, float16 or bfloat16 (reads "
                              "return float32)."),
    compression: str = typer.Option("none", help="Chunk compression: none, zstd, blosc-lz4."),
    shards: bool = typer.Option(True, help="One file per block of rows holding every "
                                "layer (Zarr v3 sharding); --no-shards: one file per chunk."),
    max_length: int | None = typer.Option(None, help="Override the model's max input tokens."),
    random_init: bool = typer.Option(False, help="Re-initialize the model's weights (baseline)."),
    resume: bool = typer.Option(False, help="Continue an interrupted extraction."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    fmt: str | None = corpus_format_option(),
    label_file: list[str] | None = label_file_option(),
    device: str | None = device_option(),
    compute_dtype: str = compute_dtype_option(),
    device_map: str | None = typer.Option(
        None, help="'auto': spread a model too large for one device over GPUs and CPU "
        "(accelerate)."),
    progress: bool = progress_option(),
    scheduler: str | None = scheduler_option(),
) -> None:
    """Run a model over a corpus and write word-level activations to a store."""
    from neuronscope.extraction import extract as run_extract
    from neuronscope.extraction.components import parse_layers
    from neuronscope.io import check_output
    from neuronscope.models import load_model
    from neuronscope.store.dtypes import check_store_dtype
    from neuronscope.store.layout import check_compression
    from neuronscope.store.remote import is_url

    # Everything that can be refused is checked before the model is loaded.
    if not is_url(out):  # a URL is written through a local mirror (store.remote)
        check_output(out, kind="dir", overwrite=True, inputs=(corpus,))
    layer_list = parse_layers(layers)
    check_max_length(max_length)
    check_positive(batch_size, "--batch-size")
    check_scheduler(scheduler)
    check_store_dtype(dtype)
    check_compression(compression)
    corp = _load_corpus(corpus, fmt, label_file)
    load_kwargs: dict[str, Any] = {"gguf_file": gguf_file, "random_init": random_init,
                                   "device": device, "dtype": compute_dtype,
                                   "device_map": device_map}
    loaded = load_model(model, **load_kwargs)
    check_max_length(max_length, loaded.max_length)
    # On a cluster every worker loads the model by name (weights are not sent around).
    if scheduler is None:
        run: Any = run_extract
    else:
        from functools import partial

        from neuronscope.distributed.extraction import extract_on

        run = partial(extract_on, scheduler)
    store = run(
        corp, out, loaded if scheduler is None else model,
        model_kwargs=None if scheduler is None else load_kwargs,
        components=[c.strip() for c in components.split(",") if c.strip()],
        layers=layer_list, aggregation=aggregation, sentence_pooling=sentence_pooling,
        batch_size=batch_size, dtype=dtype, max_length=max_length, resume=resume,
        overwrite=overwrite, progress=progress, compression=compression, sharded=shards,
    )
    windows = store.meta["windows"]
    console.print(f"wrote {store}")
    if windows["sentences_windowed"]:
        console.print(
            f"{windows['sentences_windowed']} sentence(s) longer than the model's "
            f"maximum were split into overlapping windows; every word was kept", style="yellow"
        )
    if windows["words_truncated"] or windows["words_without_subwords"]:
        console.print(
            f"{windows['words_truncated']} word(s) longer than a window kept only their "
            f"first subwords; {windows['words_without_subwords']} word(s) with no subword got "
            "the unknown token", style="yellow"
        )


@app.command()
def info(
    store: Path = typer.Argument(..., help="Store directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (same as --output-format "
                                 "json)."),
    out_fmt: str = output_format_option(),
    out: Path | None = out_option("neuronscope.info/1"),
    overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
    progress: bool = progress_option(),
) -> None:
    """Describe a store: model (and whether its weights were random), components, words."""
    from neuronscope.store import ActivationStore

    out_fmt = "json" if as_json else check_format(out_fmt)
    check_out_file(out, overwrite, inputs=(store,))
    st = ActivationStore(store, allow_incomplete=True)
    data = st.info()
    # A random-init store is a baseline, not the model's knowledge: say so everywhere.
    model_meta = st.meta.get("model", {})
    data["random_init"] = bool(model_meta.get("random_init", False))
    data["random_init_seed"] = model_meta.get("seed") if data["random_init"] else None
    write_json(out, data, err_console if out_fmt != "table" else console,
               schema="neuronscope.info/1")
    if out_fmt == "json":
        print(json.dumps(data, indent=2))
        return
    rows = Rows("info", "store", ["key", "value"], left={"key", "value"})
    rows.add("path", str(store))
    for key in ("model", "corpus", "n_sentences", "n_words", "aggregation", "dtype", "complete"):
        rows.add(key, str(data[key]))
    rows.add("random-init model",
             f"YES: untrained weights (seed {data['random_init_seed']}), a baseline"
             if data["random_init"] else "no (trained weights)")
    for name, comp in data["components"].items():
        rows.add(f"component {name}", f"layers {comp['layers']} x {comp['neurons']} neurons")
    # Stores written from arrays or NeuroX files have no windowing record.
    rows.add("windowed sentences", str((data.get("windows") or {}).get("sentences_windowed", 0)))
    if out_fmt == "csv":
        emit(console, [rows], "csv")
        return
    table = Table(title=rows.title, show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    for row in rows.rows:
        table.add_row(*row)
    print_table(console, table)
    if data["random_init"]:
        console.print("this store comes from a randomly initialized model: use it as a "
                      "control, not as the model's representations", style="yellow")
    if not data["complete"]:
        console.print(f"incomplete: {data['words_done']} of {data['n_words']} words",
                      style="yellow")


@app.command()
def rank(
    store: Path = typer.Argument(..., help="Store directory."),
    corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
    labels: str | None = typer.Option(None, help="Word label layer to rank against, e.g. upos."),
    sentence_labels: str | None = typer.Option(
        None, "--sentence-labels", help="Rank pooled sentence vectors instead, against a "
        "sentence label layer of the corpus (NAME) or a file of one label per sentence (PATH)."),
    multi_label: str | None = typer.Option(
        None, "--multi-label", help="Label values are sets joined by this separator, e.g. "
        "'|': each concept is ranked against the rest (supervised methods)."),
    method: list[str] = typer.Option(
        ["probe"], help="A ranker listed by `neuronscope methods` (repeatable): supervised "
        "ones, or causal ones (erasure, class-flip), which need --model."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Ranking JSON (one per method if several)."),
    concepts: str | None = typer.Option(None, help="Comma-separated concepts to rank."),
    components: str | None = components_option(
        "Restrict to these components (causal methods: the neurons ablated, by default all "
        "of the store's, one pass over the corpus each)."),
    layers: str | None = layers_option(
        "Restrict to these layers, e.g. 0-3 (causal methods: their candidates)."),
    control: bool = typer.Option(False, help="Rank against a control task of the layer."),
    exclude_positions: str = typer.Option(
        "none", "--exclude-positions", help="Leave words at special positions out of the "
        "supervised rankers' statistics: none, first, last or first-last (the first word of "
        "a causal LM carries massive activations)."),
    seed: int = typer.Option(0, help="random_state of random methods and the control task."),
    top: int = typer.Option(5, help="Neurons shown per concept."),
    param: list[str] | None = typer.Option(
        None, help="Method parameter KEY=VALUE, e.g. alpha=0.01 (repeatable). Applied to every "
        "requested method that has it; a KEY that none of them has is an error."
    ),
    model: str | None = typer.Option(
        None, help="The model the store was extracted from: runs the causal methods, which "
        "ablate its neurons while it reads the corpus. " + MODEL_HELP
    ),
    fmt: str | None = corpus_format_option(),
    label_file: list[str] | None = label_file_option(),
    overwrite: bool = typer.Option(False, help="Replace existing ranking files."),
    out_fmt: str = output_format_option(),
    device: str | None = device_option(),
    compute_dtype: str = compute_dtype_option(),
    progress: bool = progress_option(),
    scheduler: str | None = scheduler_option(),
    memory: str | None = typer.Option(
        None, help="Memory budget, e.g. 4GB: streaming rankers shrink their blocks to fit it, "
        "and a request that cannot fit is refused (default: the available memory)."),
) -> None:
    """Rank neurons for each concept of a label layer with one or more methods."""
    from neuronscope.methods import method_spec, split_params

    # Everything that can be refused is checked before the store, corpus or model is read.
    families = {name: method_spec(name).load().family for name in method}
    pairwise = [n for n, f in families.items() if f == "pairwise"]
    if pairwise:
        raise NeuronscopeError(
            f"method(s) {', '.join(pairwise)} compare two stores, not a store and labels: "
            "use `neuronscope domains STORE_A STORE_B`"
        )
    causal = [n for n, f in families.items() if f == "causal"]
    if causal and model is None:
        raise NeuronscopeError(
            f"method(s) {', '.join(causal)} are causal: they need the model the store was "
            "extracted from; give --model"
        )
    if model is not None and not causal:
        raise NeuronscopeError(
            "--model is only used by causal methods (erasure, class-flip); none was requested"
        )
    from neuronscope.methods.hygiene import check_exclude_positions

    check_exclude_positions(exclude_positions)
    if causal and exclude_positions != "none":
        raise NeuronscopeError(
            f"--exclude-positions applies to supervised rankers; {', '.join(causal)} "
            "intervene on the live model and score every word")
    per_method = split_params(method, method_params(param))
    check_scheduler(scheduler)
    if memory is not None:
        from neuronscope.methods.budget import resolve_budget

        resolve_budget(memory)  # a clear error before anything is read
    out_fmt = check_format(out_fmt)
    check_positive(top, "--top")
    paths = _ranking_paths(out, method)
    for path in paths:
        check_out_file(path, overwrite, inputs=(store, corpus))
    st, corp = _open_store_and_corpus(store, corpus, fmt, label_file)
    from neuronscope.cli.labels import rank_target, resolve_target

    target = resolve_target(corp, labels, sentence_labels, multi_label)
    if not target.plain and (causal or control or exclude_positions != "none"):
        raise NeuronscopeError("--sentence-labels and --multi-label work with supervised "
                               "methods, without --control or --exclude-positions")
    layer = target.layer
    if control:
        from neuronscope.corpus.control import control_layer

        corp = control_layer(corp, layer, random_state=seed)
        layer = f"{layer}-control"
    neurons = select_neurons(st, components, layers)
    wanted = [c.strip() for c in concepts.split(",")] if concepts else None
    loaded = None
    if causal:
        from neuronscope.models import load_model

        loaded = load_model(model, device=device, dtype=compute_dtype)
    info = console if out_fmt == "table" else err_console
    rankings = []
    # Each file is written as soon as its method is done: a later failure keeps it.
    with progress_task(progress, "ranking", "methods", total=len(method)) as tick, \
            on_scheduler(scheduler) as client:
        for done, (name, path) in enumerate(zip(method, paths, strict=True)):
            if target.plain:
                ranking = _rank_one(name, families[name], per_method[name], st, corp, layer,
                                    neurons, wanted, seed, loaded, exclude_positions, client,
                                    memory)
            else:
                build = _builder(name, per_method[name], seed, target, neurons, memory)
                ranking = rank_target(build, st, corp, target, neurons, wanted)
            ranking.to_json(path)
            rankings.append(ranking)
            tick(done + 1)
    for ranking, path in zip(rankings, paths, strict=True):
        _print_ranking(ranking, top, out_fmt)
        info.print(f"wrote {path}")


def _builder(name: str, user: dict[str, Any], seed: int, target: Any,
             neurons: list[int] | None, memory: str | None = None) -> Any:
    """``build(concepts)``: the method ``name`` restricted to ``concepts``."""
    from neuronscope.methods import build_method

    def build(concepts: list[str] | None) -> Any:
        common: dict[str, Any] = {"concepts": concepts, "random_state": seed,
                                  "memory": memory}
        if target.sentence_values is None:  # sentence vectors are selected as columns
            common["neurons"] = neurons
        return build_method(name, dict(user), **common)

    return build


def _rank_one(name: str, family: str, user_params: dict[str, Any], st: Any, corp: Any,
              layer: str, neurons: list[int] | None, wanted: list[str] | None, seed: int,
              loaded: Any, exclude_positions: str = "none", client: Any = None,
              memory: str | None = None) -> Any:
    """One method's ranking of ``layer``'s concepts (supervised ones on the Dask cluster of
    ``client`` when given)."""
    from neuronscope.methods import CausalRanker, SupervisedRanker, build_method

    common: dict[str, Any] = {"concepts": wanted, "random_state": seed, "memory": memory}
    user = dict(user_params)
    if family == "causal":
        # The candidates to ablate: the store's neurons, or --components/--layers of it.
        user.setdefault("candidates", st.layout.names(
            range(st.n_neurons) if neurons is None else neurons))
    else:
        common["neurons"] = neurons
    ranker = build_method(name, user, **common)
    labels_of_layer = corp.concept_labels(layer)
    if isinstance(ranker, CausalRanker):
        return ranker.rank(loaded, corp, labels_of_layer, activations=st)
    assert isinstance(ranker, SupervisedRanker)  # pairwise ones were refused above
    from neuronscope.methods.hygiene import rank_excluding

    if client is None:
        return rank_excluding(ranker, st, labels_of_layer, exclude_positions)
    from neuronscope.distributed.ranking import rank_on

    return rank_excluding(ranker, st, labels_of_layer, exclude_positions,
                          rank=lambda m, a, y: rank_on(client, m, a, y))


@app.command("methods")
def methods_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    out: Path | None = out_option("neuronscope.methods/1"),
    overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
) -> None:
    """List every registered ranking method with its capability tags and parameters."""
    from neuronscope.methods import REGISTRY
    from neuronscope.params import jsonable

    data = {name: {"summary": spec.summary, "class": spec.path, **spec.tags(),
                   "params": jsonable(spec.params())} for name, spec in REGISTRY.items()}
    check_out_file(out, overwrite)
    write_json(out, {"methods": data}, err_console if as_json else console,
               schema="neuronscope.methods/1")
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for name, row in data.items():
        tags = (f"family {row['family']}" + (" (needs --model)" if row["needs_model"] else "")
                + f" | labels {row['labels']} | reads {row['reads']} | random "
                + ("yes" if row["random"] else "no"))
        params = ", ".join(f"{k}={v!r}" for k, v in row["params"].items())
        # markup=False: defaults such as ['A', 'B'] are data, not rich markup.
        console.print(f"{name}: {row['summary']}", markup=False, highlight=False)
        console.print(f"  {tags}", markup=False, highlight=False)
        console.print(f"  params: {params}", markup=False, highlight=False, soft_wrap=True)


def _ranking_paths(out: Path, methods: Sequence[str]) -> list[Path]:
    """The file of each method: ``out`` itself for one method, ``out.stem.METHOD.json``."""
    if len(methods) == 1:
        return [out]
    suffix = out.suffix or ".json"
    return [out.with_name(f"{out.stem}.{name}{suffix}") for name in methods]


def _print_ranking(ranking, top: int, out_fmt: str = "table") -> None:
    if out_fmt != "table":
        rows = Rows(f"ranking_{ranking.method}", ranking.method,
                    ["method", "concept", "rank", "neuron", "score"])
        for concept in ranking.concept_names:
            for i, (n, s) in enumerate(list(ranking.scores(concept).items())[:top]):
                rows.add(ranking.method, concept, i + 1, n, s)
        emit(console, [rows], out_fmt)
        return
    table = Table(title=f"{ranking.method}: top {top} neurons per concept")
    table.add_column("concept", overflow="fold")
    table.add_column("neurons (score)", overflow="fold")
    for concept in ranking.concept_names[:40]:
        scores = list(ranking.scores(concept).items())[:top]
        table.add_row(concept, ", ".join(f"{n} ({s:.3g})" for n, s in scores))
    print_table(console, table)


@app.command("top-words")
def top_words_cmd(
    store: Path = typer.Argument(..., help="Store directory."),
    corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
    neuron: str = typer.Option(..., help="Neuron name, e.g. L3.mlp.1021."),
    k: int = typer.Option(20, "-k", help="How many words and contexts."),
    lowest: bool = typer.Option(False, help="Most negative activations instead."),
    fmt: str | None = corpus_format_option(),
    label_file: list[str] | None = label_file_option(),
    out_fmt: str = output_format_option(),
    out: Path | None = out_option("neuronscope.top-words/1"),
    overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
    progress: bool = progress_option(),
) -> None:
    """Show the words and contexts that activate a neuron most."""
    from neuronscope.methods.inspection import CorpusIndex, read_columns

    out_fmt = check_format(out_fmt)
    check_positive(k, "-k")
    check_out_file(out, overwrite, inputs=(store, corpus))
    st, corp = _open_store_and_corpus(store, corpus, fmt, label_file)
    # One read of the column and one index of the corpus for both tables.
    values = read_columns(st, [neuron])[:, 0]
    index = CorpusIndex.build(st, corp)
    words = Rows("top_words", f"{neuron}: top words", ["word", "max", "mean", "count"],
                 formats={"max": ".3f", "mean": ".3f"}, left={"word"})
    for w in index.top_words(values, k=k, lowest=lowest):
        words.add(w.word, float(w.max_activation), float(w.mean_activation), int(w.count))
    contexts = Rows("top_contexts", f"{neuron}: top contexts", ["activation", "context"],
                    formats={"activation": ".3f"}, left={"context"})
    for c in index.top_contexts(values, k=k, lowest=lowest):
        contexts.add(float(c.activation), c.text)
    emit(console, [words, contexts], out_fmt)
    write_json(out, {"neuron": neuron, "lowest": lowest, "top_words": words.records(),
                     "top_contexts": contexts.records()},
               console if out_fmt == "table" else err_console, schema="neuronscope.top-words/1")


@app.command()
def demo(
    out: Path = typer.Option(Path("neuronscope-demo"), "--out", "-o",
                             help="Output folder (store, rankings, report, summary.json with "
                             "schema neuronscope.demo/1)."),
    model: str | None = typer.Option(None, help="Model instead of the default: " + MODEL_HELP),
    device: str | None = device_option(),
    compute_dtype: str = compute_dtype_option(),
    progress: bool = progress_option(),
) -> None:
    """Run the whole pipeline on the shipped corpus and the default model."""
    from neuronscope.demo import run_demo

    run_demo(out, model=model, console=console, progress=progress, device=device,
             dtype=compute_dtype)


def main(args: Sequence[str] | None = None) -> None:
    """Entry point: run the app behind the one error boundary (see ``cli/errors.py``)."""
    sys.exit(run(typer.main.get_command(app), args))


if __name__ == "__main__":
    main()
