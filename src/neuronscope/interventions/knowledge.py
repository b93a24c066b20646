"""Knowledge neurons (Dai et al. 2021, "Knowledge Neurons in Pretrained Transformers").

For a prompt whose answer is ``target`` (masked LM: a prompt with one ``[MASK]``; causal LM:
the token after the prompt), every FFN neuron of every layer gets an integrated-gradients
attribution of the target's probability: the layer's intermediate activation *at the
predicted position* is scaled from 0 to its value, other positions and layers untouched,
and the gradients are summed over ``steps`` points (Riemann sum, right end points as in the
paper's formula). Then, as in the paper and its reference code:

* coarse neurons of a prompt: attribution >= ``threshold`` x the prompt's maximum (0.2);
* refined (knowledge) neurons: coarse neurons shared by at least ``share`` of the prompts
  (paraphrases of one fact); the paper starts at 0.7 and moves it in 0.05 steps until 2-5
  neurons remain, here it is a parameter (0.5 by default);
* suppressing (zeroing) or enhancing (doubling) them at the predicted position should lower /
  raise the target's probability, which :func:`edit_effect` reports.

Controls (:func:`knowledge_neurons`): the same edit on random sets of as many MLP neurons in
the same layers; its effect on *other facts* (specificity; by default a few capital-city and
general facts); the agreement of the paraphrases' coarse sets (pairwise Jaccard).

IG runs through Captum's :class:`captum.attr.IntegratedGradients` on a function of the layer
activation that injects it with a :class:`~neuronscope.extraction.hooks.Trace` edit.
``LayerIntegratedGradients`` does not fit: it interpolates the *model input* from a baseline
input, so its layer baseline is "the layer's value for the baseline input", not zero, and it
scales every position; the paper zeroes one position of one layer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.extraction.alignment import WordTokenizer
from neuronscope.extraction.hooks import Trace
from neuronscope.interventions.editing import Intervention, encode_prompt
from neuronscope.interventions.scoring import ProgressFn, model_task
from neuronscope.interventions.sites import as_loaded, model_sites
from neuronscope.models.loading import LoadedModel


@dataclass
class _Prompt:
    inputs: dict[str, torch.Tensor]
    position: int  # the token position that predicts the target
    target_ids: list[int]


def _prepare(loaded: LoadedModel, prompt: str, target: str) -> _Prompt:
    task = model_task(loaded)
    tok = loaded.tokenizer
    if task == "masked-lm":
        mask = tok.mask_token
        if mask is None:
            raise NeuronscopeError(f"tokenizer of {loaded.name} has no mask token")
        text = prompt.replace("[MASK]", mask) if mask != "[MASK]" else prompt
        inputs = encode_prompt(loaded, text)
        where = (inputs["input_ids"][0] == tok.mask_token_id).nonzero().flatten().tolist()
        if len(where) != 1:
            raise NeuronscopeError(
                f"a masked-LM prompt needs exactly one {mask} (found {len(where)}): {prompt!r}"
            )
        target_ids = tok(target.strip(), add_special_tokens=False)["input_ids"]
        position = where[0]
    elif task == "causal-lm":
        inputs = encode_prompt(loaded, prompt)
        position = int(inputs["input_ids"].shape[1]) - 1
        space = WordTokenizer(tok, loaded.max_length, causal=True).space_prefix
        text = target.strip()
        if space and prompt and not prompt[-1].isspace():
            text = " " + text  # byte-level BPE: the answer's token carries its leading space
        target_ids = tok(text, add_special_tokens=False)["input_ids"]
    else:
        raise NeuronscopeError("knowledge neurons need a masked or causal language model")
    if not target_ids:
        raise NeuronscopeError(f"target {target!r} has no tokens")
    return _Prompt(inputs, position, list(target_ids))


#: Version of the JSON written by :meth:`KnowledgeNeurons.to_dict` (and ``attribute --out``).
SCHEMA = "neuronscope.knowledge/1"

#: Other facts for the specificity check when none are given: same relation (capitals),
#: then other relations. Masked LMs get `` [MASK] .`` appended.
DEFAULT_OTHER_FACTS = (
    ("The capital of Japan is", "Tokyo"),
    ("The capital of Italy is", "Rome"),
    ("The capital of Germany is", "Berlin"),
    ("The capital of France is", "Paris"),
    ("The largest planet in the solar system is", "Jupiter"),
    ("The opposite of hot is", "cold"),
)


def default_other_facts(model: LoadedModel, target: str, n: int = 5) -> list[tuple[str, str]]:
    """``n`` of :data:`DEFAULT_OTHER_FACTS` whose answer is not ``target``, in the model's form."""
    masked = model_task(as_loaded(model)) == "masked-lm"
    facts = [(f"{p} [MASK] ." if masked else p, t) for p, t in DEFAULT_OTHER_FACTS
             if t.lower() != target.strip().lower()]
    return facts[:n]


