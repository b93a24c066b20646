"""Where SAE features live in a running model, for interventions on them.

An SAE component of a store (``L3.sae.12``) reads the activations of one ordinary component
and layer (``L3.hidden``); its intervention site is that layer's module. Editing feature ``i``
there replaces the activation ``x`` by ``x + (f'_i - f_i) W_dec[i]`` (see
:meth:`~neuronscope.sae.model.SparseAutoencoder.edit`): the reconstruction error is kept, as
in SAELens's hooked SAEs, so only the edited features' decoder directions change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neuronscope.extraction.components import ComponentSites
from neuronscope.sae.attach import load_attached, sae_components
from neuronscope.sae.model import SparseAutoencoder
from neuronscope.store.store import ActivationStore


def feature_sites(store: ActivationStore, components: Mapping[str, ComponentSites]
                  ) -> dict[str, ComponentSites]:
    """Sites of the store's SAE components, given the model's own ``components``."""
    out = {}
    for name, record in sae_components(store.meta["components"]).items():
        base, layer = record["component"], int(record["layer"])
        site = components.get(base)
        if site is None or layer not in site.sites:
            continue  # the model offers no site for it; parse_neuron reports the name
        out[name] = ComponentSites(name, int(record["d_sae"]), {layer: site.sites[layer]})
    return out


class FeatureEditor:
    """Applies an edit of SAE latents to a module's activations (error term kept)."""

    def __init__(self, sae: SparseAutoencoder) -> None:
        self.sae = sae

    def edit(self, x: Any, change: Any) -> Any:
        """``x`` with the latents changed by ``change(f) -> f'`` (see the module doc)."""
        if self.sae.W_dec.device != x.device:
            self.sae = self.sae.to(x.device)
        return self.sae.edit(x, change)


def feature_editor(store: ActivationStore | None, component: str, device: Any
                   ) -> FeatureEditor | None:
    """The editor of SAE component ``component`` of ``store``; None for other components."""
    if store is None or component not in sae_components(store.meta["components"]):
        return None
    return FeatureEditor(load_attached(store, component, device))
