"""Sections a-c of scripts/findings.py: rankings on train, their controls on held-out dev.

The data preparation and the top / random / bottom evaluation are those of
``bench/methods.py`` (imported, not copied): a seeded subset of train sentences for ranking
and for training the evaluation probes, all dev sentences for scoring them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_methods() -> Any:
    """``bench/methods.py`` as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_methods", ROOT / "bench" / "methods.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store_name(ctx: Any, conllu: Path) -> Path:
    tag = "minilm" if ctx.settings["encoder"] is None else Path(ctx.settings["encoder"]).name
    return ctx.path(f"{tag}-{conllu.stem}")


def probing_data(ctx: Any) -> dict[str, Any]:
    """Train subset and dev matrices, neuron names, and the held-out scorer (memoized)."""

    def build() -> dict[str, Any]:
        bm = bench_methods()
        encoder = ctx.settings["encoder"]
        train, train_corpus = bm.open_or_extract(ctx.args.train,
                                                 _store_name(ctx, ctx.args.train), encoder,
                                                 log=ctx.log)
        dev, dev_corpus = bm.open_or_extract(ctx.args.dev, _store_name(ctx, ctx.args.dev),
                                             encoder, log=ctx.log)
        rng = np.random.default_rng(ctx.settings["seed"])
        x, y, groups = bm.train_subset(train, train_corpus, ctx.settings["train_sentences"],
                                       rng)
        x_dev, y_dev = dev.matrix(), dev_corpus.labels_array("upos")
        held_out = bm.held_out_scorer(x, y, groups, x_dev, y_dev, ctx.settings["seed"])
        names = train.layout.names(range(train.n_neurons))
        return {"bm": bm, "x": x, "y": y, "groups": groups, "x_dev": x_dev, "y_dev": y_dev,
                "dev_groups": dev.sentence_ids(), "held_out": held_out, "rng": rng,
                "names": names, "train_store": train.path, "dev_store": dev.path,
                "n_train_sentences": train_corpus.n_sentences,
                "n_dev_sentences": dev_corpus.n_sentences}

    return ctx.memo("probing", build)


def named(ranking: Any, names: list[str]) -> Any:
    """A ranking computed on an array, with the store's neuron names (``L3.hidden.17``)."""
    return dataclasses.replace(ranking, names={int(i): names[int(i)] for i in ranking.names})


def rankings(ctx: Any) -> dict[str, Any]:
    """Every method's ranking of the train subset: computed in section a, cached as JSON."""
    from neuronscope.methods import METHODS
    from neuronscope.methods.ranking import Ranking

    def build() -> dict[str, Any]:
        data = probing_data(ctx)
        out = {}
        for name in METHODS:
            path = ctx.path(f"rankings/{name}.json")
            if path.exists() and not ctx.args.force:  # --force: rankings of the code now
                out[name] = Ranking.from_json(path)
                continue
            method, ranking, seconds = data["bm"].rank_method(name, data["x"], data["y"],
                                                              data["groups"])
            ranking = named(ranking, data["names"])
            ranking.extra["findings_seconds"] = seconds
            if hasattr(method, "alpha_"):
                ranking.extra["findings_alpha"] = float(method.alpha_)
            path.parent.mkdir(parents=True, exist_ok=True)
            ranking.to_json(path)
            ctx.log(f"ranked with {name} in {seconds:.0f} s")
            out[name] = ranking
        return out

    return ctx.memo("rankings", build)


# ---------------------------------------------------------------- a. top / random / bottom
def compute_methods(ctx: Any) -> dict[str, Any]:
    data = probing_data(ctx)
    bm, held_out, ks = data["bm"], data["held_out"], ctx.settings["ks"]
    majority_label = max(set(data["y"].tolist()), key=data["y"].tolist().count)
    n = data["x"].shape[1]
    random = bm.random_bands(held_out, n, ks, ctx.settings["n_random"], data["rng"])
    result: dict[str, Any] = {
        "train_sentences": min(ctx.settings["train_sentences"], data["n_train_sentences"]),
        "n_train_sentences": data["n_train_sentences"], "train_words": len(data["y"]),
        "dev_words": len(data["y_dev"]), "dev_sentences": data["n_dev_sentences"],
        "neurons": n, "majority": float(np.mean(data["y_dev"] == majority_label)),
        "full": held_out(np.arange(n)), "random": {str(k): v for k, v in random.items()},
        "n_random": ctx.settings["n_random"], "methods": {},
    }
    for name, ranking in rankings(ctx).items():
        rows = bm.top_random_bottom(np.asarray(ranking.global_order), held_out, ks, random)
        result["methods"][name] = {"seconds": ranking.extra.get("findings_seconds"),
                                   "alpha": ranking.extra.get("findings_alpha"),
                                   "rows": rows}
        ctx.log(f"a: {name} " + ", ".join(f"k={r['k']} top {r['top']:.3f}" for r in rows))
    return result


