"""Benchmark: streamed neuron correlation + correlation clustering on MiniLM / UD EWT (issue #7).

Part "hidden": the MiniLM `hidden` store of EWT train (bench/_work/minilm-ewt-train,
204,577 words x 2,688 neurons; extracted if missing): the full correlation matrix (streamed
by word chunks) and the redundancy clustering (average linkage, |rho| >= 0.7, with layer
CKA / max-correlation). Target: <= 30 s, peak RSS <= 1.5 GB.

Part "mlp": `hidden,mlp` (11,904 neurons) of EWT dev (bench/_work/minilm-ewt-dev-mlp,
extracted if missing): the same with the correlation built by neuron blocks (float64
accumulator budget 512 MiB), to show it completes within memory.

Each part runs in its own process so that its peak RSS is its own. Timings are wall-clock
on a shared machine; CPU seconds and the load average are printed alongside.

Usage: python bench/unsupervised.py [--part all|hidden|mlp] [--threshold 0.7]
Last line: correlation_clustering_s=<seconds of correlation + clustering, part "hidden">
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EWT = Path(os.environ.get("NEURONSCOPE_EWT", ROOT.parent / "shared" / "data" / "ud_ewt"))
WORK = ROOT / "bench" / "_work"


def open_store(split: str, components: list[str], name: str):
    """The MiniLM store of an EWT split with these components, extracted once and reused."""
    from neuronscope.corpus import read_conllu
    from neuronscope.errors import StoreError
    from neuronscope.extraction import extract
    from neuronscope.store import ActivationStore

    corpus = read_conllu(EWT / f"en_ewt-ud-{split}.conllu")
    path = WORK / name
    try:
        store = ActivationStore(path)
        store.check_corpus(corpus)
        if sorted(store.components) == sorted(components):
            return store
    except StoreError:
        pass
    t = time.perf_counter()
    store = extract(corpus, path, None, components=components, aggregation="mean",
                    overwrite=path.exists(), progress=False)
    print(f"extracted {name}: {corpus.n_words} words in {time.perf_counter() - t:.1f} s")
    return store


def peak_rss_gb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_part(part: str, threshold: float) -> None:
    from neuronscope.unsupervised.clustering import cluster_correlations
    from neuronscope.unsupervised.correlation import (
        DEFAULT_MAX_BYTES,
        _row_blocks,
        correlation_matrix,
    )

    if part == "hidden":
        store = open_store("train", ["hidden"], "minilm-ewt-train")
    else:
        store = open_store("dev", ["hidden", "mlp"], "minilm-ewt-dev-mlp")
    comps = ", ".join(f"{c}: {len(store.layout.components[c].layers)}x"
                      f"{store.layout.components[c].neurons}" for c in store.components)
    d = store.n_neurons
    passes = len(_row_blocks(d, DEFAULT_MAX_BYTES))
    print(f"[{part}] store {store.path.relative_to(ROOT)}: {store.n_words} words x {d} neurons "
          f"({comps}); {passes} pass(es) over the words; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    wall, cpu = time.perf_counter(), time.process_time()
    corr = correlation_matrix(store)
    t_corr, c_corr = time.perf_counter() - wall, time.process_time() - cpu
    print(f"[{part}] correlation matrix: {t_corr:.1f} s (cpu {c_corr:.1f} s), "
          f"{len(corr.constant)} constant neuron(s), peak RSS {peak_rss_gb():.2f} GB")
    wall, cpu = time.perf_counter(), time.process_time()
    clusters = cluster_correlations(corr, threshold=threshold, layers=True)
    t_clu, c_clu = time.perf_counter() - wall, time.process_time() - cpu
    red = clusters.redundancy
    print(f"[{part}] clustering (average linkage, |rho| >= {threshold}) + layer similarity: "
          f"{t_clu:.1f} s (cpu {c_clu:.1f} s): {clusters.n_clusters} clusters, "
          f"{red['overall']['share']:.1%} of neurons redundant")
    shares = ", ".join(f"{g} {e['share']:.0%}" for g, e in red["groups"].items())
    print(f"[{part}] redundant share per layer: {shares}")
    lay = clusters.layers
    if lay is not None and len(lay.labels) > 1:
        adjacent = ", ".join(f"{a}~{b} {lay.cka[i, i + 1]:.2f}"
                             for i, (a, b) in enumerate(zip(lay.labels, lay.labels[1:],
                                                            strict=False)))
        print(f"[{part}] CKA of adjacent layer groups: {adjacent}")
    print(f"[{part}] total {t_corr + t_clu:.1f} s, peak RSS {peak_rss_gb():.2f} GB, "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"RESULT {part} {t_corr + t_clu:.3f} {peak_rss_gb():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "hidden", "mlp"], default="all")
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    if not EWT.exists():
        sys.exit(f"needs {EWT} (UD English EWT); not found")
    if args.part != "all":
        run_part(args.part, args.threshold)
        return
    results = {}
    for part in ("hidden", "mlp"):
        proc = subprocess.run(
            [sys.executable, __file__, "--part", part, "--threshold", str(args.threshold)],
            capture_output=True, text=True,
        )
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                _, name, seconds, rss = line.split()
                results[name] = (float(seconds), float(rss))
            else:
                print(line)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            sys.exit(f"part {part} failed")
    for name, (seconds, rss) in results.items():
        print(f"{name}: correlation + clustering {seconds:.1f} s, peak RSS {rss:.2f} GB")
    print(f"correlation_clustering_s={results['hidden'][0]:.2f}")


if __name__ == "__main__":
    main()
