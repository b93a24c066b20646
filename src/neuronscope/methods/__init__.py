"""Neuron-ranking methods: three families, one registry.

* supervised rankers: ``Method(**params).rank(activations, labels) -> Ranking``;
* causal rankers: ``Method(**params).rank(model, corpus, labels=None, activations=None)``;
* pairwise rankers: ``Method(**params).rank_pair(activations_a, activations_b)``.

(see :mod:`neuronscope.methods.families`). :data:`REGISTRY` maps short names (used by the
CLI) to every ranker with its capability tags (:mod:`neuronscope.methods.registry`);
:data:`METHODS` lists the supervised ones, which run on any activations and labels (the demo
and the planted benchmark run them all). Classes are imported lazily so that using one
method does not import all of them.
"""

from __future__ import annotations

import importlib
from typing import Any

from neuronscope.methods.base import MethodInput, RankingMethod, prepare_input
from neuronscope.methods.families import (
    CausalRanker,
    PairwiseRanker,
    Ranker,
    SupervisedRanker,
)
from neuronscope.methods.ranking import ConceptRanking, Ranking, ranking_from_scores
from neuronscope.methods.registry import (
    COMMON_SETTINGS,
    REGISTRY,
    MethodSpec,
    build_method,
    build_supervised,
    get_method,
    method_class,
    method_spec,
    registered,
    split_params,
)

#: The supervised rankers, CLI name -> "module:Class" (every one runs on activations and
#: labels alone; kept in step with :data:`REGISTRY` by the contract test).
METHODS: dict[str, str] = {
    name: REGISTRY[name].path
    for name in ("probe", "gaussian", "iou", "ap", "probeless", "selectivity")
}


def __getattr__(attr: str) -> Any:
    # `from neuronscope.methods import IoU` works without importing every method up front.
    for path in METHODS.values():
        module, cls = path.split(":")
        if cls == attr:
            return getattr(importlib.import_module(module), cls)
    raise AttributeError(f"module 'neuronscope.methods' has no attribute {attr!r}")


__all__ = [
    "COMMON_SETTINGS",
    "METHODS",
    "REGISTRY",
    "CausalRanker",
    "ConceptRanking",
    "MethodInput",
    "MethodSpec",
    "PairwiseRanker",
    "Ranker",
    "Ranking",
    "RankingMethod",
    "SupervisedRanker",
    "build_method",
    "build_supervised",
    "get_method",
    "method_class",
    "method_spec",
    "prepare_input",
    "ranking_from_scores",
    "registered",
    "split_params",
]
