"""``bench/methods.py --timing-only``: the corpus rankers on all of EWT train (issue #16).

Each ranker ranks the full train matrix held in memory (no store reads: those are timed by
``store_read_gb_per_s``); the baseline is one float64 column-sum pass over the same matrix in
the same run, so that figures taken on a loaded machine can be compared as ratios. With
``--baseline-ref REF`` the same timing runs in a subprocess on the package as of git ``REF``
(extracted with ``git archive``); the scores of both are compared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RANKERS = ("iou", "ap", "probeless", "selectivity")
ROOT = Path(__file__).resolve().parent.parent


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load_avg_1m={one:.2f} load_avg_5m={five:.2f}"


def _time_rankers(x: np.ndarray, y: np.ndarray, repeats: int,
                  scores_out: Path | None) -> dict[str, float]:
    from neuronscope.methods import get_method

    seconds = {}
    for name in RANKERS:
        best = float("inf")
        for _ in range(max(1, repeats)):
            method = get_method(name)
            start = time.perf_counter()
            method.rank(x, y)
            best = min(best, time.perf_counter() - start)
        seconds[name] = best
        print(f"{name}_seconds={best:.2f} {_load()}", flush=True)
        if scores_out is not None:
            scores = getattr(method, "scores_", None)
            if scores is None:  # probeless: the per-concept scores of the ranking
                scores = method.class_means_
            np.save(scores_out / f"{name}.npy", np.asarray(scores))
    return seconds


def timing_only(args, store_for) -> None:
    """Time every corpus ranker on EWT train; print ``<name>_seconds=`` lines."""
    train, corpus = store_for("train", args.work)
    y = corpus.labels_array("upos")
    start = time.perf_counter()
    x = np.ascontiguousarray(train.matrix())
    read = time.perf_counter() - start
    print(f"matrix {x.shape[0]} x {x.shape[1]} float32 ({x.nbytes / 1e9:.2f} GB) read in "
          f"{read:.1f} s; {len(set(y.tolist()))} UPOS concepts; {_load()}", flush=True)
    # Warm-up: compiles (or loads the cached) kernels on a slice, untimed.
    from neuronscope.methods import get_method

    for name in RANKERS:
        get_method(name).rank(x[:5000, :40], y[:5000])
    start = time.perf_counter()
    x.sum(axis=0, dtype=np.float64)
    base = time.perf_counter() - start
    print(f"baseline_float64_pass_seconds={base:.2f} {_load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        ours_dir, ref_dir = Path(tmp) / "ours", Path(tmp) / "ref"
        ours_dir.mkdir()
        ref_dir.mkdir()
        ours = _time_rankers(x, y, args.repeats, args.scores_out or ours_dir)
        for name, sec in ours.items():
            print(f"{name}: {sec:.2f} s = {sec / base:.1f} baseline passes")
        if args.baseline_ref is None:
            return
        del x
        _compare(args, ours, Path(tmp), ours_dir, ref_dir)


def _compare(args, ours: dict[str, float], tmp: Path, ours_dir: Path, ref_dir: Path) -> None:
    """Time the package as of ``--baseline-ref`` in a subprocess; compare with ours."""
    tree = tmp / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_ref, "src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, str(Path(__file__).with_name("methods.py")), "--timing-only",
           "--work", str(args.work), "--repeats", str(args.repeats),
           "--scores-out", str(ref_dir)]
    print(f"\nthe package as of {args.baseline_ref}:", flush=True)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    ref = {}
    for line in out.splitlines():
        print(f"  {line}")
        if "_seconds=" in line and not line.startswith("baseline"):
            name, rest = line.split("_seconds=")
            ref[name] = float(rest.split()[0])
    for name in RANKERS:
        a, b = np.load(ours_dir / f"{name}.npy"), np.load(ref_dir / f"{name}.npy")
        diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")
        print(f"{name}: {args.baseline_ref} {ref[name]:.2f} s -> {ours[name]:.2f} s, speed-up "
              f"{ref[name] / ours[name]:.2f}x, max |score difference| {diff:.2e}")
