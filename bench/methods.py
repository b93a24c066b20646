"""Benchmark: every ranking method on MiniLM/UD EWT, held out, with its controls (issue #13).

Extracts (or reuses, under ``--work``, default bench/_work/methods/) MiniLM ``hidden`` stores
of EWT train and dev (7 layers x 384 = 2,688 neurons, word = mean of its subwords), then:

1. ranks UPOS neurons with every method on a seeded subset of *train* sentences
   (``--train-sentences``; all methods see the same words);
2. for k = 10, 50, 100 retrains an evaluation probe (``LinearProbe.for_evaluation``) on the
   top-k, bottom-k and ``--n-random`` random-k neurons of each global order (train subset)
   and scores it on all *dev* sentences, which no ranking saw; prints top / random mean ± sd /
   bottom and marks with ``*`` every top-k that is not above random + 2 sd;
3. prints the default probe's dev accuracy next to scikit-learn's converged
   ``LogisticRegression(solver="saga")`` with the same penalty (the chosen ``alpha_``) on
   the same standardized features and words (``--sklearn-words`` of the train subset).

The train store's read speed is printed first and last: ``store_read_gb_per_s=`` (full
matrix, fast path, checksums on) with one layer and ``zarr.open_array(...)[:]`` measured in
the same run, the calls alternating (issue #16). ``--read-only`` prints that line and stops;
with ``--baseline-ref REF`` it also times the fast read path as of git ``REF`` in the same
process, alternating with the current one, and prints both and their ratio.

With ``--probe-timing`` it only times the linear probe on *all* of EWT train (204,577 words
x 2,688 neurons, loaded in memory) and scores it on dev: a single fit
(``LinearProbe.for_evaluation``) and the default with regularization selection, each with
its dev accuracy and the load average, and as a load-independent figure the time in units
of one full data pass (a forward and a backward matmul over every training row, measured in
the same run). Issue #16's targets: single fit <= 8 s, default <= 25 s at equal accuracy.

Usage: python bench/methods.py [--train-sentences 2000] [--n-random 5] [--ks 10 50 100]
       python bench/methods.py --probe-timing [--work DIR]
       python bench/methods.py --read-only [--baseline-ref REF] [--read-repeat 5]

``--timing-only`` (issue #16): times the corpus rankers (iou, ap, probeless, selectivity) on
all of EWT train in memory (204,577 words x 2,688 neurons x 17 UPOS concepts), next to a
baseline measured in the same run (one float64 column-sum pass over the matrix), with the
load average; ``--baseline-ref REF`` also runs the same timing with the package as of git
``REF`` (in a subprocess) and prints the speed-up and the largest score difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

EWT = Path(os.environ.get("NEURONSCOPE_EWT",
                         Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_ewt"))


def open_or_extract(conllu: Path, path: Path, model=None, log=print):
    """The ``hidden`` store (word = mean of its subwords) of a CoNLL-U file, extracted once.

    ``model``: a loaded model or name for :func:`neuronscope.extraction.extract` (``None``:
    the embedded MiniLM). A store found at ``path`` is checked against the corpus.
    """
    from neuronscope.corpus import read_conllu
    from neuronscope.extraction import extract
    from neuronscope.store import ActivationStore

    corpus = read_conllu(conllu)
    if (path / "neuronscope.json").exists():
        store = ActivationStore(path)
        store.check_corpus(corpus)
        return store, corpus
    t = time.perf_counter()
    store = extract(corpus, path, model, components=["hidden"], aggregation="mean",
                    progress=False)
    log(f"extracted {conllu.name}: {corpus.n_words} words in {time.perf_counter() - t:.0f} s")
    return store, corpus


def store_for(split: str, work: Path):
    """The MiniLM hidden store of an EWT split, extracted once and reused."""
    return open_or_extract(EWT / f"en_ewt-ud-{split}.conllu", work / f"minilm-ewt-{split}")


def train_subset(train, train_corpus, n_sentences: int, rng, layer: str = "upos"):
    """Rows of a seeded subset of ``n_sentences`` train sentences: ``(x, y, groups)``."""
    n_sentences = min(n_sentences, train_corpus.n_sentences)
    chosen = np.sort(rng.choice(train_corpus.n_sentences, n_sentences, replace=False))
    sentence = train.sentence_ids()
    rows = np.isin(sentence, chosen)
    return (np.ascontiguousarray(train.matrix()[rows]),
            train_corpus.labels_array(layer)[rows], sentence[rows])


def held_out_scorer(x, y, groups, x_dev, y_dev, seed: int):
    """``score(cols)``: dev accuracy of an evaluation probe trained on these train columns."""
    from neuronscope.methods.linear_probe import LinearProbe

    def held_out(cols: np.ndarray) -> float:
        probe = LinearProbe.for_evaluation(seed)
        probe.fit(np.ascontiguousarray(x[:, cols]), y, groups)
        return float(np.mean(probe.predict(np.ascontiguousarray(x_dev[:, cols])) == y_dev))

    return held_out


def random_bands(held_out, n_neurons: int, ks, n_random: int, rng) -> dict:
    """k -> (mean, sd) of the held-out accuracy of ``n_random`` random-k sets."""
    bands = {}
    for k in ks:
        draws = [held_out(np.sort(rng.choice(n_neurons, k, replace=False)))
                 for _ in range(n_random)]
        bands[k] = (float(np.mean(draws)), float(np.std(draws)))
    return bands


def rank_method(name: str, x, y, groups):
    """``(method, ranking, seconds)``: the method ``name`` with its defaults on train rows."""
    from neuronscope.methods import get_method
    from neuronscope.methods.linear_probe import LinearProbe

    method = get_method(name)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranking = (method.rank(x, y, groups) if isinstance(method, LinearProbe)
                   else method.rank(x, y))
    return method, ranking, time.perf_counter() - start


def top_random_bottom(order: np.ndarray, held_out, ks, random: dict) -> list[dict]:
    """Held-out top-k / bottom-k of a global order beside the random band, one row per k."""
    rows = []
    for k in ks:
        top = held_out(order[:k]) if len(order) >= k else float("nan")
        bottom = held_out(order[-k:]) if len(order) >= k else float("nan")
        mean, sd = random[k]
        rows.append({"k": k, "top": top, "bottom": bottom, "random_mean": mean,
                     "random_sd": sd, "above_random_2sd": bool(top > mean + 2 * sd)})
    return rows


def store_read_figures(store, repeat: int, baseline_ref: str | None = None) -> str:
    """``store_read_gb_per_s=``: the fast read path (full matrix, one layer) against
    ``zarr.open_array(...)[:]`` of the same array, medians of ``repeat`` page-cached reads,
    the calls alternating; with ``baseline_ref`` also the fast path as of that git ref."""
    import zarr
    from read_baseline import fastread_as_of, interleaved, load, with_path  # bench/

    comp = store.components[0]
    last = store.layout.components[comp].layers[-1]
    paths = {"": None}
    if baseline_ref:
        paths[baseline_ref] = fastread_as_of(baseline_ref)
    reused = np.empty((store.n_words, store.n_neurons), dtype=np.float32)

    def into() -> np.ndarray:  # the full matrix into an array written before: no page faults
        col = 0
        for name in store.components:
            size = store.layout.components[name].size
            store.read_into(name, None, slice(None), reused[:, col:col + size])
            col += size
        return reused

    def alloc() -> np.ndarray:  # what any reader pays for a new output array
        out = np.empty_like(reused)
        out.fill(1.0)
        return out

    fns = {}
    for ref, module in paths.items():
        fns[f"full{ref}"] = with_path(store, module, store.matrix)
        fns[f"layer{ref}"] = with_path(store, module, lambda: store.layer(comp, last))
        fns[f"into{ref}"] = with_path(store, module, into)
    fns["zarr"] = lambda: zarr.open_array(str(store.path / "activations" / comp), mode="r")[:]
    fns["alloc"] = alloc
    timed = interleaved(fns, repeat)
    rate = {name: nbytes / 1e9 / wall for name, (wall, _, nbytes) in timed.items()}
    cpu_rate = {name: nbytes / 1e9 / cpu for name, (_, cpu, nbytes) in timed.items()}
    line = (f"store_read_gb_per_s={rate['full']:.2f} (full matrix; one layer {rate['layer']:.2f}; "
            f"zarr.open_array[:] {rate['zarr']:.2f}; ratio {rate['full'] / rate['zarr']:.1f}x; "
            f"full into an array written before {rate['into']:.2f}; a new output array's "
            f"allocation and first write alone {rate['alloc']:.2f}; per CPU-second: full "
            f"{cpu_rate['full']:.2f}, layer {cpu_rate['layer']:.2f}, into "
            f"{cpu_rate['into']:.2f}, zarr {cpu_rate['zarr']:.2f}; checksums on; {load()})")
    if baseline_ref:
        b = baseline_ref
        line += (f"\n  as of {b} in the same run (GB/s, then per CPU-second): "
                 + ", ".join(f"{what} {rate[what + b]:.2f} -> {rate[what]:.2f} "
                             f"({rate[what] / rate[what + b]:.2f}x; CPU "
                             f"{cpu_rate[what + b]:.2f} -> {cpu_rate[what]:.2f})"
                             for what in ("full", "layer", "into"))
                 + f"; {load()}")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sentences", type=int, default=2000)
    parser.add_argument("--n-random", type=int, default=5)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--sklearn-words", type=int, default=10000)
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--work", type=Path,
                        default=Path(__file__).resolve().parent / "_work" / "methods")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--read-repeat", type=int, default=3,
                        help="page-cached reads timed for store_read_gb_per_s (0: skip)")
    parser.add_argument("--probe-timing", action="store_true",
                        help="only time the linear probe on all of EWT train (see above)")
    parser.add_argument("--probe-threads", type=int, default=None,
                        help="with --probe-timing: the probes' n_threads (default: theirs, 1; "
                             "fits differ in the last bits between thread counts)")
    parser.add_argument("--timing-only", action="store_true",
                        help="time the corpus rankers on all of EWT train (issue #16)")
    parser.add_argument("--baseline-ref", default=None,
                        help="with --timing-only: also time the package as of this git ref; "
                             "else also time the store read path as of it")
    parser.add_argument("--read-only", action="store_true",
                        help="print store_read_gb_per_s= of the train store and stop")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--scores-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not EWT.exists():
        sys.exit(f"needs {EWT} (UD English EWT); not found")
    if args.probe_timing:
        args.work.mkdir(parents=True, exist_ok=True)
        probe_timing(args.work, args.seed, args.probe_threads)
        return
    if args.timing_only:
        from bench_timing import timing_only  # noqa: E402  (bench/ is the script's folder)

        timing_only(args, store_for)
        return
    from neuronscope.methods import METHODS
    from neuronscope.methods.linear_probe import LinearProbe

    args.work.mkdir(parents=True, exist_ok=True)
    train, train_corpus = store_for("train", args.work)
    read_line = (store_read_figures(train, args.read_repeat, args.baseline_ref)
                 if args.read_repeat else "")
    print(read_line, flush=True)
    if args.read_only:
        return
    dev, dev_corpus = store_for("dev", args.work)
    rng = np.random.default_rng(args.seed)
    x, y, groups = train_subset(train, train_corpus, args.train_sentences, rng)
    x_dev, y_dev = dev.matrix(), dev_corpus.labels_array("upos")
    majority = float(np.mean(y_dev == max(set(y.tolist()), key=y.tolist().count)))
    print(f"train subset: {args.train_sentences} of {train_corpus.n_sentences} sentences "
          f"({len(y)} words) x {x.shape[1]} neurons; dev: {len(y_dev)} words "
          f"(majority class {majority:.4f})")

    held_out = held_out_scorer(x, y, groups, x_dev, y_dev, args.seed)
    random = random_bands(held_out, x.shape[1], args.ks, args.n_random, rng)
    full = held_out(np.arange(x.shape[1]))
    print(f"all {x.shape[1]} neurons: dev {full:.4f}")

    results = {"full": full, "majority": majority, "random": random, "methods": {}}
    default_probe = None
    for name in args.methods or list(METHODS):
        method, ranking, seconds = rank_method(name, x, y, groups)
        if isinstance(method, LinearProbe):
            default_probe = method
        order = np.asarray(ranking.global_order)
        print(f"\n{name}: ranked in {seconds:.1f} s ({len(order)} neurons ordered)")
        print(f"{'k':>5} {'top':>8} {'random (mean ± sd)':>20} {'bottom':>8}")
        rows_out = top_random_bottom(order, held_out, args.ks, random)
        for row in rows_out:
            flag = "" if row["above_random_2sd"] else " *"
            print(f"{row['k']:>5} {row['top']:>8.4f} {row['random_mean']:>11.4f} ± "
                  f"{row['random_sd']:.4f} {row['bottom']:>8.4f}{flag}")
        results["methods"][name] = {"seconds": seconds, "rows": rows_out}
    print("\n* = top-k not above random-k + 2 sd")

    if default_probe is not None:
        ours = float(np.mean(default_probe.predict(x_dev) == y_dev))
        print(f"\ndefault probe: alpha_={default_probe.alpha_:.3g}, "
              f"{default_probe.n_epochs_} epochs over {len(default_probe.path_)} path points, "
              f"converged={default_probe.converged_}, dev accuracy {ours:.4f}")
        results["default_probe"] = {"alpha": default_probe.alpha_, "dev": ours,
                                    "path": default_probe.path_}
        compare_with_sklearn(default_probe.alpha_, x, y, groups, x_dev, y_dev,
                             args.sklearn_words, rng, results)
    out = args.work / "bench-methods.json"
    out.write_text(json.dumps(results, indent=1, default=float))
    print(f"\nwrote {out}")
    if read_line:
        print(read_line)


def compare_with_sklearn(alpha, x, y, groups, x_dev, y_dev, n_words, rng, results) -> None:
    """Our probe at a fixed ``alpha`` vs scikit-learn's saga at the same C, same features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from neuronscope.methods.linear_probe import LinearProbe

    sub = np.sort(rng.choice(len(y), min(n_words, len(y)), replace=False))
    xs, ys = np.ascontiguousarray(x[sub]), y[sub]
    ours = LinearProbe(alpha=alpha, ranking="weight", validation_fraction=0.0, max_epochs=200)
    start = time.perf_counter()
    ours.fit(xs, ys)
    t_ours = time.perf_counter() - start
    acc_ours = float(np.mean(ours.predict(x_dev) == y_dev))
    scaler = StandardScaler().fit(xs)
    sk = LogisticRegression(solver="saga", penalty="elasticnet", l1_ratio=0.5,
                            C=1.0 / (alpha * len(ys)), max_iter=300, tol=1e-4)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(scaler.transform(xs), ys)
    t_sk = time.perf_counter() - start
    acc_sk = float(sk.score(scaler.transform(x_dev), y_dev))
    print(f"same {len(sub)} train words, alpha={alpha:.3g}, elasticnet 0.5: ours dev "
          f"{acc_ours:.4f} ({t_ours:.0f} s, {ours.n_epochs_} epochs, "
          f"converged={ours.converged_}); scikit-learn saga dev {acc_sk:.4f} ({t_sk:.0f} s, "
          f"{int(np.max(sk.n_iter_))} iterations); difference {100 * (acc_ours - acc_sk):+.2f} "
          "points")
    results["sklearn"] = {"words": len(sub), "ours": acc_ours, "sklearn": acc_sk,
                          "sklearn_iter": int(np.max(sk.n_iter_))}


