"""Ablation inside a trained probe (Dalvi et al. 2019, "What is one grain of sand ...").

The probe is kept fixed; neurons are switched off in its *input*, in ranking order, in growing
steps, and its accuracy is recorded after each step, overall and per class. If the ranking is
right, accuracy falls fast when the top neurons go, much slower for random neurons (the
baseline: ``n_random`` seeded random orders) and hardly at all for the bottom ones.

Switching off means ``mode="zero"`` (activation set to 0, as in the paper) or ``mode="mean"``
(set to its training mean: the probe then sees an uninformative but in-distribution value,
which avoids confounding "this neuron carries the concept" with "0 is an unusual value").
Steps are nested: each step ablates the neurons of the previous one plus the next ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation._common import (
    NeuronMatrix,
    Probe,
    accuracy,
    check_ranking,
    ranking_order,
)
from neuronscope.methods.ranking import Ranking
from neuronscope.store.store import ActivationStore

MODES = ("zero", "mean")


@dataclass
class AblationCurves:
    """Probe accuracy as more and more neurons are ablated, for several orders.

    ``top``, ``bottom``, ``random_mean`` and ``random_std`` are aligned with ``steps`` (number
    of neurons ablated). ``per_class[order][label]`` is the accuracy on the test words of that
    true label (for ``"random"``, the mean over draws). ``majority`` is the share of the most
    frequent test label: the accuracy of a probe reduced to guessing that label.
    """

    method: str
    concept: str | None
    mode: str
    steps: list[int]
    n_neurons: int
    top: list[float]
    bottom: list[float]
    random_mean: list[float]
    random_std: list[float]
    per_class: dict[str, dict[str, list[float]]]
    class_counts: dict[str, int]
    majority: float
    n_random: int
    random_state: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready curves."""
        return {
            "method": self.method,
            "concept": self.concept,
            "mode": self.mode,
            "n_neurons": self.n_neurons,
            "steps": list(self.steps),
            "top": list(self.top),
            "bottom": list(self.bottom),
            "random_mean": list(self.random_mean),
            "random_std": list(self.random_std),
            "per_class": self.per_class,
            "class_counts": self.class_counts,
            "majority": self.majority,
            "n_random": self.n_random,
            "random_state": self.random_state,
        }

    def to_dataframe(self) -> Any:
        """One row per step: overall accuracy of each order."""
        import pandas as pd

        return pd.DataFrame({
            "ablated": self.steps, "top": self.top, "random_mean": self.random_mean,
            "random_std": self.random_std, "bottom": self.bottom,
        })

    def to_pandas(self) -> Any:
        """The same table as :meth:`to_dataframe` (pandas' usual name for it)."""
        return self.to_dataframe()


def default_steps(n: int, n_steps: int = 10) -> list[int]:
    """``0``, ``1`` and ``n_steps`` evenly spaced counts up to ``n`` (deduplicated, sorted)."""
    if n_steps < 1:
        raise NeuronscopeError(f"n_steps must be a positive integer, got {n_steps}")
    grid = np.round(np.linspace(0, n, n_steps + 1)).astype(int).tolist()
    return sorted({0, min(1, n), *grid})


