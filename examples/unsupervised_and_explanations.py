"""Redundancy, cross-model similarity (issue #7) and explanations beyond labels (issue #8).

MiniLM (all-MiniLM-L6-v2, hidden states of the 7 layers x 384, word = mean of its subwords)
on UD English EWT dev. Every measured step is a ``neuronscope`` CLI command, printed before
it runs (copy-paste reproducible) and writing its full result as JSON under ``--out``; the
script then prints the numbers that docs/findings.md quotes. The planted group problems
have no CLI command and use the Python API (:func:`compare_with_probe`).

#7  (a) ``neuronscope cluster``: share of redundant neurons per layer at |rho| >= 0.7,
        clustering all layers together (Dalvi et al.'s general redundancy) and each layer
        alone (``--layers N``);
    (b) ``neuronscope select``: neurons kept by the efficient selection for UPOS at >= 97%
        of the full probe's accuracy;
    (c) ``neuronscope compare``: trained MiniLM vs a random-initialization copy on the
        first ``--subset`` dev sentences: whole-model CKA/SVCCA/PWCCA and the linear CKA of
        every layer pair (read from the JSON: the command prints only the whole-model row).
#8  (d) ``neuronscope explain``: compositional formulas (Mu & Andreas 2020) of a few
        neurons (default: the top 2 of issue #4's UPOS ranking, its first layer-3 and
        layer-6 neurons, and L0.hidden.63, the largest redundancy cluster's);
    (e) ``neuronscope concepts``: latent clusters of layers 6 and 3 (k = 200, Ward
        fitted on 10,000 sampled words) aligned with UPOS at 90%;
    (f) ``neuronscope evolve``: genetic search vs the LinearProbe top-k at equal k on UPOS;
    (g) Python API: the same comparison on planted 3-neuron groups (each neuron alone nearly
        uninformative), synthetic background and MiniLM background, k = group size.

Stores are reused when present (and checked against their corpus); otherwise they are
extracted with the embedded MiniLM (``neuronscope.extraction.extract``; the random copy with
``load_model(random_init=True)``, seed 0).

Usage:
    python examples/unsupervised_and_explanations.py [--out bench/_work/f78]
        [--store bench/_work/minilm-ewt-dev] [--subset 500] [--steps cluster,select,...]
        [--reuse]   # skip a CLI step whose JSON result already exists
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ud_ewt"
STEPS = ("cluster", "select", "compare", "explain", "concepts", "evolve", "planted")
#: Top of issue #4's UPOS ranking (ElasticNet probe on EWT train, bench/_work/ewt-upos),
#: the layer-3/6 neurons of that list, and dimension 63 (the largest redundancy cluster).
DEFAULT_NEURONS = ("L4.hidden.368", "L4.hidden.30", "L3.hidden.242", "L6.hidden.276",
                   "L0.hidden.63")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def cli() -> str:
    exe = Path(sys.executable).parent / "neuronscope"
    return str(exe) if exe.exists() else (shutil.which("neuronscope") or "neuronscope")


def run_cli(args: list[str], out: Path, reuse: bool) -> dict:
    """Run ``neuronscope ARGS --out OUT`` (printed first); return the JSON it wrote."""
    shown = "neuronscope " + " ".join(shlex.quote(a) for a in [*args, "--out", rel(out)])
    if reuse and out.exists():
        log(f"$ {shown}\n  (reusing {rel(out)})")
        return json.loads(out.read_text())
    log(f"$ {shown}")
    t0 = time.perf_counter()
    proc = subprocess.run([cli(), *args, "--out", str(out)], cwd=ROOT, text=True,
                          env={**os.environ, "COLUMNS": "160"}, capture_output=True)
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {shown}")
    log(f"  [{time.perf_counter() - t0:.0f} s wall]")
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------- stores
def open_or_extract(corpus, path: Path, random_init: bool = False):
    """The MiniLM hidden-state store of ``corpus`` at ``path``, extracted if missing."""
    from neuronscope.extraction import extract
    from neuronscope.models import load_model
    from neuronscope.store import ActivationStore

    if (path / "neuronscope.json").exists():
        store = ActivationStore(path)
        store.check_corpus(corpus)  # raises when the store was extracted from other text
        log(f"  reusing store {rel(path)} ({store.n_words} words x {store.n_neurons} neurons)")
        return store
    kind = "RANDOM-INIT (seed 0)" if random_init else "trained"
    log(f"  no store at {rel(path)}: extracting {kind} MiniLM hidden states (mean) ...")
    t0 = time.perf_counter()
    model = load_model(None, random_init=random_init, seed=0)
    store = extract(corpus, path, model, components=("hidden",), aggregation="mean",
                    progress=False)
    log(f"  extracted {store.n_words} words in {time.perf_counter() - t0:.0f} s")
    return store


# ---------------------------------------------------------------------------- #7
def report_cluster(res: dict) -> None:
    log(f"\n  redundancy at |rho| >= {res['threshold']} ({res['linkage']} linkage): "
        f"{res['n_clusters']} clusters of {res['n_neurons']} neurons")
    log(f"  {'layer':<10} {'neurons':>7} {'kept':>5} {'redundant':>9} {'share':>7}")
    red = res["redundancy"]
    for group, e in [*red["groups"].items(), ("overall", red["overall"])]:
        log(f"  {group:<10} {e['neurons']:>7} {e['kept']:>5} {e['redundant']:>9} "
            f"{e['share']:>7.1%}")
    members = [c["members"] for c in res["clusters"]]
    sizes = np.array([len(m) for m in members])
    multi = [m for m in members if len(m) > 1]
    cross = sum(len({n.split(".")[0] for n in m}) > 1 for m in multi)
    same_dim = sum(len({n.split(".")[-1] for n in m}) == 1 for m in multi)
    log(f"  cluster sizes: {int((sizes == 1).sum())} singletons, {len(multi)} clusters of >= 2 "
        f"(largest {int(sizes.max())}); of those, {cross} span several layers and "
        f"{same_dim} hold one dimension index only (the residual stream seen at several "
        "depths)")


def report_within_layer(rows: list[tuple[str, dict]]) -> None:
    log("\n  within-layer redundancy (each layer clustered alone, --layers N):")
    log(f"  {'layer':<10} {'neurons':>7} {'clusters':>8} {'redundant':>9} {'share':>7}")
    for layer, res in rows:
        e = res["redundancy"]["overall"]
        log(f"  {layer:<10} {e['neurons']:>7} {res['n_clusters']:>8} {e['redundant']:>9} "
            f"{e['share']:>7.1%}")


def report_select(res: dict) -> None:
    log(f"\n  selection for upos: top layer kept L{res['top_layer']}; after layers / "
        f"clustering: {res['n_after_layers']} / {res['n_after_clustering']}")
    log(f"  selected {res['n_selected']} of {res['n_neurons']} neurons "
        f"({res['fraction_kept']:.1%}); accuracy {res['full_accuracy']:.4f} -> "
        f"{res['selected_accuracy']:.4f} ({res['accuracy_kept']:.1%} kept, target "
        f"{res['target']:.4f}); train/predict speed-up {res['train_speedup']:.1f}x / "
        f"{res['predict_speedup']:.1f}x")


def report_compare(res: dict) -> None:
    for pair in res["pairs"]:
        log(f"\n  {pair['a']} vs {pair['b']}: CKA {pair['cka']:.3f}, SVCCA "
            f"{pair['svcca']:.3f}, PWCCA {pair['pwcca']:.3f}")
        lay = pair["layer_cka"]
        vals = np.asarray(lay["values"])
        short = [r.split(".")[0] for r in lay["cols"]]
        log(f"  layer CKA (rows: {pair['a']}, cols: {pair['b']})")
        log("  " + " " * 6 + "".join(f"{c:>7}" for c in short))
        for r, row in zip(lay["rows"], vals, strict=True):
            log(f"  {r.split('.')[0]:<6}" + "".join(f"{v:7.3f}" for v in row))
        n = min(vals.shape)
        log("  diagonal: " + ", ".join(f"L{i} {vals[i, i]:.3f}" for i in range(n)))
        best = vals.argmax(axis=1)
        log("  best random-init layer per trained layer: " + ", ".join(
            f"{short_r}->{short[b]} {vals[i, b]:.3f}"
            for i, (short_r, b) in enumerate(zip([r.split('.')[0] for r in lay["rows"]],
                                                 best, strict=True))))


# ---------------------------------------------------------------------------- #8
def report_explain(res: dict) -> None:
    log(f"\n  {res['n_atoms']} atoms")
    for e in res["explanations"]:
        best = e["formulas"][0] if e["formulas"] else None
        if best is None:
            log(f"  {e['neuron']}: empty mask")
            continue
        log(f"  {e['neuron']} (mask {e['mask_size']} of {e['n_words']} words): "
            f"{best['formula']}  IoU {best['iou']:.3f}, coverage {best['coverage']:.3f}, "
            f"precision {best['precision']:.3f}")


def report_concepts(res: dict) -> None:
    clusters = res["clusters"]
    log(f"\n  L{res['layer']}.{res['component']}: {len(clusters)} clusters ({res['method']}) "
        f"of {len(res['rows'])} words; aligned at >= {res['threshold']:.0%}")
    for layer, share in res["aligned_share"].items():
        log(f"    {layer:<10} {share:6.1%}")
    unexplained = [c for c in clusters if not c["explained"]]
    log(f"  explained by some layer: {len(clusters) - len(unexplained)}; unexplained: "
        f"{len(unexplained)}")
    tags: dict[str, int] = {}
    for c in clusters:
        for layer, label, _ in c["aligned"]:
            if layer == "upos":
                tags[label] = tags.get(label, 0) + 1
    log("  UPOS-aligned clusters per tag: " + ", ".join(
        f"{t} {n}" for t, n in sorted(tags.items(), key=lambda kv: -kv[1])))
    for c in sorted(unexplained, key=lambda c: -c["size"])[:5]:
        words = ", ".join(f"{w} ({n})" for w, n in c["top_words"][:6])
        upos = c["best"].get("upos")
        log(f"    unexplained #{c['id']} size {c['size']}: {words}; best upos "
            f"{upos[0]} {upos[1]:.0%}" if upos else f"    unexplained #{c['id']}: {words}")


def report_evolve(res: dict) -> None:
    log(f"\n  {res['label_layer']} k={res['k']}: GA ({res['ga']['size']} neurons, "
        f"{res['ga']['n_evaluations']} subsets scored) test {res['metric']} "
        f"{res['ga']['test_accuracy']:.3f} vs probe top-{res['k']} "
        f"{res['probe']['test_accuracy']:.3f}  (train {res['n_train']}, test "
        f"{res['n_test']} words)")


def planted(store, corpus, out: Path, seeds: int, repeats: int, reuse: bool) -> dict:
    """GA vs LinearProbe top-k at k = group size on planted jointly-coding groups."""
    from neuronscope.benchmark import PlantedBenchmark
    from neuronscope.explanations import (
        GeneticSelector,
        compare_with_probe,
        planted_group_problem,
    )

    if reuse and out.exists():
        log(f"  (reusing {rel(out)})")
        return json.loads(out.read_text())

    def one(x, y, group, seed, k):
        cmp = compare_with_probe(x, y, k=k, selector=GeneticSelector(random_state=seed),
                                 random_state=seed)
        g = set(group)
        return {"seed": seed, "k": k, "group": sorted(g),
                "ga_ids": cmp.ga.ids, "probe_ids": cmp.probe_ids,
                "ga_recall": len(g & set(cmp.ga.ids)) / len(g),
                "probe_recall": len(g & set(cmp.probe_ids)) / len(g),
                "ga_test": cmp.ga_accuracy, "probe_test": cmp.probe_accuracy,
                "metric": cmp.metric, "n_test": cmp.n_test}

    rows: dict[str, list] = {"synthetic": [], "minilm": []}
    log("  synthetic: planted_group_problem(n_words=2000, n_background=60, group_size=3, "
        "snr=4.0, random_state=s); compare_with_probe(x, y, k=3, GeneticSelector("
        "random_state=s), random_state=s)")
    for s in range(seeds):
        p = planted_group_problem(2000, 60, 3, 4.0, random_state=s)
        r = one(p.x, p.y, p.group, s, 3)
        rows["synthetic"].append(r)
        log(f"    seed {s}: GA recall {r['ga_recall']:.2f} test {r['ga_test']:.3f} | probe "
            f"recall {r['probe_recall']:.2f} test {r['probe_test']:.3f}")
    params = dict(kinds=("group",), snrs=(2.0, 4.0), n_concepts=2, group_size=3,
                  max_words=5000, max_background=300, random_state=0)
    log(f"  MiniLM background: PlantedBenchmark({params}).build_repeats(dev store, upos, "
        f"{repeats}) (repeat r: random_state r); per group unit: concept vs rest, "
        "compare_with_probe(k=3, GeneticSelector(random_state=r), random_state=r)")
    instances = PlantedBenchmark(**params).build_repeats(store, corpus.concept_labels("upos"),
                                                         repeats)
    for r_i, data in enumerate(instances):
        for unit in data.units:
            concept = unit.concepts[0]
            y = np.where(data.labels == concept, "concept", "other").astype(object)
            r = one(data.activations, y, list(unit.ids), r_i, 3)
            r.update(concept=concept, snr=unit.snr, n_concept=int((y == "concept").sum()),
                     repeat=r_i)
            rows["minilm"].append(r)
            log(f"    repeat {r_i} {concept:>6} snr {unit.snr:g} ({r['n_concept']} words): GA "
                f"recall {r['ga_recall']:.2f} test {r['ga_test']:.3f} | probe recall "
                f"{r['probe_recall']:.2f} test {r['probe_test']:.3f}")
    for name, rs in rows.items():
        ga = np.mean([r["ga_recall"] for r in rs])
        pr = np.mean([r["probe_recall"] for r in rs])
        wins = sum(r["ga_test"] > r["probe_test"] + 0.01 for r in rs)
        losses = sum(r["ga_test"] < r["probe_test"] - 0.01 for r in rs)
        log(f"  {name}: {len(rs)} problems; mean group recall GA {ga:.2f} vs probe {pr:.2f}; "
            f"mean test {rs[0]['metric']} GA {np.mean([r['ga_test'] for r in rs]):.3f} vs "
            f"probe {np.mean([r['probe_test'] for r in rs]):.3f}; GA better / worse by > 0.01: "
            f"{wins} / {losses}")
    result = {"synthetic": rows["synthetic"], "minilm": rows["minilm"],
              "minilm_params": {k: list(v) if isinstance(v, tuple) else v
                                for k, v in params.items()},
              "n_columns_minilm": int(data.activations.shape[1])}
    out.write_text(json.dumps(result, indent=1))
    log(f"  wrote {rel(out)}")
    return result


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "_work" / "f78")
    ap.add_argument("--store", type=Path, default=ROOT / "bench" / "_work" / "minilm-ewt-dev")
    ap.add_argument("--dev", type=Path, default=DATA / "en_ewt-ud-dev.conllu")
    ap.add_argument("--subset", type=int, default=500,
                    help="first N dev sentences for the trained vs random-init comparison")
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--neurons", nargs="+", default=list(DEFAULT_NEURONS))
    ap.add_argument("--concepts-sample", type=int, default=10000,
                    help="words the latent clustering is fitted on (--max-fit-words)")
    ap.add_argument("--extra-thresholds", type=float, nargs="*", default=[0.5, 0.3],
                    help="also cluster at these |rho| thresholds (all layers, each layer)")
    ap.add_argument("--concept-layers", type=int, nargs="+", default=[6, 3])
    ap.add_argument("--evolve-k", type=int, default=10)
    ap.add_argument("--planted-seeds", type=int, default=4,
                    help="synthetic planted problems (seeds 0..N-1)")
    ap.add_argument("--planted-repeats", type=int, default=3,
                    help="planted instances on the MiniLM background (2 SNRs x 2 concepts each)")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise SystemExit(f"unknown steps {sorted(unknown)}; valid: {', '.join(STEPS)}")

    from neuronscope.corpus import read_conllu, write_conllu

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    log(f"== stores (neuronscope {__import__('neuronscope').__version__})")
    dev = read_conllu(args.dev)
    store = open_or_extract(dev, args.store)
    sdev = rel(args.dev)
    sstore = rel(args.store)

    if "cluster" in steps:
        log("\n== #7 (a) correlation clustering: redundant neurons per layer")
        report_cluster(run_cli(["cluster", sstore, "--threshold", "0.7"],
                               out / "cluster.json", args.reuse))
        report_within_layer([(f"L{n}.hidden", run_cli(
            ["cluster", sstore, "--threshold", "0.7", "--layers", str(n)],
            out / f"cluster-L{n}.json", args.reuse))
            for n in store.layout.components["hidden"].layers])
        for t in args.extra_thresholds:
            res = run_cli(["cluster", sstore, "--threshold", str(t)],
                          out / f"cluster-t{t}.json", args.reuse)
            report_cluster(res)
            report_within_layer([(f"L{n}.hidden", run_cli(
                ["cluster", sstore, "--threshold", str(t), "--layers", str(n)],
                out / f"cluster-t{t}-L{n}.json", args.reuse))
                for n in store.layout.components["hidden"].layers])
    if "select" in steps:
        log("\n== #7 (b) efficient neuron selection for UPOS")
        report_select(run_cli(["select", sstore, sdev, "--labels", "upos", "--keep", "0.97"],
                              out / "select.json", args.reuse))
    if "compare" in steps:
        log(f"\n== #7 (c) trained vs random-init MiniLM on the first {args.subset} dev "
            "sentences")
        sub_path = out / f"ewt-dev-{args.subset}.conllu"
        sub = dev.subset(range(args.subset))
        if not sub_path.exists():
            write_conllu(sub, sub_path)
            log(f"  wrote {rel(sub_path)} ({sub.n_sentences} sentences, {sub.n_words} words)")
        sub = read_conllu(sub_path)
        trained = out / f"minilm-dev{args.subset}"
        random = out / f"minilm-dev{args.subset}-random"
        open_or_extract(sub, trained)
        open_or_extract(sub, random, random_init=True)
        report_compare(run_cli(["compare", rel(trained), rel(random)],
                               out / "compare.json", args.reuse))
        for name, path in (("trained", trained), ("random-init", random)):
            res = run_cli(["cluster", rel(path), "--threshold", "0.7"],
                          out / f"cluster-{path.name}.json", args.reuse)
            cka = np.asarray(res["layers"]["cka"])
            log(f"  {name} subset store: redundancy {res['redundancy']['overall']['share']:.1%}"
                f"; CKA of adjacent layers " + ", ".join(
                    f"{cka[i, i + 1]:.2f}" for i in range(len(cka) - 1))
                + f"; L0 vs L{len(cka) - 1} {cka[0, -1]:.2f}")
    if "explain" in steps:
        log("\n== #8 (d) compositional explanations")
        nargs = [a for n in args.neurons for a in ("--neuron", n)]
        report_explain(run_cli(["explain", sstore, sdev, *nargs], out / "explain.json",
                               args.reuse))
    if "concepts" in steps:
        for layer in args.concept_layers:
            log(f"\n== #8 (e) latent concepts of layer {layer} aligned with UPOS")
            report_concepts(run_cli(["concepts", sstore, sdev, "--layer", str(layer), "-k",
                                     "200", "--max-fit-words", str(args.concepts_sample)],
                                    out / f"concepts-L{layer}.json", args.reuse))
    if "evolve" in steps:
        log(f"\n== #8 (f) genetic search vs LinearProbe top-{args.evolve_k} on UPOS")
        report_evolve(run_cli(["evolve", sstore, sdev, "--labels", "upos", "-k",
                               str(args.evolve_k)], out / f"evolve-upos-k{args.evolve_k}.json",
                              args.reuse))
    if "planted" in steps:
        log("\n== #8 (g) genetic search vs LinearProbe top-k on planted groups (k = 3)")
        planted(store, dev, out / "planted-groups.json", args.planted_seeds,
                args.planted_repeats, args.reuse)
    log(f"\ndone in {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
