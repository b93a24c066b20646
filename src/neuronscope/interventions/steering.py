"""Steering generation through a concept's neurons (survey §6.1).

After Bau et al. (2019, "Identifying and controlling important neurons in neural machine
translation") and Suau et al. (2020/2022, "Self-conditioning pre-trained language models"):
the top-k neurons of a concept are forced to a value while the model generates (by default
their median activation on the concept's words, taken from the store, at every position),
and a detector counts how often the output shows the concept. Controls: the same prompts
without intervention, and k random neurons forced the same way (values from the store too,
or the same given value). Greedy decoding by default; sampling is seeded per prompt, so
every run gives the same texts.

The random control is ``random_repeats`` (5 by default) sets drawn from the top-k's layers
(as many per layer, never the top-k), each forced to its own neurons' values, so that the
table gives a band (mean and sd over sets) rather than one lucky or unlucky draw. Besides the
detector's rate (generations that show the concept), a graded ``score`` of each text (e.g.
:func:`tag_rate`: the share of its tokens a tagger gives the concept's tag) is averaged.
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
from neuronscope.interventions.ablation import layer_matched_random
from neuronscope.interventions.editing import (
    Intervention,
    Positions,
    check_same_model,
    encode_prompt,
)
from neuronscope.interventions.scoring import ProgressFn, model_task
from neuronscope.interventions.sites import as_loaded
from neuronscope.methods.ranking import Ranking
from neuronscope.models.loading import LoadedModel
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView, align_labels

#: A concept detector: generated text -> whether it shows the concept.
Detector = Callable[[str], bool]
#: A graded concept score: generated text -> a number (e.g. share of tokens with a tag).
TextScore = Callable[[str], float]

#: Version of the JSON written by :meth:`SteeringResult.to_dict` (and ``steer --out``).
SCHEMA = "neuronscope.steering/1"


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


def tag_rate(tags: str | Iterable[str], attribute: str = "pos_") -> TextScore:
    """Share of a text's tokens (spaces and punctuation excluded) that spaCy tags with one of
    ``tags`` (UPOS by default); 0 for a text without tokens."""
    from neuronscope.corpus import load_spacy

    nlp = load_spacy()
    wanted = {tags} if isinstance(tags, str) else set(tags)

    def score(text: str) -> float:
        toks = [t for t in nlp(text) if not t.is_space and not t.is_punct]
        return sum(getattr(t, attribute) in wanted for t in toks) / len(toks) if toks else 0.0

    return score


def concept_values(store: ActivationStore, names: Sequence[str],
                   labels: ConceptLabels | np.ndarray | Sequence[str], concept: str,
                   statistic: str = "median") -> np.ndarray:
    """Each neuron's median (or mean) activation over the store rows labelled ``concept``."""
    positive = align_labels(labels, store) == concept
    if not positive.any():
        raise NeuronscopeError(f"no word labelled {concept!r}")
    # Only the concept's rows are read (a row-restricted view), each checked finite.
    rows = ActivationView(store, list(names), rows=np.flatnonzero(positive)).matrix()
    if statistic == "median":
        return np.median(rows, axis=0).astype(np.float32)
    if statistic == "mean":
        return rows.mean(axis=0).astype(np.float32)
    raise NeuronscopeError(f"statistic must be median or mean, not {statistic!r}")


