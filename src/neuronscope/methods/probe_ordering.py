"""How a linear probe's weights become neuron orders: the weight-mass rule and the
regularization-path rule.

* **Weight mass** (Dalvi et al. 2019, "What is one grain of sand in the desert?"; NeuroX'
  ``get_neuron_ordering``): raise the share of each class's |w| mass step by step and append
  neurons in the order they enter the union of the per-class top sets.
* **Path mass** (the default of :class:`~neuronscope.methods.linear_probe.LinearProbe`):
  along a path of decreasing L1 strengths, a neuron's score is its share of the class's |w|
  mass summed over the path points (:func:`path_scores`). It follows the lasso-path order
  (Tibshirani 1996; Efron et al. 2004): when several neurons carry the same signal (the
  residual stream seen at several depths), the L1 penalty lets one of them in first and the
  copies only later, whereas |w| of a weakly penalized probe spreads the signal over all
  copies and can rank them below neurons that merely cancel noise.
"""

from __future__ import annotations

import numpy as np

from neuronscope.errors import NeuronscopeError


def _class_top_counts(abs_row: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of one class's neurons by |w| (ties: lower index first) and, for every mass level,
    how many of them form its top set.

    The top set at mass ``m`` is the shortest prefix whose |w| sum reaches ``m`` of the class's
    total, but never empty for a class with any weight (NeuroX's convention, so at ``m = 0``
    each class contributes its strongest neuron). A class with no weight has empty top sets.
    """
    order = np.argsort(-abs_row, kind="stable")
    cum = np.cumsum(abs_row[order], dtype=np.float64)
    total = float(cum[-1]) if len(cum) else 0.0
    if total <= 0:
        return order, np.zeros(len(masses), dtype=np.int64)
    # A relative tolerance so that a mass reached exactly is not missed by round-off
    # (float32 weights sum with errors around 1e-7 of the total).
    first = np.searchsorted(cum, masses * total - 1e-6 * total, side="left")
    return order, np.clip(first + 1, 1, len(order))


def weight_mass_top(coef: np.ndarray, mass: float) -> list[np.ndarray]:
    """Per class (row of ``coef``), the column indices of its top neurons at ``mass``.

    The top set is the fewest neurons, taken by decreasing |w|, whose |w| sum reaches
    ``mass`` (0..1) of the class's total |w| (Dalvi et al. 2019; NeuroX ``get_top_neurons``).
    Each set is ordered by decreasing |w|; a class whose weights are all zero gets none.
    """
    if not 0 <= mass <= 1:
        raise NeuronscopeError(f"mass must be in [0, 1], got {mass}")
    weights = np.abs(np.atleast_2d(np.asarray(coef, dtype=np.float64)))
    out = []
    for row in weights:
        order, counts = _class_top_counts(row, np.asarray([mass]))
        out.append(order[: int(counts[0])])
    return out


def _entry_steps(coef: np.ndarray, stride: int) -> np.ndarray:
    """For each neuron, the first mass step ``s`` (mass ``s / stride``) at which it joins the
    union of per-class top sets; ``stride + 1`` for neurons that never do (zero weight)."""
    if stride < 1:
        raise NeuronscopeError(f"search_stride must be a positive integer, got {stride}")
    weights = np.abs(np.atleast_2d(np.asarray(coef, dtype=np.float64)))
    masses = np.arange(stride + 1) / stride
    entry = np.full(weights.shape[1], stride + 1, dtype=np.int64)
    for row in weights:
        order, counts = _class_top_counts(row, masses)
        # The neuron at position r of this class is selected from the first step whose top
        # set holds more than r neurons (counts never decrease).
        first = np.searchsorted(counts, np.arange(len(order)), side="right")
        entry[order] = np.minimum(entry[order], first)
    return entry


def weight_mass_ordering(coef: np.ndarray, stride: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Global neuron order by the weight-mass rule (NeuroX ``get_neuron_ordering``).

    The mass share grows from 0 to 1 in ``stride`` steps; neurons are appended in the order
    they first enter the union of the per-class top sets (:func:`weight_mass_top`). Neurons
    entering at the same step are ordered by their largest |w| over classes, then by index;
    neurons that never enter (all-zero weights) come last. Returns the order of every column
    and ``cutoffs``: ``cutoffs[s]`` neurons are ordered once step ``s`` is done.
    """
    entry = _entry_steps(coef, stride)
    strength = np.abs(np.atleast_2d(np.asarray(coef, dtype=np.float64))).max(axis=0)
    order = np.lexsort((np.arange(len(entry)), -strength, entry))
    cutoffs = np.searchsorted(entry[order], np.arange(stride + 1), side="right")
    return order, cutoffs



# ---------------------------------------------------------------------- path rule
def path_scores(path_coefs: list[np.ndarray]) -> np.ndarray:
    """Per (class, neuron) score: the neuron's share of the class's |w| mass, summed over the
    points of the regularization path (strongest penalty first).

    A neuron that enters early holds a large share while few others have weight, so it
    scores high; one that enters late shares the mass with many and scores little; a copy
    of a signal that is already in gets little weight of its own. Minibatch noise that lets
    a weight flicker in early adds only its tiny share. Shares are normalized per class, so
    every class's best neurons score alike whatever the class's frequency (as in the
    weight-mass rule). Neurons never weighted score 0.
    """
    if not path_coefs:
        raise NeuronscopeError("an empty regularization path orders nothing")
    total = np.zeros(np.atleast_2d(path_coefs[0]).shape)
    for coef in path_coefs:
        weights = np.abs(np.atleast_2d(np.asarray(coef, dtype=np.float64)))
        mass = weights.sum(axis=1, keepdims=True)
        total += np.divide(weights, mass, out=np.zeros_like(weights), where=mass > 0)
    return total
