"""Sections d-f of scripts/findings.py: causal checks on a live causal LM (SmolLM2).

The LM's MLP neurons are extracted on a small sample of train sentences and ranked there
with average precision (threshold-free and scale-invariant, so massive-activation neurons
do not dominate); ablation is measured on dev sentences the ranking never saw. Knowledge
neurons and steering use the library's verbs with their controls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The fact of section e and its paraphrases (inputs of the experiment, not results).
FACT = ("The capital of France is", "Paris",
        ["The capital city of France is", "France's capital is"])


def lm(ctx: Any) -> Any:
    from neuronscope.models import load_model

    def build() -> Any:
        ctx.log(f"loading {ctx.settings['lm']} ...")
        return load_model(ctx.settings["lm"], device="cpu")

    return ctx.memo("lm", build)


def sample(ctx: Any, path: Path, n: int) -> Any:
    """The first ``n`` sentences of 5 to ``lm_max_words`` words (``# text`` kept)."""
    from neuronscope.corpus import read_conllu

    corpus = read_conllu(path)
    top = ctx.settings["lm_max_words"]
    idx = [i for i, s in enumerate(corpus.sentences) if 5 <= len(s) <= top][:n]
    return corpus.subset(idx)


def lm_data(ctx: Any) -> dict[str, Any]:
    """Train / dev samples, the MLP store of the train sample, and its AP ranking."""
    from neuronscope.extraction import extract
    from neuronscope.methods import get_method
    from neuronscope.methods.ranking import Ranking
    from neuronscope.store import ActivationStore

    def build() -> dict[str, Any]:
        loaded = lm(ctx)
        train = sample(ctx, ctx.args.train, ctx.settings["lm_train_sentences"])
        dev = sample(ctx, ctx.args.dev, ctx.settings["lm_dev_sentences"])
        tag = Path(ctx.settings["lm"]).name
        path = ctx.path(f"{tag}-mlp-train{train.n_sentences}")
        store, resume = None, False
        if (path / "neuronscope.json").exists():
            store = ActivationStore(path, allow_incomplete=True)
            resume = not store.complete and store.model_fingerprint == loaded.fingerprint
            if store.model_fingerprint != loaded.fingerprint or not store.complete:
                store = None
            else:
                store.check_corpus(train)
        if store is None:
            ctx.log(f"extracting MLP neurons of {train.n_sentences} train sentences "
                    f"({'resumed' if resume else 'from scratch'}) ...")
            store = extract(train, path, loaded, components=["mlp"], dtype="float16",
                            progress=False, resume=resume, overwrite=not resume)
        concepts = sorted({*ctx.settings["ablate_concepts"]})
        rpath = ctx.path(f"{tag}-ap-train{train.n_sentences}.json")
        if rpath.exists():
            ranking = Ranking.from_json(rpath)
        else:
            ranking = get_method("ap", concepts=concepts).rank(store,
                                                               train.concept_labels("upos"))
            ranking.to_json(rpath)
        return {"model": loaded, "train": train, "dev": dev, "store": store,
                "ranking": ranking}

    return ctx.memo("lm_data", build)


# ------------------------------------------------------------------------- d. ablation
def compute_ablation(ctx: Any) -> dict[str, Any]:
    from neuronscope.interventions import ablation_effect

    data = lm_data(ctx)
    out: dict[str, Any] = {"model": data["model"].name, "train_sentences":
                           data["train"].n_sentences, "train_words": data["train"].n_words,
                           "dev_sentences": data["dev"].n_sentences,
                           "dev_words": data["dev"].n_words, "neurons": data["store"].n_neurons,
                           "k": ctx.settings["ablate_k"], "repeats": ctx.settings["repeats"],
                           "concepts": {}}
    for concept in ctx.settings["ablate_concepts"]:
        ctx.log(f"d: ablating {concept} ...")
        res = ablation_effect(data["model"], data["dev"], data["ranking"], concept,
                              k=ctx.settings["ablate_k"], repeats=ctx.settings["repeats"],
                              seed=ctx.settings["seed"])
        out["concepts"][concept] = res.to_dict()
    return out


def render_ablation(r: dict[str, Any]) -> str:
    out = [f"Model `{r['model']}`; MLP neurons ({r['neurons']:,}) extracted on the first "
           f"{r['train_sentences']} train sentences of 5-25 words ({r['train_words']:,} "
           "words) and ranked there with average precision (`ap`); "
           f"`ablation_effect(model, dev, ranking, concept, k={r['k']}, "
           f"repeats={r['repeats']})` zeroes the top-k, {r['repeats']} layer-matched random-k "
           f"sets and the bottom-k, scored on the first {r['dev_sentences']} dev sentences of "
           f"5-25 words ({r['dev_words']:,} words; real `# text`, the model's BOS). Loss in "
           "nats per token; selectivity = Δ loss on the concept's tokens − Δ on the others.",
           ""]
    for concept, res in r["concepts"].items():
        rows = {row["condition"]: row for row in res["table"]}
        out += [f"**{concept}** ({rows['none']['tokens_concept']} concept tokens, "
                f"{rows['none']['tokens_other']} other):", "",
                "| ablated | loss concept | loss other | Δ concept | Δ other | selectivity | "
                "acc concept | acc other |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for cond, row in rows.items():
            label = cond if cond == "none" else f"{cond}-{res['k']}" + (
                f" ({row['sets']} sets, ± sd)" if cond == "random" else "")

            def sd(col: str, row: dict = row) -> str:
                v = row.get(f"{col}_std")
                return "" if v is None else f" ± {v:.4f}"

            out.append(f"| {label} | {row['loss_concept']:.4f} | {row['loss_other']:.4f} | "
                       f"{row['delta_concept']:+.4f}{sd('delta_concept')} | "
                       f"{row['delta_other']:+.4f}{sd('delta_other')} | "
                       f"{row['selectivity']:+.4f}{sd('selectivity')} | "
                       f"{row['acc_concept']:.4f} | {row['acc_other']:.4f} |")
        top, rnd = rows["top"], rows["random"]
        band = rnd["selectivity"] + 2 * (rnd["selectivity_std"] or 0.0)
        if top["selectivity"] > band and top["selectivity"] > 0:
            verdict = (f"reproduces: the top-{res['k']} hurt {concept} tokens more than the "
                       f"others (selectivity {top['selectivity']:+.4f}), above the random "
                       f"band (mean + 2 sd = {band:+.4f})")
        else:
            verdict = (f"does not reproduce: top-{res['k']} selectivity "
                       f"{top['selectivity']:+.4f} is not above the random band (mean + 2 sd "
                       f"= {band:+.4f}); Δ concept {top['delta_concept']:+.4f} vs Δ other "
                       f"{top['delta_other']:+.4f}")
        bottom = rows.get("bottom")
        if bottom is not None and bottom["selectivity"] >= top["selectivity"]:
            # The ratio alone would credit the top-k; the bottom-k control says how much.
            verdict += (f"; but the bottom-{res['k']} score at least as high (selectivity "
                        f"{bottom['selectivity']:+.4f}: Δ concept "
                        f"{bottom['delta_concept']:+.4f}, Δ other {bottom['delta_other']:+.4f}), "
                        "so the selectivity difference alone does not single out the top "
                        "neurons")
        out += ["", f"Expected from probing work (concept neurons matter most for their "
                f"concept; survey §6): {verdict}."]
        out += [f"The verb's reading: {n}" for n in res["notes"]] + [""]
    return "\n".join(out)


# ------------------------------------------------------------------ e. knowledge neurons
def compute_knowledge(ctx: Any) -> dict[str, Any]:
    from neuronscope.interventions import knowledge_neurons
    from neuronscope.interventions.sites import model_sites

    loaded = lm(ctx)
    prompt, target, paraphrases = FACT
    last = ctx.settings["kn_last_layers"]  # None: every MLP layer (Dai et al.)
    layers = None if last is None else list(model_sites(loaded).components["mlp"].layers)[-last:]
    ctx.log(f"e: knowledge neurons of {prompt!r} -> {target!r} (layers {layers or 'all'}) ...")
    res = knowledge_neurons(loaded, prompt, target, paraphrases,
                            steps=ctx.settings["kn_steps"], layers=layers,
                            random_repeats=ctx.settings["repeats"], seed=ctx.settings["seed"])
    return {"model": loaded.name, "steps": ctx.settings["kn_steps"], "layers": layers,
            **res.to_dict()}


def render_knowledge(r: dict[str, Any]) -> str:
    s = r["summary"]
    out = [f"`knowledge_neurons(model, {FACT[0]!r}, {FACT[1]!r}, {FACT[2]}, "
           f"steps={r['steps']}, random_repeats={len(r['random_neurons'])})` on "
           f"`{r['model']}` (integrated gradients over "
           f"{'all MLP layers' if r['layers'] is None else 'layers ' + str(r['layers'])}; "
           f"coarse threshold {r['threshold']}, refined share {r['share']}): "
           f"{len(r['neurons'])} knowledge neurons"
           + (f" ({', '.join(r['neurons'][:8])}{', ...' if len(r['neurons']) > 8 else ''})"
              if r["neurons"] else "") + ".", ""]
    if r["effects"]:
        out += ["| kind | prompt | answer | P | P zeroed | change zeroed | random sets zeroed "
                "(mean ± sd) | change doubled |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for e in r["effects"]:
            rnd = ("" if e.get("random_suppress_change") is None else
                   f"{e['random_suppress_change']:+.1%} ± "
                   f"{(e.get('random_suppress_change_std') or 0):.1%}")
            out.append(f"| {e['kind']} | {e['prompt']} | {e['target']} | "
                       f"{e['probability']:.4g} | {e['suppressed']:.3g} | "
                       f"{e['suppress_change']:+.1%} | {rnd} | {e['enhance_change']:+.1%} |")
    jac = s.get("paraphrase_jaccard")
    out += ["", "Paraphrase agreement (mean pairwise Jaccard of the prompts' coarse sets): "
            + ("n/a" if jac is None else f"{jac:.3f}") + "."]
    fact, other = s.get("fact_suppress_change"), s.get("other_suppress_change")
    rand, sd = s.get("random_fact_suppress_change"), s.get("random_fact_suppress_change_std")
    if fact is not None and rand is not None:
        beyond = fact < rand - 2 * (sd or 0.0)
        specific = other is None or not other <= fact / 2
        out += ["", "Dai et al. (2021): suppressing a fact's knowledge neurons lowers that "
                "fact's probability, beyond random neurons, and leaves other facts mostly "
                f"intact. Here the fact's prompts changed by {fact:+.1%} against "
                f"{rand:+.1%} ± {sd or 0:.1%} for random sets "
                f"({'beyond' if beyond else 'NOT beyond'} the random band), and the other "
                f"facts by {other if other is None else format(other, '+.1%')}: "
                + ("the specificity reproduces." if specific and beyond else
                   "the specificity does not reproduce (other facts drop at least half as "
                   "much as the fact)." if not specific else
                   "the effect on the fact itself is not beyond random.")]
    out += [f"The verb's reading: {n}" for n in r["notes"]]
    return "\n".join(out)


# --------------------------------------------------------------------------- f. steering
def compute_steering(ctx: Any) -> dict[str, Any]:
    from neuronscope.interventions import spacy_detector, steer, tag_rate
    from neuronscope.interventions.scoring import detokenize

    data = lm_data(ctx)
    concept = ctx.settings["ablate_concepts"][0]
    # Prompts: the first three words of dev sentences (real text starts, not chosen by hand).
    prompts = [detokenize(s[:3]) for s in data["dev"].sentences[: ctx.settings["steer_prompts"]]]
    ctx.log(f"f: steering {concept} with {len(prompts)} prompts ...")
    res = steer(data["model"], data["ranking"], concept, prompts, k=ctx.settings["steer_k"],
                store=data["store"], labels=data["train"].concept_labels("upos"),
                detector=spacy_detector(concept), score=tag_rate(concept),
                random_repeats=ctx.settings["repeats"],
                max_new_tokens=ctx.settings["steer_tokens"], seed=ctx.settings["seed"])
    return {"model": data["model"].name, **res.to_dict()}


def render_steering(r: dict[str, Any]) -> str:
    rows = {row["condition"]: row for row in r["table"]}
    vals = np.asarray(r["values"], dtype=float)
    out = [f"`steer(model, ranking, {r['concept']!r}, prompts, k={r['k']}, op={r['op']!r})` on "
           f"`{r['model']}`: the top-{r['k']} `ap` neurons of {r['concept']} (train sample) "
           "are set to their median activation on the concept's train words at every "
           f"position while generating {r['settings']['max_new_tokens']} tokens greedily, for "
           f"{len(r['prompts'])} prompts (the first three words of dev sentences). Controls: no "
           f"intervention, and {len(r['random_neurons'])} layer-matched random sets set to "
           "their own medians. Concept rate: share of generations in which spaCy tags some "
           f"token {r['concept']}; concept score: share of tokens tagged {r['concept']}.", "",
           f"Neurons: {', '.join(r['neurons'][:10])}{', ...' if len(r['neurons']) > 10 else ''}"
           f"; values: min {vals.min():.3g}, median {np.median(vals):.3g}, max "
           f"{vals.max():.3g}.", "",
           "| condition | generations | concept rate | concept score | texts changed |",
           "|---|---:|---:|---:|---:|"]
    for cond, row in rows.items():
        def fmt(col: str, row: dict = row) -> str:
            v, sd = row[col], row.get(f"{col}_std")
            return f"{v:.3f}" + ("" if sd is None else f" ± {sd:.3f}")
        out.append(f"| {cond} | {row['generations']} | {fmt('concept_rate')} | "
                   f"{fmt('concept_score')} | {row['changed']:.2f} |")
    top, rnd, none = rows["top"], rows["random"], rows["none"]
    band = rnd["concept_score"] + 2 * (rnd["concept_score_std"] or 0.0)
    beats = top["concept_score"] > band
    out += ["", "Bau et al. (2019) and Suau et al. (2022): forcing a concept's neurons makes "
            "generated text show the concept more. Here the top-k concept score is "
            f"{top['concept_score']:.3f} against {none['concept_score']:.3f} without "
            f"intervention and {rnd['concept_score']:.3f} ± "
            f"{(rnd['concept_score_std'] or 0):.3f} for random sets: "
            + ("steering beats random (above mean + 2 sd = " if beats else
               "steering does NOT beat random (not above mean + 2 sd = ")
            + f"{band:.3f})."]
    out += [f"The verb's reading: {n}" for n in r["notes"]]
    out += ["", "First generations (prompt → continuation):", ""]
    for i, prompt in enumerate(r["prompts"][:3]):
        for cond in ("none", "top", "random-0"):
            if cond in r["generations"]:
                text = r["generations"][cond][i].replace("\n", " ").replace("|", "/")
                out.append(f"* {cond}: `{prompt}` → {text!r}")
    return "\n".join(out)
