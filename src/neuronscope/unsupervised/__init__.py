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

from neuronscope._lazy import lazy_exports

_EXPORTS: dict[str, list[str]] = {
    "correlation": ["ColumnSource", "CorrelationResult", "correlation_matrix"],
    "clustering": [
        "ClusteringResult", "LayerSimilarity", "cluster_correlations", "cluster_neurons",
        "layer_similarity",
    ],
    "selection": ["SelectionResult", "select_neurons"],
    "factorization": [
        "FactorizationResult", "factorize_corpus", "factorize_matrix", "factorize_sentence",
    ],
    "grouping": ["GroupingResult", "group_neurons"],
    "multimodel": ["ModelComparison", "compare_models"],
    "similarity": ["RepresentationSimilarity", "linear_cka", "representation_similarity"],
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
