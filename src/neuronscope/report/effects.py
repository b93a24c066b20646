"""Per-neuron ablation effects from ``neuronscope evaluate`` results, for neuron cards.

The evaluation ablates neurons of a trained probe cumulatively in ranking order (top first)
and records accuracy after each step; it does not store which neurons each step removed.
Given the ranking that evaluation used (same method and label layer, among the report's
rankings), the order is known again, so each card can say in which step its neuron was
ablated and what that step did to accuracy, next to what the same step of a random order
did (the control). Steps after the first remove many neurons at once: the card states the
step's size, so a group effect is never read as the neuron's own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope.methods.ranking import Ranking
from neuronscope.store.names import NeuronLayout

__all__ = ["ablation_step_effects"]

_FORMAT = "neuronscope-evaluation"


def _summaries(folders: Iterable[Path]) -> list[tuple[Path, Mapping[str, Any]]]:
    out = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("summary.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # read_evaluation already notes unreadable files
            if isinstance(data, Mapping) and data.get("format") == _FORMAT:
                out.append((path.relative_to(folder), data))
    return out


def _matching(rankings: Sequence[Ranking], spec: Mapping[str, Any]) -> Ranking | None:
    for r in rankings:
        if r.method == spec.get("method") and r.label_layer == spec.get("label_layer"):
            return r
    return None


def ablation_step_effects(
    folders: str | os.PathLike | Iterable[str | os.PathLike] | None,
    rankings: Sequence[Ranking],
    neuron_ids: Iterable[int],
    layout: NeuronLayout,
) -> dict[str, list[tuple[str, str]]]:
    """Neuron name -> ``(source, effect)`` for the card neurons in evaluated ablation orders.

    Args:
        folders: the report's evaluation folder(s).
        rankings: the report's rankings; an evaluation is used when one of them has its
            method and label layer.
        neuron_ids: the neurons with cards.
        layout: names of the ids.
    """
    if folders is None:
        return {}
    paths = [Path(folders)] if isinstance(folders, (str, os.PathLike)) else list(map(Path, folders))
    wanted = [int(i) for i in neuron_ids]
    out: dict[str, list[tuple[str, str]]] = {}
    for rel, data in _summaries(paths):
        abl = data.get("ablation") or {}
        ranking = _matching(rankings, data.get("ranking") or {})
        steps, top, rnd = abl.get("steps"), abl.get("top"), abl.get("random_mean")
        if ranking is None or not steps or not top or not rnd or len(steps) != len(top):
            continue
        concept = data.get("concept")
        try:
            order = ranking.top_ids(int(steps[-1]), concept)
        except Exception:  # noqa: BLE001 (a ranking without this concept: nothing to say)
            continue
        position = {int(n): p for p, n in enumerate(np.asarray(order).tolist())}
        what = f"all {data.get('labels', 'labels')}" if concept is None else str(concept)
        for nid in wanted:
            p = position.get(nid)
            if p is None:
                continue
            s = int(np.searchsorted(np.asarray(steps), p, side="right"))
            if not 0 < s < len(steps):
                continue
            size = int(steps[s]) - int(steps[s - 1])
            who = "this neuron alone" if size == 1 else f"{size} neurons with it"
            out.setdefault(layout.name(nid), []).append((
                f"{rel}: ablation in a trained probe ({ranking.method}, {what}, top first)",
                f"step {s}, ranks {int(steps[s - 1]) + 1}-{int(steps[s])} ({who}): accuracy "
                f"{float(top[s - 1]):.3f} -> {float(top[s]):.3f}; a random order's same step "
                f"{float(rnd[s - 1]):.3f} -> {float(rnd[s]):.3f}"))
    return out
