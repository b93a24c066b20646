"""The method contract, run over every registered ranker (and every configurable class).

For each method of the registry: it ranks a tiny case with a planted signal through its
family's one entry point; the ranking survives a JSON round trip; the recorded parameters
are the constructor's; unknown parameters are refused by name with the valid ones listed;
inputs are not mutated; ``clone()`` is an unfitted copy with equal parameters; a random
method is deterministic under a fixed ``random_state``. Causal rankers run on the tiny GPT-2
with one planted decisive MLP neuron (the fixture of the intervention tests).
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from interventions.conftest import PLANTED, plant_neuron  # the intervention tests' model

from neuronscope.benchmark import PlantedBenchmark
from neuronscope.errors import NeuronscopeError
from neuronscope.explanations import (
    CompositionalExplainer,
    GeneticSelector,
    LatentConceptDiscovery,
)
from neuronscope.explanations.evolutionary import LDAClassifier
from neuronscope.interventions.generation import NeuronTextGenerator
from neuronscope.methods import (
    METHODS,
    REGISTRY,
    CausalRanker,
    PairwiseRanker,
    Ranking,
    SupervisedRanker,
    build_method,
    get_method,
    method_class,
    method_spec,
    split_params,
)
from neuronscope.params import REQUIRED, Configurable, jsonable

NAMES = list(REGISTRY)
SIGNAL = 3  # the planted neuron (column) of the array cases
CAUSAL_CANDIDATES = [f"L1.mlp.{i}" for i in range(8)]  # includes the planted L1.mlp.5

#: Settings that keep each method fast on the tiny cases.
FAST: dict[str, dict[str, Any]] = {
    "probe": {"max_epochs": 20, "random_state": 0},
    "gaussian": {"max_neurons": 4, "n_jobs": 1},
    "iou": {"alpha": 0.05, "block_neurons": 4},
    "ap": {"n_jobs": 1, "block_neurons": 5},
    "probeless": {},
    "selectivity": {"chunk_words": 64},
    "erasure": {"candidates": CAUSAL_CANDIDATES, "batch_size": 8},
    "class-flip": {"candidates": CAUSAL_CANDIDATES, "batch_size": 8},
    "domain": {"domains": ("news", "tweets")},
}


# ----------------------------------------------------------------------------- cases
def _array_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """300 words, 3 classes, 10 noise neurons; neuron ``SIGNAL`` fires on class A."""
    rng = np.random.default_rng(seed)
    y = np.asarray(["A", "B", "C"] * 100, dtype=object)
    x = rng.normal(size=(len(y), 10)).astype(np.float32)
    x[:, SIGNAL] += 4.0 * (y == "A")
    return x, y


@pytest.fixture(scope="module")
def planted_det(tiny_gpt2, small_corpus):
    return plant_neuron(tiny_gpt2, small_corpus, "DET")


def _inputs(method: Any, request: pytest.FixtureRequest) -> list[Any]:
    """The tiny case of the method's family, as the positional inputs of its entry point."""
    if isinstance(method, SupervisedRanker):
        return list(_array_case())
    if isinstance(method, PairwiseRanker):
        rng = np.random.default_rng(1)
        a = rng.normal(size=(150, 10)).astype(np.float32)
        b = rng.normal(size=(120, 10)).astype(np.float32)
        b[:, SIGNAL] += 2.0
        return [a, b]
    corpus = request.getfixturevalue("small_corpus")
    return [request.getfixturevalue("planted_det"), corpus, corpus.labels_array("upos")]


def _call(method: Any, inputs: list[Any]) -> Ranking:
    """The family's one entry point."""
    if isinstance(method, SupervisedRanker):
        return method.rank(*inputs)
    if isinstance(method, PairwiseRanker):
        return method.rank_pair(*inputs)
    assert isinstance(method, CausalRanker)
    return method.rank(*inputs)


def _run(method: Any, request: pytest.FixtureRequest) -> Ranking:
    return _call(method, _inputs(method, request))


def _expected_top(name: str) -> tuple[str, str]:
    """(concept, neuron name) the planted signal must put first."""
    family = method_class(name).family
    if family == "supervised":
        return "A", f"n{SIGNAL}"
    if family == "pairwise":
        return "tweets", f"n{SIGNAL}"
    return "DET", PLANTED


