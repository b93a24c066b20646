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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from neuronscope.errors import StoreError
from neuronscope.store.names import NEURON_NAME
from neuronscope.store.store import ActivationStore
from neuronscope.store.writer import StoreWriter

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
    store = ActivationStore(path)  # complete, intact stores only
    if not NEURON_NAME.match(f"L0.{name}.0"):
        raise StoreError(f"bad component name {name!r}: use letters, digits, '_' or '-'")
    layers = [int(x) for x in layers]
    n, width = store.n_words, len(layers) * int(neurons)
    step = store.chunk_words
    # Every array write goes through the store's writer, so the new chunks are recorded in
    # the chunk manifest (with checksums) before the metadata lists the component.
    writer = StoreWriter.append(store.path)
    try:
        meta = writer.meta
        existing = meta["components"].get(name)
        if existing is not None:
            if not existing.get("derived"):
                raise StoreError(f"store {store.path} already has an extracted component "
                                 f"{name!r}; choose another name")
            if not overwrite:
                raise StoreError(f"store {store.path} already has a component {name!r}; pass "
                                 "--overwrite (overwrite=True) to replace it, or choose --name")
            components = dict(meta["components"])
            del components[name]
            writer.update_meta(components=components)
        group = writer.group
        key = f"activations/{name}"
        if key in group:
            del group[key]  # an orphan of an interrupted attach, or the component replaced
        kwargs: dict[str, Any] = {} if compress else {"compressors": None}
        kwargs["config"] = {"write_empty_chunks": True}  # (zarr types it as a TypedDict)
        arr = group.create_array(key, shape=(n, width),
                                 chunks=(min(step, max(n, 1)), int(neurons)),
                                 dtype="float32", fill_value=np.nan, **kwargs)
        for start in range(0, n, step):
            stop = min(start + step, n)
            block = np.asarray(rows(start, stop), dtype=np.float32)
            if block.shape != (stop - start, width):
                raise StoreError(f"component {name!r}: rows {start}-{stop} came back with "
                                 f"shape {block.shape}, expected {(stop - start, width)}")
            arr[start:stop] = block
            if progress is not None:
                progress(stop, n)
        components = dict(writer.meta["components"])
        components[name] = {
            "layers": layers, "neurons": int(neurons), "head_dim": None, "modules": {},
            "derived": True, **dict(info or {}),
        }
        writer.update_meta(components=components)
    finally:
        writer.close()
    return ActivationStore(store.path)


def remove_component(path: str | os.PathLike, name: str) -> ActivationStore:
    """Remove a derived component (metadata first, then its array)."""
    store = ActivationStore(path)
    comp = store.meta["components"].get(name)
    if comp is None or not comp.get("derived"):
        raise StoreError(f"store {store.path} has no derived component {name!r}")
    writer = StoreWriter.append(store.path)
    try:
        components = dict(writer.meta["components"])
        del components[name]
        writer.update_meta(components=components)  # metadata first: readers stop seeing it
        key = f"activations/{name}"
        if key in writer.group:
            del writer.group[key]
            writer.update_meta()  # save the manifest without the deleted chunks
    finally:
        writer.close()
    return ActivationStore(store.path)
