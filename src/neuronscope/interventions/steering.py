"""Steering generation through a concept's neurons (survey §6.1).

After Bau et al. (2019, "Identifying and controlling important neurons in neural machine
translation") and Suau et al. (2020/2022, "Self-conditioning pre-trained language models"):
the top-k neurons of a concept are forced to a value while the model generates (by default
their median activation on the concept's words, taken from the store, at every position),
and a detector counts how often the output shows the concept. Controls: the same prompts
without intervention, and k random neurons forced the same way (values from the store too,
or the same given value). Greedy decoding by default; sampling is seeded per prompt, so
every run gives the same texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import NeuronscopeError
from neuronscope.interventions.intervene import (
    Intervention,
    Positions,
    check_same_model,
    encode_prompt,
)
from neuronscope.interventions.scoring import model_task
from neuronscope.interventions.sites import as_loaded
from neuronscope.methods.ranking import Ranking
from neuronscope.models.loading import LoadedModel
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import align_labels

#: A concept detector: generated text -> whether it shows the concept.
Detector = Callable[[str], bool]


def word_detector(words: Iterable[str], case_sensitive: bool = False) -> Detector:
    """True when the text contains one of ``words`` as a whole word."""
    wanted = {w if case_sensitive else w.lower() for w in words}
    if not wanted:
        raise NeuronscopeError("word_detector needs at least one word")

    def detect(text: str) -> bool:
        tokens = re.findall(r"\w+", text if case_sensitive else text.lower())
        return any(t in wanted for t in tokens)

    return detect


def regex_detector(pattern: str, flags: int = re.IGNORECASE) -> Detector:
    """True when ``pattern`` matches somewhere in the text."""
    regex = re.compile(pattern, flags)
    return lambda text: regex.search(text) is not None


def spacy_detector(tags: str | Iterable[str], attribute: str = "pos_") -> Detector:
    """True when spaCy tags some token with one of ``tags`` (UPOS by default; needs spaCy)."""
    from neuronscope.corpus import load_spacy

    nlp = load_spacy()
    wanted = {tags} if isinstance(tags, str) else set(tags)
    return lambda text: any(getattr(t, attribute) in wanted for t in nlp(text))


def concept_values(store: ActivationStore, names: Sequence[str],
                   labels: ConceptLabels | np.ndarray | Sequence[str], concept: str,
                   statistic: str = "median") -> np.ndarray:
    """Each neuron's median (or mean) activation over the store rows labelled ``concept``."""
    positive = align_labels(labels, store) == concept
    if not positive.any():
        raise NeuronscopeError(f"no word labelled {concept!r}")
    parts = [block[positive[start:stop]]
             for start, stop, block in store.iter_chunks(list(names)) if positive[start:stop].any()]
    rows = np.concatenate(parts)
    if statistic == "median":
        return np.median(rows, axis=0).astype(np.float32)
    if statistic == "mean":
        return rows.mean(axis=0).astype(np.float32)
    raise NeuronscopeError(f"statistic must be median or mean, not {statistic!r}")


def generate(model: LoadedModel, prompts: Sequence[str], *, max_new_tokens: int = 20,
             do_sample: bool = False, seed: int = 0, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             intervention: Intervention | None = None) -> list[str]:
    """Continuations of each prompt (prompt text excluded), greedy or seeded sampling."""
    loaded = as_loaded(model)
    if model_task(loaded) != "causal-lm":
        raise NeuronscopeError(f"{loaded.name} is not a causal language model: cannot generate")
    tok = loaded.tokenizer
    sampling: dict[str, Any] = {}
    if do_sample:
        sampling = {"do_sample": True, "temperature": temperature}
        if top_k is not None:
            sampling["top_k"] = top_k
        if top_p is not None:
            sampling["top_p"] = top_p
    else:
        sampling = {"do_sample": False}
    out = []
    for i, prompt in enumerate(prompts):
        inputs = encode_prompt(loaded, prompt, extra_tokens=max_new_tokens)
        if intervention is not None:
            intervention.reset()  # token positions restart with every prompt
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed + i)  # per prompt: adding prompts does not change others
            ids = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens,
                                        pad_token_id=tok.pad_token_id, **sampling)
        new = ids[0, inputs["input_ids"].shape[1]:]
        out.append(tok.decode(new, skip_special_tokens=True))
    return out


@dataclass
class SteeringResult:
    """Generations with and without steering, and how often each shows the concept."""

    concept: str
    k: int
    op: str
    neurons: list[str]
    values: list[float]
    random_neurons: list[list[str]]
    prompts: list[str]
    table: pd.DataFrame
    generations: dict[str, list[str]] = field(default_factory=dict)

    def rate(self, condition: str) -> float:
        """Fraction of generations that show the concept under a condition."""
        return float(self.table.set_index("condition").loc[condition, "concept_rate"])

    def __str__(self) -> str:
        return (f"steering {self.k} neurons of {self.concept!r} (op={self.op})\n"
                + self.table.to_string(index=False))


