"""Benchmark: overhead of an intervention on a forward pass (issue #5 target: <= 1.10).

MiniLM (the embedded default model), one batch of 32 sentences of the demo corpus, padded.
A plain forward and forwards under an intervention on 100 MLP neurons (spread over all six
layers, seeded) run back to back in every repeat, in alternating order. On a shared, busy
machine the load drifts between repeats, so each repeat gives a paired ratio (intervened /
plain) and the reported overhead is the median of those ratios; median times are printed too.
``--ops`` picks the ops timed: ``zero`` edits with one ``index_fill``; ``scale`` (like mean,
constant and add) copies the tensor and writes the chosen columns, the costlier path. The
headline is the slowest op.

Usage: python bench/interventions.py [--repeats 25] [--ops zero,scale,zero@last] [--neurons 100]
Last line: intervention_overhead=<median paired ratio of the slowest op>
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--ops", default="zero,scale,zero@last",
                        help="comma-separated: zero, mean, constant, scale, add, zero@last")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    from neuronscope.corpus import load_demo_corpus
    from neuronscope.interventions import intervene
    from neuronscope.interventions.sites import model_sites
    from neuronscope.models import load_model

    loaded = load_model()
    corpus = load_demo_corpus()
    sentences = corpus.sentences[: args.batch_size]
    enc = loaded.tokenizer(sentences, is_split_into_words=True, padding=True,
                           return_tensors="pt").to(loaded.device)
    model = loaded.model
    mlp = model_sites(loaded).components["mlp"]
    rng = np.random.default_rng(0)
    layers = np.arange(args.neurons) % len(mlp.layers)  # spread evenly over the layers
    names = sorted({f"L{mlp.layers[layer]}.mlp.{i}"
                    for layer, i in zip(layers, rng.choice(mlp.width, args.neurons),
                                        strict=True)})
    while len(names) < args.neurons:  # collisions: top up with more random neurons
        extra = f"L{rng.choice(mlp.layers)}.mlp.{rng.integers(mlp.width)}"
        names = sorted(set(names) | {extra})
    means = rng.normal(size=len(names)).astype(np.float32)
    variants = {
        "zero": {"op": "zero"},
        "mean": {"op": "mean", "value": means},
        "constant": {"op": "constant", "value": 1.5},
        "scale": {"op": "scale", "value": 2.0},
        "add": {"op": "add", "value": means},
        "zero@last": {"op": "zero", "positions": "last"},
    }
    chosen = [op.strip() for op in args.ops.split(",") if op.strip()]
    unknown = [op for op in chosen if op not in variants]
    if unknown:
        raise SystemExit(f"unknown ops {unknown}; valid: {', '.join(variants)}")
    variants = {k: variants[k] for k in chosen}
    interventions = {k: intervene(loaded, names, **v) for k, v in variants.items()}
    print(f"model all-MiniLM-L6-v2, device {loaded.device}, batch "
          f"{tuple(enc['input_ids'].shape)}, {len(names)} neurons over "
          f"{len({n.split('.')[0] for n in names})} mlp layers, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats")

    def run_once() -> float:
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(**enc)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"plain": [], **{k: [] for k in variants}}
    with torch.inference_mode():
        for _ in range(args.warmup):
            run_once()
        for r in range(args.repeats):
            # Alternate the order every repeat so drifts in machine load hit both sides.
            order = ["plain", *variants] if r % 2 == 0 else [*variants, "plain"]
            for key in order:
                if key == "plain":
                    times[key].append(run_once())
                else:
                    with interventions[key]:
                        times[key].append(run_once())
    plain = statistics.median(times["plain"])
    one, five, _ = os.getloadavg()
    print(f"{'plain':>10}: median {plain * 1000:8.2f} ms  (load_avg_1m={one:.2f} "
          f"load_avg_5m={five:.2f})")
    ratios = {}
    for key in variants:
        paired = [t / p for t, p in zip(times[key], times["plain"], strict=True)]
        ratios[key] = statistics.median(paired)
        print(f"{key:>10}: median {statistics.median(times[key]) * 1000:8.2f} ms  "
              f"paired ratio median {ratios[key]:.3f} (quartiles "
              f"{np.percentile(paired, 25):.3f}-{np.percentile(paired, 75):.3f})")
    # The edit work alone, on real activations: a load-independent view of the overhead.
    from neuronscope.extraction.hooks import Trace

    modules = [s.module for s in next(iter(interventions.values())).sites]
    with torch.inference_mode(), Trace(model, modules, retain_output=False,
                                       retain_input=True) as trace:
        model(**enc)
    for key, iv in interventions.items():
        start = time.perf_counter()
        n = 20
        with torch.inference_mode():
            for _ in range(n):
                for site in iv.sites:
                    iv._edit(site, trace.inputs[site.module])
        cost = (time.perf_counter() - start) / n
        print(f"{key:>10}: edits alone {cost * 1000:.2f} ms per forward "
              f"({cost / plain:.2%} of a plain forward)")
    worst = max(ratios, key=ratios.get)
    print(f"slowest op: {worst}")
    one, five, _ = os.getloadavg()
    print(f"load at the end: load_avg_1m={one:.2f} load_avg_5m={five:.2f}")
    print(f"intervention_overhead={ratios[worst]:.3f}")


if __name__ == "__main__":
    main()
