"""Probe weights for neuron cards: signed weights per concept from fitted linear probes.

A ranking stores scores (for the probe, |w| or path shares), not the signed weights a
researcher wants to read on a card ("this neuron votes *against* NOUN"). Those come from the
probe itself: a fitted :class:`~neuronscope.methods.LinearProbe` or the file its ``save``
wrote. Weights are in the units the probe was trained in: per standard deviation of the
neuron when it standardized its inputs (the default), else per unit of activation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError

__all__ = ["MAX_WEIGHTS", "card_probe_weights", "load_probes"]

#: Weights per neuron and probe shown on a card (largest |w| first).
MAX_WEIGHTS = 12


def load_probes(probes: Iterable[Any]) -> list[tuple[str, Any]]:
    """``(label, fitted probe)`` for each fitted probe or saved probe file.

    Raises:
        NeuronscopeError: a file that is not a saved probe, or an object without the fitted
            ``coef_`` and ``neuron_ids_`` of a linear probe.
    """
    from neuronscope.methods.linear_probe import LinearProbe

    out = []
    for i, probe in enumerate(probes):
        if isinstance(probe, (str, os.PathLike)):
            label, probe = Path(probe).stem, LinearProbe.load(probe)
        else:
            label = f"probe {i + 1}"
        if not hasattr(probe, "coef_") or not hasattr(probe, "neuron_ids_"):
            raise NeuronscopeError(
                f"{label}: not a fitted linear probe (no coef_ / neuron_ids_); fit it or pass "
                "the file written by LinearProbe.save")
        out.append((label, probe))
    return out


def card_probe_weights(probes: Sequence[tuple[str, Any]], neuron_ids: Iterable[int],
                       max_weights: int = MAX_WEIGHTS
                       ) -> dict[int, list[tuple[str, str, float]]]:
    """Per neuron id: ``(probe label, concept, signed weight)``, largest |w| first, zero
    weights left out (a sparse probe does not use the neuron for that concept)."""
    wanted = {int(i) for i in neuron_ids}
    out: dict[int, list[tuple[str, str, float]]] = {}
    for label, probe in probes:
        coef = np.atleast_2d(np.asarray(probe.coef_, dtype=np.float64))
        classes = getattr(probe, "classes_", None)
        names = ([str(c) for c in classes] if classes is not None
                 else ["value (regression)"] * len(coef))
        for j, nid in enumerate(np.asarray(probe.neuron_ids_).tolist()):
            if nid not in wanted:
                continue
            column = coef[:, j]
            order = np.argsort(-np.abs(column), kind="stable")[:max_weights]
            out.setdefault(int(nid), []).extend(
                (label, names[r], float(column[r])) for r in order.tolist() if column[r] != 0)
    return out
