"""Neuron-ranking methods behind one interface: ``Method(**params).rank(activations, labels)``.

Every method returns a :class:`Ranking`. ``METHODS`` maps short names (used by the CLI) to
classes, imported lazily so that using one method does not import all of them.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import MethodInput, RankingMethod, prepare_input
from neuronscope.methods.ranking import ConceptRanking, Ranking, ranking_from_scores

#: CLI name -> "module:Class"
METHODS: dict[str, str] = {
    "probe": "neuronscope.methods.linear_probe:LinearProbe",
    "gaussian": "neuronscope.methods.gaussian_probe:GaussianProbe",
    "iou": "neuronscope.methods.iou:IoU",
    "ap": "neuronscope.methods.average_precision:AveragePrecision",
    "probeless": "neuronscope.methods.probeless:Probeless",
    "selectivity": "neuronscope.methods.selectivity:Selectivity",
}


def method_class(name: str) -> type[RankingMethod]:
    """The class registered under a short name."""
    if name not in METHODS:
        raise NeuronscopeError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_method(name: str, **params: Any) -> RankingMethod:
    """An instance of the method registered under ``name``."""
    return method_class(name)(**params)


def build_method(name: str, **candidates: Any) -> RankingMethod:
    """An instance of ``name`` given the subset of ``candidates`` its constructor accepts.

    Lets callers pass common settings (``concepts``, ``neurons``, ``random_state``) to every
    method, whether or not that method is random or restrictable.
    """
    cls = method_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in candidates.items() if k in accepted})


def __getattr__(attr: str) -> Any:
    # `from neuronscope.methods import IoU` works without importing every method up front.
    for path in METHODS.values():
        module, cls = path.split(":")
        if cls == attr:
            return getattr(importlib.import_module(module), cls)
    raise AttributeError(f"module 'neuronscope.methods' has no attribute {attr!r}")


__all__ = [
    "METHODS",
    "ConceptRanking",
    "MethodInput",
    "Ranking",
    "RankingMethod",
    "build_method",
    "get_method",
    "method_class",
    "prepare_input",
    "ranking_from_scores",
]
