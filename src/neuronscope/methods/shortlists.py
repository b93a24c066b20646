"""Per-neuron activation statistics and shortlists of neurons worth visualizing.

Following Karpathy et al. (2015, "Visualizing and Understanding Recurrent Networks"), who
looked at how often LSTM gates saturate, plus two simpler filters:

* **dead**: the activation is (near) zero, ``|a| <= eps``, on at least ``dead_fraction`` of
  the words (default 99%): the neuron carries almost no signal.
* **saturated**: the activation sits at an end of its range on at least
  ``saturated_fraction`` of the words. Karpathy et al. call a sigmoid gate left-saturated
  below 0.1 and right-saturated above 0.9; we generalize this to any range ``[lo, hi]``:
  a word is left-saturated when ``a <= lo + margin * (hi - lo)`` and right-saturated when
  ``a >= hi - margin * (hi - lo)`` (``margin`` 0.1, so ``[0, 1]`` gives exactly their
  thresholds). The range is the component's known bounds when given (``bounds=(-1, 1)`` for
  tanh, ``(0, 1)`` for sigmoid), otherwise the neuron's observed min and max (then a
  neuron of constant value has no range and counts as unsaturated).
* **highest / lowest variance**: the most and least variable neurons (dead ones excluded
  from the lowest, which they would otherwise fill).

Statistics come from one streaming pass over the store (float64 accumulators; variances
merged per chunk with Chan et al.'s parallel update, which is stable where
``E[x^2] - E[x]^2`` cancels). Saturation against the *observed* range needs the final
min/max, so it costs a second pass over the same columns; with ``bounds`` it is counted in
the first pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import Activations
from neuronscope.moments import RunningMoments
from neuronscope.store.view import ActivationView


@dataclass
class NeuronStatistics:
    """Activation statistics of each neuron (arrays aligned with ``names`` and ``ids``).

    ``zero_fraction`` is the share of words with ``|a| <= eps``; ``saturation_low`` /
    ``saturation_high`` the shares of left- and right-saturated words (see the module doc).
    """

    names: list[str]
    ids: np.ndarray
    count: int
    mean: np.ndarray
    variance: np.ndarray  # population variance
    minimum: np.ndarray
    maximum: np.ndarray
    zero_fraction: np.ndarray
    saturation_low: np.ndarray
    saturation_high: np.ndarray
    eps: float
    margin: float
    bounds: tuple[float, float] | None

    @property
    def std(self) -> np.ndarray:
        """Standard deviation of each neuron."""
        return np.sqrt(self.variance)

    @property
    def saturation(self) -> np.ndarray:
        """Share of words saturated at either end."""
        return self.saturation_low + self.saturation_high

    def __len__(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings plus one list per statistic."""
        return {
            "count": self.count,
            "eps": self.eps,
            "margin": self.margin,
            "bounds": list(self.bounds) if self.bounds is not None else None,
            "names": list(self.names),
            "ids": self.ids.tolist(),
            **{
                key: getattr(self, key).tolist()
                for key in ("mean", "variance", "minimum", "maximum", "zero_fraction",
                            "saturation_low", "saturation_high")
            },
        }

    def to_dataframe(self) -> Any:
        """One row per neuron, indexed by name."""
        import pandas as pd

        return pd.DataFrame(
            {
                "id": self.ids, "mean": self.mean, "std": self.std, "variance": self.variance,
                "min": self.minimum, "max": self.maximum, "zero_fraction": self.zero_fraction,
                "saturation_low": self.saturation_low, "saturation_high": self.saturation_high,
            },
            index=pd.Index(self.names, name="neuron"),
        )

    def to_pandas(self) -> Any:
        """The same table as :meth:`to_dataframe` (pandas' usual name for it)."""
        return self.to_dataframe()


