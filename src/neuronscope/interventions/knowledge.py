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

IG runs through Captum's :class:`captum.attr.IntegratedGradients` on a function of the layer
activation that injects it with a :class:`~neuronscope.extraction.hooks.Trace` edit.
``LayerIntegratedGradients`` does not fit: it interpolates the *model input* from a baseline
input, so its layer baseline is "the layer's value for the baseline input", not zero, and it
scales every position; the paper zeroes one position of one layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.extraction.alignment import WordTokenizer
from neuronscope.extraction.hooks import Trace
from neuronscope.interventions.intervene import Intervention, encode_prompt
from neuronscope.interventions.scoring import model_task
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
        if neurons:
            with Intervention(loaded, list(neurons), op="zero", positions=[p.position]):
                row["suppressed"] = _target_probability(loaded, p)
            with Intervention(loaded, list(neurons), op="scale", value=enhance,
                              positions=[p.position]):
                row["enhanced"] = _target_probability(loaded, p)
        else:
            row["suppressed"] = row["enhanced"] = base
        row["suppress_change"] = (row["suppressed"] - base) / base if base > 0 else np.nan
        row["enhance_change"] = (row["enhanced"] - base) / base if base > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class KnowledgeNeurons:
    """Knowledge neurons of one fact: per-prompt attributions, refined neurons, edit effects."""

    target: str
    prompts: list[PromptAttribution]
    threshold: float
    share: float
    neurons: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # coarse neuron -> prompts having it
    effects: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "target": self.target, "threshold": self.threshold, "share": self.share,
            "neurons": self.neurons, "counts": self.counts,
            "prompts": [{"prompt": a.prompt, "probability": a.probability,
                         "target_token": a.target_token, "coarse": a.coarse(self.threshold),
                         "completeness_gaps": a.gaps.tolist()} for a in self.prompts],
            "effects": None if self.effects is None else self.effects.to_dict(orient="records"),
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
) -> KnowledgeNeurons:
    """Find the knowledge neurons of a fact and (optionally) measure suppressing / enhancing.

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
        measure: also run :func:`edit_effect` on every prompt.
    """
    if not 0 <= threshold <= 1:
        raise NeuronscopeError(f"threshold must be in [0, 1], got {threshold}")
    prompts = [prompt, *paraphrases]
    attributions = [attribute(model, q, target, layers=layers, steps=steps, method=method)
                    for q in prompts]
    neurons, counts = refine([a.coarse(threshold) for a in attributions], share)
    effects = edit_effect(model, neurons, prompts, target) if measure else None
    return KnowledgeNeurons(target, attributions, threshold, share, neurons, counts, effects)
