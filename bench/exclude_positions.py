"""Benchmark: does leaving the first word out of the rankers' statistics help? (issue #13)

Extracts (or reuses, under ``--work``) ``hidden`` stores of a seeded subset of UD EWT train
and dev sentences for one model (``minilm``: all 7 layers; ``smollm2``: layers 0, 5, ..., 30),
ranks UPOS neurons on the train sentences with each method twice (every word, and
``exclude_positions="first"``), and for k = 10, 50, 100 retrains an evaluation probe
(``LinearProbe.for_evaluation``) on the top-k, bottom-k and 5 random-k neurons of each global
order and scores it on the dev sentences, which no ranker saw (all dev words, and dev words
after the first). Prints top / random mean ± sd / bottom, ``*`` where top-k is not above
random + 2 sd, the number of massive-activation neurons the hygiene reports, and the load
average.

Usage: python bench/exclude_positions.py MODEL N_TRAIN N_DEV [METHODS]
e.g.   python bench/exclude_positions.py minilm 1500 800 probe,probeless,ap,selectivity
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

EWT = Path(os.environ.get("NEURONSCOPE_EWT",
                         Path(__file__).resolve().parents[2] / "shared" / "data" / "ud_ewt"))
WORK = Path(os.environ.get("NEURONSCOPE_BENCH_WORK",
                           Path(__file__).resolve().parent / "_work" / "exclude_positions"))
KS, N_RANDOM, SEED = [10, 50, 100], 5, 0


def store(model_name: str, split: str, n: int, layers: list[int] | None):
    """The hidden store of ``n`` seeded sentences of an EWT split, extracted once."""
    from neuronscope.corpus import read_conllu
    from neuronscope.extraction import extract
    from neuronscope.store import ActivationStore

    corpus = read_conllu(EWT / f"en_ewt-ud-{split}.conllu")
    rng = np.random.default_rng(1)
    corpus = corpus.subset(np.sort(rng.choice(corpus.n_sentences, n, replace=False)).tolist())
    path = WORK / f"{model_name}-{split}-{n}"
    if (path / "neuronscope.json").exists():
        return ActivationStore(path), corpus
    from neuronscope.models import load_model

    start = time.perf_counter()
    model = load_model(None if model_name == "minilm" else model_name)
    st = extract(corpus, path, model, components=["hidden"], layers=layers, progress=False)
    print(f"extracted {model_name} {split}: {corpus.n_words} words, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return st, corpus


def main() -> None:
    from neuronscope.methods import get_method
    from neuronscope.methods.linear_probe import LinearProbe
    from neuronscope.store import ActivationView

    model_name, n_train, n_dev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    methods = (sys.argv[4].split(",") if len(sys.argv) > 4
               else ["probe", "probeless", "ap", "selectivity"])
    layers = None if model_name == "minilm" else [0, 5, 10, 15, 20, 25, 30]
    tr, trc = store(model_name, "train", n_train, layers)
    dv, dvc = store(model_name, "dev", n_dev, layers)
    x, y, groups = tr.matrix(), trc.labels_array("upos"), tr.sentence_ids()
    x_dev, y_dev = dv.matrix(), dvc.labels_array("upos")
    later = dv.positions() > 0
    majority = float(np.mean(y_dev == max(set(y.tolist()), key=y.tolist().count)))
    print(f"{model_name}: train {n_train} sentences / {len(y)} words x {x.shape[1]} neurons; "
          f"dev {n_dev} sentences / {len(y_dev)} words; majority {majority:.4f}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    def held_out(cols: np.ndarray) -> tuple[float, float]:
        probe = LinearProbe.for_evaluation(SEED)
        probe.fit(np.ascontiguousarray(x[:, cols]), y, groups)
        pred = probe.predict(np.ascontiguousarray(x_dev[:, cols]))
        return float(np.mean(pred == y_dev)), float(np.mean(pred[later] == y_dev[later]))

    rng = np.random.default_rng(SEED)
    random = {}
    for k in KS:
        draws = np.asarray([held_out(np.sort(rng.choice(x.shape[1], k, replace=False)))
                            for _ in range(N_RANDOM)])
        random[k] = (draws.mean(0).tolist(), draws.std(0).tolist())
    results: dict = {"model": model_name, "n_train": n_train, "n_dev": n_dev,
                     "majority": majority, "random": random, "rows": []}
    for name in methods:
        for exclude in ("none", "first"):
            view = (ActivationView(tr) if exclude == "none"
                    else ActivationView(tr, rows=tr.positions() > 0))
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ranking = get_method(name).rank(view, trc.concept_labels("upos"))
            seconds = time.perf_counter() - start
            order = np.asarray(ranking.global_order)
            massive = ranking.extra.get("hygiene", {}).get("massive", {}).get("count")
            for k in KS:
                top, bottom = held_out(order[:k]), held_out(order[-k:])
                mean, sd = random[k]
                flag = "" if top[0] > mean[0] + 2 * sd[0] else " *"
                results["rows"].append({"method": name, "exclude": exclude, "k": k, "top": top,
                                        "bottom": bottom, "massive": massive})
                print(f"{name:12s} exclude={exclude:5s} k={k:3d} top {top[0]:.4f} (after the "
                      f"first word {top[1]:.4f}) random {mean[0]:.4f} ± {sd[0]:.4f} bottom "
                      f"{bottom[0]:.4f}{flag}  massive={massive}  {seconds:.0f} s, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
    out = WORK / f"exclude-positions-{model_name}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"* = top-k not above random-k + 2 sd\nwrote {out}")


if __name__ == "__main__":
    main()