def _other_value(value: Any) -> Any:
    """A value different from a default (for the get_params round trip)."""
    if value is REQUIRED or value is None:
        return ["custom"]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 2
    if isinstance(value, float):
        return value / 2 + 0.125
    if isinstance(value, str):
        return value + "-x"
    if isinstance(value, tuple):
        return tuple(reversed(value)) + ("extra",)
    raise AssertionError(f"no alternative for default {value!r}")


def _equal(a: Any, b: Any) -> bool:
    return jsonable(a) == jsonable(b)


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", NAMES)
def test_ranks_planted_signal_and_round_trips(name, request):
    method = get_method(name, **FAST[name])
    ranking = _run(method, request)
    concept, neuron = _expected_top(name)
    assert ranking.top(1, concept) == [neuron]
    assert ranking.method.startswith(method.name)
    # Recorded provenance is the constructor's parameters, in memory and through JSON.
    assert ranking.params == method.get_params()
    again = Ranking.from_json(ranking.to_json())
    assert again.to_dict() == ranking.to_dict()
    assert again.params == jsonable(method.get_params())
    assert again.top(5, concept) == ranking.top(5, concept)


@pytest.mark.parametrize("name", NAMES)
def test_params_are_the_constructors(name):
    cls = method_class(name)
    defaults = cls.param_defaults()
    assert list(defaults) == [p for p in inspect.signature(cls.__init__).parameters
                              if p != "self"]
    assert _equal(cls(**{k: v for k, v in defaults.items() if v is not REQUIRED})
                  .get_params(), defaults)
    custom = {k: _other_value(v) for k, v in defaults.items()}
    method = cls(**custom)
    assert method.get_params() == custom
    assert "get_params" not in vars(cls) and "set_params" not in vars(cls)
    assert repr(method).startswith(f"{cls.__name__}(")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_params_are_refused_by_name(name):
    cls = method_class(name)
    valid = cls.param_names()
    for call in (lambda: get_method(name, alhpa=0.01),
                 lambda: build_method(name, {"alhpa": 0.01}, random_state=1),
                 lambda: cls(**FAST[name]).set_params(alhpa=0.01)):
        with pytest.raises(NeuronscopeError) as err:
            call()
        assert "'alhpa'" in str(err.value) and all(p in str(err.value) for p in valid)
    # set_params is all or nothing, and changes what it is given.
    method = cls()
    before = method.get_params()
    with pytest.raises(NeuronscopeError):
        method.set_params(**{valid[0]: "changed", "alhpa": 1})
    assert _equal(method.get_params(), before)
    assert method.set_params(**{valid[0]: "changed"}) is method
    assert method.get_params()[valid[0]] == "changed"


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_not_mutated(name, request):
    method = get_method(name, **FAST[name])
    params_before = copy.deepcopy(method.get_params())
    inputs = _inputs(method, request)
    arrays = [copy.deepcopy(v) for v in inputs if isinstance(v, np.ndarray)]
    fingerprints = [v.fingerprint for v in inputs if hasattr(v, "fingerprint")]
    _call(method, inputs)
    for before, after in zip(arrays, [v for v in inputs if isinstance(v, np.ndarray)],
                             strict=True):
        assert before.dtype == after.dtype
        np.testing.assert_array_equal(before, after)
    assert fingerprints == [v.fingerprint for v in inputs if hasattr(v, "fingerprint")]
    assert _equal(method.get_params(), params_before)


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_unfitted_with_equal_params(name, request):
    method = get_method(name, **FAST[name])
    _run(method, request)
    fitted = [a for a in vars(method) if a.endswith("_") and not a.startswith("_")]
    twin = method.clone()
    assert type(twin) is type(method) and twin is not method
    assert _equal(twin.get_params(), method.get_params())
    assert not [a for a in vars(twin) if a.endswith("_") and not a.startswith("_")]
    # Parameters are copies: changing the clone's list does not change the original's.
    for key, value in twin.get_params().items():
        if isinstance(value, list):
            value.append("changed")
            assert method.get_params()[key] != value
    if method_spec(name).tags()["family"] != "pairwise":
        assert fitted, f"{name} sets no fitted attribute; the clone check would be vacuous"


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].tags()["random"]])
def test_random_state_makes_it_deterministic(name, request):
    params = {**FAST[name], "random_state": 7}
    if method_class(name).family == "causal":
        params["max_sentences"] = 5  # the seed draws the sentences scored
    first = _run(get_method(name, **params), request)
    second = _run(get_method(name, **params), request)
    a, b = first.to_dict(), second.to_dict()
    for d in (a, b):
        d["extra"] = {k: v for k, v in d["extra"].items() if "time" not in k}
    assert a == b


