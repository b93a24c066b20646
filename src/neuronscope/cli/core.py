"""Core commands of the ``neuronscope`` CLI: extract, info, export, import, annotate, rank,
top-words and demo. The other stages' commands live in sibling modules of this package."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuronscope.cli.options import load_corpus_option as _load_corpus
from neuronscope.cli.options import method_params, select_neurons
from neuronscope.cli.options import open_store_and_corpus as _open_store_and_corpus
from neuronscope.errors import NeuronscopeError

app = typer.Typer(
    help="Neuron-level interpretation of deep NLP models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.command()
def extract(
    corpus: str = typer.Argument(..., help="Corpus: .conllu, .jsonl, or text (+ --label-file)."),
    out: Path = typer.Option(..., "--out", "-o", help="Store directory to write."),
    model: str | None = typer.Option(
        None, help="Hugging Face name, local path (.gguf too), or minilm / smollm2 (shipped); "
        "default: all-MiniLM-L6-v2."
    ),
    gguf_file: str | None = typer.Option(None, help="GGUF file name inside --model's folder."),
    components: str = typer.Option("hidden", help="Comma-separated: hidden, mlp, attn."),
    layers: str | None = typer.Option(None, help="Layers to keep, e.g. 0-6 or 1,3,5."),
    aggregation: str = typer.Option("mean", help="Subwords -> word: first, last, mean, max."),
    sentence_pooling: str = typer.Option("mean", help="mean, first-token, last-token, none."),
    batch_size: int = typer.Option(32, help="Sentences (windows) per forward pass."),
    dtype: str = typer.Option("float32", help="Storage dtype: float32 or float16."),
    max_length: int | None = typer.Option(None, help="Override the model's max input tokens."),
    random_init: bool = typer.Option(False, help="Re-initialize the model's weights (baseline)."),
    resume: bool = typer.Option(False, help="Continue an interrupted extraction."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    fmt: str | None = typer.Option(None, "--format", help="conllu, parallel, text, jsonl."),
    label_file: list[str] | None = typer.Option(
        None, help="NeuroX label file as NAME=PATH (repeatable) for parallel text corpora."
    ),
    device: str | None = typer.Option(
        None, help="cpu, cuda, cuda:N or mps (default: cuda when present)."),
    compute_dtype: str = typer.Option(
        "float32", help="Model compute dtype: float32, bfloat16 or float16."),
    device_map: str | None = typer.Option(
        None, help="'auto': spread a model too large for one device over GPUs and CPU "
        "(accelerate)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run a model over a corpus and write word-level activations to a store."""
    from neuronscope.extraction import extract as run_extract
    from neuronscope.models import load_model

    corp = _load_corpus(corpus, fmt, label_file)
    loaded = load_model(model, gguf_file=gguf_file, random_init=random_init, device=device,
                        dtype=compute_dtype, device_map=device_map)
    store = run_extract(
        corp, out, loaded,
        components=[c.strip() for c in components.split(",") if c.strip()],
        layers=layers, aggregation=aggregation, sentence_pooling=sentence_pooling,
        batch_size=batch_size, dtype=dtype, max_length=max_length, resume=resume,
        overwrite=overwrite, progress=progress,
    )
    windows = store.meta["windows"]
    console.print(f"wrote {store}")
    if windows["sentences_windowed"]:
        console.print(
            f"[yellow]{windows['sentences_windowed']} sentence(s) longer than the model's "
            f"maximum were split into overlapping windows; every word was kept[/]"
        )
    if windows["words_truncated"] or windows["words_without_subwords"]:
        console.print(
            f"[yellow]{windows['words_truncated']} word(s) longer than a window kept only their "
            f"first subwords; {windows['words_without_subwords']} word(s) with no subword got "
            "the unknown token[/]"
        )