def render_methods(r: dict[str, Any]) -> str:
    ks = [row["k"] for row in next(iter(r["methods"].values()))["rows"]]
    out = [
        f"Ranking: each registered supervised method with its defaults on a seeded subset of "
        f"{r['train_sentences']:,} of {r['n_train_sentences']:,} train sentences "
        f"({r['train_words']:,} words) x {r['neurons']:,} neurons. Evaluation: "
        f"`LinearProbe.for_evaluation` retrained on the top-k, bottom-k and {r['n_random']} "
        f"random-k neurons of each global order (same train words) and scored on all "
        f"{r['dev_words']:,} dev words ({r['dev_sentences']:,} sentences), which no ranking "
        f"saw. All neurons: {r['full']:.4f}; majority class: {r['majority']:.4f}. The random "
        "draws are shared by all methods (functions of `bench/methods.py`).",
        "",
        "| method | " + " | ".join(f"k={k} top | k={k} bottom" for k in ks) + " | seconds |",
        "|---|" + "---:|---:|" * len(ks) + "---:|",
        "| random-k (mean ± sd) | " + " | ".join(
            f"{r['random'][str(k)][0]:.3f} ± {r['random'][str(k)][1]:.3f} | " for k in ks)
        + " |",
    ]
    for name, m in r["methods"].items():
        cells = []
        for row in m["rows"]:
            top = f"{row['top']:.3f}"
            cells.append((f"**{top}**" if row["above_random_2sd"] else f"{top} *")
                         + f" | {row['bottom']:.3f}")
        secs = "" if m["seconds"] is None else f"{m['seconds']:.0f}"
        out.append(f"| {name} | " + " | ".join(cells) + f" | {secs} |")
    out += ["", "Bold: top-k above random + 2 sd; `*`: not above it.", ""]
    for name, m in r["methods"].items():
        good = [row["k"] for row in m["rows"] if row["above_random_2sd"]]
        bad = [row for row in m["rows"] if not row["above_random_2sd"]]
        below = [row["k"] for row in m["rows"]
                 if row["bottom"] < row["random_mean"] - 2 * row["random_sd"]]
        if not bad:
            verdict = f"reproduces top > random + 2 sd at every k ({', '.join(map(str, good))})"
        else:
            verdict = ("does not reproduce at " + ", ".join(
                f"k={row['k']} (top {row['top']:.3f} vs random {row['random_mean']:.3f} ± "
                f"{row['random_sd']:.3f})" for row in bad)
                + (f"; reproduces at k={', '.join(map(str, good))}" if good else ""))
        out.append(f"* **{name}** vs the literature's top > random > bottom (Dalvi et al. "
                   f"2019; Durrani et al. 2020): {verdict}; bottom-k below random - 2 sd at "
                   f"{len(below)} of {len(m['rows'])} k.")
    return "\n".join(out)


# ------------------------------------------------------------ b. closed vs open classes
def compute_localization(ctx: Any) -> dict[str, Any]:
    from neuronscope.evaluation import minimal_subset
    from neuronscope.evaluation._common import NeuronMatrix

    data = probing_data(ctx)
    ranking = rankings(ctx)["probe"]
    n_train = len(data["y"])
    x_all = np.concatenate([data["x"], data["x_dev"]])
    offset = int(data["groups"].max()) + 1
    groups = np.concatenate([data["groups"], data["dev_groups"] + offset])
    y_all = np.concatenate([data["y"], data["y_dev"]])
    ids = np.arange(x_all.shape[1])
    matrix = NeuronMatrix(x_all, ids, list(data["names"]), groups=groups)
    train_mask = np.arange(len(y_all)) < n_train
    rows = []
    for kind, tags in (("closed", ctx.settings["closed"]), ("open", ctx.settings["open"])):
        for tag in tags:
            if tag not in set(data["y"].tolist()):
                continue
            res = minimal_subset(matrix, y_all, ranking, ctx.settings["loc_target"],
                                 concept=tag, train_mask=train_mask, test_mask=~train_mask,
                                 random_state=ctx.settings["seed"])
            rows.append({"tag": tag, "class": kind, "dev_words": int(np.sum(data["y_dev"] == tag)),
                         "k": res.k, "reached": res.reached, "accuracy": res.accuracy,
                         "full": res.full_accuracy, "majority": res.majority_accuracy,
                         "threshold": res.threshold, "probes": len(res.evaluations)})
            ctx.log(f"b: {tag} k={res.k} ({res.accuracy:.4f} >= {res.threshold:.4f})")
    del x_all, matrix
    return {"method": "probe", "target": ctx.settings["loc_target"], "neurons": len(ids),
            "rows": rows}