# ----------------------------------------------------------------------------- registry
def test_registry_tags_follow_the_classes():
    assert METHODS == {n: REGISTRY[n].path for n in NAMES
                       if method_class(n).family == "supervised"}
    for name, spec in REGISTRY.items():
        cls, tags = spec.load(), spec.tags()
        assert cls.name == name
        assert tags["needs_model"] == issubclass(cls, CausalRanker)
        assert tags["random"] == ("random_state" in cls.param_names())
        assert tags["family"] in ("supervised", "causal", "pairwise")
    with pytest.raises(NeuronscopeError, match="unknown method 'nope'; valid: probe"):
        method_class("nope")
    with pytest.raises(NeuronscopeError, match="'erasure' is a causal ranker"):
        method_spec("erasure", "supervised")


def test_common_settings_go_only_where_accepted():
    iou = build_method("iou", {"alpha": 0.1}, random_state=3, concepts=["A"], neurons=[1])
    assert iou.get_params()["alpha"] == 0.1 and iou.get_params()["concepts"] == ["A"]
    probe = build_method("probe", random_state=3)
    assert probe.get_params()["random_state"] == 3
    with pytest.raises(NeuronscopeError, match="'alpha' not among the common settings"):
        build_method("iou", alpha=0.1)
    # Several methods: a key is applied where it exists and refused if it exists nowhere.
    split = split_params(["iou", "probe", "probeless"], {"alpha": 0.1, "max_epochs": 3})
    assert split == {"iou": {"alpha": 0.1}, "probe": {"alpha": 0.1, "max_epochs": 3},
                     "probeless": {}}
    with pytest.raises(NeuronscopeError, match=r"'alhpa'.*iou: alpha, concepts"):
        split_params(["iou", "probeless"], {"alhpa": 0.1})


# ----------------------------------------------------------------------------- every class
CONFIGURABLE = [LatentConceptDiscovery, CompositionalExplainer, GeneticSelector,
                NeuronTextGenerator, PlantedBenchmark, LDAClassifier,
                *(spec.load() for spec in REGISTRY.values())]


#: Valid non-default values for classes that check their parameters in ``__init__``.
CUSTOM: dict[type, dict[str, Any]] = {
    PlantedBenchmark: {"kinds": ("group", "focused"), "snrs": (3.0,), "n_concepts": 2,
                       "concepts": ["X", "Y"], "group_size": 4, "n_redundant": 5,
                       "max_words": 50, "max_background": 9, "min_concept_words": 3,
                       "group_noise": 0.3, "copy_noise": 0.2, "shuffle_background": False,
                       "separate_snrs": True, "random_state": 4},
    LDAClassifier: {"shrinkage": 0.5, "priors": "uniform"},
}


@pytest.mark.parametrize("cls", CONFIGURABLE, ids=lambda c: c.__name__)
def test_every_configurable_class_reports_its_constructor(cls):
    assert issubclass(cls, Configurable)
    assert "get_params" not in vars(cls) and "set_params" not in vars(cls)
    instance = cls()
    params = instance.get_params()
    assert list(params) == [p for p in inspect.signature(cls.__init__).parameters
                            if p != "self"]
    assert _equal(params, cls.param_defaults())
    # Non-default values for every parameter come back as given (no drift, no dropping).
    custom = CUSTOM.get(cls) or {k: _other_value(v) for k, v in cls.param_defaults().items()}
    assert set(custom) == set(params)
    assert _equal(cls(**custom).get_params(), custom)
    assert _equal(instance.clone().get_params(), params)
    with pytest.raises(NeuronscopeError, match="'nope'"):
        instance.set_params(nope=1)


def test_no_hand_written_get_params_left():
    src = Path(__file__).resolve().parents[2] / "src" / "neuronscope"
    hits = [str(p.relative_to(src)) for p in src.rglob("*.py")
            if p.name != "params.py" and re.search(r"def (get|set)_params\(", p.read_text())]
    assert hits == []
