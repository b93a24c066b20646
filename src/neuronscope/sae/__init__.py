"""Sparse dictionary features (SAEs) as units, analysed side by side with neurons.

* :class:`SparseAutoencoder`: TopK / ReLU SAE in SAELens's on-disk layout (load and save).
* :class:`SAETrainer`: trains one on a layer of an activation store, streaming minibatches.
* :func:`attach`: writes an SAE's latents into a store as a component (``L3.sae.1021``), so
  every ranking method, evaluation, report and benchmark works on features as on neurons.
* :func:`evaluate_sae`: FVE, L0, dead and dense latents on chosen rows.
* :func:`compare_units`: neurons vs features per concept (``neuronscope compare-units``).
"""

from __future__ import annotations

from neuronscope.sae.attach import attach, load_attached, sae_components
from neuronscope.sae.data import SAEMetrics, evaluate_sae
from neuronscope.sae.model import SAEFormatError, SparseAutoencoder
from neuronscope.sae.train import SAETrainer

__all__ = [
    "SAEFormatError", "SAEMetrics", "SAETrainer", "SparseAutoencoder", "attach",
    "evaluate_sae", "load_attached", "sae_components",
]
