"""Benchmark: scale (issue #15): early stop, Dask, bfloat16, memory against corpus size.

Parts (``--parts``, comma-separated; all by default):

- ``early``: MiniLM hidden layers 0-1 of the first ``--sentences`` sentences of UD EWT train
  (the forward pass ends after block 0) against the bare full forward pass over the same
  blocks and batches (``bench/extract.py``'s baseline); interleaved, medians of
  ``--repeats``. Figure: ``early_stop_ratio=<layers 0-1 extraction / full bare forward>``.
- ``distributed``: the same sentences, all MiniLM hidden layers, extracted by one process and
  by a 2-worker ``LocalCluster`` (started before the clock runs) into two stores. Figures:
  ``distributed_equal=1`` when every array is bitwise equal, ``distributed_wall_ratio=<2
  workers / 1 process>`` (on this 2-core machine the single process already uses both
  cores, so no speed-up is expected: Dask is for several machines).
- ``bf16``: the same sentences with bfloat16 compute against float32. Figure:
  ``bf16_max_rel_diff=<max |bf16 - f32| / max |f32|>`` (bfloat16 keeps 8 bits of mantissa:
  about 4e-3 per operation).
- ``rss``: synthetic stores (``store_from_arrays``; 17 classes, 2,688 neurons, a few
  neurons carrying the class) of ``--sizes`` words; ``rank --memory 2GB`` (``--memory``:
  the same budget at every size; 2 GB holds the Gaussian probe's fixed state of about
  1.1 GB) with every supervised ranker (the probe trains a classifier) in its own process,
  its peak RSS recorded. Without a budget the linear probe loads the selection whenever it
  fits in half the available memory (faster); the budget makes it stream. Figure, last
  line: ``rss_growth_50k_to_800k=<largest over rankers of the largest peak RSS at any size /
  peak RSS at the smallest>`` (goal <= 1.2; named after the default sizes).

The load average is printed with every figure. Usage:
python bench/scale.py [--parts early,distributed,bf16,rss] [--sentences 1000] [--repeats 3]
    [--sizes 50000,200000,800000] [--neurons 2688] [--memory 2GB] [--methods probe,ap,...]
    [--work /tmp/neuronscope-scale]
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
EWT = Path(os.environ.get("NEURONSCOPE_EWT", ROOT.parent / "shared" / "data" / "ud_ewt"))
METHODS = ("probeless", "selectivity", "iou", "ap", "gaussian", "probe")
N_CLASSES = 17


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def ewt_sentences(n: int):
    from neuronscope.corpus import read_conllu

    corpus = read_conllu(EWT / "en_ewt-ud-train.conllu")
    return corpus.subset(range(min(n, corpus.n_sentences)))


def part_early(corpus, loaded, args) -> None:
    from extract import bare_forward  # sibling benchmark

    from neuronscope.extraction import extract

    bare, early = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            bare.append(bare_forward(corpus, loaded, args.batch_size, 16384))
            start = time.perf_counter()
            extract(corpus, Path(tmp) / f"early{r}", loaded, components=["hidden"],
                    layers="0-1", batch_size=args.batch_size, progress=False)
            early.append(time.perf_counter() - start)
    b, e = statistics.median(bare), statistics.median(early)
    print(f"bare_full_forward_s={b:.2f} (runs {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"extract_layers_0_1_s={e:.2f} (runs {', '.join(f'{x:.2f}' for x in early)})")
    print(f"early_stop_ratio={e / b:.3f} ({load()})")


def _arrays_equal(a, b) -> bool:
    for name in a.components:
        for kind in ("activations", "sentences"):
            x, y = a._group[f"{kind}/{name}"][:], b._group[f"{kind}/{name}"][:]
            if np.asarray(x).tobytes() != np.asarray(y).tobytes():
                return False
    return a.components == b.components


def part_distributed(corpus, loaded, args) -> None:
    from neuronscope.distributed import connect, extract_on
    from neuronscope.extraction import extract
    from neuronscope.store.store import block_bounds

    with tempfile.TemporaryDirectory() as tmp, connect("local:2") as client:
        client.run(lambda: __import__("neuronscope.distributed.extraction"))  # warm imports
        # 4 MiB blocks (~390 words of MiniLM hidden): many blocks, so both workers write.
        opts = {"batch_size": args.batch_size, "progress": False, "block_bytes": 4 * 2**20}
        start = time.perf_counter()
        one = extract(corpus, Path(tmp) / "one", loaded, **opts)
        t_one = time.perf_counter() - start
        start = time.perf_counter()
        two = extract_on(client, corpus, Path(tmp) / "two", loaded, **opts)
        t_two = time.perf_counter() - start
        equal = _arrays_equal(one, two)
    blocks = len(block_bounds(corpus.sentence_lengths(), int(one.meta["block_words"])))
    print(f"one_process_s={t_one:.2f} two_workers_s={t_two:.2f} ({corpus.n_words} words, "
          f"{blocks} blocks)")
    print(f"distributed_equal={int(equal)}")
    print(f"distributed_wall_ratio={t_two / t_one:.2f} ({load()})")


def part_bf16(corpus, args) -> None:
    from neuronscope.extraction import extract
    from neuronscope.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        stores = {dt: extract(corpus, Path(tmp) / dt, load_model(dtype=dt), progress=False,
                              batch_size=args.batch_size) for dt in ("float32", "bfloat16")}
        a, b = stores["float32"].matrix(), stores["bfloat16"].matrix()
    rel = float(np.abs(b - a).max() / np.abs(a).max())
    typical = float(np.median(np.abs(b - a)) / np.median(np.abs(a)))
    print(f"bf16 median |diff| / median |f32| = {typical:.2e}")
    print(f"bf16_max_rel_diff={rel:.2e} ({load()})")


def synthetic(n_words: int, neurons: int, work: Path):
    """A synthetic corpus (20-word sentences, 17 classes) and its store, written once."""
    from neuronscope.corpus.corpus import Corpus
    from neuronscope.errors import StoreError
    from neuronscope.store import ActivationStore
    from neuronscope.store.store import store_from_arrays

    n_sent = n_words // 20
    tags = [f"C{i}" for i in range(N_CLASSES)]
    # The sentences share one 20-word vocabulary (as a reader that interns its words holds
    # it) and the 17 label patterns are shared lists: ``Corpus`` copies every sentence's
    # lists, so the corpus costs its own lists and no more (800k distinct word strings and
    # a second set of lists would add about 60 MB of the benchmark's own).
    patterns = [[tags[(7 * s + j) % N_CLASSES] for j in range(20)] for s in range(N_CLASSES)]
    labels = [patterns[s % N_CLASSES] for s in range(n_sent)]
    vocabulary = [f"w{j}" for j in range(20)]
    corpus = Corpus([vocabulary] * n_sent, {"upos": labels}, name=f"synthetic-{n_words}")
    del labels
    path = work / f"store-{n_words}x{neurons}"
    try:
        store = ActivationStore(path)
        store.check_corpus(corpus)
        return corpus, store
    except StoreError:
        pass
    # Generated into a memory-mapped file block by block: memory stays flat at any size.
    raw = np.lib.format.open_memmap(work / "raw.npy", mode="w+", dtype=np.float32,
                                    shape=(corpus.n_words, neurons))
    code = np.array([int(t[1:]) for row in corpus.labels["upos"] for t in row])
    rng = np.random.default_rng(0)
    for a in range(0, corpus.n_words, 65536):
        b = min(a + 65536, corpus.n_words)
        block = rng.standard_normal((b - a, neurons), dtype=np.float32)
        block[:, :N_CLASSES] += 2.0 * np.eye(N_CLASSES, dtype=np.float32)[code[a:b]]
        raw[a:b] = block
    raw.flush()
    store = store_from_arrays(path, corpus, {"hidden": raw}, overwrite=path.exists())
    del raw
    (work / "raw.npy").unlink()
    return corpus, store


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: ``VmHWM`` of /proc/self/status where there is one.

    Not ``ru_maxrss``: Linux carries the parent's RSS at fork into the child's ``ru_maxrss``
    across ``exec`` (every child then reported the parent's ~1.2-2.8 GB, which had just
    written the synthetic store), while ``VmHWM`` belongs to the new process image alone.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def child_rank(n_words: int, neurons: int, work: Path, method: str, memory: str) -> None:
    from neuronscope.methods import build_method

    corpus, store = synthetic(n_words, neurons, work)
    base = peak_rss_mb()
    start = time.perf_counter()
    ranker = build_method(method, {"memory": memory}, random_state=0)
    ranking = ranker.rank(store, corpus.concept_labels("upos"))
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    top = int(ranking.global_order[0])
    print(f"CHILD {peak:.1f} {base:.1f} {seconds:.2f} {top}")


def part_rss(args) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    peaks: dict[str, list[float]] = {m: [] for m in methods}
    for n in sizes:
        synthetic(n, args.neurons, work)
        gb = n * args.neurons * 4 / 1e9
        for method in methods:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", method, "--sizes", str(n), "--neurons",
                 str(args.neurons), "--work", str(work), "--memory", args.memory],
                capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("CHILD ")]
            if proc.returncode != 0 or not line:
                print(f"{method} at {n} words failed: {proc.stderr.strip()[-400:]}")
                peaks[method].append(float("nan"))
                continue
            peak, base, seconds, top = line[0].split()[1:]
            peaks[method].append(float(peak))
            print(f"rank {method:11s} {n:>7d} words x {args.neurons} ({gb:.2f} GB store): "
                  f"peak RSS {float(peak):7.0f} MB (store opened: {float(base):.0f} MB), "
                  f"{float(seconds):6.1f} s, top neuron {top} ({load()})")
    # The largest peak at any size, not only at the largest: a bump in between counts too.
    growth = {m: max(p) / p[0] for m, p in peaks.items() if len(p) > 1 and p[0] == p[0]}
    print(f"peak RSS growth (rank --memory {args.memory}), largest peak at any size / peak at "
          "the smallest corpus: "
          + ", ".join(f"{m} {g:.2f}" for m, g in growth.items()))
    worst = max(growth.values()) if growth else float("nan")
    print(f"rss_growth_50k_to_800k={worst:.2f} (sizes {sizes[0]} -> {sizes[-1]}; {load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="early,distributed,bf16,rss")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sizes", default="50000,200000,800000")
    parser.add_argument("--neurons", type=int, default=2688)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "neuronscope-scale"))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="rankers of the rss part (comma-separated)")
    parser.add_argument("--memory", default="2GB",
                        help="the memory budget every ranker gets (rank --memory)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_rank(int(args.sizes), args.neurons, Path(args.work), args.child, args.memory)
        return
    parts = set(args.parts.split(","))
    if parts & {"early", "distributed", "bf16"}:
        from neuronscope.models import load_model

        corpus = ewt_sentences(args.sentences)
        loaded = load_model()
        print(f"corpus: {corpus.n_sentences} EWT train sentences, {corpus.n_words} words; "
              f"{load()} on {os.cpu_count()} cores")
        if "early" in parts:
            part_early(corpus, loaded, args)
        if "distributed" in parts:
            part_distributed(corpus, loaded, args)
        if "bf16" in parts:
            part_bf16(corpus, args)
    if "rss" in parts:
        part_rss(args)


if __name__ == "__main__":
    main()