def ablation_curves(
    probe: Probe,
    activations: np.ndarray | NeuronMatrix,
    labels: np.ndarray | Sequence[Any],
    ranking: Ranking,
    concept: str | None = None,
    *,
    mode: str = "zero",
    steps: Sequence[int] | None = None,
    n_steps: int = 10,
    means: np.ndarray | None = None,
    train_activations: np.ndarray | NeuronMatrix | None = None,
    column_ids: Sequence[int] | None = None,
    n_random: int = 3,
    random_state: int | None = 0,
) -> AblationCurves:
    """Ablate neurons of a fitted probe's input in ranking order and record accuracy.

    Args:
        probe: a fitted probe with ``predict`` on arrays (e.g. a fitted ``LinearProbe``);
            it must accept ``activations`` as they are.
        activations: held-out rows, with exactly the columns the probe was trained on: an
            array (column ``i`` is neuron id ``column_ids[i]``, default ``i``) or a
            :class:`NeuronMatrix` (its ``ids`` name the columns).
        labels: true label of each row, in the probe's label space (0/1 for a one-vs-rest
            probe).
        ranking: gives the order; every neuron it orders must be among the columns.
        concept: use this concept's order (default: the global order). Accuracy is still
            measured on ``labels`` as given, so a multi-class probe shows which classes
            suffer when one concept's neurons go.
        mode: ``"zero"`` or ``"mean"`` (training means: ``means`` per column, else the mean
            of ``train_activations``, else a normalizing probe's ``mean_``).
        steps: numbers of neurons to ablate (each in ``0..n``); default :func:`default_steps`.
        n_steps: grid size of the default steps.
        n_random: random orders averaged for the baseline.
        random_state: seed of the random orders.
    """
    if mode not in MODES:
        raise NeuronscopeError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise NeuronscopeError(f"n_random must be a positive integer, got {n_random!r}")
    if isinstance(activations, ActivationStore):
        raise NeuronscopeError(
            "ablation needs the held-out rows in memory: pass an array of the probe's input "
            "columns (e.g. store.neurons(ids) restricted to the test rows) or a NeuronMatrix"
        )
    if isinstance(activations, NeuronMatrix):
        check_ranking(ranking, activations)
        x, ids = activations.x, activations.ids
    else:
        x = np.asarray(activations, dtype=np.float32)
        if x.ndim != 2:
            raise NeuronscopeError(f"activations must be 2-D, got shape {x.shape}")
        ids = (np.arange(x.shape[1], dtype=np.int64) if column_ids is None
               else np.asarray(column_ids, dtype=np.int64))
        if len(ids) != x.shape[1]:
            raise NeuronscopeError(f"{len(ids)} column_ids for {x.shape[1]} columns")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(x):
        raise NeuronscopeError(
            f"{len(y)} labels for {len(x)} activation rows: labels and activations must "
            "describe the same words"
        )
    matrix = NeuronMatrix(x, ids, [f"n{i}" for i in ids])
    order = ranking_order(ranking, concept)
    cols = matrix.columns(order)
    n = len(cols)
    step_list = default_steps(n, n_steps) if steps is None else sorted({int(s) for s in steps})
    if not step_list or step_list[0] < 0 or step_list[-1] > n:
        raise NeuronscopeError(f"steps must lie in 0..{n} (neurons the ranking orders)")
    fill = _fill_values(mode, x.shape[1], means, train_activations, probe, ids)

    classes = sorted(set(y.tolist()), key=str)
    rng = np.random.default_rng(random_state)
    top = _curve(probe, x, y, cols, step_list, fill, classes)
    bottom = _curve(probe, x, y, cols[::-1], step_list, fill, classes)
    randoms = [_curve(probe, x, y, cols[rng.permutation(n)], step_list, fill, classes)
               for _ in range(n_random)]
    rand_overall = np.asarray([r[0] for r in randoms])
    per_class = {
        "top": top[1],
        "bottom": bottom[1],
        "random": {c: np.mean([r[1][c] for r in randoms], axis=0).tolist() for c in top[1]},
    }
    counts = {str(c): int(np.sum(y == c)) for c in classes}
    return AblationCurves(
        method=ranking.method, concept=concept, mode=mode, steps=step_list, n_neurons=n,
        top=top[0], bottom=bottom[0], random_mean=rand_overall.mean(axis=0).tolist(),
        random_std=rand_overall.std(axis=0).tolist(), per_class=per_class,
        class_counts=counts, majority=max(counts.values()) / len(y) if len(y) else 0.0,
        n_random=n_random, random_state=random_state,
    )


def _fill_values(
    mode: str,
    n_cols: int,
    means: np.ndarray | None,
    train_activations: np.ndarray | NeuronMatrix | None,
    probe: Probe,
    ids: np.ndarray,
) -> np.ndarray:
    """The value each column takes once ablated."""
    if mode == "zero":
        return np.zeros(n_cols, dtype=np.float32)
    if means is not None:
        fill = np.asarray(means, dtype=np.float32)
    elif train_activations is not None:
        train = (train_activations.x if isinstance(train_activations, NeuronMatrix)
                 else np.asarray(train_activations))
        if train.ndim != 2 or train.shape[1] != n_cols:
            raise NeuronscopeError(
                f"train_activations must have the same {n_cols} columns as activations"
            )
        fill = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    elif (getattr(probe, "mean_", None) is not None
          and getattr(probe, "neuron_ids_", None) is not None):
        # A normalizing LinearProbe remembers the training mean of each column it reads;
        # columns it does not read cannot change its output, so 0 is as good as anything.
        fill = np.zeros(n_cols, dtype=np.float32)
        fitted: Any = probe  # a LinearProbe's fitted state, beyond the Probe protocol
        fill[np.asarray(fitted.neuron_ids_, dtype=np.int64)] = fitted.mean_
    else:
        raise NeuronscopeError(
            'mode="mean" needs training means: pass means=, train_activations=, or a probe '
            "fitted with normalize=True"
        )
    if fill.shape != (n_cols,):
        raise NeuronscopeError(f"means must have one value per column ({n_cols}), got "
                               f"{fill.shape}")
    return fill


def _curve(
    probe: Probe,
    x: np.ndarray,
    y: np.ndarray,
    cols: np.ndarray,
    steps: list[int],
    fill: np.ndarray,
    classes: list[Any],
) -> tuple[list[float], dict[str, list[float]]]:
    """Accuracies of one order: overall and per class, at every step (ablation is nested, so
    one copy of the rows is ablated further and further)."""
    work = x.copy()
    done = 0
    overall: list[float] = []
    per_class: dict[str, list[float]] = {str(c): [] for c in classes}
    masks = {str(c): y == c for c in classes}
    for step in steps:
        block = cols[done:step]
        work[:, block] = fill[block]
        done = step
        pred = np.asarray(probe.predict(work))
        overall.append(accuracy(pred, y))
        for c in classes:
            m = masks[str(c)]
            per_class[str(c)].append(accuracy(pred[m], y[m]))
    return overall, per_class