def neuron_statistics(
    activations: Activations,
    neurons: Sequence[str | int] | None = None,
    eps: float = 1e-6,
    margin: float = 0.1,
    bounds: tuple[float, float] | None = None,
    chunk_words: int = 4096,
) -> NeuronStatistics:
    """Count, mean, variance, min, max, near-zero and saturation shares of each neuron.

    Args:
        activations: an :class:`~neuronscope.store.ActivationStore` (streamed by chunks) or a
            ``(n_words, n_neurons)`` array.
        neurons: restrict to these neurons (names or ids; default: all).
        eps: tolerance of "zero" for dead neurons.
        margin: share of the range at each end that counts as saturated (0.1 = Karpathy's
            0.1 / 0.9 thresholds on a sigmoid).
        bounds: known activation range of the component, e.g. ``(-1, 1)`` for tanh; default:
            each neuron's observed min and max (costs a second pass).
        chunk_words: rows read at a time.
    """
    if eps < 0:
        raise NeuronscopeError(f"eps must be >= 0, got {eps}")
    if not 0 < margin < 0.5:
        raise NeuronscopeError(f"margin must be in (0, 0.5), got {margin}")
    if bounds is not None:
        bounds = (float(bounds[0]), float(bounds[1]))
        if not bounds[0] < bounds[1]:
            raise NeuronscopeError(f"bounds must be (low, high) with low < high, got {bounds}")
    data = ActivationView(activations, neurons, chunk_words=chunk_words)
    if data.n_words == 0:
        raise NeuronscopeError("no activation rows: statistics need at least one word")

    d = data.n_neurons
    moments = RunningMoments(d)
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    zeros = np.zeros(d)
    sat_low = np.zeros(d)
    sat_high = np.zeros(d)
    if bounds is not None:
        low_cut, high_cut = _cuts(np.full(d, bounds[0]), np.full(d, bounds[1]), margin)
    for _, _, block in data.chunks():
        moments.update(block)
        lo = np.minimum(lo, block.min(axis=0))
        hi = np.maximum(hi, block.max(axis=0))
        zeros += (np.abs(block) <= eps).sum(axis=0)
        if bounds is not None:
            sat_low += (block <= low_cut).sum(axis=0)
            sat_high += (block >= high_cut).sum(axis=0)
    if bounds is None:
        sat_low, sat_high = _observed_saturation(data, lo, hi, margin)
    count = int(moments.count_[0])
    return NeuronStatistics(
        names=list(data.names),
        ids=data.ids.copy(),
        count=count,
        mean=moments.mean_[0],
        variance=np.maximum(moments.variance_[0], 0.0),
        minimum=lo.astype(np.float64),
        maximum=hi.astype(np.float64),
        zero_fraction=zeros / count,
        saturation_low=sat_low / count,
        saturation_high=sat_high / count,
        eps=float(eps),
        margin=float(margin),
        bounds=bounds,
    )


def _cuts(lo: np.ndarray, hi: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron thresholds of left and right saturation (float32, compared with blocks)."""
    width = hi - lo
    return (lo + margin * width).astype(np.float32), (hi - margin * width).astype(np.float32)


def _observed_saturation(
    data: ActivationView, lo: np.ndarray, hi: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Second pass: counts of words near each neuron's observed min and max."""
    low_cut, high_cut = _cuts(lo.astype(np.float64), hi.astype(np.float64), margin)
    sat_low = np.zeros(len(lo))
    sat_high = np.zeros(len(lo))
    for _, _, block in data.chunks():
        sat_low += (block <= low_cut).sum(axis=0)
        sat_high += (block >= high_cut).sum(axis=0)
    # A constant neuron has no range: every word would count at both ends.
    constant = hi <= lo
    sat_low[constant] = 0
    sat_high[constant] = 0
    return sat_low, sat_high


def shortlists(
    stats: NeuronStatistics,
    k: int = 20,
    dead_fraction: float = 0.99,
    saturated_fraction: float = 0.5,
) -> dict[str, list[str]]:
    """Neuron names worth a look, at most ``k`` per list, most extreme first.

    Returns a dict with keys:

    * ``dead``: near-zero on at least ``dead_fraction`` of words (most often zero first).
    * ``saturated``: saturated (either end) on at least ``saturated_fraction`` of words,
      dead neurons excluded (most saturated first).
    * ``highest_variance``: largest variance first.
    * ``lowest_variance``: smallest variance first, dead neurons excluded.

    Ties keep neuron order.
    """
    if k < 0:
        raise NeuronscopeError(f"k must be >= 0, got {k}")
    for name, value in (("dead_fraction", dead_fraction),
                        ("saturated_fraction", saturated_fraction)):
        if not 0 < value <= 1:
            raise NeuronscopeError(f"{name} must be in (0, 1], got {value}")
    names = stats.names
    dead = stats.zero_fraction >= dead_fraction
    saturation = stats.saturation
    saturated = (saturation >= saturated_fraction) & ~dead

    def pick(mask: np.ndarray, key: np.ndarray) -> list[str]:
        idx = np.nonzero(mask)[0]
        order = idx[np.argsort(key[idx], kind="stable")][:k]
        return [names[i] for i in order]

    everyone = np.ones(len(names), dtype=bool)
    return {
        "dead": pick(dead, -stats.zero_fraction),
        "saturated": pick(saturated, -saturation),
        "highest_variance": pick(everyone, -stats.variance),
        "lowest_variance": pick(~dead, stats.variance),
    }
