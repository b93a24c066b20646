"""Mutual information between neurons and labels, in bits.

Two estimators:

* **Gaussian** (as in Torroba Hennigen, Williams & Cotterell 2020): ``I(Y; X) = H(Y) - H(Y|X)``
  with ``H(Y|X)`` estimated by the held-out cross-entropy of a generative classifier that
  models each class as a Gaussian over the neurons. For a set of neurons
  (:func:`gaussian_mutual_information`, :mod:`neuronscope.evaluation.gaussian_mi`) the
  pooled within-class covariance gets Ledoit-Wolf shrinkage and class ``c``'s covariance is
  shrunk towards it with ``k = prior_strength * d`` pseudo-observations,
  ``(S_c + k * S_pooled) / (n_c + k)``, so that the estimate stays stable as neurons are
  added; log-determinants come from Cholesky factors, and an estimate below 0 is returned
  with a warning, never clipped. For one neuron (:func:`neuron_mutual_information`, the same
  model vectorized over neurons) the class variance is shrunk with ``prior_strength``
  pseudo-observations plus a tiny ridge, and estimates below 0 are also kept and warned.
  Class priors are add-one smoothed training frequencies, a class absent from training
  falls back to the overall mean and covariance; ``H(Y)`` is the plug-in entropy of the
  held-out labels. It is a lower bound in spirit (a better model would lower the
  cross-entropy) and works for neuron *sets*.
* **Plug-in** for one neuron: its activations are cut into ``bins`` equal-frequency bins and
  ``I(bin; Y) = H(bin) + H(Y) - H(bin, Y)`` is computed from the counts, optionally with the
  Miller-Madow bias correction ``(m - 1) / (2 N)`` nats added to each entropy (``m`` the
  number of non-empty cells); clipped at 0. It needs no split, but its upward bias
  grows with ``bins * n_classes / N``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from neuronscope.corpus.corpus import ConceptLabels
from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation._common import (
    Activations,
    NeuronMatrix,
    label_array,
    load_neurons,
    resolve_split,
)
from neuronscope.evaluation.gaussian_mi import joint_gaussian_mi
from neuronscope.moments import RunningMoments
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

ESTIMATORS = ("gaussian", "plugin")
_LN2 = math.log(2.0)
# Cells of the (rows x classes x neurons) log-density block computed at once.
_BLOCK_CELLS = 2_000_000

Labels = ConceptLabels | np.ndarray | Sequence[Any]


def entropy_bits(labels: np.ndarray | Sequence[Any]) -> float:
    """Plug-in entropy of a label sequence in bits."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return _entropy_counts(counts) / _LN2


def _entropy_counts(counts: np.ndarray) -> float:
    """Plug-in entropy in nats of a count vector (zeros ignored)."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts / total
    return float(-(p * np.log(p)).sum())


def equal_frequency_bins(x: np.ndarray, bins: int = 10) -> np.ndarray:
    """Bin index of each value, with (about) the same number of values per bin.

    Edges are the ``j / bins`` quantiles; repeated edges (many tied values) merge bins, so a
    neuron with few distinct values gets fewer bins.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise NeuronscopeError(f"bins must be an integer >= 2, got {bins!r}")
    x = np.asarray(x, dtype=np.float64)
    edges = np.unique(np.quantile(x, np.arange(1, bins) / bins))
    return np.searchsorted(edges, x, side="right")


