"""Model-level ablation: does removing a concept's top neurons hurt the model on that concept?

Ablates the top-k neurons of a ranking for a concept, and as controls k random neurons
(seeded, repeated) and the bottom-k, then measures the model's own performance on a corpus
(survey §4.1): next-token loss (causal LM) or masked-token loss (masked LM, a seeded 15% of
words masked) on tokens of the concept's words versus other words, or accuracy and prediction
flips per class for sequence classifiers. A neuron set matters for the concept when its
ablation raises the concept's loss more than the other words' and more than random sets do.

The random sets (``repeats`` >= 5 for a usable band) are drawn from the *same layers* as the
top-k, as many per layer, avoiding the top-k, so that a layer that matters for everything
cannot pass for a concept's neurons. The result states in :attr:`AblationResult.notes` when
the top-k hurts the other tokens more than the concept's (negative selectivity) and whether
its selectivity is above the random band (mean + 2 sd).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.interventions.editing import (
    Intervention,
    check_same_model,
    neuron_means,
)
from neuronscope.interventions.scoring import (
    ClassificationScorer,
    LMScorer,
    ProgressFn,
    TokenScores,
    model_task,
)
from neuronscope.interventions.sites import as_loaded
from neuronscope.methods.ranking import Ranking
from neuronscope.models.loading import LoadedModel
from neuronscope.store.store import ActivationStore

CONDITIONS = ("top", "random", "bottom")
#: Version of the JSON written by :meth:`AblationResult.to_dict` (and ``ablate --out``).
SCHEMA = "neuronscope.ablation/1"


@dataclass
class AblationResult:
    """Effects of ablating neuron sets, one table row per condition (per class: classifiers).

    ``neurons`` maps each condition to the neuron sets ablated (one per random repeat).
    """

    task: str
    concept: str
    k: int
    op: str
    label_layer: str | None
    table: pd.DataFrame
    neurons: dict[str, list[list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self, condition: str) -> pd.Series:
        """The table row of a condition (``none``, ``top``, ``random``, ``bottom``)."""
        rows = self.table[self.table["condition"] == condition]
        if rows.empty:
            raise NeuronscopeError(f"no condition {condition!r}; have {list(self.neurons)}")
        return rows.iloc[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready result, schema ``neuronscope.ablation/1``.

        Keys: ``schema``; ``task``; ``concept``; ``k``; ``op``; ``label_layer``; ``neurons``
        (condition -> ablated sets, one per random repeat); ``table`` (one record per
        condition, and per class for classifiers: losses / accuracies, ``delta_*`` against
        ``none``, ``selectivity`` = delta_concept - delta_other, ``*_std`` over random
        sets); ``notes`` (plain-language warnings); ``settings`` (model, corpus, seed...).
        """
        table = self.table.astype(object).where(self.table.notna(), None)
        return {"schema": SCHEMA, "task": self.task, "concept": self.concept, "k": self.k,
                "op": self.op, "label_layer": self.label_layer, "neurons": self.neurons,
                "table": table.to_dict(orient="records"), "notes": self.notes,
                "settings": self.settings}

    def __str__(self) -> str:
        return (f"ablation of {self.k} neurons for {self.concept!r} ({self.task}, op={self.op})\n"
                + self.table.to_string(index=False) + "".join(f"\n{n}" for n in self.notes))


def _group(name: str) -> str:
    """``L3.mlp`` for ``L3.mlp.17`` and ``L2.attn`` for ``L2.attn.h5.17``: a neuron's layer."""
    return ".".join(name.split(".")[:2])


def layer_matched_random(pool: Sequence[str], chosen: Sequence[str], repeats: int,
                         seed: int) -> list[list[str]]:
    """``repeats`` random sets with as many neurons per layer as ``chosen``, none of them in it.

    Where a layer has too few other neurons in ``pool``, the rest are drawn from the whole
    pool (still avoiding ``chosen`` when it can).
    """
    taken = set(chosen)
    by_layer: dict[str, list[str]] = defaultdict(list)
    for n in pool:
        if n not in taken:
            by_layer[_group(n)].append(n)
    need: dict[str, int] = defaultdict(int)
    for n in chosen:
        need[_group(n)] += 1
    rest = [n for n in pool if n not in taken]
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(max(1, repeats)):
        picked: list[str] = []
        for layer, count in need.items():
            cand = by_layer.get(layer, [])
            picked += [str(x) for x in rng.choice(cand, min(count, len(cand)), replace=False)]
        short = len(chosen) - len(picked)
        if short:
            left = [n for n in (rest if len(rest) >= len(chosen) else pool) if n not in picked]
            picked += [str(x) for x in rng.choice(left, short, replace=False)]
        sets.append(picked)
    return sets