def data_pass_seconds(x: np.ndarray, n_classes: int) -> float:
    """Seconds of one forward and one backward matmul over every row (the floor of an epoch),
    one torch thread like the probe's default; median of 3."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    w = torch.zeros(n_classes, x.shape[1])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for lo in range(0, len(x), 4096):
            xb = torch.from_numpy(x[lo : lo + 4096])
            out = xb @ w.T
            _ = out.T @ xb
        times.append(time.perf_counter() - start)
    torch.set_num_threads(before)
    return float(np.median(times))


def probe_timing(work: Path, seed: int, n_threads: int | None = None) -> None:
    """Time the single and the default probe fit on all of EWT train; dev accuracy of each
    (with ``n_threads`` torch threads per fit when given, else the probe's default)."""
    import os

    from neuronscope.methods.linear_probe import LinearProbe

    train, train_corpus = store_for("train", work)
    dev, dev_corpus = store_for("dev", work)
    start = time.perf_counter()
    x = train.matrix()
    read = time.perf_counter() - start
    y, groups = train_corpus.labels_array("upos"), train.sentence_ids()
    x_dev, y_dev = dev.matrix(), dev_corpus.labels_array("upos")
    print(f"EWT train {x.shape[0]} x {x.shape[1]} read in {read:.1f} s "
          f"({x.nbytes / 1e9 / read:.2f} GB/s); dev {len(y_dev)} words")
    unit = data_pass_seconds(x, len(set(y.tolist())))
    print(f"one data pass (forward + backward matmul, 1 thread): {unit:.2f} s, "
          f"load {os.getloadavg()[0]:.1f}")
    figures = {}
    threads = {} if n_threads is None else {"n_threads": n_threads}
    for name, probe in (("single", LinearProbe.for_evaluation(seed, **threads)),
                        ("default", LinearProbe(random_state=seed, **threads))):
        start = time.perf_counter()
        probe.fit(x, y, groups)
        seconds = time.perf_counter() - start
        dev_acc = float(np.mean(probe.predict(x_dev) == y_dev))
        figures[name] = seconds
        print(f"{name}: {seconds:.1f} s = {seconds / unit:.1f} data passes, dev accuracy "
              f"{dev_acc:.4f}, validation {probe.validation_accuracy_:.4f}, alpha_ "
              f"{probe.alpha_:.3g}, {probe.n_epochs_} epochs over {len(probe.path_)} path "
              f"point(s), load {os.getloadavg()[0]:.1f}")
    print(f"probe_single_s={figures['single']:.1f} probe_default_s={figures['default']:.1f} "
          f"n_threads={probe.n_threads} load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
