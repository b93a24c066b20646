"""Benchmark (first part of the scale benchmark): extraction that stops early.

Extracts MiniLM hidden layers 0-1 of the first N sentences of UD English EWT train (the
forward pass ends after block 0) and, in the same run, times the bare full forward pass over
the same blocks and batches (``bench/extract.py``'s baseline). Runs are interleaved; medians
of ``--repeats``. The load average is printed with the figures.

Usage: python bench/scale.py [--sentences 1000] [--repeats 3] [--batch-size 32]
Last line: early_stop_ratio=<seconds of layers 0-1 extraction / seconds of the full bare
forward> (below 1: cheaper than running the whole model)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from extract import bare_forward, load_sentences  # noqa: E402  (sibling benchmark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from neuronscope.extraction import extract
    from neuronscope.models import load_model

    corpus = load_sentences(args.sentences)
    loaded = load_model()
    block_words = 16384
    bare, early = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            bare.append(bare_forward(corpus, loaded, args.batch_size, block_words))
            start = time.perf_counter()
            extract(corpus, Path(tmp) / f"early{r}", loaded, components=["hidden"],
                    layers="0-1", batch_size=args.batch_size, progress=False)
            early.append(time.perf_counter() - start)
    b, e = statistics.median(bare), statistics.median(early)
    print(f"corpus: {corpus.n_sentences} sentences, {corpus.n_words} words; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"bare_full_forward_s={b:.2f} (runs {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"extract_layers_0_1_s={e:.2f} (runs {', '.join(f'{x:.2f}' for x in early)})")
    print(f"early_stop_ratio={e / b:.3f}")


if __name__ == "__main__":
    main()
