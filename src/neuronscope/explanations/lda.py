"""The fast probe of the evolutionary search: closed-form LDA and cached subset fitness.

:class:`LDAClassifier` is linear discriminant analysis with a shrunk pooled covariance;
:class:`SubsetFitness` scores neuron subsets with it on a validation split, reusing the
within-class-centred training matrix so a subset costs one ``k x k`` covariance and solve.
Used by :mod:`neuronscope.explanations.evolutionary` and :mod:`neuronscope.explanations.domains`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.params import Configurable

__all__ = ["METRICS", "LDAClassifier", "SubsetFitness", "encode_labels", "score"]

METRICS = ("accuracy", "balanced_accuracy")


# ---------------------------------------------------------------------------- fast probe
class LDAClassifier(Configurable):
    """Linear discriminant analysis with a shrunk pooled covariance (closed form).

    Args:
        shrinkage: share of ``trace(S) / k`` added to the diagonal of the pooled
            within-class covariance ``S`` (keeps it invertible for tiny or collinear sets).
    """

    def __init__(self, shrinkage: float = 1e-3, priors: str = "empirical") -> None:
        if priors not in ("empirical", "uniform"):
            raise NeuronscopeError(f"priors must be 'empirical' or 'uniform', got {priors!r}")
        self.shrinkage = shrinkage
        self.priors = priors

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> LDAClassifier:
        """Fit on rows ``x`` with integer labels ``y`` in ``0..n_classes-1``."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        c = int(n_classes if n_classes is not None else y.max() + 1)
        counts = np.bincount(y, minlength=c).astype(np.float64)
        means = np.zeros((c, x.shape[1]))
        np.add.at(means, y, x)
        present = counts > 0
        means[present] /= counts[present, None]
        centred = x - means[y]
        cov = centred.T @ centred / max(len(x) - int(present.sum()), 1)
        self._finish(means, cov, counts)
        return self

    def _finish(self, means: np.ndarray, cov: np.ndarray, counts: np.ndarray) -> None:
        k = cov.shape[0]
        ridge = self.shrinkage * max(float(np.trace(cov)) / max(k, 1), 1e-12)
        cov = cov + (ridge + 1e-12) * np.eye(k)
        present = counts > 0
        self.coef_ = np.linalg.solve(cov, means.T)  # (k, C)
        with np.errstate(divide="ignore"):
            log_prior = np.log(counts / counts.sum())
        if self.priors == "uniform":
            log_prior = np.zeros(len(counts))
        self.intercept_ = -0.5 * np.einsum("ck,kc->c", means, self.coef_) + log_prior
        self.intercept_[~present] = -np.inf  # a class never seen is never predicted
        self.means_ = means

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Discriminant scores ``(n, C)``."""
        return np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices."""
        return self.decision_function(x).argmax(axis=1)


def score(y_true: np.ndarray, y_pred: np.ndarray, metric: str = "accuracy") -> float:
    """Accuracy, or balanced accuracy (mean recall over the classes present in ``y_true``)."""
    if len(y_true) == 0:
        return 0.0
    if metric == "accuracy":
        return float(np.mean(y_true == y_pred))
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def priors_for(metric: str) -> str:
    # Uniform priors make LDA the Bayes rule for balanced accuracy: a weak joint signal then
    # moves the score instead of being outvoted by the majority class.
    return "uniform" if metric == "balanced_accuracy" else "empirical"


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes and the sorted class names of string labels."""
    classes, codes = np.unique(np.asarray([str(v) for v in y.tolist()], dtype=object),
                               return_inverse=True)
    return codes.astype(np.int64), [str(c) for c in classes]


class SubsetFitness:
    """Cached held-out fitness of neuron subsets (see the module docstring).

    Args:
        x_train, y_train: training rows and integer labels.
        x_val, y_val: validation rows and labels (the accuracy that counts).
        n_classes: number of classes.
        size_penalty: subtracted per neuron.
        metric: ``"accuracy"`` or ``"balanced_accuracy"``.
        shrinkage: LDA shrinkage.
    """

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray, n_classes: int, size_penalty: float = 0.0,
                 metric: str = "accuracy", shrinkage: float = 1e-3) -> None:
        x_train = np.asarray(x_train, dtype=np.float64)
        self.counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        means = np.zeros((n_classes, x_train.shape[1]))
        np.add.at(means, y_train, x_train)
        present = self.counts > 0
        means[present] /= self.counts[present, None]
        self.means = means
        # Within-class centring does not depend on the subset: do it once.
        self.centred = x_train - means[y_train]
        self.dof = max(len(x_train) - int(present.sum()), 1)
        self.x_val = np.asarray(x_val, dtype=np.float64)
        self.y_val = np.asarray(y_val, dtype=np.int64)
        self.size_penalty = size_penalty
        self.metric = metric
        self.shrinkage = shrinkage
        self.cache: dict[tuple[int, ...], tuple[float, float]] = {}

    def accuracy(self, subset: Sequence[int]) -> float:
        """Validation score of the probe on ``subset`` (no penalty)."""
        return self(subset)[1]

    def __call__(self, subset: Iterable[int]) -> tuple[float, float]:
        """``(fitness, validation score)`` of a subset."""
        key = tuple(sorted(int(i) for i in subset))
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        cols = list(key)
        c = self.centred[:, cols]
        lda = LDAClassifier(self.shrinkage, priors_for(self.metric))
        lda._finish(self.means[:, cols], c.T @ c / self.dof, self.counts)
        acc = score(self.y_val, lda.predict(self.x_val[:, cols]), self.metric)
        result = (acc - self.size_penalty * len(cols), acc)
        self.cache[key] = result
        return result