def parse_fact(text: str) -> tuple[str, str]:
    """``"prompt=>answer"`` as ``(prompt, answer)``."""
    prompt, sep, answer = text.rpartition("=>")
    if not sep or not prompt.strip() or not answer.strip():
        raise NeuronscopeError(f"a fact is written 'PROMPT=>ANSWER', got {text!r}")
    return prompt.rstrip(), answer.strip()


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """|A & B| / |A | B| (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    return 1.0 if not sa | sb else len(sa & sb) / len(sa | sb)


def random_like(model: LoadedModel, neurons: Sequence[str], repeats: int,
                seed: int = 0) -> list[list[str]]:
    """``repeats`` random sets of MLP neurons with as many per layer as ``neurons``, none of
    them in it (the control of an edit on ``neurons``)."""
    width = model_sites(as_loaded(model)).components["mlp"].width
    per_layer: dict[int, int] = defaultdict(int)
    for name in neurons:
        per_layer[int(name.split(".")[0][1:])] += 1
    taken = set(neurons)
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(repeats):
        picked: list[str] = []
        for layer, count in sorted(per_layer.items()):
            free = [i for i in range(width) if f"L{layer}.mlp.{i}" not in taken]
            picked += [f"L{layer}.mlp.{int(i)}"
                       for i in rng.choice(free, min(count, len(free)), replace=False)]
        sets.append(picked)
    return sets


def _target_probability(loaded: LoadedModel, p: _Prompt) -> float:
    with torch.no_grad():
        logits = loaded.model(**p.inputs).logits
    return float(torch.softmax(logits[0, p.position].float(), -1)[p.target_ids[0]])


@dataclass
class PromptAttribution:
    """Integrated-gradients attributions of one prompt's target probability.

    ``scores[i, j]`` is the attribution of neuron ``j`` of MLP layer ``layers[i]``; ``gaps``
    the completeness error per layer: ``sum(scores[i]) - (P(target) - P(target | layer i's
    activation at the position zeroed))``.
    """

    prompt: str
    target: str
    target_id: int
    target_token: str
    target_n_tokens: int
    position: int
    probability: float
    layers: list[int]
    scores: np.ndarray
    gaps: np.ndarray
    baseline_probability: np.ndarray

    def name(self, layer_row: int, index: int) -> str:
        """Neuron name of a score cell."""
        return f"L{self.layers[layer_row]}.mlp.{index}"

    def coarse(self, threshold: float = 0.2) -> list[str]:
        """Neurons with attribution >= ``threshold`` x this prompt's maximum (none if max <= 0)."""
        top = float(self.scores.max())
        if top <= 0:
            return []
        rows, cols = np.nonzero(self.scores >= threshold * top)
        order = np.argsort(-self.scores[rows, cols], kind="stable")
        return [self.name(int(rows[i]), int(cols[i])) for i in order]

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` neurons with the largest attribution, with their scores."""
        flat = np.argsort(-self.scores, axis=None, kind="stable")[:k]
        width = self.scores.shape[1]
        return [(self.name(int(i // width), int(i % width)), float(self.scores.flat[i]))
                for i in flat]


def attribute(
    model: LoadedModel,
    prompt: str,
    target: str,
    *,
    layers: Sequence[int] | None = None,
    steps: int = 20,
    method: str = "riemann_right",
    internal_batch_size: int | None = None,
    progress: Callable[[], None] | None = None,
) -> PromptAttribution:
    """IG attribution of P(target) to every MLP neuron at the predicted position.

    Args:
        model: a masked LM (prompt with one ``[MASK]``) or causal LM (target follows the prompt).
        prompt: the query.
        target: the answer; only its first token is attributed (``target_n_tokens`` tells).
        layers: MLP layers to attribute (default: all).
        steps: points of the Riemann sum (the paper's m = 20).
        method: Captum integration method (``riemann_right`` follows the paper's formula;
            ``gausslegendre`` converges faster).
        internal_batch_size: split the ``steps`` scaled inputs into batches of this size.
        progress: called after each layer is attributed.
    """
    from captum.attr import IntegratedGradients

    loaded = as_loaded(model)
    if steps < 1:
        raise NeuronscopeError("steps must be at least 1")
    sites = model_sites(loaded)
    if "mlp" not in sites.components:
        raise UnknownComponentError(f"{loaded.name} has no mlp neurons: {sites.missing['mlp']}")
    mlp = sites.components["mlp"]
    chosen = mlp.layers if layers is None else sorted(set(int(x) for x in layers))
    bad = [x for x in chosen if x not in mlp.sites]
    if bad:
        raise UnknownComponentError(f"mlp layers {bad} out of range; layers are {mlp.layers}")
    p = _prepare(loaded, prompt, target)
    tid, pos = p.target_ids[0], p.position
    net = loaded.model
    modules = [mlp.sites[layer][0] for layer in chosen]
    with torch.no_grad(), Trace(net, modules, retain_output=False, retain_input=True) as trace:
        logits = net(**p.inputs).logits
    probability = float(torch.softmax(logits[0, pos].float(), -1)[tid])

    with torch.inference_mode(False):
        # Normal (not inference-mode) copies: autograd must save the ids for the backward pass.
        ids = p.inputs["input_ids"].clone()
        mask = p.inputs["attention_mask"].clone()

    def forward_with(module: str) -> Any:
        def forward(activation: torch.Tensor) -> torch.Tensor:
            n = activation.shape[0]

            def inject(name: str, x: torch.Tensor) -> torch.Tensor:
                x = x.clone()
                x[:, pos, :] = activation.to(x.dtype)
                return x

            with Trace(net, [module], retain_output=False, edit_input=inject, detach=False):
                out = net(input_ids=ids.expand(n, -1), attention_mask=mask.expand(n, -1)).logits
            return torch.softmax(out[:, pos].float(), -1)[:, tid]

        return forward

    scores, gaps, base_probs = [], [], []
    with torch.inference_mode(False), torch.enable_grad():
        for module in modules:
            value = trace.inputs[module][0, pos].detach().clone()[None].float()
            baseline = torch.zeros_like(value)
            ig = IntegratedGradients(forward_with(module))
            attr, delta = ig.attribute(value, baselines=baseline, n_steps=steps, method=method,
                                       internal_batch_size=internal_batch_size,
                                       return_convergence_delta=True)
            scores.append(attr[0].detach().cpu().double().numpy())
            gaps.append(float(delta.detach().reshape(-1)[0]))
            with torch.no_grad():
                base_probs.append(float(forward_with(module)(baseline)[0]))
            if progress is not None:
                progress()
    return PromptAttribution(
        prompt, target, tid, loaded.tokenizer.convert_ids_to_tokens(tid), len(p.target_ids),
        pos, probability, list(chosen), np.stack(scores), np.asarray(gaps),
        np.asarray(base_probs),
    )


def edit_effect(model: LoadedModel, neurons: Sequence[str], prompts: Sequence[str],
                target: str, enhance: float = 2.0) -> pd.DataFrame:
    """P(target) per prompt as is, with ``neurons`` zeroed, and with them multiplied by 2.

    Edits apply at the predicted position only, as in Dai et al.
    """
    loaded = as_loaded(model)
    rows = []
    for prompt in prompts:
        p = _prepare(loaded, prompt, target)
        base = _target_probability(loaded, p)
        row: dict[str, Any] = {"prompt": prompt, "probability": base}
        row["suppressed"], row["enhanced"] = _edited_probabilities(loaded, p, neurons, enhance,
                                                                   base)
        row["suppress_change"] = (row["suppressed"] - base) / base if base > 0 else np.nan
        row["enhance_change"] = (row["enhanced"] - base) / base if base > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _edited_probabilities(loaded: LoadedModel, p: Any, neurons: Sequence[str], enhance: float,
                          base: float) -> tuple[float, float]:
    """P(target) with ``neurons`` zeroed and with them scaled by ``enhance`` at the predicted
    position (``base`` twice when there are no neurons)."""
    if not neurons:
        return base, base
    with Intervention(loaded, list(neurons), op="zero", positions=[p.position]):
        suppressed = _target_probability(loaded, p)
    with Intervention(loaded, list(neurons), op="scale", value=enhance, positions=[p.position]):
        enhanced = _target_probability(loaded, p)
    return suppressed, enhanced


def _fact_effects(loaded: LoadedModel, neurons: Sequence[str], randoms: Sequence[Sequence[str]],
                  facts: Sequence[tuple[str, str, str]], enhance: float,
                  tick: Callable[[], None]) -> pd.DataFrame:
    """Per fact (kind, prompt, target): P(target), with ``neurons`` zeroed / scaled, and the
    change when each random set is zeroed instead (mean and sd over the sets)."""
    rows = []
    for kind, prompt, target in facts:
        p = _prepare(loaded, prompt, target)
        base = _target_probability(loaded, p)
        row: dict[str, Any] = {"kind": kind, "prompt": prompt, "target": target,
                               "probability": base}
        row["suppressed"], row["enhanced"] = _edited_probabilities(loaded, p, neurons, enhance,
                                                                   base)
        tick()
        changes = []
        for names in randoms:
            with Intervention(loaded, list(names), op="zero", positions=[p.position]):
                changes.append((_target_probability(loaded, p) - base) / base if base > 0
                               else np.nan)
            tick()
        row["suppress_change"] = (row["suppressed"] - base) / base if base > 0 else np.nan
        row["enhance_change"] = (row["enhanced"] - base) / base if base > 0 else np.nan
        row["random_suppress_change"] = float(np.mean(changes)) if changes else np.nan
        row["random_suppress_change_std"] = (float(np.std(changes, ddof=1))
                                             if len(changes) > 1 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class KnowledgeNeurons:
    """Knowledge neurons of one fact: per-prompt attributions, refined neurons, edit effects.

    ``effects`` has one row per prompt of the fact (``kind`` ``fact`` / ``paraphrase``) and per
    other fact (``other``): P(target) as is, with the neurons zeroed / enhanced, and the mean
    and sd change when zeroing random sets of the same layers instead. ``random_neurons``
    are those sets; ``agreement`` the pairwise Jaccard of the prompts' coarse sets.
    """

    target: str
    prompts: list[PromptAttribution]
    threshold: float
    share: float
    neurons: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # coarse neuron -> prompts having it
    effects: pd.DataFrame | None = None
    random_neurons: list[list[str]] = field(default_factory=list)
    agreement: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        """Mean relative change of P(target) when suppressing: on the fact's prompts, on
        other facts, and for random sets (mean, and sd over sets); paraphrase agreement."""
        out: dict[str, float] = {"paraphrase_jaccard": np.nan}
        if self.agreement is not None and len(self.agreement) > 1:
            iu = np.triu_indices(len(self.agreement), 1)
            out["paraphrase_jaccard"] = float(self.agreement[iu].mean())
        if self.effects is None:
            return out
        e = self.effects
        fact, other = e[e["kind"] != "other"], e[e["kind"] == "other"]
        out["fact_suppress_change"] = float(fact["suppress_change"].mean())
        out["other_suppress_change"] = (float(other["suppress_change"].mean())
                                        if len(other) else np.nan)
        out["random_fact_suppress_change"] = float(fact["random_suppress_change"].mean())
        out["random_fact_suppress_change_std"] = float(
            fact["random_suppress_change_std"].mean())
        return out

    def notes(self) -> list[str]:
        """Plain-language reading of the controls."""
        s = self.summary()
        notes: list[str] = []
        if not self.neurons or self.effects is None:
            return notes
        fact, other = s["fact_suppress_change"], s.get("other_suppress_change", np.nan)
        if np.isfinite(other) and other <= fact / 2:
            notes.append(
                f"not specific: suppressing them also changes P(answer) of other facts by "
                f"{other:+.1%} on average (this fact: {fact:+.1%})"
            )
        rand, sd = s["random_fact_suppress_change"], s["random_fact_suppress_change_std"]
        if len(self.random_neurons) < 5 or not np.isfinite(sd):
            notes.append(f"only {len(self.random_neurons)} random sets: no usable random band")
        elif fact >= rand - 2 * sd:
            notes.append(f"suppressing them ({fact:+.1%}) is within the random band "
                         f"({rand:+.1%} - 2 sd = {rand - 2 * sd:+.1%})")
        if np.isfinite(s["paraphrase_jaccard"]) and s["paraphrase_jaccard"] < 0.2:
            notes.append(f"the paraphrases agree little (mean Jaccard of coarse sets "
                         f"{s['paraphrase_jaccard']:.2f})")
        return notes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result, schema ``neuronscope.knowledge/1``: ``target``, ``threshold``,
        ``share``, ``neurons`` (refined), ``counts``, ``prompts`` (per prompt: P(target),
        coarse set, completeness gaps), ``effects`` (records as in :attr:`effects`),
        ``random_neurons``, ``agreement`` (Jaccard matrix), ``summary``, ``notes``."""
        effects = None
        if self.effects is not None:
            e = self.effects.astype(object).where(self.effects.notna(), None)
            effects = e.to_dict(orient="records")
        summary = {k: (None if not np.isfinite(v) else v) for k, v in self.summary().items()}
        return {
            "schema": SCHEMA, "target": self.target, "threshold": self.threshold,
            "share": self.share, "neurons": self.neurons, "counts": self.counts,
            "prompts": [{"prompt": a.prompt, "probability": a.probability,
                         "target_token": a.target_token, "coarse": a.coarse(self.threshold),
                         "completeness_gaps": a.gaps.tolist()} for a in self.prompts],
            "effects": effects, "random_neurons": self.random_neurons,
            "agreement": None if self.agreement is None else self.agreement.tolist(),
            "summary": summary, "notes": self.notes(),
        }


def refine(coarse: Sequence[Sequence[str]], share: float) -> tuple[list[str], dict[str, int]]:
    """Neurons in at least ``share`` of the coarse sets (most shared first), and all counts."""
    if not 0 < share <= 1:
        raise NeuronscopeError(f"share must be in (0, 1], got {share}")
    counts = Counter(n for names in coarse for n in dict.fromkeys(names))
    need = share * len(coarse)
    kept = [n for n, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= need - 1e-9]
    return kept, dict(counts)


def knowledge_neurons(
    model: LoadedModel,
    prompt: str,
    target: str,
    paraphrases: Sequence[str] = (),
    *,
    threshold: float = 0.2,
    share: float = 0.5,
    steps: int = 20,
    layers: Sequence[int] | None = None,
    method: str = "riemann_right",
    measure: bool = True,
    others: Sequence[tuple[str, str]] | None = None,
    random_repeats: int = 5,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> KnowledgeNeurons:
    """Find the knowledge neurons of a fact and (optionally) measure them against controls.

    Args:
        model: masked or causal LM.
        prompt: the query (``[MASK]`` where the answer goes, for masked LMs).
        target: the answer.
        paraphrases: more prompts expressing the same fact.
        threshold: coarse selection, fraction of the prompt's maximum attribution.
        share: refined selection, fraction of prompts a neuron must be coarse in.
        steps: Riemann-sum points of integrated gradients.
        layers: MLP layers to search (default: all).
        method: Captum integration method.
        measure: also suppress / enhance the neurons on every prompt and on ``others``.
        others: other facts as (prompt, answer) for the specificity check (default:
            :func:`default_other_facts`; ``[]`` for none).
        random_repeats: random sets (same layers, same size) zeroed as the control.
        seed: seed of the random sets.
        progress: called with (steps done, steps in all).
    """
    if not 0 <= threshold <= 1:
        raise NeuronscopeError(f"threshold must be in [0, 1], got {threshold}")
    if random_repeats < 0:
        raise NeuronscopeError(f"random_repeats must be >= 0, got {random_repeats}")
    loaded = as_loaded(model)
    prompts = [prompt, *paraphrases]
    facts = [("fact" if i == 0 else "paraphrase", q, target) for i, q in enumerate(prompts)]
    other = default_other_facts(loaded, target) if others is None else list(others)
    facts += [("other", q, t) for q, t in other]
    mlp = model_sites(loaded).components.get("mlp")
    n_layers = len(set(layers)) if layers is not None else (len(mlp.layers) if mlp else 1)
    total = len(prompts) * n_layers + (len(facts) * (1 + random_repeats) if measure else 0)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    attributions = [attribute(loaded, q, target, layers=layers, steps=steps, method=method,
                              progress=tick) for q in prompts]
    coarse = [a.coarse(threshold) for a in attributions]
    neurons, counts = refine(coarse, share)
    agreement = np.array([[jaccard(a, b) for b in coarse] for a in coarse])
    randoms = random_like(loaded, neurons, random_repeats, seed) if neurons else []
    effects = None
    if measure:
        effects = _fact_effects(loaded, neurons, randoms, facts, 2.0, tick)
    if progress is not None:
        progress(total, total)  # fewer steps than planned when no neuron was found
    return KnowledgeNeurons(target, attributions, threshold, share, neurons, counts, effects,
                            randoms, agreement)