def plugin_mutual_information(
    x: np.ndarray, y: np.ndarray | Sequence[Any], bins: int = 10, miller_madow: bool = False
) -> float:
    """Plug-in ``I(bin(x); y)`` in bits for one neuron (see the module docstring)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 1 or x.shape != y.shape:
        raise NeuronscopeError(f"x and y must be 1-D of equal length, got {x.shape}, {y.shape}")
    if len(x) == 0:
        raise NeuronscopeError("no rows to estimate mutual information from")
    b = equal_frequency_bins(x, bins)
    _, code = np.unique(y, return_inverse=True)
    code = code.reshape(-1)
    return _plugin_from_codes(b, code, int(code.max()) + 1, miller_madow)


def _plugin_from_codes(b: np.ndarray, code: np.ndarray, n_classes: int,
                       miller_madow: bool) -> float:
    n = len(b)
    joint = np.bincount(b * n_classes + code, minlength=(int(b.max()) + 1) * n_classes)
    joint = joint.reshape(-1, n_classes)
    hb, hy, hby = (_entropy_counts(joint.sum(axis=1)), _entropy_counts(joint.sum(axis=0)),
                   _entropy_counts(joint.ravel()))
    mi = hb + hy - hby
    if miller_madow:
        def cells(c: np.ndarray) -> int:
            return int(np.count_nonzero(c))

        mi += ((cells(joint.sum(axis=1)) - 1) + (cells(joint.sum(axis=0)) - 1)
               - (cells(joint) - 1)) / (2 * n)
    return max(mi / _LN2, 0.0)


def _split(
    y: np.ndarray,
    groups: np.ndarray | None,
    train_mask: np.ndarray | None,
    test_mask: np.ndarray | None,
    test_size: float,
    random_state: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    train, test = resolve_split(len(y), train_mask, test_mask, test_size, groups, random_state)
    return np.nonzero(train)[0], np.nonzero(test)[0]


def _n_columns(activations: Activations) -> int:
    if isinstance(activations, ActivationStore):
        return activations.n_neurons
    if isinstance(activations, NeuronMatrix):
        return len(activations.ids)
    if isinstance(activations, ActivationView):
        return len(activations.ids)
    return int(np.shape(activations)[1]) if np.ndim(activations) == 2 else 0


def _class_codes(y_train: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    classes = sorted(set(y_train.tolist()) | set(y_test.tolist()), key=str)
    index = {c: i for i, c in enumerate(classes)}
    return (np.asarray([index[v] for v in y_train.tolist()], dtype=np.int64),
            np.asarray([index[v] for v in y_test.tolist()], dtype=np.int64), len(classes))


def _log_priors(code: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(code, minlength=n_classes).astype(np.float64)
    return np.log((counts + 1.0) / (counts.sum() + n_classes))


def _held_out_mi(log_joint: np.ndarray, code_test: np.ndarray) -> np.ndarray:
    """MI in bits from ``log p(c) + log p(x | c)`` of shape (rows, classes[, neurons])."""
    log_post = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    true = np.take_along_axis(log_post, code_test.reshape(-1, *([1] * (log_post.ndim - 1))),
                              axis=1)[:, 0]
    cross_entropy = -true.mean(axis=0) / _LN2
    h = entropy_bits(code_test)
    mi = h - cross_entropy
    if np.any(mi < 0):  # reported, never clipped: a model worse than the class prior
        warnings.warn(
            f"{int(np.sum(mi < 0))} Gaussian MI estimate(s) below 0 bits (lowest "
            f"{float(np.min(mi)):.4f}): on held-out words the model predicts the labels worse "
            "than the class prior", RuntimeWarning, stacklevel=3)
    return mi


def gaussian_mutual_information(
    activations: Activations,
    labels: Labels,
    neurons: Sequence[str | int] | np.ndarray | None = None,
    *,
    train_mask: np.ndarray | None = None,
    test_mask: np.ndarray | None = None,
    test_size: float = 0.2,
    prior_strength: float = 1.0,
    max_neurons: int = 1024,
    random_state: int | None = 0,
) -> float:
    """Gaussian estimate of ``I(Y; X_S)`` in bits for the neuron set ``S`` (jointly).

    Args:
        activations: a store, an array or a :class:`NeuronMatrix`.
        labels: a label layer or one label per row.
        neurons: the set ``S`` (default: all loaded neurons).
        train_mask, test_mask: explicit split; otherwise ``test_size`` of the sentences (or
            rows, for an array) are held out, seeded by ``random_state``.
        prior_strength: pseudo-observations per neuron (``prior_strength * d`` in all)
            shrinking each class covariance to the pooled one.
        max_neurons: refuse larger sets (one ``d x d`` covariance per class: 2,688 neurons
            and 17 classes would take 1 GB); per-neuron values come from
            :func:`neuron_mutual_information`.
    """
    if prior_strength < 0:
        raise NeuronscopeError(f"prior_strength must be >= 0, got {prior_strength}")
    y = label_array(activations, labels)
    # Checked before loading: the store might be large.
    n_set = len(neurons) if neurons is not None else _n_columns(activations)
    if n_set > max_neurons:
        raise NeuronscopeError(
            f"{n_set} neurons exceed max_neurons={max_neurons} for a joint Gaussian estimate; "
            "choose a subset (e.g. a ranking's top neurons) or raise max_neurons"
        )
    matrix = load_neurons(activations, neurons)
    if matrix.x.shape[1] == 0:
        raise NeuronscopeError("no neurons selected")
    train, test = _split(y, matrix.groups, train_mask, test_mask, test_size,
                         random_state)
    code_train, code_test, n_classes = _class_codes(y[train], y[test])
    # Standardized units, Ledoit-Wolf and dimension-scaled shrinkage, Cholesky
    # log-determinants, no clipping (see neuronscope.evaluation.gaussian_mi).
    return joint_gaussian_mi(matrix.x[train], code_train, matrix.x[test], code_test,
                             n_classes, prior_strength)


def neuron_mutual_information(
    activations: Activations,
    labels: Labels,
    neurons: Sequence[str | int] | np.ndarray | None = None,
    *,
    estimator: str = "gaussian",
    bins: int = 10,
    miller_madow: bool = False,
    train_mask: np.ndarray | None = None,
    test_mask: np.ndarray | None = None,
    test_size: float = 0.2,
    prior_strength: float = 1.0,
    random_state: int | None = 0,
) -> dict[str, float]:
    """``I(Y; X_j)`` in bits for each neuron ``j`` alone, by name, in the given order.

    ``estimator="gaussian"`` is the univariate case of :func:`gaussian_mutual_information`
    (vectorized over neurons, same split); ``"plugin"`` uses :func:`plugin_mutual_information`
    on every row with ``bins`` and ``miller_madow``.
    """
    if estimator not in ESTIMATORS:
        raise NeuronscopeError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    y = label_array(activations, labels)
    matrix = load_neurons(activations, neurons)
    if estimator == "plugin":
        if bins < 2:
            raise NeuronscopeError(f"bins must be an integer >= 2, got {bins!r}")
        _, code = np.unique(y, return_inverse=True)
        code = code.reshape(-1)
        n_classes = int(code.max()) + 1 if len(code) else 0
        values = [_plugin_from_codes(equal_frequency_bins(matrix.x[:, j], bins), code,
                                     n_classes, miller_madow)
                  for j in range(matrix.x.shape[1])]
        return dict(zip(matrix.names, values, strict=True))
    if prior_strength < 0:
        raise NeuronscopeError(f"prior_strength must be >= 0, got {prior_strength}")
    train, test = _split(y, matrix.groups, train_mask, test_mask, test_size,
                         random_state)
    code_train, code_test, n_classes = _class_codes(y[train], y[test])
    x_train = matrix.x[train].astype(np.float64)
    x_test = matrix.x[test]
    moments = RunningMoments(x_train.shape[1], n_classes).update(x_train, code_train)
    counts, means, scatter = moments.count_, moments.mean_, moments.m2_  # scatter: (C, D)
    pooled = scatter.sum(axis=0) / max(len(code_train), 1)
    total_mean = x_train.mean(axis=0)
    total_var = x_train.var(axis=0)
    ridge = 1e-6 * np.maximum(total_var, 1e-12)
    var = (scatter + prior_strength * pooled) / (counts[:, None] + prior_strength) + ridge
    absent = counts == 0
    means[absent] = total_mean
    var[absent] = total_var + ridge
    log_prior = _log_priors(code_train, n_classes)
    out = np.empty(x_test.shape[1])
    step = max(1, _BLOCK_CELLS // max(len(x_test) * n_classes, 1))
    for start in range(0, x_test.shape[1], step):
        sl = slice(start, start + step)
        xb = x_test[:, sl].astype(np.float64)[:, None, :]  # (N, 1, B)
        log_pdf = -0.5 * (np.log(2 * np.pi * var[None, :, sl])
                          + (xb - means[None, :, sl]) ** 2 / var[None, :, sl])
        out[sl] = _held_out_mi(log_pdf + log_prior[None, :, None], code_test)
    return dict(zip(matrix.names, out.tolist(), strict=True))
