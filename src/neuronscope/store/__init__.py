"""The on-disk activation store (Zarr v3, chunked along words) and neuron naming."""

from neuronscope.store.names import ComponentLayout, NeuronLayout
from neuronscope.store.store import ActivationStore, StoreWriter, read_meta, store_from_arrays

__all__ = [
    "ActivationStore",
    "ComponentLayout",
    "NeuronLayout",
    "StoreWriter",
    "read_meta",
    "store_from_arrays",
]
