"""Benchmark: store dtypes x compression x sharding on real MiniLM activations (issue #15).

Extracts (once, under ``--work``) the MiniLM ``hidden`` activations (7 layers x 384) of the
first ``--sentences`` EWT train sentences, then writes the same matrix with every storage
dtype, compression and file layout (``store_from_arrays``) and reads it back whole and one
layer at a time through the fast path. Prints, per setting: write s, read s (whole, page
cache), write+read, size on disk, files, and the read figures (GB/s of float32 returned,
whole and one layer) against ``zarr.open_array(...)[:]`` measured in the same run; the load
average with each figure. Times are medians of ``--repeat`` runs (wall clock; the reads
alternate run by run) plus the process CPU seconds, which the other processes of a loaded
machine disturb less. ``--baseline-ref REF`` also reads every store through the fast read
path as of git ``REF`` (same process, alternating) and prints its figures and the ratios;
``--only float32-none`` keeps the settings whose name (dtype-compression) starts so.

Usage: python bench/store.py [--sentences 2000] [--repeat 3] [--work /tmp/store-bench]
                             [--baseline-ref REF] [--only PREFIX]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

EWT = Path(os.environ.get("NEURONSCOPE_EWT",
                         Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_ewt"))


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall seconds, median CPU seconds and the last result of ``fn()``."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/store-bench"))
    parser.add_argument("--baseline-ref", default=None,
                        help="also time the fast read path as of this git ref")
    parser.add_argument("--only", default="", help="settings whose name starts so")
    args = parser.parse_args()
    import zarr
    from read_baseline import fastread_as_of, interleaved, load, with_path  # bench/

    from neuronscope.corpus import read_conllu
    from neuronscope.extraction import extract
    from neuronscope.store import ActivationStore, store_from_arrays

    baseline = fastread_as_of(args.baseline_ref) if args.baseline_ref else None
    corpus = read_conllu(EWT / "en_ewt-ud-train.conllu").subset(range(args.sentences))
    source = args.work / "source"
    if not (source / "neuronscope.json").exists():
        extract(corpus, source, None, components=["hidden"], progress=False, overwrite=True)
    x = ActivationStore(source).matrix()
    gb = x.nbytes / 1e9
    print(f"{corpus.n_words} words x {x.shape[1]} neurons = {gb:.3f} GB float32; {load()}")
    old = f" {'old GB/s':>8} {'old lay':>7} {'x full':>6} {'x lay':>5}" if baseline else ""
    print(f"{'dtype':>9} {'compress':>9} {'shards':>6} {'write s':>8} {'read s':>7} "
          f"{'w+r s':>7} {'read cpu':>8} {'MB':>7} {'files':>5} {'read GB/s':>9} "
          f"{'layer GB/s':>10} {'zarr[:] GB/s':>12}{old}")
    for dtype in ("float32", "float16", "bfloat16"):
        for compression in ("none", "zstd", "blosc-lz4"):
            if not f"{dtype}-{compression}".startswith(args.only):
                continue
            for sharded in (True, False):
                path = args.work / f"{dtype}-{compression}-{sharded}"

                def write(path=path, dtype=dtype, compression=compression, sharded=sharded):
                    shutil.rmtree(path, ignore_errors=True)
                    return store_from_arrays(path, corpus, {"hidden": (x, list(range(7)))},
                                             dtype=dtype, compression=compression,
                                             sharded=sharded)

                w_wall, _, store = timed(write, args.repeat)
                store = ActivationStore(path)
                got, ref = store.matrix(), zarr.open_array(
                    str(path / "activations" / "hidden"), mode="r")[:]
                if dtype == "float32":
                    assert np.array_equal(got, ref) and np.array_equal(got, x)
                del got, ref
                fns = {"full": store.matrix, "layer": lambda s=store: s.layer("hidden", 3),
                       "zarr": lambda p=path: zarr.open_array(
                           str(p / "activations" / "hidden"), mode="r")[:]}
                if baseline is not None:
                    fns["full old"] = with_path(store, baseline, store.matrix)
                    fns["layer old"] = with_path(store, baseline,
                                                 lambda s=store: s.layer("hidden", 3))
                t = interleaved(fns, args.repeat)
                rate = {k: n / 1e9 / wall for k, (wall, _, n) in t.items()}
                r_wall, r_cpu = t["full"][0], t["full"][1]
                files = [p for p in (path / "activations").rglob("*") if p.is_file()]
                size = sum(p.stat().st_size for p in files) / 1e6
                old = (f" {rate['full old']:>8.2f} {rate['layer old']:>7.2f} "
                       f"{rate['full'] / rate['full old']:>6.2f} "
                       f"{rate['layer'] / rate['layer old']:>5.2f}" if baseline else "")
                print(f"{dtype:>9} {compression:>9} {str(sharded):>6} {w_wall:>8.2f} "
                      f"{r_wall:>7.2f} {w_wall + r_wall:>7.2f} {r_cpu:>8.2f} {size:>7.1f} "
                      f"{len(files):>5} {rate['full']:>9.2f} {rate['layer']:>10.2f} "
                      f"{rate['zarr']:>12.2f}{old}  {load()}", flush=True)


if __name__ == "__main__":
    main()
