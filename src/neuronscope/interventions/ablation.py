"""Model-level ablation: does removing a concept's top neurons hurt the model on that concept?

Ablates the top-k neurons of a ranking for a concept, and as controls k random neurons
(seeded, repeated) and the bottom-k, then measures the model's own performance on a corpus
(survey §4.1): next-token loss (causal LM) or masked-token loss (masked LM, a seeded 15% of
words masked) on tokens of the concept's words versus other words, or accuracy and prediction
flips per class for sequence classifiers. A neuron set matters for the concept when its
ablation raises the concept's loss more than the other words' and more than random sets do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.interventions.intervene import (
    Intervention,
    check_same_model,
    neuron_means,
)
from neuronscope.interventions.scoring import (
    ClassificationScorer,
    LMScorer,
    TokenScores,
    model_task,
)
from neuronscope.interventions.sites import as_loaded
from neuronscope.methods.ranking import Ranking
from neuronscope.models.loading import LoadedModel
from neuronscope.store.store import ActivationStore

CONDITIONS = ("top", "random", "bottom")


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

    def row(self, condition: str) -> pd.Series:
        """The table row of a condition (``none``, ``top``, ``random``, ``bottom``)."""
        rows = self.table[self.table["condition"] == condition]
        if rows.empty:
            raise NeuronscopeError(f"no condition {condition!r}; have {list(self.neurons)}")
        return rows.iloc[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"task": self.task, "concept": self.concept, "k": self.k, "op": self.op,
                "label_layer": self.label_layer, "neurons": self.neurons,
                "table": self.table.to_dict(orient="records")}

    def __str__(self) -> str:
        return (f"ablation of {self.k} neurons for {self.concept!r} ({self.task}, op={self.op})\n"
                + self.table.to_string(index=False))


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
            rng = np.random.default_rng(seed)
            sets[cond] = [[str(n) for n in rng.choice(pool, k, replace=False)]
                          for _ in range(max(1, repeats))]
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
        repeats: random sets drawn (seeded by ``seed``).
        batch_size: pieces per forward pass.
        mask_fraction: masked LMs: fraction of words masked (seeded by ``seed``).
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

    if task == "sequence-classification":
        table = _classification_table(loaded, corpus, class_layer, sets, ablated, batch_size)
        return AblationResult(task, concept, k, op, class_layer, table, sets)

    layer = label_layer or ranking.label_layer
    if layer is None:
        raise NeuronscopeError("name the word label layer of the concept (label_layer=...)")
    labels = corpus.labels_array(layer)
    if concept not in set(labels.tolist()):
        raise NeuronscopeError(f"concept {concept!r} does not occur in layer {layer!r}")
    scorer = LMScorer(loaded, corpus, batch_size=batch_size, mask_fraction=mask_fraction,
                      seed=seed)
    base = scorer.baseline
    is_concept = labels[scorer.word] == concept
    if not is_concept.any():
        raise NeuronscopeError(
            f"no scored token belongs to a {concept!r} word (raise mask_fraction or use more text)"
        )
    rows = [{"condition": "none", "k": 0, **_lm_stats(base, is_concept)}]
    for cond, groups in sets.items():
        stats = []
        for names in groups:
            with ablated(names):
                stats.append(_lm_stats(scorer.run(), is_concept))
        frame = pd.DataFrame(stats)
        row = {"condition": cond, "k": k, **frame.mean().to_dict()}
        if len(groups) > 1:
            row["delta_concept_std"] = float((frame["loss_concept"]).std(ddof=0))
            row["delta_other_std"] = float((frame["loss_other"]).std(ddof=0))
        rows.append(row)
    table = pd.DataFrame(rows)
    table["delta_concept"] = table["loss_concept"] - rows[0]["loss_concept"]
    table["delta_other"] = table["loss_other"] - rows[0]["loss_other"]
    table["selectivity"] = table["delta_concept"] - table["delta_other"]
    for col in ("delta_concept_std", "delta_other_std"):
        if col not in table:
            table[col] = np.nan
    table["tokens_concept"] = int(is_concept.sum())
    table["tokens_other"] = int((~is_concept).sum())
    order = ["condition", "k", "loss_concept", "loss_other", "delta_concept", "delta_other",
             "selectivity", "delta_concept_std", "delta_other_std", "acc_concept", "acc_other",
             "tokens_concept", "tokens_other"]
    return AblationResult(task, concept, k, op, layer, table[order], sets)


def _classification_table(loaded: LoadedModel, corpus: Corpus, class_layer: str | None,
                          sets: dict[str, list[list[str]]], ablated: Any,
                          batch_size: int) -> pd.DataFrame:
    scorer = ClassificationScorer(loaded, corpus, class_layer, batch_size)
    base = scorer.baseline
    gold = scorer.gold
    # Group by gold class when known, else by the unablated prediction.
    groups = gold if gold is not None else base
    classes = sorted(set(groups.tolist()))

    def stats(pred: np.ndarray) -> list[dict[str, float]]:
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
