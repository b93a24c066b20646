"""Unsupervised neuron analysis: correlation, redundancy, selection, factorization, groups.

* :mod:`.correlation` -- streamed neuron-by-neuron correlation (:func:`correlation_matrix`).
* :mod:`.clustering` -- correlation clustering and redundancy (Dalvi et al. 2020),
  layer similarity (linear CKA, mean max-correlation).
* :mod:`.selection` -- LayerSelector + clustering + probe feature selection (Dalvi et al.).
* :mod:`.factorization` -- NMF of sentence or corpus activations (Olah et al. 2018; Ecco).
* :mod:`.grouping` -- UMAP + k-means neuron populations (Meyes et al. 2020).
* :mod:`.multimodel` -- MaxCorr / MinCorr / LinReg across models (Bau et al. 2019),
  SVCCA, PWCCA and CKA between representations (:mod:`.similarity`).

Names are imported lazily, so ``import neuronscope.unsupervised`` stays cheap (the
selection step imports torch through the linear probe).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ColumnSource": "correlation",
    "CorrelationResult": "correlation",
    "correlation_matrix": "correlation",
    "ClusteringResult": "clustering",
    "LayerSimilarity": "clustering",
    "cluster_correlations": "clustering",
    "cluster_neurons": "clustering",
    "layer_similarity": "clustering",
    "SelectionResult": "selection",
    "select_neurons": "selection",
    "FactorizationResult": "factorization",
    "factorize_corpus": "factorization",
    "factorize_matrix": "factorization",
    "factorize_sentence": "factorization",
    "GroupingResult": "grouping",
    "group_neurons": "grouping",
    "ModelComparison": "multimodel",
    "compare_models": "multimodel",
    "RepresentationSimilarity": "similarity",
    "linear_cka": "similarity",
    "representation_similarity": "similarity",
}


def __getattr__(attr: str) -> Any:
    if attr in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[attr]}")
        return getattr(module, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = sorted(_EXPORTS)
