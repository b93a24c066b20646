"""Option handling shared by every CLI command (the main app and each stage's commands)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from neuronscope.errors import InvalidOptionError, NeuronscopeError


def label_files(items: list[str] | None) -> dict[str, str] | None:
    """Repeated ``--label-file NAME=PATH`` options as ``{NAME: PATH}``."""
    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise NeuronscopeError(f"--label-file takes NAME=PATH, got {item!r}")
        name, path = item.split("=", 1)
        out[name] = path
    return out


def load_corpus_option(path: str, fmt: str | None, label_file: list[str] | None) -> Any:
    """The corpus named by a CORPUS argument plus ``--format`` and ``--label-file``."""
    from neuronscope.corpus import load_corpus

    return load_corpus(path, format=fmt, label_paths=label_files(label_file))


def open_store_and_corpus(
    store: Path, corpus: str, fmt: str | None, label_file: list[str] | None
) -> tuple[Any, Any]:
    """A complete store and its corpus, refusing a corpus the store was not extracted from."""
    from neuronscope.store import ActivationStore

    st = ActivationStore(store)
    corp = load_corpus_option(corpus, fmt, label_file)
    st.check_corpus(corp)
    return st, corp


def select_neurons(store: Any, components: str | None, layers: str | None) -> list[int] | None:
    """Neuron ids of ``--components``/``--layers`` of a store (None: all neurons)."""
    if components is None and layers is None:
        return None
    from neuronscope.extraction.components import parse_layers

    comps = None
    if components is not None:
        comps = [c.strip() for c in components.split(",") if c.strip()]
        if not comps:
            raise InvalidOptionError(f"--components {components!r} names no component")
    wanted = parse_layers(layers)
    if wanted is not None:
        # A layer no selected component has would otherwise be dropped without a word.
        chosen = comps if comps is not None else list(store.layout.components)
        have = {layer for name in chosen if name in store.layout.components
                for layer in store.layout.components[name].layers}
        missing = sorted(set(wanted) - have)
        if missing:
            raise InvalidOptionError(f"--layers {layers!r}: the store has no layer "
                                     f"{', '.join(map(str, missing))}; its layers: "
                                     f"{', '.join(map(str, sorted(have))) or '(none)'}")
    return store.layout.select(comps, wanted).tolist()


def method_params(items: list[str] | None) -> dict[str, Any]:
    """Repeated ``--param KEY=VALUE`` options; values parse as JSON (numbers, booleans, null)
    and otherwise stay strings."""
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise NeuronscopeError(f"--param takes KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def check_max_length(value: int | None, model_limit: int | None = None) -> None:
    """``--max-length``: a positive number of tokens within the model's position limit."""
    if value is None:
        return
    if value < 1:
        raise InvalidOptionError(f"--max-length must be a positive number of tokens, got {value} "
                                 "(leave it out to use the model's maximum)")
    if model_limit is not None and value > model_limit:
        raise InvalidOptionError(f"--max-length {value} exceeds the model's limit of "
                                 f"{model_limit} tokens")


def check_positive(value: float | int, option: str, *, allow_zero: bool = False) -> None:
    """A count or size option must be > 0 (or >= 0)."""
    if value < 0 or (value == 0 and not allow_zero) or value != value:  # NaN fails too
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidOptionError(f"{option} must be {bound}, got {value}")


def check_out_file(out: Path | None, overwrite: bool, inputs: tuple[Any, ...] = (),
                   option: str = "--out") -> Path | None:
    """Check a file ``--out`` before any work (see :func:`neuronscope.io.check_output`)."""
    if out is None:
        return None
    from neuronscope.io import check_output

    return check_output(out, kind="file", overwrite=overwrite, inputs=inputs, option=option)


def write_json(out: Path | None, data: dict[str, Any], console: Console,
               schema: str | None = None) -> None:
    """Write a command's result as JSON when ``--out`` was given (atomically).

    ``schema`` (``neuronscope.VERB/N``) is written first, with the tool version, unless the
    result names its own schema; the schemas are documented in docs/results.md.
    """
    if out is None:
        return
    from neuronscope.io import atomic_write_json

    if schema is not None:
        data = result_payload(data, schema)
    atomic_write_json(out, data, default=str)
    console.print(f"wrote {out}")


