"""Benchmark: neuronscope extraction vs a bare batched Hugging Face forward pass.

On the first N sentences of UD English EWT train with MiniLM, both sides tokenize the same
sentences, group them into the same blocks, sort by length inside a block and run batches of
the same size. The baseline only runs ``model(..., output_hidden_states=True)``; neuronscope
also aligns subwords to words (mean), and writes all 7 hidden layers to a Zarr store.
Times are medians of ``--repeats`` interleaved runs. Peak RSS is measured in fresh child
processes per corpus size: after loading the model, for a bare forward pass over the corpus,
and for an extraction of it (running the model alone already grows RSS: allocator caches).

Usage: python bench/extract.py [--sentences 2000] [--repeats 3] [--batch-size 32]
       python bench/extract.py --writer-only   (CPU of the store writes alone, old vs new)
       python bench/extract.py --ceiling       (extraction with its writes, then also its
                                                pooling, skipped: what is left for them)
Last line: ratio_vs_bare_forward=<words/s of neuronscope / words/s of bare forward>
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
EWT = Path(os.environ.get("NEURONSCOPE_EWT", ROOT.parent / "shared" / "data" / "ud_ewt"
                         / "en_ewt-ud-train.conllu"))


def load_sentences(n: int):
    from neuronscope.corpus import read_conllu

    corpus = read_conllu(EWT)
    return corpus.subset(range(min(n, corpus.n_sentences)))


def bare_forward(corpus, loaded, batch_size: int, block_words: int) -> float:
    """Seconds for tokenizer + forward with hidden states, same blocks/sorting/batches."""
    from neuronscope.store.store import block_bounds

    tok, model = loaded.tokenizer, loaded.model
    start = time.perf_counter()
    with torch.inference_mode():
        for lo, hi in block_bounds(corpus.sentence_lengths(), block_words):
            sents = corpus.sentences[lo:hi]
            lengths = [len(x) for x in tok(sents, is_split_into_words=True)["input_ids"]]
            order = sorted(range(len(sents)), key=lambda i: -lengths[i])
            for b in range(0, len(order), batch_size):
                batch = [sents[i] for i in order[b : b + batch_size]]
                enc = tok(batch, is_split_into_words=True, padding=True, truncation=True,
                          max_length=loaded.max_length, return_tensors="pt")
                model(**enc, output_hidden_states=True)
    return time.perf_counter() - start


def run_extract(corpus, loaded, out: Path, batch_size: int) -> float:
    from neuronscope.extraction import extract

    start = time.perf_counter()
    extract(corpus, out, loaded, components=["hidden"], aggregation="mean",
            batch_size=batch_size, overwrite=True, progress=False)
    return time.perf_counter() - start


def child_rss(n_sentences: int, batch_size: int, mode: str) -> None:
    """In a fresh process: RSS after loading the model, then the peak RSS of either a bare
    forward pass over the corpus or one extraction of it."""
    from neuronscope.models import load_model

    corpus = load_sentences(n_sentences)
    loaded = load_model()
    process = psutil.Process()
    model_rss = process.memory_info().rss
    # ru_maxrss would report the transient peak of reading the corpus and loading the model;
    # sample RSS while the measured work runs instead.
    samples = [model_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if mode == "bare":
        n_neurons = (loaded.num_layers + 1) * loaded.config.hidden_size
        bare_forward(corpus, loaded, batch_size, int(min(16384, max(256, 64 * 2**20 // (
            4 * n_neurons)))))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run_extract(corpus, loaded, Path(tmp) / "store", batch_size)
    stop.set()
    sampler.join()
    peak = max(samples)
    print(json.dumps({"words": corpus.n_words, "model_rss": model_rss, "peak_rss": peak}))


def writer_only(n_sentences: int, repeats: int) -> None:
    """CPU seconds (user + sys, all threads) of one extraction's store writes, with random
    values in MiniLM's shape: Zarr's path (``RawWriter`` disabled) and the direct one,
    alternated. No model runs, so the figure hardly depends on the machine's other load."""
    import resource

    import numpy as np

    from neuronscope.extraction.writing import BlockWriter
    from neuronscope.store.rawwrite import RawWriter
    from neuronscope.store.store import StoreWriter, block_bounds

    corpus = load_sentences(n_sentences)
    n_neurons = 7 * 384
    block_words = int(min(16384, max(256, 64 * 2**20 // (4 * n_neurons))))  # as extract()
    offsets = corpus.sentence_offsets()
    values = np.random.default_rng(0).standard_normal((corpus.n_words, n_neurons),
                                                      dtype=np.float32)
    meta = {"components": {"hidden": {"layers": list(range(7)), "neurons": 384,
                                      "head_dim": None, "source": "hidden_states",
                                      "modules": {}}},
            "dtype": "float32", "sentence_pooling": "mean", "aggregation": "mean",
            "windows": {}, "model": {"name": "m", "fingerprint": "f"},
            "corpus": {"name": "c", "fingerprint": corpus.fingerprint,
                       "n_sentences": corpus.n_sentences, "n_words": corpus.n_words}}
    direct = (RawWriter.write_files, RawWriter.write_rows_in_place)

    class Comp:
        name = "hidden"

    def run(mode: str, out: Path) -> float:
        off = (lambda *a: False, lambda *a: False)
        RawWriter.write_files, RawWriter.write_rows_in_place = direct if mode == "direct" else off
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        writer = StoreWriter.create(out, meta, corpus, overwrite=True)
        blocks = BlockWriter(writer, [Comp], "mean", carry=True)  # type: ignore[list-item]
        for lo, hi in block_bounds(corpus.sentence_lengths(), block_words):
            a, b = int(offsets[lo]), int(offsets[hi])
            blocks.write({"hidden": values[a:b]}, {"hidden": values[lo:hi]}, (a, b), (lo, hi),
                         {}, hi == corpus.n_sentences)
        writer.finalize()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        return r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime

    cpu: dict[str, list[float]] = {"zarr": [], "direct": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for mode in cpu:
                cpu[mode].append(run(mode, Path(tmp) / mode))
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"run {r + 1}: writer CPU zarr {cpu['zarr'][-1]:.2f} s, "
                  f"direct {cpu['direct'][-1]:.2f} s (load {load})")
    med = {m: statistics.median(v) for m, v in cpu.items()}
    print(f"{corpus.n_words} words x {n_neurons} neurons: writer CPU median zarr "
          f"{med['zarr']:.2f} s, direct {med['direct']:.2f} s")
    print(f"writer_cpu_ratio_direct_vs_zarr={med['direct'] / med['zarr']:.2f}")


def ceiling(n_sentences: int, repeats: int, batch_size: int, block_words: int) -> None:
    """Extraction as it is, with its store writes skipped, and with its writes and its
    pooling (word and sentence means) skipped, interleaved with the bare forward pass in one
    process: how far each part keeps extraction from the forward pass's speed."""
    from contextlib import ExitStack
    from unittest import mock

    from neuronscope.models import load_model

    def zeros_like_words(agg, layers):
        return torch.zeros(len(agg.rows), sum(h.shape[-1] for h in layers))

    skips = {
        "writes": [("neuronscope.extraction.writing.BlockWriter.write", lambda *a, **k: None),
                   ("neuronscope.store.writer.StoreWriter.finalize", lambda *a, **k: None),
                   ("neuronscope.extraction.extractor.ActivationStore", lambda path: None)],
        "pooling": [("neuronscope.extraction.pooling.Aggregator.reduce", zeros_like_words),
                    ("neuronscope.extraction.extractor.sentence_means",
                     lambda rows, counts: torch.zeros(len(counts), rows.shape[1]))],
    }
    variants = {"extraction": [], "without writes": ["writes"],
                "without writes and pooling": ["writes", "pooling"]}
    corpus = load_sentences(n_sentences)
    loaded = load_model()
    times: dict[str, list[float]] = {"bare forward": [], **{v: [] for v in variants}}
    with tempfile.TemporaryDirectory() as tmp:
        bare_forward(corpus.subset(range(64)), loaded, batch_size, block_words)  # warm-up
        for _ in range(repeats):
            times["bare forward"].append(bare_forward(corpus, loaded, batch_size, block_words))
            for name, parts in variants.items():
                with ExitStack() as stack:
                    for part in parts:
                        for target, stand_in in skips[part]:
                            stack.enter_context(mock.patch(target, stand_in))
                    times[name].append(run_extract(corpus, loaded, Path(tmp) / "s", batch_size))
    bare = statistics.median(times["bare forward"])
    for name, seconds in times.items():
        print(f"{name}: median {statistics.median(seconds):.2f} s "
              f"({', '.join(f'{x:.2f}' for x in seconds)}), ratio to the bare forward "
              f"{bare / statistics.median(seconds):.3f}")
    print(f"load {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rss-sizes", default="500,2000", help="corpus sizes for peak RSS")
    parser.add_argument("--writer-only", action="store_true",
                        help="only the store writes' CPU time: Zarr's path vs the direct one")
    parser.add_argument("--ceiling", action="store_true",
                        help="extraction without its writes, then without writes and pooling")
    parser.add_argument("--child-rss", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", default="extract", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss is not None:
        child_rss(args.child_rss, args.batch_size, args.child_mode)
        return
    if not EWT.exists():
        sys.exit(f"needs {EWT} (UD English EWT); not found")
    if args.writer_only:
        writer_only(args.sentences, args.repeats)
        return

    from neuronscope.models import load_model

    loaded = load_model()
    n_neurons = (loaded.num_layers + 1) * loaded.config.hidden_size
    block_words = int(min(16384, max(256, 64 * 2**20 // (4 * n_neurons))))  # as extract()
    if args.ceiling:
        ceiling(args.sentences, args.repeats, args.batch_size, block_words)
        return
    corpus = load_sentences(args.sentences)
    print(f"corpus: {corpus.n_sentences} sentences, {corpus.n_words} words; model {loaded.name}; "
          f"torch threads {torch.get_num_threads()}; batch {args.batch_size}")
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        bare_forward(corpus.subset(range(64)), loaded, args.batch_size, block_words)  # warm-up
        for r in range(args.repeats):
            bare.append(bare_forward(corpus, loaded, args.batch_size, block_words))
            ours.append(run_extract(corpus, loaded, Path(tmp) / "store", args.batch_size))
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"run {r + 1}: bare forward {bare[-1]:.2f} s, "
                  f"neuronscope extract {ours[-1]:.2f} s (load {load})")
    bare_wps = corpus.n_words / statistics.median(bare)
    ours_wps = corpus.n_words / statistics.median(ours)
    # Fastest runs: the ones other processes disturbed least (on a shared machine).
    print(f"fastest runs: ratio {min(bare) / min(ours):.2f}")
    print(f"bare_forward_words_per_s={bare_wps:.0f}")
    print(f"neuronscope_extract_words_per_s={ours_wps:.0f}")
    for size in [int(s) for s in args.rss_sizes.split(",") if s]:
        peaks = {}
        for mode in ("bare", "extract"):
            res = subprocess.run(
                [sys.executable, __file__, "--child-rss", str(size), "--child-mode", mode,
                 "--batch-size", str(args.batch_size)], capture_output=True, text=True,
                check=True,
            )
            peaks[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        mb = 2**20
        ext, bare = peaks["extract"], peaks["bare"]
        print(f"peak_rss words={ext['words']}: loaded model {ext['model_rss'] / mb:.0f} MB; "
              f"bare forward peak {bare['peak_rss'] / mb:.0f} MB; "
              f"extraction peak {ext['peak_rss'] / mb:.0f} MB "
              f"(+{(ext['peak_rss'] - ext['model_rss']) / mb:.0f} MB over the loaded model, "
              f"+{(ext['peak_rss'] - bare['peak_rss']) / mb:.0f} MB over the bare forward pass)")
    print(f"ratio_vs_bare_forward={ours_wps / bare_wps:.2f}")


if __name__ == "__main__":
    main()
