"""Option handling shared by every CLI command (the main app and each stage's commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from neuronscope.errors import NeuronscopeError


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
    if not components and not layers:
        return None
    from neuronscope.extraction.components import parse_layers

    comps = [c.strip() for c in components.split(",") if c.strip()] if components else None
    return store.layout.select(comps, parse_layers(layers)).tolist()


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


def write_json(out: Path | None, data: dict[str, Any], console: Console) -> None:
    """Write a command's result as JSON when ``--out`` was given."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    console.print(f"wrote {out}")