def generate(model: LoadedModel, prompts: Sequence[str], *, max_new_tokens: int = 20,
             do_sample: bool = False, seed: int = 0, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             intervention: Intervention | None = None,
             progress: Callable[[], None] | None = None) -> list[str]:
    """Continuations of each prompt (prompt text excluded), greedy or seeded sampling.

    ``progress`` is called after each prompt."""
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
            run: Any = loaded.model.generate  # typed as a Module attribute by torch
            ids = run(**inputs, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                      **sampling)
        new = ids[0, inputs["input_ids"].shape[1]:]
        out.append(tok.decode(new, skip_special_tokens=True))
        if progress is not None:
            progress()
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
    random_values: list[list[float]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def rate(self, condition: str) -> float:
        """Fraction of generations that show the concept under a condition."""
        return float(self.table.set_index("condition").loc[condition, "concept_rate"])

    def notes(self) -> list[str]:
        """Plain-language reading of the controls: is top above the random band?"""
        rows = self.table.set_index("condition")
        notes: list[str] = []
        if "random" not in rows.index:
            return ["no random control: the effect of top-k cannot be read"]
        sets = int(rows.loc["random", "sets"])
        for col, what in (("concept_rate", "detector rate"), ("concept_score", "concept score")):
            top, mean = rows.loc["top", col], rows.loc["random", col]
            sd = rows.loc["random", f"{col}_std"]
            if not np.isfinite(top):
                continue
            if sets < 5 or not np.isfinite(sd):
                notes.append(f"only {sets} random sets: no usable random band for the {what}")
                continue
            above = top > mean + 2 * sd
            notes.append(f"top-{self.k} {what} {top:.3g} is {'above' if above else 'NOT above'}"
                         f" the random band (mean + 2 sd = {mean + 2 * sd:.3g}, {sets} sets)")
        return notes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result, schema ``neuronscope.steering/1``: ``concept``, ``k``, ``op``,
        ``neurons`` and ``values`` (top-k and what they were set to), ``random_neurons`` and
        ``random_values``, ``prompts``, ``generations`` (condition -> texts; random sets as
        ``random-0``...), ``table`` (per condition: detector rate and concept score, mean and
        sd over random sets, share of texts changed), ``notes``, ``settings``."""
        table = self.table.astype(object).where(self.table.notna(), None)
        return {"schema": SCHEMA, "concept": self.concept, "k": self.k, "op": self.op,
                "neurons": self.neurons, "values": self.values,
                "random_neurons": self.random_neurons, "random_values": self.random_values,
                "prompts": self.prompts, "generations": self.generations,
                "table": table.to_dict(orient="records"), "notes": self.notes(),
                "settings": self.settings}

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
    score: TextScore | None = None,
    random_repeats: int = 5,
    positions: Positions = "all",
    max_new_tokens: int = 20,
    do_sample: bool = False,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    progress: ProgressFn | None = None,
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
        detector: text -> bool (the table's ``concept_rate``).
        score: text -> number (the table's ``concept_score``, e.g. :func:`tag_rate`).
        random_repeats: random neuron sets drawn from the top-k's layers (seeded by ``seed``).
        positions: ``"all"`` (Suau et al.), ``"last"`` or token positions.
        max_new_tokens, do_sample, seed, temperature, top_k, top_p: decoding.
        progress: called with (generations done, generations in all).
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
    randoms = (layer_matched_random(pool, top, random_repeats, seed)
               if random_repeats > 0 else [])
    total = len(prompts) * (2 + len(randoms))
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

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

    decoding: dict[str, Any] = {
        "max_new_tokens": max_new_tokens, "do_sample": do_sample, "seed": seed,
        "temperature": temperature, "top_k": top_k, "top_p": top_p, "progress": tick}
    generations: dict[str, list[str]] = {"none": generate(loaded, prompts, **decoding)}
    top_values = values_for(top)
    with Intervention(loaded, top, op=op, value=top_values, positions=positions,
                      store=store) as iv:  # store: SAE features resolve through it
        generations["top"] = generate(loaded, prompts, intervention=iv, **decoding)
    random_values = []
    for r, names in enumerate(randoms):
        vals = values_for(names)
        random_values.append([float(v) for v in vals])
        with Intervention(loaded, names, op=op, value=vals, positions=positions,
                          store=store) as iv:
            generations[f"random-{r}"] = generate(loaded, prompts, intervention=iv, **decoding)

    def per_set(keys: list[str], fn: Callable[[str], float] | None) -> list[float]:
        return [float(np.mean([fn(t) for t in generations[c]])) if fn else np.nan for c in keys]

    rows = []
    for condition in ("none", "top", "random"):
        keys = [c for c in generations if c == condition or
                (condition == "random" and c.startswith("random-"))]
        if not keys:
            continue
        rates = per_set(keys, None if detector is None else lambda t: float(detector(t)))
        scores = per_set(keys, score)
        changed = [np.mean([a != b for a, b in zip(generations[c], generations["none"],
                                                   strict=True)]) for c in keys]
        many = len(keys) > 1
        rows.append({"condition": condition, "k": 0 if condition == "none" else k,
                     "sets": len(keys) if condition == "random" else int(condition == "top"),
                     "generations": len(prompts) * len(keys),
                     "concept_rate": float(np.mean(rates)),
                     "concept_rate_std": float(np.std(rates, ddof=1)) if many else np.nan,
                     "concept_score": float(np.mean(scores)),
                     "concept_score_std": float(np.std(scores, ddof=1)) if many else np.nan,
                     "changed": float(np.mean(changed))})
    settings = {"model": loaded.name, "positions": positions if isinstance(positions, str)
                else list(positions), "seed": seed, "do_sample": do_sample,
                "max_new_tokens": max_new_tokens, "statistic": statistic,
                "value": None if value is None else np.asarray(value, dtype=float).tolist()}
    return SteeringResult(concept, k, op, top, [float(v) for v in top_values], randoms,
                          list(prompts), pd.DataFrame(rows), generations, random_values,
                          settings)