def _neuron_sets(ranking: Ranking, concept: str, k: int, conditions: Sequence[str],
                 repeats: int, seed: int) -> dict[str, list[list[str]]]:
    pool = list(ranking.scores(concept))  # every neuron ranked for the concept, best first
    if k < 1 or k > len(pool):
        raise NeuronscopeError(f"k must be in 1-{len(pool)} (neurons ranked for {concept!r})")
    sets: dict[str, list[list[str]]] = {}
    for cond in conditions:
        if cond == "top":
            sets[cond] = [ranking.top(k, concept)]
        elif cond == "bottom":
            sets[cond] = [[ranking.names[int(i)] for i in ranking.bottom_ids(k, concept)]]
        elif cond == "random":
            sets[cond] = layer_matched_random(pool, ranking.top(k, concept), repeats, seed)
        else:
            raise NeuronscopeError(f"unknown condition {cond!r}; valid: {', '.join(CONDITIONS)}")
    return sets


def _lm_stats(scores: TokenScores, is_concept: np.ndarray) -> dict[str, float]:
    concept, other = is_concept, ~is_concept
    return {
        "loss_concept": float(scores.nll[concept].mean()) if concept.any() else np.nan,
        "loss_other": float(scores.nll[other].mean()) if other.any() else np.nan,
        "acc_concept": float(scores.correct[concept].mean()) if concept.any() else np.nan,
        "acc_other": float(scores.correct[other].mean()) if other.any() else np.nan,
    }


def ablation_effect(
    model: LoadedModel,
    corpus: Corpus,
    ranking: Ranking,
    concept: str,
    *,
    k: int = 10,
    label_layer: str | None = None,
    class_layer: str | None = None,
    op: str = "zero",
    store: ActivationStore | None = None,
    conditions: Sequence[str] = CONDITIONS,
    repeats: int = 5,
    seed: int = 0,
    batch_size: int = 32,
    mask_fraction: float = 0.15,
    progress: ProgressFn | None = None,
) -> AblationResult:
    """Ablate top-k / random-k / bottom-k neurons of ``concept`` and measure the model.

    Args:
        model: a causal LM, masked LM or sequence classifier.
        corpus: evaluation sentences with the word label layer (LMs).
        ranking: neuron ranking; refused when its store came from another model.
        concept: the concept whose neurons are ablated (and whose words are scored apart).
        k: neurons per set.
        label_layer: word label layer marking the concept's words (default: the ranking's).
        class_layer: classifiers only: sentence label layer with gold classes (else flips only).
        op: ``zero`` or ``mean`` (needs ``store``).
        store: activation store for mean values.
        conditions: any of top, random, bottom; ``none`` (no ablation) is always measured.
        repeats: random sets drawn (seeded by ``seed``), from the top-k's layers.
        batch_size: pieces per forward pass.
        mask_fraction: masked LMs: fraction of words masked (seeded by ``seed``).
        progress: called with (batches done, batches in all) as forward passes finish.
    """
    loaded = as_loaded(model)
    if op not in ("zero", "mean"):
        raise NeuronscopeError(f"ablation op must be zero or mean, not {op!r}")
    check_same_model(ranking.store_fingerprint, loaded, "ranking")
    if store is not None:
        check_same_model(store.model_fingerprint, loaded, f"store {store.path}")
    task = model_task(loaded)
    sets = _neuron_sets(ranking, concept, k, conditions, repeats, seed)
    means: dict[str, float] = {}
    if op == "mean":
        if store is None:
            raise NeuronscopeError("op 'mean' needs the activation store")
        union = sorted({n for group in sets.values() for s in group for n in s})
        means = dict(zip(union, neuron_means(store, union).tolist(), strict=True))

    def ablated(names: list[str]) -> Intervention:
        value = [means[n] for n in names] if op == "mean" else None
        return Intervention(loaded, names, op=op, value=value, store=store)  # store: SAE units

    settings = {"model": loaded.name, "corpus": corpus.name, "sentences": corpus.n_sentences,
                "repeats": repeats, "seed": seed, "ranking_method": ranking.method}
    if task == "sequence-classification":
        table = _classification_table(loaded, corpus, class_layer, sets, ablated, batch_size)
        return AblationResult(task, concept, k, op, class_layer, table, sets,
                              settings=settings)

    layer = label_layer or ranking.label_layer
    if layer is None:
        raise NeuronscopeError("name the word label layer of the concept (label_layer=...)")
    labels = corpus.labels_array(layer)
    if concept not in set(labels.tolist()):
        raise NeuronscopeError(f"concept {concept!r} does not occur in layer {layer!r}")
    scorer = LMScorer(loaded, corpus, batch_size=batch_size, mask_fraction=mask_fraction,
                      seed=seed)
    is_concept = labels[scorer.word] == concept
    if not is_concept.any():
        raise NeuronscopeError(
            f"no scored token belongs to a {concept!r} word (raise mask_fraction or use more text)"
        )
    passes = 1 + sum(len(g) for g in sets.values())
    done = [0]

    def run() -> TokenScores:
        offset = done[0] * scorer.n_batches
        tick = None if progress is None else (
            lambda b, _n: progress(offset + b, passes * scorer.n_batches))
        out = scorer.run(progress=tick)
        done[0] += 1
        return out

    base = run()
    scorer._baseline = base
    ref = _lm_stats(base, is_concept)
    rows = [{"condition": "none", "k": 0, **ref}]
    for cond, groups in sets.items():
        stats = []
        for names in groups:
            with ablated(names):
                stats.append(_lm_stats(run(), is_concept))
        frame = pd.DataFrame(stats)
        frame["delta_concept"] = frame["loss_concept"] - ref["loss_concept"]
        frame["delta_other"] = frame["loss_other"] - ref["loss_other"]
        frame["selectivity"] = frame["delta_concept"] - frame["delta_other"]
        row = {"condition": cond, "k": k, "sets": len(groups), **frame.mean().to_dict()}
        for col in ("delta_concept", "delta_other", "selectivity"):
            row[f"{col}_std"] = float(frame[col].std(ddof=1)) if len(groups) > 1 else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.loc[0, ["delta_concept", "delta_other", "selectivity"]] = 0.0
    table.loc[0, "sets"] = 0
    table["sets"] = table["sets"].astype(int)
    for col in ("delta_concept_std", "delta_other_std", "selectivity_std"):
        if col not in table:
            table[col] = np.nan
    table["tokens_concept"] = int(is_concept.sum())
    table["tokens_other"] = int((~is_concept).sum())
    order = ["condition", "k", "sets", "loss_concept", "loss_other", "delta_concept",
             "delta_other", "selectivity", "delta_concept_std", "delta_other_std",
             "selectivity_std", "acc_concept", "acc_other", "tokens_concept", "tokens_other"]
    table = table[order]
    return AblationResult(task, concept, k, op, layer, table, sets, _notes(table, concept, k),
                          settings)