@app.command()
def info(
    store: Path = typer.Argument(..., help="Store directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Describe a store: model, components, words, completeness."""
    from neuronscope.store import ActivationStore

    st = ActivationStore(store, allow_incomplete=True)
    data = st.info()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"store {store}", show_header=False)
    for key in ("model", "corpus", "n_sentences", "n_words", "aggregation", "dtype", "complete"):
        table.add_row(key, str(data[key]))
    for name, comp in data["components"].items():
        table.add_row(f"component {name}", f"layers {comp['layers']} x {comp['neurons']} neurons")
    table.add_row("windowed sentences", str(data["windows"]["sentences_windowed"]))
    console.print(table)
    if not data["complete"]:
        console.print(f"[yellow]incomplete: {data['words_done']} of {data['n_words']} words[/]")


@app.command()
def export(
    store: Path = typer.Argument(..., help="Store directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file."),
    fmt: str = typer.Option("neurox-hdf5", "--format", help="Only neurox-hdf5 for now."),
    component: str = typer.Option("hidden", help="Component to export."),
) -> None:
    """Export activations to NeuroX-compatible HDF5."""
    from neuronscope.store import ActivationStore
    from neuronscope.store.neurox import export_neurox_hdf5

    if fmt != "neurox-hdf5":
        raise NeuronscopeError(f"unknown export format {fmt!r}; valid: neurox-hdf5")
    export_neurox_hdf5(ActivationStore(store), out, component=component)
    console.print(f"wrote {out}")


@app.command("import-neurox")
def import_neurox_cmd(
    file: Path = typer.Argument(..., help="NeuroX activations (.hdf5/.h5 or .json)."),
    corpus: str = typer.Option(..., help="The corpus the activations were extracted from."),
    out: Path = typer.Option(..., "--out", "-o", help="Store directory to write."),
    fmt: str | None = typer.Option(None, "--format", help="Corpus format."),
    label_file: list[str] | None = typer.Option(None, help="NAME=PATH label files."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
) -> None:
    """Import NeuroX activations into a neuronscope store."""
    from neuronscope.store.neurox import import_neurox

    store = import_neurox(file, _load_corpus(corpus, fmt, label_file), out, overwrite=overwrite)
    console.print(f"wrote {store}")


@app.command()
def annotate(
    text: Path = typer.Argument(..., help="Plain text, one sentence per line."),
    out: Path = typer.Option(..., "--out", "-o", help="CoNLL-U file to write."),
) -> None:
    """Tag plain text with spaCy (POS, tags, lemmas, morphology, NER) into CoNLL-U."""
    from neuronscope.corpus import spacy_annotate_text, write_conllu

    corpus = spacy_annotate_text(text)
    write_conllu(corpus, out)
    console.print(f"wrote {out}: {corpus.n_sentences} sentences, {corpus.n_words} words")


@app.command()
def rank(
    store: Path = typer.Argument(..., help="Store directory."),
    corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
    labels: str = typer.Option(..., help="Label layer to rank against, e.g. upos."),
    method: list[str] = typer.Option(
        ["probe"], help="probe, gaussian, iou, ap, probeless, selectivity (repeatable)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Ranking JSON (one per method if several)."),
    concepts: str | None = typer.Option(None, help="Comma-separated concepts to rank."),
    components: str | None = typer.Option(None, help="Restrict to these components."),
    layers: str | None = typer.Option(None, help="Restrict to these layers, e.g. 0-3."),
    control: bool = typer.Option(False, help="Rank against a control task of the layer."),
    seed: int = typer.Option(0, help="random_state of random methods and the control task."),
    top: int = typer.Option(5, help="Neurons shown per concept."),
    param: list[str] | None = typer.Option(
        None, help="Method parameter KEY=VALUE, e.g. alpha=0.01 (repeatable; applied to every "
        "method that has it)."
    ),
    fmt: str | None = typer.Option(None, "--format", help="Corpus format."),
    label_file: list[str] | None = typer.Option(None, help="NAME=PATH label files."),
) -> None:
    """Rank neurons for each concept of a label layer with one or more methods."""
    from neuronscope.methods import build_method

    st, corp = _open_store_and_corpus(store, corpus, fmt, label_file)
    layer = labels
    if control:
        from neuronscope.corpus.control import control_layer

        corp = control_layer(corp, labels, random_state=seed)
        layer = f"{labels}-control"
    neurons = select_neurons(st, components, layers)
    wanted = [c.strip() for c in concepts.split(",")] if concepts else None
    for name in method:
        instance = build_method(name, concepts=wanted, neurons=neurons, random_state=seed,
                                **method_params(param))
        ranking = instance.rank(st, corp.concept_labels(layer))
        suffix = out.suffix or ".json"
        path = out if len(method) == 1 else out.with_name(f"{out.stem}.{name}{suffix}")
        ranking.to_json(path)
        _print_ranking(ranking, top)
        console.print(f"wrote {path}")


def _print_ranking(ranking, top: int) -> None:
    table = Table(title=f"{ranking.method}: top {top} neurons per concept")
    table.add_column("concept")
    table.add_column("neurons (score)")
    for concept in ranking.concept_names[:40]:
        scores = list(ranking.scores(concept).items())[:top]
        table.add_row(concept, ", ".join(f"{n} ({s:.3g})" for n, s in scores))
    console.print(table)


@app.command("top-words")
def top_words_cmd(
    store: Path = typer.Argument(..., help="Store directory."),
    corpus: str = typer.Argument(..., help="The corpus the store was extracted from."),
    neuron: str = typer.Option(..., help="Neuron name, e.g. L3.mlp.1021."),
    k: int = typer.Option(20, "-k", help="How many words and contexts."),
    lowest: bool = typer.Option(False, help="Most negative activations instead."),
    fmt: str | None = typer.Option(None, "--format", help="Corpus format."),
    label_file: list[str] | None = typer.Option(None, help="NAME=PATH label files."),
) -> None:
    """Show the words and contexts that activate a neuron most."""
    from neuronscope.methods.concept_search import top_contexts, top_words

    st, _ = _open_store_and_corpus(store, corpus, fmt, label_file)
    table = Table(title=f"{neuron}: top words")
    for col in ("word", "max", "mean", "count"):
        table.add_column(col, justify="left" if col == "word" else "right")
    for w in top_words(st, neuron, k=k, lowest=lowest):
        table.add_row(w.word, f"{w.max_activation:.3f}", f"{w.mean_activation:.3f}", str(w.count))
    console.print(table)
    contexts = Table(title=f"{neuron}: top contexts")
    contexts.add_column("activation", justify="right")
    contexts.add_column("context")
    for c in top_contexts(st, neuron, k=k, lowest=lowest):
        contexts.add_row(f"{c.activation:.3f}", c.text)
    console.print(contexts)


@app.command()
def demo(
    out: Path = typer.Option(Path("neuronscope-demo"), "--out", "-o", help="Output folder."),
    model: str | None = typer.Option(None, help="Model to use instead of the default."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run the whole pipeline on the shipped corpus and the default model."""
    from neuronscope.demo import run_demo

    run_demo(out, model=model, console=console, progress=progress)


def main() -> None:
    """Entry point: run the app and turn neuronscope errors into one clear line."""
    try:
        app()
    except NeuronscopeError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        sys.exit(2)


if __name__ == "__main__":
    main()
