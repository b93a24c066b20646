"""Benchmark: ranking methods on MiniLM activations of UD English EWT (issue #3 targets).

Extracts (or reuses, under bench/_work/) MiniLM `hidden` stores of EWT train (all words, all
7 layers = 2,688 neurons) and dev, then:

1. trains LinearProbe (ElasticNet) on all of train, reports time and dev UPOS accuracy;
2. on a 40k-word train subset, trains scikit-learn LogisticRegression(solver="saga",
   l1_ratio=0.5, max_iter=100) and LinearProbe on the same standardized features, reports
   both times and dev accuracies, and `probe_speedup_vs_sklearn` (sklearn time / ours);
3. times IoU, AveragePrecision, Probeless and Selectivity over all UPOS concepts on train.

Usage: python bench/methods.py [--subset 40000] [--skip-sklearn]
Last line: slowest_corpus_method_s=<seconds of the slowest of the four corpus methods>
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EWT = ROOT.parent / "shared" / "data" / "ud_ewt"
WORK = ROOT / "bench" / "_work"


def store_for(split: str):
    """The MiniLM hidden store of an EWT split, extracted once and reused."""
    from neuronscope.corpus import read_conllu
    from neuronscope.errors import StoreError
    from neuronscope.extraction import extract
    from neuronscope.store import ActivationStore

    corpus = read_conllu(EWT / f"en_ewt-ud-{split}.conllu")
    path = WORK / f"minilm-ewt-{split}"
    try:
        store = ActivationStore(path)
        store.check_corpus(corpus)
        return store, corpus
    except StoreError:
        pass
    t = time.perf_counter()
    store = extract(corpus, path, None, components=["hidden"], aggregation="mean",
                    overwrite=path.exists(), progress=False)
    print(f"extracted {split}: {corpus.n_words} words in {time.perf_counter() - t:.1f} s")
    return store, corpus


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=40000)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    if not EWT.exists():
        sys.exit(f"needs {EWT} (UD English EWT); not found")
    from neuronscope.methods import get_method
    from neuronscope.methods.linear_probe import LinearProbe

    train, train_corpus = store_for("train")
    dev, dev_corpus = store_for("dev")
    y_train = train_corpus.concept_labels("upos")
    y_dev = dev_corpus.labels_array("upos")
    print(f"train: {train.n_words} words x {train.n_neurons} neurons, "
          f"{len(set(y_train.values.tolist()))} UPOS concepts; dev: {dev.n_words} words")
    x_train, t_load = timed(train.matrix)
    x_dev = dev.matrix()
    print(f"loaded train activations in {t_load:.1f} s")

    probe = LinearProbe(penalty="elasticnet", random_state=0)
    _, t_probe = timed(lambda: probe.fit(x_train, y_train.values))
    acc = probe.score(x_dev, y_dev)
    print(f"LinearProbe elasticnet full train: {t_probe:.1f} s, dev accuracy {acc:.4f} "
          f"({probe.n_epochs_} epochs)")
    print(f"probe_train_s={t_probe:.1f}")

    rng = np.random.default_rng(0)
    sub = np.sort(rng.choice(train.n_words, size=min(args.subset, train.n_words), replace=False))
    xs, ys = x_train[sub], y_train.values[sub]
    ours = LinearProbe(penalty="elasticnet", random_state=0)
    _, t_ours = timed(lambda: ours.fit(xs, ys))
    acc_ours = ours.score(x_dev, y_dev)
    print(f"LinearProbe elasticnet {len(sub)}-word subset: {t_ours:.1f} s, dev {acc_ours:.4f}")
    if not args.skip_sklearn:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(xs)
        sk = LogisticRegression(solver="saga", penalty="elasticnet", l1_ratio=0.5, C=1.0,
                                max_iter=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, t_sk = timed(lambda: sk.fit(scaler.transform(xs), ys))
        acc_sk = sk.score(scaler.transform(x_dev), y_dev)
        print(f"sklearn saga elasticnet {len(sub)}-word subset: {t_sk:.1f} s, dev {acc_sk:.4f}")
        print(f"dev_accuracy_full_probe={acc:.4f} dev_accuracy_sklearn_subset={acc_sk:.4f}")
        print(f"probe_speedup_vs_sklearn={t_sk / t_ours:.2f}")
    x_train = xs = None  # free ~2 GB before the corpus methods stream from the store

    times = {}
    for name in ("iou", "ap", "probeless", "selectivity"):
        method = get_method(name)
        ranking, seconds = timed(lambda m=method: m.rank(train, y_train))
        times[name] = seconds
        print(f"{name}: {seconds:.2f} s for {len(ranking.concepts)} concepts; "
              f"top NOUN neuron {ranking.top(1, 'NOUN')[0]}")
    print(f"slowest_corpus_method_s={max(times.values()):.2f}")


if __name__ == "__main__":
    main()