def steer(
    model: LoadedModel,
    ranking: Ranking,
    concept: str,
    prompts: Sequence[str],
    *,
    k: int = 10,
    value: float | Sequence[float] | None = None,
    store: ActivationStore | None = None,
    labels: ConceptLabels | np.ndarray | None = None,
    statistic: str = "median",
    op: str = "constant",
    detector: Detector | None = None,
    random_repeats: int = 1,
    positions: Positions = "all",
    max_new_tokens: int = 20,
    do_sample: bool = False,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> SteeringResult:
    """Force the concept's top-k neurons while generating; compare with none and random-k.

    Args:
        model: a causal LM.
        ranking: neuron ranking (refused when its store came from another model).
        concept: whose top neurons steer.
        prompts: generation prompts.
        k: neurons steered (and random neurons in the control).
        value: the value (``constant``), factor (``scale``) or offset (``add``), scalar or
            one per neuron; default: each neuron's ``statistic`` over the concept's words in
            ``store`` (needs ``labels``, one per store row).
        store, labels, statistic: where default values come from.
        op: ``constant``, ``scale`` or ``add``.
        detector: text -> bool; without one only the generations are returned.
        random_repeats: random neuron sets drawn (seeded by ``seed``).
        positions: ``"all"`` (Suau et al.), ``"last"`` or token positions.
        max_new_tokens, do_sample, seed, temperature, top_k, top_p: decoding.
    """
    loaded = as_loaded(model)
    if op not in ("constant", "scale", "add"):
        raise NeuronscopeError(f"steering op must be constant, scale or add, not {op!r}")
    check_same_model(ranking.store_fingerprint, loaded, "ranking")
    if store is not None:
        check_same_model(store.model_fingerprint, loaded, f"store {store.path}")
    if model_task(loaded) != "causal-lm":
        raise NeuronscopeError(f"{loaded.name} is not a causal language model: cannot steer")
    if not prompts:
        raise NeuronscopeError("no prompts given")
    pool = list(ranking.scores(concept))
    if not 1 <= k <= len(pool):
        raise NeuronscopeError(f"k must be in 1-{len(pool)} (neurons ranked for {concept!r})")
    top = pool[:k]
    rest = pool[k:] if len(pool) - k >= k else pool  # random control avoids the top if it can
    rng = np.random.default_rng(seed)
    randoms = [[str(n) for n in rng.choice(rest, k, replace=False)]
               for _ in range(max(0, random_repeats))]

    def values_for(names: list[str]) -> np.ndarray:
        if value is not None:
            arr = np.asarray(value, dtype=np.float32)
            return np.full(len(names), float(arr)) if arr.ndim == 0 else arr
        if store is None or labels is None:
            raise NeuronscopeError(
                "give a value, or a store and the concept labels of its words "
                "(the default value is the neurons' median on the concept's words)"
            )
        return concept_values(store, names, labels, concept, statistic)

    decoding = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "seed": seed,
                "temperature": temperature, "top_k": top_k, "top_p": top_p}
    generations: dict[str, list[str]] = {"none": generate(loaded, prompts, **decoding)}
    top_values = values_for(top)
    with Intervention(loaded, top, op=op, value=top_values, positions=positions) as iv:
        generations["top"] = generate(loaded, prompts, intervention=iv, **decoding)
    for r, names in enumerate(randoms):
        with Intervention(loaded, names, op=op, value=values_for(names),
                          positions=positions) as iv:
            generations[f"random-{r}"] = generate(loaded, prompts, intervention=iv, **decoding)

    rows = []
    for condition in ("none", "top", "random"):
        keys = [c for c in generations if c == condition or
                (condition == "random" and c.startswith("random-"))]
        if not keys:
            continue
        rates = [np.mean([detector(t) for t in generations[c]]) if detector else np.nan
                 for c in keys]
        changed = [np.mean([a != b for a, b in zip(generations[c], generations["none"],
                                                   strict=True)]) for c in keys]
        rows.append({"condition": condition, "k": 0 if condition == "none" else k,
                     "generations": len(prompts) * len(keys),
                     "concept_rate": float(np.mean(rates)),
                     "concept_rate_std": float(np.std(rates)) if len(keys) > 1 else np.nan,
                     "changed": float(np.mean(changed))})
    return SteeringResult(concept, k, op, top, [float(v) for v in top_values], randoms,
                          list(prompts), pd.DataFrame(rows), generations)