# ---------------------------------------------------------------- shared option declarations
# Every command declares these options through one function each, so names, defaults and
# help texts cannot drift between commands.


def corpus_format_option() -> Any:
    """``--format``: how to read the CORPUS argument."""
    return typer.Option(
        None, "--format",
        help="Corpus format: conllu, jsonl, parallel, text, or hf-dataset[:tokens=COL,"
        "labels=A+B,split=NAME] (default: from the file extension).")


def label_file_option() -> Any:
    """``--label-file NAME=PATH`` (repeatable): label files of a parallel text corpus."""
    return typer.Option(
        None, "--label-file",
        help="NeuroX label file NAME=PATH (repeatable) for a parallel text corpus.")


def components_option(help_text: str = "Comma-separated components, e.g. hidden,mlp.") -> Any:
    """``--components``: restrict to these components."""
    return typer.Option(None, "--components", help=help_text)


def layers_option(help_text: str = "Layers, e.g. 0-3 or 1,3,5.") -> Any:
    """``--layers``: restrict to these layers."""
    return typer.Option(None, "--layers", help=help_text)


#: Help of ``--device`` on every command that runs a model.
DEVICE_HELP = "cpu, cuda, cuda:N or mps (default: cuda when present)."
#: Help of a model argument or option: the shipped aliases work everywhere.
MODEL_HELP = "Hugging Face name, local path (.gguf too), or minilm / smollm2 (shipped)."
#: Where the JSON result schemas of every verb are documented.
SCHEMA_DOC = "docs/results.md"


def _progress_callback(value: bool) -> bool:
    # --no-progress must also silence the bars other libraries draw while loading, and do
    # it before the command body loads anything.
    if not value:
        from neuronscope.progress import silence_third_party_progress

        silence_third_party_progress()
    return value


def progress_option() -> Any:
    """``--progress/--no-progress``: progress bars, ours and third-party loading bars."""
    return typer.Option(
        True, "--progress/--no-progress", callback=_progress_callback,
        help="Show progress bars; --no-progress also silences the loading bars of "
        "transformers, huggingface_hub, datasets and tqdm.")


def out_option(schema: str | None, what: str = "Write the result as JSON") -> Any:
    """``--out/-o``: the JSON result file of a verb, with its versioned schema name."""
    text = f"{what} (schema {schema}; see {SCHEMA_DOC})." if schema else what
    return typer.Option(None, "--out", "-o", help=text)


def device_option() -> Any:
    """``--device``: where a model runs."""
    return typer.Option(None, "--device", help=DEVICE_HELP)


def compute_dtype_option() -> Any:
    """``--compute-dtype``: the dtype a model computes in."""
    return typer.Option("float32", "--compute-dtype",
                        help="Model compute dtype: float32, bfloat16 or float16.")


def result_payload(data: dict[str, Any], schema: str) -> dict[str, Any]:
    """``data`` with its versioned ``schema`` name first (kept if the result names one)."""
    from neuronscope import __version__

    head: dict[str, Any] = {"schema": data.get("schema", schema), "tool_version": __version__}
    return head | {k: v for k, v in data.items() if k not in head}


@contextmanager
def progress_task(enabled: bool, label: str, unit: str,
                  total: int | None = None) -> Iterator[Callable[..., None]]:
    """A Rich progress bar on stderr (rate and ETA once the total is known) as a
    ``(done, total)`` callback for a library loop; draws nothing with ``--no-progress``.

    On stderr so that ``--output-format json|csv`` output on stdout stays parseable.
    """
    from neuronscope.cli.output import make_console
    from neuronscope.progress import progress_bar

    bar = progress_bar(label, unit, enabled=enabled, console=make_console(stderr=True),
                       transient=True)
    with bar:
        task = bar.add_task(label, total=total)

        def tick(done: int, of: int | None = None) -> None:
            bar.update(task, completed=done, total=total if of is None else of)

        yield tick
