"""Streaming one layer of an activation store: shuffled minibatches and held-out metrics.

Training never loads a whole layer: chunks of the store are visited in a seeded random order
and their rows pass through an in-memory *mixing buffer* (SAELens's activation store does
the same): once ``buffer_rows`` rows are held, the buffer is shuffled, half of it is emitted
as minibatches and the other half stays to be mixed with the next chunks. Peak memory is about
``buffer_rows + chunk_words`` rows of one layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError, StoreError
from neuronscope.store.store import ActivationStore


def layer_width(store: ActivationStore, component: str, layer: int) -> int:
    """Neurons per layer of ``component``, after checking that ``layer`` exists."""
    store.layout.layer_slice(component, layer)  # raises a clear error for unknown names
    return store.layout.components[component].neurons


def iter_rows(store: ActivationStore, component: str, layer: int, rows: np.ndarray | None = None,
              order: np.ndarray | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, block)`` per store chunk (in ``order``), ``block`` = the chosen rows.

    ``rows`` is a boolean mask over the store's words (None: all rows). Non-finite values raise
    :class:`StoreError` naming the rows, since one NaN would poison a whole training run.
    """
    step = store.chunk_words
    starts = np.arange(0, store.n_words, step)
    for i in (range(len(starts)) if order is None else order):
        start = int(starts[i])
        stop = min(start + step, store.n_words)
        keep = None if rows is None else rows[start:stop]
        if keep is not None and not keep.any():
            continue
        block = store.layer(component, layer, rows=slice(start, stop))
        if keep is not None:
            block = block[keep]
        if not np.isfinite(block).all():
            bad = start + int(np.nonzero(~np.isfinite(block).all(axis=1))[0][0])
            raise StoreError(f"store {store.path}: non-finite activations in L{layer}.{component} "
                             f"(first in the chunk of rows {start}-{stop - 1}, near row {bad})")
        yield start, stop, block


def shuffled_batches(store: ActivationStore, component: str, layer: int, rows: np.ndarray,
                     batch_size: int, buffer_rows: int, rng: np.random.Generator
                     ) -> Iterator[np.ndarray]:
    """One epoch of shuffled minibatches of the ``rows`` of one layer (see the module doc)."""
    n_chunks = -(-store.n_words // store.chunk_words)
    parts: list[np.ndarray] = []
    held = 0
    for _, _, block in iter_rows(store, component, layer, rows, rng.permutation(n_chunks)):
        parts.append(block)
        held += len(block)
        if held < buffer_rows:
            continue
        data = np.concatenate(parts)
        rng.shuffle(data)
        n_out = (len(data) // 2) // batch_size * batch_size
        for i in range(0, n_out, batch_size):
            yield data[i : i + batch_size]
        parts, held = [data[n_out:]], len(data) - n_out
    if held:
        data = np.concatenate(parts)
        rng.shuffle(data)
        for i in range(0, len(data), batch_size):
            yield data[i : i + batch_size]


def moments(store: ActivationStore, component: str, layer: int, rows: np.ndarray
            ) -> tuple[np.ndarray, float, int]:
    """Mean vector, mean squared norm and row count of the chosen rows (one streaming pass)."""
    total: np.ndarray | None = None
    sq, n = 0.0, 0
    for _, _, block in iter_rows(store, component, layer, rows):
        b = block.astype(np.float64)
        total = b.sum(axis=0) if total is None else total + b.sum(axis=0)
        sq += float((b * b).sum())
        n += len(b)
    if total is None or n == 0:
        raise NeuronscopeError(f"no rows of L{layer}.{component} selected in store {store.path}")
    return total / n, sq / n, n


@dataclass
class SAEMetrics:
    """Reconstruction and sparsity of an SAE on a set of rows.

    Attributes:
        fve: fraction of variance explained, ``1 - sum|x - x_hat|^2 / sum|x - mean(x)|^2``.
        l0: mean number of active (non-zero) latents per row.
        dead_fraction: share of latents that never fire on these rows.
        dense_fraction: share of latents firing on more than ``dense_threshold`` of the rows.
        dense_threshold: the firing rate above which a latent counts as dense.
        mse: mean squared error per row (sum over dimensions), raw activation units.
        n_rows: rows evaluated.
    """

    fve: float
    l0: float
    dead_fraction: float
    dense_fraction: float
    dense_threshold: float
    mse: float
    n_rows: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@torch.no_grad()
def evaluate_sae(sae: Any, store: ActivationStore, component: str, layer: int,
                 rows: np.ndarray | None = None, dense_threshold: float = 0.1,
                 batch_size: int = 4096) -> tuple[SAEMetrics, np.ndarray]:
    """:class:`SAEMetrics` of ``sae`` on the ``rows`` of one layer, and each latent's firing
    rate on them, streamed chunk by chunk."""
    device = next(sae.parameters()).device
    fires = torch.zeros(sae.d_sae, dtype=torch.float64, device=device)
    total = np.zeros(sae.d_in, dtype=np.float64)
    sq = err = active = 0.0
    n = 0
    for _, _, block in iter_rows(store, component, layer, rows):
        for i in range(0, len(block), batch_size):
            x = torch.from_numpy(block[i : i + batch_size]).to(device)
            f = sae.encode(x)
            x_hat = sae.decode(f)
            on = f > 0
            fires += on.sum(dim=0, dtype=torch.float64)
            active += float(on.sum())
            err += float(((x - x_hat).double() ** 2).sum())
            xd = x.double()
            sq += float((xd**2).sum())
            total += xd.sum(dim=0).cpu().numpy()
            n += len(x)
    if n == 0:
        raise NeuronscopeError(f"no rows of L{layer}.{component} to evaluate in {store.path}")
    variance = sq - float((total**2).sum()) / n  # sum |x - mean|^2
    rate = (fires / n).cpu().numpy()
    metrics = SAEMetrics(
        fve=float(1 - err / variance) if variance > 0 else float("nan"),
        l0=active / n,
        dead_fraction=float((rate == 0).mean()),
        dense_fraction=float((rate > dense_threshold).mean()),
        dense_threshold=dense_threshold,
        mse=err / n,
        n_rows=n,
    )
    return metrics, rate