def render_localization(r: dict[str, Any]) -> str:
    out = [
        f"Ranking: the default probe's per-tag order (section a, train subset). Per tag, "
        f"`minimal_subset(..., target={r['target']}, concept=TAG)` with train_mask = the "
        "train subset and test_mask = all dev words: the fewest top neurons of the tag whose "
        f"one-vs-rest probe keeps {r['target']:.0%} of the full probe's gain over the "
        f"majority class (threshold = maj + {r['target']} (full - maj); doubling then "
        f"bisection), out of {r['neurons']:,}.",
        "",
        "| tag | class | dev words | k | accuracy at k | threshold | full | majority |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        k = f"{row['k']}" + ("" if row["reached"] else " (not reached)")
        out.append(f"| {row['tag']} | {row['class']} | {row['dev_words']:,} | {k} | "
                   f"{row['accuracy']:.4f} | {row['threshold']:.4f} | {row['full']:.4f} | "
                   f"{row['majority']:.4f} |")
    closed = [row["k"] for row in r["rows"] if row["class"] == "closed"]
    open_ = [row["k"] for row in r["rows"] if row["class"] == "open"]
    if closed and open_:
        mc, mo = float(np.median(closed)), float(np.median(open_))
        if mc < mo:
            verdict = (f"reproduces: closed-class tags needed fewer neurons (median {mc:g}, "
                       f"{closed}) than open-class tags (median {mo:g}, {open_})")
        else:
            verdict = (f"does not reproduce: closed-class tags needed "
                       f"{'as many' if mc == mo else 'MORE'} neurons (median {mc:g}, "
                       f"{closed}) than open-class tags (median {mo:g}, {open_})")
        out += ["", f"Survey §5 / Durrani et al. (2020): closed-class concepts are more "
                f"localized than open-class ones. Here this {verdict}."]
    return "\n".join(out)


# --------------------------------------------------------------- c. layer distribution
def compute_layers(ctx: Any) -> dict[str, Any]:
    from neuronscope.evaluation import layer_distribution
    from neuronscope.evaluation.plots import plot_layer_distribution

    tags = [t for t in ctx.settings["closed"] + ctx.settings["open"]]
    out: dict[str, Any] = {"k": ctx.settings["layer_k"], "closed": ctx.settings["closed"],
                           "open": ctx.settings["open"], "methods": {}}
    for name, ranking in rankings(ctx).items():
        present = [t for t in tags if t in ranking.concept_names]
        dist = layer_distribution(ranking, k=ctx.settings["layer_k"], concepts=present,
                                  include_global=True)
        out["methods"][name] = dist.to_dict()
        if name == "probe":
            figures = Path(ctx.args.figures)
            written = plot_layer_distribution(dist, figures / "layer_distribution.png")
            out["figure"] = [p.name for p in written if p.suffix == ".png"][0]
    return out


def _layer_number(column: str) -> int:
    return int(column.split(".")[0][1:])


def mean_layer(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return (sum(_layer_number(c) * n for c, n in counts.items()) / total) if total else np.nan


def render_layers(r: dict[str, Any]) -> str:
    probe = r["methods"]["probe"]
    cols = probe["columns"]
    out = [f"For each tag, the layers of its top {r['k']} neurons "
           "(`layer_distribution(ranking, k, concepts, include_global=True)`; `__all__` is "
           "the global order). The default probe's ranking:", "",
           "| tag | " + " | ".join(cols) + " | mean layer |",
           "|---|" + "---:|" * (len(cols) + 1)]
    for tag, counts in probe["counts"].items():
        out.append(f"| {tag} | " + " | ".join(str(counts.get(c, 0)) for c in cols)
                   + f" | {mean_layer(counts):.2f} |")
    if "figure" in r:
        out += ["", f"![layer distribution](figures/{r['figure']})"]
    out += ["", "Mean layer of the top neurons, every method (closed-class tags | open-class "
            "tags):", "", "| method | closed (mean over tags) | open (mean over tags) | "
            "share in the lower half of the layers |", "|---|---:|---:|---:|"]
    shares, uniform = {}, np.nan
    for name, dist in r["methods"].items():
        counts = dist["counts"]
        layers = sorted({_layer_number(c) for c in dist["columns"]}) or [0]
        half = (max(layers) + 1) / 2
        # Share of the layers in the lower half: what top neurons spread evenly would give.
        uniform = sum(1 for n in range(max(layers) + 1) if n < half) / (max(layers) + 1)
        tags = [t for t in counts if t != "__all__"]
        closed = [mean_layer(counts[t]) for t in tags if t in r["closed"]]
        open_ = [mean_layer(counts[t]) for t in tags if t in r["open"]]
        total = sum(sum(counts[t].values()) for t in tags)
        low = sum(n for t in tags for c, n in counts[t].items() if _layer_number(c) < half)
        shares[name] = low / total if total else np.nan
        out.append(f"| {name} | {np.mean(closed):.2f} | {np.mean(open_):.2f} | "
                   f"{shares[name]:.2f} |")
    lower = [n for n, s in shares.items() if s > uniform]
    out += ["", f"(The lower half holds {uniform:.0%} of the layers: the share expected if the "
            "top neurons were spread evenly.) The survey's Fig. 2 (after Durrani et al. "
            "2020) places neurons of lexical concepts such as POS mainly in the lower layers. "
            "Here "
            + (f"this reproduces for {len(lower)} of {len(shares)} methods (a larger share "
               f"of the top neurons in the lower half than {uniform:.0%}: {', '.join(lower)})"
               if lower else "this does not reproduce: no method puts more of its top "
               f"neurons in the lower half than the {uniform:.0%} an even spread would")
            + f"; the default probe puts {shares['probe']:.0%} there."]
    return "\n".join(out)
