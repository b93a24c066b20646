"""The one registry of neuron rankers, with capability tags the CLI reads.

Each entry maps a short name to a ranker class (imported lazily: listing names imports
nothing) and says how it reads its data. The other tags come from the class itself so
that they cannot drift from the code: the family (and with it whether a model is needed),
whether labels are required, whether it is random (has ``random_state``), and whether it
accepts a concept or neuron restriction (has ``concepts`` / ``neurons``).

Building a ranker from user input is strict: :func:`build_method` refuses parameters the
ranker does not have, naming them and listing the valid ones. The *common settings*
(:data:`COMMON_SETTINGS`: ``concepts``, ``neurons``, ``random_state``, ``memory``) are the one
convenience: a caller may offer them to every ranker and each ranker takes those it has.
With several rankers, :func:`split_params` applies a user parameter to every ranker that has
it and refuses a parameter that none of them has.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.families import CausalRanker, Ranker, SupervisedRanker
from neuronscope.params import REQUIRED

#: Settings a caller may offer to every ranker; each ranker takes the ones it accepts.
COMMON_SETTINGS = ("concepts", "neurons", "random_state", "memory")

#: How a ranker reads its data (the ``reads`` tag).
READS = {
    "row-chunks": "streams the store by row chunks (any size)",
    "column-blocks": "reads blocks of full columns (memory: rows x block)",
    "in-memory": "holds the selected activations in memory",
    "model": "runs the model over the corpus once per candidate (group)",
    "two-stores": "reads two stores column block by column block",
}


@dataclass(frozen=True)
class MethodSpec:
    """A registered ranker: its name, where its class lives, how it reads data."""

    name: str
    path: str  # "module:Class"
    reads: str
    summary: str

    def load(self) -> type[Ranker]:
        """The ranker class (imported on first use)."""
        module, cls = self.path.split(":")
        loaded: type[Ranker] = getattr(importlib.import_module(module), cls)
        return loaded

    def tags(self) -> dict[str, Any]:
        """Capability tags: family, needs_model, labels, reads, streams, random, concepts,
        neurons."""
        cls = self.load()
        params = cls.param_names()
        if cls.family == "supervised":
            labels = "required"
        elif issubclass(cls, CausalRanker):
            labels = "required" if cls.requires_labels else "optional"
        else:
            labels = "none"
        return {
            "family": cls.family,
            "needs_model": cls.family == "causal",
            "labels": labels,
            "reads": self.reads,
            "streams": self.reads in ("row-chunks", "column-blocks", "two-stores"),
            "random": "random_state" in params,
            "concepts": "concepts" in params,
            "neurons": "neurons" in params,
        }

    def params(self) -> dict[str, Any]:
        """Constructor parameters and their defaults (``"<required>"`` where none)."""
        return {k: ("<required>" if v is REQUIRED else v)
                for k, v in self.load().param_defaults().items()}


_SPECS = (
    MethodSpec("probe", "neuronscope.methods.linear_probe:LinearProbe", "row-chunks",
               "weights of an L1/L2/ElasticNet linear probe (Dalvi et al. 2019)"),
    MethodSpec("gaussian", "neuronscope.methods.gaussian_probe:GaussianProbe", "row-chunks",
               "greedy selection under a Gaussian classifier (Hennigen et al. 2020)"),
    MethodSpec("iou", "neuronscope.methods.iou:IoU", "column-blocks",
               "overlap of top activations with a concept (Mu & Andreas 2020)"),
    MethodSpec("ap", "neuronscope.methods.average_precision:AveragePrecision",
               "column-blocks", "average precision of a neuron as a concept detector"),
    MethodSpec("probeless", "neuronscope.methods.probeless:Probeless", "row-chunks",
               "differences of class-mean activations (Antverg & Belinkov 2022)"),
    MethodSpec("selectivity", "neuronscope.methods.selectivity:Selectivity", "row-chunks",
               "(mean on concept - mean elsewhere) / range"),
    MethodSpec("erasure", "neuronscope.interventions.ablation_ranking:ErasureRanking",
               "model", "loss rise when a neuron is erased (Li et al. 2016)"),
    MethodSpec("class-flip", "neuronscope.interventions.ablation_ranking:ClassFlipRanking",
               "model", "concept-specific effect of ablation (Lakretz et al. 2019)"),
    MethodSpec("domain", "neuronscope.explanations.domains:DomainNeurons", "two-stores",
               "neurons separating two domains, Cohen's d or AP (Antverg et al. 2022)"),
)

#: Every registered ranker by name.
REGISTRY: dict[str, MethodSpec] = {spec.name: spec for spec in _SPECS}


def method_spec(name: str, family: str | None = None) -> MethodSpec:
    """The registry entry of ``name``, optionally required to be of ``family``.

    An unknown name, or a method of another family, is an error listing the valid names.
    """
    if name not in REGISTRY:
        valid = REGISTRY if family is None else registered(family)
        raise NeuronscopeError(f"unknown method {name!r}; valid: {', '.join(valid)}")
    spec = REGISTRY[name]
    if family is not None and (actual := spec.load().family) != family:
        raise NeuronscopeError(
            f"method {name!r} is a {actual} ranker, not a {family} one; {family} rankers: "
            f"{', '.join(registered(family))}"
        )
    return spec


def method_class(name: str) -> type[Ranker]:
    """The class registered under a short name."""
    return method_spec(name).load()


def get_method(name: str, **params: Any) -> Ranker:
    """An instance of ``name`` with exactly ``params`` (unknown ones are an error)."""
    cls = method_class(name)
    cls.check_params(params)
    return cls(**params)


def build_method(name: str, params: Mapping[str, Any] | None = None, **common: Any) -> Ranker:
    """An instance of ``name`` from user ``params`` plus the common settings it accepts.

    ``params`` must all be parameters of the method (an error names any other).
    ``common`` may only hold :data:`COMMON_SETTINGS`; each one the method lacks is left out
    (a deterministic method has no ``random_state``...). ``params`` win over ``common``.
    """
    odd = [k for k in common if k not in COMMON_SETTINGS]
    if odd:
        raise NeuronscopeError(
            f"{', '.join(map(repr, odd))} not among the common settings "
            f"({', '.join(COMMON_SETTINGS)}); pass method parameters as params"
        )
    cls = method_class(name)
    user = dict(params or {})
    cls.check_params(user)
    accepted = cls.param_names()
    return cls(**{k: v for k, v in common.items() if k in accepted}, **user)


def build_supervised(name: str, params: Mapping[str, Any] | None = None,
                     **common: Any) -> SupervisedRanker:
    """:func:`build_method` for a name that must be a supervised ranker."""
    method_spec(name, "supervised")
    method = build_method(name, params, **common)
    assert isinstance(method, SupervisedRanker)  # checked by method_spec
    return method


def split_params(names: Iterable[str], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method, the ``params`` it has; a key that no method in ``names`` has is an error.

    The rule for several methods at once (e.g. ``neuronscope rank --method probe --method
    iou --param alpha=0.01``): a parameter applies to every requested method that has it,
    and one that none of them has is refused with each method's valid parameters.
    """
    names = list(names)
    valid = {n: method_class(n).param_names() for n in names}
    unknown = [k for k in params if not any(k in v for v in valid.values())]
    if unknown:
        lists = "; ".join(f"{n}: {', '.join(v) or 'none'}" for n, v in valid.items())
        raise NeuronscopeError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for method(s) "
            f"{', '.join(names)}; valid parameters: {lists}"
        )
    return {n: {k: v for k, v in params.items() if k in valid[n]} for n in names}


def registered(family: str | None = None) -> list[str]:
    """Registered names, all or of one family (imports the classes to read their family)."""
    return [n for n, s in REGISTRY.items() if family is None or s.load().family == family]


__all__ = [
    "COMMON_SETTINGS",
    "READS",
    "REGISTRY",
    "MethodSpec",
    "build_method",
    "build_supervised",
    "get_method",
    "method_class",
    "method_spec",
    "registered",
    "split_params",
]
