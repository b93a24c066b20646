"""SAE latents as a component of an activation store (``L3.sae.1021``).

:func:`attach` encodes the store's rows of the SAE's layer chunk by chunk and writes the
latents as a new, *materialized* component (see :mod:`neuronscope.store.extend`): one
``(n_words, d_sae)`` float32 array, Zstandard-compressed (TopK codes are mostly zeros). Every
reader then treats features exactly like neurons: ranking methods, evaluation, top-words, the
report and the planted benchmark (``--components sae``). The component's metadata records
where the SAE came from (path, weights hash, source component and layer), which is how
interventions on features find the SAE again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError, StoreError
from neuronscope.sae.data import layer_width
from neuronscope.sae.model import WEIGHTS_FILE, SparseAutoencoder
from neuronscope.store.extend import add_component
from neuronscope.store.store import ActivationStore

SOURCE = "sae"


def weights_hash(sae_dir: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of an SAE's weights file."""
    digest = hashlib.sha256()
    with open(Path(sae_dir) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def sae_site(sae: SparseAutoencoder, store: ActivationStore, component: str | None = None,
             layer: int | None = None) -> tuple[str, int]:
    """The ``(component, layer)`` of ``store`` an SAE reads, checked against the store.

    Defaults come from the SAE's neuronscope metadata; an SAE trained elsewhere needs both.
    """
    ns = sae.neuronscope
    component = component or ns.get("component")
    layer = layer if layer is not None else ns.get("layer")
    if component is None or layer is None:
        raise NeuronscopeError("this SAE does not say which component and layer it reads "
                               "(no metadata.neuronscope); pass --component and --layer")
    theirs = ns.get("model_fingerprint")
    if theirs and theirs != store.model_fingerprint:
        raise FingerprintMismatchError(
            f"the SAE was trained on activations of another model (fingerprint {theirs}); "
            f"store {store.path} comes from {store.meta['model']['name']} "
            f"({store.model_fingerprint})")
    if ns.get("aggregation") and ns["aggregation"] != store.meta["aggregation"]:
        raise StoreError(f"the SAE was trained on words aggregated by {ns['aggregation']!r}; "
                         f"store {store.path} uses {store.meta['aggregation']!r}")
    width = layer_width(store, component, int(layer))
    if width != sae.d_in:
        raise NeuronscopeError(f"SAE reads {sae.d_in} values, but L{layer}.{component} of "
                               f"{store.path} has {width}")
    return component, int(layer)


def attach(store: str | os.PathLike | ActivationStore, sae_dir: str | os.PathLike,
           name: str = "sae", component: str | None = None, layer: int | None = None,
           overwrite: bool = False, device: str | None = None, batch_size: int = 4096,
           progress: Callable[[int, int], None] | None = None) -> ActivationStore:
    """Write the latents of the SAE in ``sae_dir`` into ``store`` as component ``name``.

    Returns the reopened store; its new component has the SAE's layer and ``d_sae`` units.
    """
    path = store.path if isinstance(store, ActivationStore) else Path(store)
    st = store if isinstance(store, ActivationStore) else ActivationStore(path)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sae = SparseAutoencoder.load(sae_dir, device=dev)
    comp, lay = sae_site(sae, st, component, layer)

    @torch.no_grad()
    def rows(start: int, stop: int) -> np.ndarray:
        x = st.layer(comp, lay, rows=slice(start, stop))
        out = np.empty((len(x), sae.d_sae), dtype=np.float32)
        for i in range(0, len(x), batch_size):
            f = sae.encode(torch.from_numpy(x[i : i + batch_size]).to(dev))
            out[i : i + batch_size] = f.cpu().numpy()
        return out

    info: dict[str, Any] = {
        "source": SOURCE,
        "sae": {"path": str(Path(sae_dir).resolve()), "weights_sha256": weights_hash(sae_dir),
                "component": comp, "layer": lay, "architecture": sae.architecture,
                "k": sae.k, "d_in": sae.d_in, "d_sae": sae.d_sae},
    }
    return add_component(path, name, [lay], sae.d_sae, rows, info, overwrite=overwrite,
                         progress=progress)


def sae_components(meta_components: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{component: its "sae" record}`` for every SAE component of a store's metadata."""
    return {name: comp["sae"] for name, comp in meta_components.items()
            if comp.get("source") == SOURCE and isinstance(comp.get("sae"), dict)}


def load_attached(store: ActivationStore, name: str,
                  device: str | torch.device = "cpu") -> SparseAutoencoder:
    """The SAE behind SAE component ``name`` of ``store``, checked against its recorded hash."""
    record = sae_components(store.meta["components"]).get(name)
    if record is None:
        raise StoreError(f"component {name!r} of store {store.path} is not an SAE component")
    sae_dir = Path(record["path"])
    if not (sae_dir / WEIGHTS_FILE).exists():
        raise StoreError(f"component {name!r} of {store.path} was made by the SAE in {sae_dir}, "
                         "which no longer exists; re-attach it with `neuronscope sae attach`")
    if weights_hash(sae_dir) != record["weights_sha256"]:
        raise StoreError(f"the SAE in {sae_dir} changed since component {name!r} of "
                         f"{store.path} was attached; re-attach it (--overwrite)")
    return SparseAutoencoder.load(sae_dir, device=device)
