"""Adding a derived component to a finished store (e.g. SAE latents of one of its layers).

A derived component is stored exactly like an extracted one (``activations/<name>``, one
column block per layer, rows = the store's words), so every reader (rankers, evaluation,
top-words, the report, the benchmark) uses it unchanged. It is written in two steps:

1. the array ``activations/<name>`` is created and filled chunk by chunk;
2. only then is the component added to ``neuronscope.json`` (one atomic metadata write).

A crash before step 2 leaves an array the metadata does not list; readers never see it, and
the next :func:`add_component` of that name replaces it. Derived components have no pooled
sentence vectors.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from neuronscope.errors import StoreError
from neuronscope.store.names import _NAME
from neuronscope.store.store import META_FILE, ActivationStore, read_meta, write_json_atomic

#: ``rows(start, stop) -> (stop - start, len(layers) * neurons)`` float block.
RowFn = Callable[[int, int], np.ndarray]


def add_component(path: str | os.PathLike, name: str, layers: Sequence[int], neurons: int,
                  rows: RowFn, info: Mapping[str, Any] | None = None, *,
                  overwrite: bool = False, compress: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> ActivationStore:
    """Add component ``name`` to the complete store at ``path``; returns the reopened store.

    Args:
        path: a complete activation store.
        name: the new component (``L<layer>.<name>.<i>`` will name its units).
        layers: the layers it has (usually the one layer it was derived from).
        neurons: units per layer.
        rows: computes the rows ``start:stop`` (called in increasing chunk order).
        info: recorded in the component's metadata (``source`` is set by the caller here).
        overwrite: replace an existing derived component of that name (never an extracted one).
        compress: Zstandard-compress chunks (sparse codes shrink many times over).
        progress: called with ``(rows_done, n_rows)`` after every chunk.
    """
    store = ActivationStore(path)  # complete stores only
    if not _NAME.match(f"L0.{name}.0"):
        raise StoreError(f"bad component name {name!r}: use letters, digits, '_' or '-'")
    meta = store.meta
    existing = meta["components"].get(name)
    if existing is not None:
        if not existing.get("derived"):
            raise StoreError(f"store {store.path} already has an extracted component {name!r}; "
                             "choose another name")
        if not overwrite:
            raise StoreError(f"store {store.path} already has a component {name!r}; pass "
                             "--overwrite (overwrite=True) to replace it, or choose --name")
        del meta["components"][name]
        write_json_atomic(store.path / META_FILE, meta)
    layers = [int(x) for x in layers]
    group = zarr.open_group(str(store.path), mode="r+")
    key = f"activations/{name}"
    if key in group:
        del group[key]  # an orphan of an interrupted attach, or the component replaced above
        shutil.rmtree(store.path / "activations" / name, ignore_errors=True)
    n, width = store.n_words, len(layers) * int(neurons)
    kwargs: dict[str, Any] = {} if compress else {"compressors": None}
    arr = group.create_array(key, shape=(n, width), chunks=(min(store.chunk_words, max(n, 1)),
                             int(neurons)), dtype="float32", fill_value=np.nan, **kwargs)
    step = store.chunk_words
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = np.asarray(rows(start, stop), dtype=np.float32)
        if block.shape != (stop - start, width):
            raise StoreError(f"component {name!r}: rows {start}-{stop} came back with shape "
                             f"{block.shape}, expected {(stop - start, width)}")
        arr[start:stop] = block
        if progress is not None:
            progress(stop, n)
    meta = read_meta(store.path)  # fresh: never write back a stale copy
    meta["components"][name] = {
        "layers": layers, "neurons": int(neurons), "head_dim": None, "modules": {},
        "derived": True, **dict(info or {}),
    }
    write_json_atomic(store.path / META_FILE, meta)
    return ActivationStore(store.path)


def remove_component(path: str | os.PathLike, name: str) -> ActivationStore:
    """Remove a derived component (metadata first, then its array)."""
    store = ActivationStore(path)
    comp = store.meta["components"].get(name)
    if comp is None or not comp.get("derived"):
        raise StoreError(f"store {store.path} has no derived component {name!r}")
    del store.meta["components"][name]
    write_json_atomic(store.path / META_FILE, store.meta)
    shutil.rmtree(Path(store.path) / "activations" / name, ignore_errors=True)
    return ActivationStore(store.path)
