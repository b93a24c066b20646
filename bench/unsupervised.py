"""Benchmark: streamed neuron correlation + correlation clustering on MiniLM / UD EWT (issue #7).

Part "hidden": the MiniLM `hidden` store of EWT train (bench/_work/minilm-ewt-train,
204,577 words x 2,688 neurons; extracted if missing): the full correlation matrix (streamed
by word chunks) and the redundancy clustering (average linkage, |rho| >= 0.7, with layer
CKA / max-correlation). Target: <= 30 s, peak RSS <= 1.5 GB.

Part "mlp": `hidden,mlp` (11,904 neurons) of EWT dev (bench/_work/minilm-ewt-dev-mlp,
extracted if missing): the same, the float64 upper-triangle accumulator (about 670 MB) filled in
one pass over the words, the linkage run per connected component of |rho| >= threshold.
Targets (issue #16): <= 20 s and peak RSS <= 1.5 GB.

Each part runs in its own process so that its peak RSS is its own. Timings are wall-clock
on a shared machine; CPU seconds and the load average are printed alongside.

With ``--baseline REV`` the part also runs on the package as it was at git revision REV
(``git archive`` of its src/ into a temporary directory), old and new interleaved
``--repeat`` times, each in its own process; it prints the median seconds and peak RSS of
each with their ratio, and checks that the clusters (labels, representatives) are identical
and the correlations agree (max |corr diff|, the first run of each).

Usage: python bench/unsupervised.py [--part all|hidden|mlp] [--threshold 0.7]
                                    [--baseline REV --repeat 3]
Last line: correlation_clustering_s=<seconds of correlation + clustering, part "hidden">
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EWT = Path(os.environ.get("NEURONSCOPE_EWT", ROOT.parent / "shared" / "data" / "ud_ewt"))
WORK = ROOT / "bench" / "_work"


def open_store(split: str, components: list[str], name: str):
    """The MiniLM store of an EWT split with these components, extracted once and reused."""
    from neuronscope.corpus import read_conllu
    from neuronscope.errors import StoreError
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
    from neuronscope.extraction import extract  # torch only when extracting (peak RSS)

    t = time.perf_counter()
    store = extract(corpus, path, None, components=components, aggregation="mean",
                    overwrite=path.exists(), progress=False)
    print(f"extracted {name}: {corpus.n_words} words in {time.perf_counter() - t:.1f} s")
    return store


def peak_rss_gb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def n_passes(d: int) -> int:
    """Passes over the words of the default correlation budget (old and new package)."""
    from neuronscope.unsupervised import correlation as c

    if hasattr(c, "plan_passes"):
        return len(c.plan_passes(d, c.DEFAULT_MAX_BYTES))
    return len(c._row_blocks(d, c.DEFAULT_MAX_BYTES))  # before the tiled accumulator


def run_part(part: str, threshold: float, save: Path | None = None) -> None:
    import numpy as np

    from neuronscope.unsupervised.clustering import cluster_correlations
    from neuronscope.unsupervised.correlation import correlation_matrix

    if part == "hidden":
        store = open_store("train", ["hidden"], "minilm-ewt-train")
    else:
        store = open_store("dev", ["hidden", "mlp"], "minilm-ewt-dev-mlp")
    comps = ", ".join(f"{c}: {len(store.layout.components[c].layers)}x"
                      f"{store.layout.components[c].neurons}" for c in store.components)
    d = store.n_neurons
    passes = n_passes(d)
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
    print(f"RESULT {part} {t_corr + t_clu:.3f} {peak_rss_gb():.3f} {c_corr + c_clu:.3f}",
          flush=True)
    if save is not None:  # after the peak RSS is taken: reading the matrix back maps it
        np.save(save / "labels.npy", clusters.labels)
        np.save(save / "representatives.npy", clusters.representatives)
        np.save(save / "corr.npy", np.asarray(corr.matrix))
        if lay is not None:
            np.save(save / "cka.npy", lay.cka)


def max_abs_diff(a: Path, b: Path, rows: int = 1024) -> float:
    """Largest |a - b| of two saved matrices, read in row blocks (both memory-mapped)."""
    import numpy as np

    x, y = np.load(a, mmap_mode="r"), np.load(b, mmap_mode="r")
    if x.shape != y.shape:
        return float("inf")
    return max((float(np.max(np.abs(x[i:i + rows].astype(np.float64) - y[i:i + rows])))
                for i in range(0, len(x), rows)), default=0.0)


def compare(part: str, threshold: float, baseline: str, repeat: int) -> None:
    """Old (package at ``baseline``) and new path interleaved, each run in its own process."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="neuronscope-bench-") as tmp:
        old_src = Path(tmp) / "old"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        paths = {"old": old_src / "src", "new": ROOT / "src"}
        runs: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}  # s, GB, cpu
        for rep in range(repeat):
            for name, src in paths.items():
                save = Path(tmp) / name
                save.mkdir(exist_ok=True)
                env = dict(os.environ, PYTHONPATH=str(src))
                cmd = [sys.executable, __file__, "--part", part, "--threshold", str(threshold)]
                if rep == 0:
                    cmd += ["--save", str(save)]
                load = os.getloadavg()[0]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(proc.stdout, proc.stderr, file=sys.stderr)
                    sys.exit(f"{name} run of part {part} failed")
                line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
                seconds, rss, cpu = (float(v) for v in line.split()[2:5])
                runs[name].append((seconds, rss, cpu))
                print(f"[{part}] run {rep + 1} {name}: {seconds:.1f} s (cpu {cpu:.1f} s), peak "
                      f"RSS {rss:.2f} GB (load average {load:.1f} before, "
                      f"{os.getloadavg()[0]:.1f} after)", flush=True)
        med = {k: [statistics.median(r[i] for r in v) for i in range(3)]
               for k, v in runs.items()}
        for name, (seconds, rss, cpu) in med.items():
            print(f"[{part}] {name} ({baseline if name == 'old' else 'this tree'}): median "
                  f"{seconds:.1f} s (cpu {cpu:.1f} s), peak RSS {rss:.2f} GB over {repeat} run(s)")
        ratio = [n / o for n, o in zip(med["new"], med["old"], strict=True)]
        print(f"[{part}] new / old: time {ratio[0]:.2f}x, cpu {ratio[2]:.2f}x, "
              f"peak RSS {ratio[1]:.2f}x")
        old, new = Path(tmp) / "old", Path(tmp) / "new"
        same = all(np.array_equal(np.load(old / f), np.load(new / f))
                   for f in ("labels.npy", "representatives.npy"))
        diff = max_abs_diff(old / "corr.npy", new / "corr.npy")
        cka = (float(np.max(np.abs(np.load(old / "cka.npy") - np.load(new / "cka.npy"))))
               if (old / "cka.npy").exists() else float("nan"))
        print(f"[{part}] check: cluster labels and representatives identical: {same}; "
              f"max |corr diff| {diff:.2e}; max |CKA diff| {cka:.2e}")
        if not same or diff > 1e-6:
            sys.exit(f"part {part}: the new path differs from {baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "hidden", "mlp"], default="all")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the package of this git revision, interleaved")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (--baseline)")
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)  # --baseline's runs
    args = parser.parse_args()
    if not EWT.exists():
        sys.exit(f"needs {EWT} (UD English EWT); not found")
    if args.baseline:
        for part in (["hidden", "mlp"] if args.part == "all" else [args.part]):
            compare(part, args.threshold, args.baseline, args.repeat)
        return
    if args.part != "all":
        run_part(args.part, args.threshold, args.save)
        return
    results = {}
    for part in ("hidden", "mlp"):
        proc = subprocess.run(
            [sys.executable, __file__, "--part", part, "--threshold", str(args.threshold)],
            capture_output=True, text=True,
        )
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                _, name, seconds, rss, _cpu = line.split()
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
