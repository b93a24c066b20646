"""Do the neurons a ranking finds matter to the model? SmolLM2-135M on UD EWT dev (issue #5).

1. Loads SmolLM2-135M-Instruct once from its GGUF (de-quantized, ~25 s) and caches a float32
   copy (``save_pretrained`` + tokenizer) under ``--model-cache``; later runs load the copy.
2. Extracts MLP neurons (input of the down projection) of a few layers for a seeded subset of
   EWT dev sentences, ranks NOUN neurons (Probeless by default, or an ElasticNet probe).
3. ``ablation_effect``: zeroes the top-k / random-k / bottom-k NOUN neurons and measures the
   model's own next-token loss on tokens of NOUN words versus all other words.
4. Knowledge neurons (Dai et al. 2021) for a few facts with paraphrases: integrated-gradients
   attribution over every MLP layer, refined neurons, and P(target) when they are suppressed
   (zeroed) or enhanced (doubled) at the predicted position; with two controls: as many random
   MLP neurons, and the fact's neurons applied to another fact's prompts.
5. (``--minilm``) A MiniLM sanity check: zero MiniLM's top-k NOUN MLP neurons and see whether
   a NOUN-vs-rest probe on the last hidden layer loses accuracy more than with random neurons.

Usage:
    python examples/smollm2_causation.py [--sentences 300] [--layers 3,9,15,21,27] [--k 50]
        [--repeats 3] [--method probeless|probe] [--steps 20] [--no-minilm]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ud_ewt"

FACTS = [
    (" Paris", ["The capital of France is", "France's capital city is",
                "The capital city of France is called"]),
    (" Tokyo", ["The capital of Japan is", "Japan's capital city is",
                "The capital city of Japan is called"]),
    (" Shakespeare", ["Romeo and Juliet was written by William",
                      "The play Hamlet was written by William",
                      "The famous English playwright William"]),
]


def log(msg: str = "") -> None:
    print(msg, flush=True)


def load_smollm2(cache: Path):
    """SmolLM2 from the float32 cache, or from the GGUF (then written to the cache)."""
    from neuronscope.models import load_model

    t0 = time.perf_counter()
    if (cache / "config.json").exists():
        loaded = load_model(str(cache))
        log(f"  loaded float32 copy from {cache} in {time.perf_counter() - t0:.0f} s")
        return loaded
    loaded = load_model("smollm2")
    log(f"  de-quantized the GGUF in {time.perf_counter() - t0:.0f} s")
    gguf_fingerprint = loaded.fingerprint
    cache.mkdir(parents=True, exist_ok=True)
    # The weights are already de-quantized to float32, but transformers still marks the model
    # as "quantized with gguf" and refuses save_pretrained; drop that marker first.
    model = loaded.model
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(cache)
    loaded.tokenizer.save_pretrained(cache)
    # Reload the copy right away, so that this run and later ones see the same model (and
    # the same fingerprint, which stores and rankings are checked against).
    loaded = load_model(str(cache))
    log(f"  cached a float32 copy in {cache}; fingerprint from GGUF {gguf_fingerprint}, "
        f"from the copy {loaded.fingerprint}")
    return loaded


def subset(corpus, n: int, seed: int, max_words: int):
    """A seeded subset of ``n`` sentences of at most ``max_words`` words (in corpus order)."""
    lengths = corpus.sentence_lengths()
    pool = np.nonzero((lengths >= 3) & (lengths <= max_words))[0]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(pool, min(n, len(pool)), replace=False))
    return corpus.subset(chosen.tolist())


def store_for(corpus, loaded, path: Path, component: str, layers):
    """Open the store at ``path`` when it matches this corpus and model, else (re)extract."""
    from neuronscope.extraction import extract
    from neuronscope.store import ActivationStore

    if (path / "neuronscope.json").exists():
        try:
            store = ActivationStore(path)  # raises for an interrupted extraction, too
            store.check_corpus(corpus)
            same = store.model_fingerprint == loaded.fingerprint
        except Exception:  # another corpus: extract again
            same = False
        if same and component in store.components:
            log(f"  reusing store {path} ({store.n_words} words x {store.n_neurons} neurons)")
            return store
        log(f"  store {path} is from another corpus/model: re-extracting")
    t0 = time.perf_counter()
    store = extract(corpus, path, loaded, components=(component,), layers=layers,
                    aggregation="mean", progress=False, overwrite=True, batch_size=16)
    log(f"  extracted {store.n_words} words x {store.n_neurons} {component} neurons into {path} "
        f"in {time.perf_counter() - t0:.0f} s")
    return store


def rank(store, corpus, method: str, seed: int):
    from neuronscope.methods.linear_probe import LinearProbe
    from neuronscope.methods.probeless import Probeless

    if method == "probeless":
        return Probeless().rank(store, corpus.concept_labels("upos"))
    return LinearProbe(penalty="elasticnet", random_state=seed).rank(
        store, corpus.concept_labels("upos"))


def smollm2_part(args, results: dict) -> None:
    import torch

    from neuronscope.corpus import read_conllu
    log("\n== SmolLM2-135M-Instruct")
    loaded = load_smollm2(args.model_cache)
    log(f"  {loaded.num_layers} layers, device {loaded.device}, torch threads "
        f"{torch.get_num_threads()}, fingerprint {loaded.fingerprint}")

    if not args.ablation:
        log("\n== extraction, ranking and model-level ablation skipped (--no-ablation)")
        knowledge_part(args, loaded, results)
        return
    log(f"\n== EWT dev subset: {args.sentences} sentences of 3-{args.max_words} words "
        f"(seed {args.seed})")
    dev = subset(read_conllu(args.dev_conllu), args.sentences, args.seed, args.max_words)
    counts = dev.label_counts("upos")
    log(f"  {dev.n_sentences} sentences, {dev.n_words} words, {counts['NOUN']} NOUN")
    layers = [int(x) for x in args.layers.split(",")]
    store = store_for(dev, loaded, args.store, "mlp", layers)

    log(f"\n== ranking NOUN: {args.method} on the store (layers {layers}, "
        f"{store.n_neurons} MLP neurons)")
    t0 = time.perf_counter()
    ranking = rank(store, dev, args.method, args.seed)
    log(f"  {time.perf_counter() - t0:.0f} s; top-10 NOUN neurons: {ranking.top(10, 'NOUN')}")
    dist = {c: n for c, n in sorted(ranking.layer_counts(args.k, "NOUN").items())}
    log(f"  layers of the top-{args.k}: {dist}")
    results["ranking"] = {"method": args.method, "layers": layers, "top10": ranking.top(10, "NOUN"),
                          "top_k_layers": dist}

    ablation_part(args, loaded, dev, ranking, results)
    knowledge_part(args, loaded, results)


def ablation_part(args, loaded, dev, ranking, results: dict) -> None:
    from neuronscope.interventions import ablation_effect

    call = (f"ablation_effect(smollm2, dev_subset, ranking, 'NOUN', k={args.k}, "
            f"repeats={args.repeats}, seed={args.seed}, op='zero')")
    log(f"\n== model-level ablation\n  {call}")
    t0 = time.perf_counter()
    res = ablation_effect(loaded, dev, ranking, "NOUN", k=args.k, repeats=args.repeats,
                          seed=args.seed, op="zero", batch_size=16)
    log(f"  {time.perf_counter() - t0:.0f} s")
    cols = ["condition", "loss_concept", "loss_other", "delta_concept", "delta_other",
            "selectivity", "delta_concept_std", "acc_concept", "acc_other"]
    log(res.table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    row = res.table.iloc[0]
    log(f"  tokens: {int(row['tokens_concept'])} NOUN, {int(row['tokens_other'])} other")
    results["ablation"] = res.to_dict()


def knowledge_part(args, loaded, results: dict) -> None:
    from neuronscope.interventions import edit_effect, knowledge_neurons
    from neuronscope.interventions.sites import model_sites

    log(f"\n== knowledge neurons: knowledge_neurons(smollm2, prompt, target, paraphrases, "
        f"threshold=0.2, share=0.5, steps={args.steps}) over all "
        f"{loaded.num_layers} MLP layers")
    mlp = model_sites(loaded).components["mlp"]
    rng = np.random.default_rng(args.seed)
    found = {}
    for target, prompts in FACTS[: args.facts]:
        t0 = time.perf_counter()
        kn = knowledge_neurons(loaded, prompts[0], target, prompts[1:], threshold=0.2,
                               share=0.5, steps=args.steps)
        found[target] = (kn, prompts)
        log(f"\n  target {target!r} ({time.perf_counter() - t0:.0f} s): "
            f"{len(kn.neurons)} refined neurons {kn.neurons[:12]}"
            f"{' ...' if len(kn.neurons) > 12 else ''}")
        for a in kn.prompts:
            log(f"    {a.prompt!r}: P={a.probability:.4f} (token {a.target_token!r}), "
                f"{len(a.coarse(0.2))} coarse, top-3 {[(n, round(s, 4)) for n, s in a.top(3)]}, "
                f"max |completeness gap| {np.abs(a.gaps).max():.2e}")
        eff = kn.effects
        log("    edit_effect (suppress = zero, enhance = x2, at the predicted position):")
        log("    " + eff[["prompt", "probability", "suppressed", "enhanced", "suppress_change",
                         "enhance_change"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}").replace("\n", "\n    "))
        entry = {**kn.to_dict()}
        if kn.neurons:
            # Control: as many random MLP neurons, drawn from all layers (seeded).
            random_names = []
            while len(random_names) < len(kn.neurons):
                name = f"L{rng.choice(mlp.layers)}.mlp.{rng.integers(mlp.width)}"
                if name not in random_names and name not in kn.neurons:
                    random_names.append(name)
            ctrl = edit_effect(loaded, random_names, prompts, target)
            log(f"    control, {len(random_names)} random MLP neurons: mean suppress change "
                f"{ctrl['suppress_change'].mean():+.4f}, enhance change "
                f"{ctrl['enhance_change'].mean():+.4f} (facts' neurons: "
                f"{eff['suppress_change'].mean():+.4f}, {eff['enhance_change'].mean():+.4f})")
            entry["random_control"] = ctrl.to_dict(orient="records")
        results.setdefault("knowledge", {})[target] = entry

    # Specificity: a fact's neurons applied to another fact's prompts.
    targets = list(found)
    for i, target in enumerate(targets):
        other = targets[(i + 1) % len(targets)]
        kn = found[target][0]
        if not kn.neurons or other == target:
            continue
        cross = edit_effect(loaded, kn.neurons, found[other][1], other)
        log(f"  specificity: {target!r} neurons on {other!r} prompts: mean suppress change "
            f"{cross['suppress_change'].mean():+.4f}, enhance change "
            f"{cross['enhance_change'].mean():+.4f}")
        results["knowledge"][target]["cross_on_" + other.strip()] = cross.to_dict(
            orient="records")


def minilm_part(args, results: dict) -> None:
    """Zero MiniLM's top-k NOUN MLP neurons; does a NOUN probe on the last layer suffer?"""
    from neuronscope.corpus import read_conllu
    from neuronscope.interventions import intervene
    from neuronscope.methods.linear_probe import LinearProbe
    from neuronscope.models import load_model

    log(f"\n== MiniLM sanity check: {args.minilm_sentences} dev sentences (seed {args.seed})")
    loaded = load_model()
    dev = subset(read_conllu(args.dev_conllu), args.minilm_sentences, args.seed, args.max_words)
    work = args.store.parent / "minilm-causation"
    mlp_store = store_for(dev, loaded, work / "mlp", "mlp", None)
    ranking = rank(mlp_store, dev, args.method, args.seed)
    k = args.k
    top = ranking.top(k, "NOUN")
    bottom = [ranking.names[int(i)] for i in ranking.bottom_ids(k, "NOUN")]
    rng = np.random.default_rng(args.seed)
    pool = list(ranking.scores("NOUN"))
    randoms = [[str(n) for n in rng.choice(pool, k, replace=False)] for _ in range(args.repeats)]
    last = loaded.num_layers
    y = dev.labels_array("upos") == "NOUN"
    sent = dev.sentence_ids()
    train = sent < int(0.7 * dev.n_sentences)  # first 70% of the sentences train the probe

    def last_layer(neurons, tag):
        from neuronscope.extraction import extract

        path = work / f"hidden-{tag}"
        if neurons is None:
            store = extract(dev, path, loaded, components=("hidden",), layers=[last],
                            progress=False, overwrite=True)
        else:
            with intervene(loaded, neurons, op="zero"):
                store = extract(dev, path, loaded, components=("hidden",), layers=[last],
                                progress=False, overwrite=True)
        return store.matrix()

    x0 = last_layer(None, "none")
    probe = LinearProbe(penalty="elasticnet", random_state=args.seed).fit(x0[train], y[train])
    base = float(np.mean(probe.predict(x0[~train]) == y[~train]))
    log(f"  NOUN-vs-rest probe on L{last}.hidden, trained unablated on "
        f"{int(train.sum())} words, tested on {int((~train).sum())} words")
    log(f"  ablating (zero, all positions) k={k} of {mlp_store.n_neurons} MLP neurons "
        f"ranked by {args.method}; test accuracy:")
    out = {"none": base}
    log(f"    none   {base:.4f}")
    for tag, sets in (("top", [top]), ("random", randoms), ("bottom", [bottom])):
        accs = []
        for j, names in enumerate(sets):
            x = last_layer(names, f"{tag}{j}")
            accs.append(float(np.mean(probe.predict(x[~train]) == y[~train])))
        out[tag] = accs
        log(f"    {tag:<6} {np.mean(accs):.4f}" + (f" ± {np.std(accs):.4f} ({len(accs)} draws)"
                                                    if len(accs) > 1 else ""))
    results["minilm"] = {"k": k, "accuracy": out, "n_test": int((~train).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev-conllu", type=Path, default=DATA / "en_ewt-ud-dev.conllu")
    ap.add_argument("--model-cache", type=Path, default=ROOT / "bench/_work/smollm2-f32")
    ap.add_argument("--store", type=Path, default=ROOT / "bench/_work/smollm2-ewt-dev-mlp")
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--max-words", type=int, default=30)
    ap.add_argument("--layers", default="3,9,15,21,27", help="MLP layers to extract and rank")
    ap.add_argument("--method", choices=["probeless", "probe"], default="probeless")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3, help="random draws")
    ap.add_argument("--steps", type=int, default=20, help="integrated-gradients steps")
    ap.add_argument("--facts", type=int, default=len(FACTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-minilm", dest="minilm", action="store_false")
    ap.add_argument("--no-ablation", dest="ablation", action="store_false",
                    help="skip extraction, ranking and ablation on SmolLM2")
    ap.add_argument("--minilm-only", action="store_true", help="only the MiniLM check")
    ap.add_argument("--minilm-sentences", type=int, default=300)
    ap.add_argument("--json", type=Path, default=ROOT / "bench/_work/smollm2-causation.json")
    args = ap.parse_args()

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    log(f"command: {command}")
    log(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    results: dict = {"command": command, "date": time.strftime("%Y-%m-%d")}
    t0 = time.perf_counter()
    if not args.minilm_only:
        smollm2_part(args, results)
    if args.minilm or args.minilm_only:
        minilm_part(args, results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=1, default=str)
    log(f"\nresults: {args.json}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