def _notes(table: pd.DataFrame, concept: str, k: int) -> list[str]:
    """Plain-language reading of an LM ablation table: what the controls say about top-k."""
    rows = table.set_index("condition")
    notes: list[str] = []
    if "top" not in rows.index:
        return notes
    top = rows.loc["top"]
    if top["delta_other"] > top["delta_concept"]:
        notes.append(
            f"top-{k} hurts other tokens more than {concept!r} tokens (delta other "
            f"{top['delta_other']:.4g} > delta {concept} {top['delta_concept']:.4g}): these "
            "neurons are not specific to the concept"
        )
    if "random" in rows.index:
        rand = rows.loc["random"]
        sd = rand["selectivity_std"]
        if int(rand["sets"]) < 5 or not np.isfinite(sd):
            notes.append(f"only {int(rand['sets'])} random sets: no usable random band "
                         "(use at least 5)")
        else:
            band = rand["selectivity"] + 2 * sd
            above = top["selectivity"] > band
            notes.append(
                f"top-{k} selectivity {top['selectivity']:.4g} is "
                f"{'above' if above else 'NOT above'} the random band (mean + 2 sd = "
                f"{band:.4g} over {int(rand['sets'])} layer-matched random sets)"
            )
    if "bottom" in rows.index and rows.loc["bottom", "selectivity"] >= top["selectivity"]:
        notes.append(f"bottom-{k} is at least as selective as top-{k}")
    return notes


def _classification_table(loaded: LoadedModel, corpus: Corpus, class_layer: str | None,
                          sets: dict[str, list[list[str]]], ablated: Any,
                          batch_size: int) -> pd.DataFrame:
    scorer = ClassificationScorer(loaded, corpus, class_layer, batch_size)
    base = scorer.baseline
    gold = scorer.gold
    # Group by gold class when known, else by the unablated prediction.
    groups = gold if gold is not None else base
    classes = sorted(set(groups.tolist()))

    def stats(pred: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for c in [*classes, None]:
            sel = np.ones(len(pred), bool) if c is None else groups == c
            out.append({
                "class": "all" if c is None else scorer.id2label.get(c, str(c)),
                "sentences": int(sel.sum()),
                "accuracy": float((pred[sel] == gold[sel]).mean()) if gold is not None
                else np.nan,
                "flip_rate": float((pred[sel] != base[sel]).mean()),
            })
        return out

    rows = [{"condition": "none", "k": 0, **r} for r in stats(base)]
    base_acc = {r["class"]: r["accuracy"] for r in rows}
    for cond, neuron_sets in sets.items():
        per_repeat = []
        for names in neuron_sets:
            with ablated(names):
                per_repeat.append(pd.DataFrame(stats(scorer.run())))
        frame = pd.concat(per_repeat)
        mean = frame.groupby("class", sort=False).mean(numeric_only=True).reset_index()
        std = frame.groupby("class", sort=False)["flip_rate"].std(ddof=0).reset_index()
        for (_, r), (_, s) in zip(mean.iterrows(), std.iterrows(), strict=True):
            rows.append({"condition": cond, "k": len(neuron_sets[0]), "class": r["class"],
                         "sentences": int(r["sentences"]), "accuracy": r["accuracy"],
                         "flip_rate": r["flip_rate"],
                         "flip_rate_std": s["flip_rate"] if len(neuron_sets) > 1 else np.nan})
    table = pd.DataFrame(rows)
    table["delta_accuracy"] = table["accuracy"] - table["class"].map(base_acc)
    if "flip_rate_std" not in table:
        table["flip_rate_std"] = np.nan
    return table[["condition", "k", "class", "sentences", "accuracy", "delta_accuracy",
                  "flip_rate", "flip_rate_std"]]
