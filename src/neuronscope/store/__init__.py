"""The on-disk activation store (Zarr v3, chunked along words), neuron naming, the activation
view every stage reads through, and the provenance / acceptance policy."""

from neuronscope.store.names import ComponentLayout, NeuronLayout
from neuronscope.store.provenance import Provenance, check_ranking_compatible
from neuronscope.store.store import ActivationStore, StoreWriter, read_meta, store_from_arrays
from neuronscope.store.subset import RowSubsetStore
from neuronscope.store.view import ActivationView, align_labels

__all__ = [
    "ActivationStore",
    "ActivationView",
    "ComponentLayout",
    "NeuronLayout",
    "Provenance",
    "RowSubsetStore",
    "StoreWriter",
    "align_labels",
    "check_ranking_compatible",
    "read_meta",
    "store_from_arrays",
]
