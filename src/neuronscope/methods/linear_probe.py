"""Linear probe (Dalvi et al. 2019): rank neurons by the weights of a regularized classifier.

A multinomial logistic regression (or, for continuous targets, a linear regression) is trained
on the activations with an L1, L2 or ElasticNet penalty; a neuron matters for a concept as much
as its absolute weight for that class. The global order is the "linguistic correlation
analysis" rule of Dalvi et al. (2019, "What is one grain of sand in the desert?"), as in NeuroX'
``get_neuron_ordering``: raise the share of each class's weight mass step by step and append
neurons in the order they enter the union of the per-class top sets.

Objective (sklearn's scaling, so ``alpha = 1 / (C * n_train)`` maps to scikit-learn's ``C``)::

    mean_loss + alpha * (l1_ratio * ||W||_1 + (1 - l1_ratio) / 2 * ||W||_2^2)

with ``l1_ratio`` forced to 1 for ``penalty="l1"`` and 0 for ``"l2"``; the intercept is not
penalized. The loss is cross-entropy, or half the mean squared error for regression.

Optimization is minibatch Adam on shuffled rows (cosine-decayed step size) with a held-out
split for early stopping; weights start at zero, the intercept at the log class priors. The
L1 term is applied as a proximal (soft-thresholding) step after each Adam step, in Adam's own
diagonal metric: a weight is shrunk by ``lr * lambda_1 / (sqrt(v_hat) + eps)``, the same
scaling its gradient step gets. Unlike adding the subgradient ``sign(w)`` (which makes weights
oscillate around zero), this yields exact zeros: a weight stays zero while its averaged
minibatch gradient stays below ``lambda_1`` (the L1 optimality condition, blurred by minibatch
noise, so a full-batch solver such as saga zeroes more of the weakest weights).

The training matrix is held in memory as float32 (a float32 C-ordered array is used as is,
never copied); minibatches are gathered by index, and z-normalization is folded into the
weights rather than applied to the data.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    MethodInput,
    RankingMethod,
    check_finite,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

PENALTIES = ("elasticnet", "l1", "l2", "none")
TASKS = ("classification", "regression")
RANKINGS = ("weight-mass", "weight")
LR_SCHEDULES = ("cosine", "constant")
FORMAT = "neuronscope-linear-probe"

# Adam's usual constants; the learning rate is a parameter.
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
# Final share of the learning rate under the cosine schedule.
_LR_FLOOR = 0.02
# Rows per block in streaming passes (moments, evaluation): ~11 MB of float32 at 2,688 neurons.
_BLOCK_ROWS = 4096


# ---------------------------------------------------------------------- weight-mass rule
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


# ---------------------------------------------------------------------- the method
class LinearProbe(RankingMethod):
    """Rank neurons by the weights of an L1/L2/ElasticNet-regularized linear probe.

    Args:
        task: ``"classification"`` (multinomial logistic regression) or ``"regression"``
            (linear regression on a float target; one concept named after the label layer,
            or ``"target"``).
        penalty: ``"elasticnet"``, ``"l1"``, ``"l2"`` or ``"none"``.
        alpha: overall penalty strength (see the module docstring for the objective);
            ``alpha = 1 / (C * n_train)`` reproduces scikit-learn's ``C``.
        l1_ratio: share of the L1 term for ``"elasticnet"`` (ignored otherwise).
        ranking: ``"weight-mass"`` (Dalvi et al. global order) or ``"weight"`` (global order
            by the largest |w| over classes). Per-concept orders are by |w| either way.
        mass: weight-mass share defining each concept's top set, stored in
            ``Ranking.extra["top_neurons"]``.
        search_stride: number of mass steps of the global weight-mass order.
        normalize: z-normalize each neuron with the training rows' mean and standard
            deviation (Sajjad et al. 2021), so that weights of neurons on different scales
            are comparable; ``coef_`` is then in normalized units.
        batch_size: rows per Adam step; ``"auto"`` aims at about 200 steps per epoch
            (``n_train // 200`` clipped to 32..2048), so small and large corpora both train
            in a few epochs.
        learning_rate: Adam step size (the peak one under ``lr_schedule="cosine"``).
        lr_schedule: ``"cosine"`` decays the step size along a half cosine to 2% of
            ``learning_rate`` at ``max_epochs``, which averages out minibatch noise in the
            last epochs (about +0.5 point of dev accuracy over a constant step on MiniLM/EWT
            part of speech); ``"constant"`` keeps it.
        max_epochs: upper bound on passes over the training rows.
        validation_fraction: share of rows held out for early stopping (0: none, train
            ``max_epochs`` and keep the last weights).
        patience: epochs without validation improvement before stopping; the best weights
            are restored.
        random_state: seed of the split and the shuffling (weights start at zero).
        device: torch device; ``None`` uses CUDA when available.
        n_threads: torch CPU threads while training (restored afterwards); ``None`` keeps
            torch's setting. The default of 1 is deliberate: the many small per-step
            operations make multi-threaded training stall whenever another process holds a
            core (several times slower on a busy 2-core machine), for ~10% gain when idle.
        concepts: rank only these concepts (the probe is still trained on every label).
        neurons: restrict to these neurons (names or ids; default: all).

    Fitted attributes: ``coef_`` (classes, neurons), ``intercept_``, ``classes_`` (``None``
    for regression), ``mean_``/``scale_`` (when normalized), ``n_epochs_``, ``best_epoch_``,
    ``train_accuracy_``, ``validation_accuracy_`` (R^2 for regression; ``None`` without a
    validation split), ``neuron_ids_``, ``neuron_names_``.
    """

    name = "probe"

    def __init__(
        self,
        task: str = "classification",
        penalty: str = "elasticnet",
        alpha: float = 1e-4,
        l1_ratio: float = 0.5,
        ranking: str = "weight-mass",
        mass: float = 0.5,
        search_stride: int = 100,
        normalize: bool = True,
        batch_size: int | str = "auto",
        learning_rate: float = 3e-3,
        lr_schedule: str = "cosine",
        max_epochs: int = 10,
        validation_fraction: float = 0.1,
        patience: int = 2,
        random_state: int | None = 0,
        device: str | None = None,
        n_threads: int | None = 1,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
    ) -> None:
        self.task = task
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.ranking = ranking
        self.mass = mass
        self.search_stride = search_stride
        self.normalize = normalize
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.concepts = concepts
        self.neurons = neurons

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        checks = [
            (self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}"),
            (self.penalty in PENALTIES,
             f"penalty must be one of {PENALTIES}, got {self.penalty!r}"),
            (self.ranking in RANKINGS, f"ranking must be one of {RANKINGS}, got {self.ranking!r}"),
            (self.lr_schedule in LR_SCHEDULES,
             f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"),
            (_is_number(self.alpha) and self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}"),
            (_is_number(self.l1_ratio) and 0 <= self.l1_ratio <= 1,
             f"l1_ratio must be in [0, 1], got {self.l1_ratio}"),
            (_is_number(self.mass) and 0 < self.mass <= 1,
             f"mass must be in (0, 1], got {self.mass}"),
            (isinstance(self.search_stride, int) and self.search_stride >= 1,
             f"search_stride must be a positive integer, got {self.search_stride}"),
            (self.batch_size == "auto" or (isinstance(self.batch_size, int)
                                           and self.batch_size >= 1),
             f"batch_size must be a positive integer or 'auto', got {self.batch_size!r}"),
            (_is_number(self.learning_rate) and self.learning_rate > 0,
             f"learning_rate must be > 0, got {self.learning_rate}"),
            (isinstance(self.max_epochs, int) and self.max_epochs >= 1,
             f"max_epochs must be a positive integer, got {self.max_epochs}"),
            (_is_number(self.validation_fraction) and 0 <= self.validation_fraction < 1,
             f"validation_fraction must be in [0, 1), got {self.validation_fraction}"),
            (isinstance(self.patience, int) and self.patience >= 1,
             f"patience must be a positive integer, got {self.patience}"),
            (self.n_threads is None or (isinstance(self.n_threads, int) and self.n_threads >= 1),
             f"n_threads must be a positive integer or None, got {self.n_threads!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise NeuronscopeError(message)

    def _penalty_strengths(self) -> tuple[float, float]:
        """``(lambda_1, lambda_2)``: weights of ``||W||_1`` and ``||W||_2^2 / 2``."""
        ratio = {"l1": 1.0, "l2": 0.0, "none": 0.0}.get(self.penalty, float(self.l1_ratio))
        alpha = 0.0 if self.penalty == "none" else float(self.alpha)
        return alpha * ratio, alpha * (1.0 - ratio)

    def _torch_device(self) -> torch.device:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise NeuronscopeError(f"unknown device {self.device!r}: {err}") from err

    # ------------------------------------------------------------------ fitting
    def fit(self, activations: Activations, labels: Labels) -> LinearProbe:
        """Train the probe on all rows (minus the validation split); returns ``self``."""
        self._check_params()
        data = prepare_input(activations, labels, self.neurons)
        n_columns = _n_columns(activations)
        if isinstance(activations, np.ndarray) and len(data.ids) and (
            data.ids.min() < 0 or data.ids.max() >= n_columns
        ):
            raise NeuronscopeError(
                f"neuron ids must lie in [0, {n_columns}) for this array, got "
                f"{data.ids.min()}..{data.ids.max()}"
            )
        if data.n_neurons == 0:
            raise NeuronscopeError("no neurons selected")
        target, classes = self._encode_target(data.y)
        x = _training_matrix(data)
        device = self._torch_device()
        rng = np.random.default_rng(self.random_state)
        train_idx, val_idx = _split(len(x), float(self.validation_fraction), rng)

        mean = scale = None
        if self.normalize:
            mean, scale = _streaming_moments(x, train_idx)
        y_shift, y_scale = 0.0, 1.0
        if classes is None:
            # Standardize the target so that the learning rate and alpha do not depend on
            # its units; coef_ and intercept_ are mapped back afterwards.
            y_train = target[train_idx]
            y_shift = float(y_train.mean())
            y_scale = float(y_train.std()) or 1.0
            target = ((target - y_shift) / y_scale).astype(np.float32)

        trainer = _Trainer(
            x, target, None if classes is None else len(classes), mean, scale, device,
            *self._penalty_strengths(), float(self.learning_rate), self.lr_schedule == "cosine",
            _batch_size(self.batch_size, len(train_idx)), int(rng.integers(0, 2**62)),
        )
        with _torch_threads(self.n_threads if device.type == "cpu" else None):
            history = trainer.train(train_idx, val_idx, int(self.max_epochs), int(self.patience))
            # Train accuracy of the kept weights, measured after training (not a running mean).
            train_accuracy = trainer.evaluate(train_idx)[0]

        coef = trainer.weight.cpu().numpy()
        intercept = trainer.bias.cpu().numpy()
        if classes is None:
            coef, intercept = coef * y_scale, intercept * y_scale + y_shift
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)
        self.classes_ = classes
        self.mean_ = mean
        self.scale_ = scale
        self.neuron_ids_ = data.ids.copy()
        self.neuron_names_ = list(data.names)
        self.n_features_in_ = n_columns
        self.label_layer_ = data.label_layer
        self.store_fingerprint_ = data.store_fingerprint
        self.n_epochs_ = history["n_epochs"]
        self.best_epoch_ = history["best_epoch"]
        self.validation_accuracy_ = history["validation"]
        self.train_accuracy_ = train_accuracy
        return self

    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Integer class codes (classes sorted like :func:`require_concepts`) or float targets."""
        if self.task == "regression":
            try:
                target = np.asarray(y, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise NeuronscopeError(
                    f"regression needs numeric labels; got {y.dtype} ({err})"
                ) from err
            if not np.isfinite(target).all():
                raise NeuronscopeError("regression labels contain NaN or inf")
            if len(target) < 2:
                raise NeuronscopeError("regression needs at least two rows")
            return target, None
        classes = require_concepts(y, None)
        uniques, inverse = np.unique(y, return_inverse=True)
        position = {c: i for i, c in enumerate(classes)}
        remap = np.asarray([position[u] for u in uniques.tolist()], dtype=np.int64)
        return remap[inverse.reshape(-1)], np.asarray(classes, dtype=uniques.dtype)

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NeuronscopeError("this LinearProbe is not fitted yet: call fit() or rank()")

    def _input(self, activations: Activations, labels: Labels | None = None) -> MethodInput:
        """Rows of the fitted neurons (and labels when given), checked like in ``fit``."""
        self._check_fitted()
        n_columns = _n_columns(activations)
        if n_columns != self.n_features_in_:
            raise NeuronscopeError(
                f"the probe was fitted on activations with {self.n_features_in_} neurons, "
                f"these have {n_columns}"
            )
        if labels is None:
            n_rows = (activations.n_words if isinstance(activations, ActivationStore)
                      else len(activations))
            labels = np.zeros(n_rows, dtype=np.int8)
        return prepare_input(activations, labels, self.neuron_ids_.tolist())

    def _decision(self, data: MethodInput) -> np.ndarray:
        """Raw outputs ``(n_words, n_outputs)``, computed block by block."""
        weight, bias = self.coef_, self.intercept_
        if self.mean_ is not None:
            # Normalization folded into the weights, as in training.
            weight = self.coef_ / self.scale_
            bias = self.intercept_ - weight @ self.mean_
        out = np.empty((data.n_words, len(self.coef_)), dtype=np.float32)
        for start, stop, block in data.chunks():
            out[start:stop] = block @ weight.T + bias
        return out

    def decision_function(self, activations: Activations) -> np.ndarray:
        """Class scores (logits) ``(n_words, n_classes)``, or predictions for regression."""
        return self._decision(self._input(activations))

    def predict(self, activations: Activations) -> np.ndarray:
        """Predicted label per row (a float per row for regression)."""
        out = self.decision_function(activations)
        if self.classes_ is None:
            return out[:, 0]
        return self.classes_[out.argmax(axis=1)]

    def predict_proba(self, activations: Activations) -> np.ndarray:
        """Class probabilities ``(n_words, n_classes)`` in the order of ``classes_``."""
        self._check_fitted()
        if self.classes_ is None:
            raise NeuronscopeError("predict_proba needs a classification probe")
        logits = self.decision_function(activations)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def score(self, activations: Activations, labels: Labels) -> float:
        """Accuracy on these rows (R^2 for regression)."""
        data = self._input(activations, labels)
        out = self._decision(data)
        if self.classes_ is None:
            y = np.asarray(data.y, dtype=np.float64)
            return _r2(y, out[:, 0].astype(np.float64))
        return float(np.mean(self.classes_[out.argmax(axis=1)] == data.y))

    # ------------------------------------------------------------------ ranking
    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Fit the probe, then rank neurons per concept by |w| and globally (see ``ranking``)."""
        self.fit(activations, labels)
        return self.ranking_from_fit()

    def ranking_from_fit(self) -> Ranking:
        """The ranking of the fitted probe (what :meth:`rank` returns after fitting)."""
        self._check_fitted()
        ids = self.neuron_ids_
        names = self.neuron_names_
        if self.classes_ is None:
            concept = self.label_layer_ or "target"
            if self.concepts is not None and list(self.concepts) != [concept]:
                raise NeuronscopeError(
                    f"a regression probe has the single concept {concept!r}; "
                    f"got concepts={list(self.concepts)}"
                )
            wanted, rows = [concept], [0]
        else:
            wanted = require_concepts(self.classes_, self.concepts)
            position = {c: i for i, c in enumerate(self.classes_.tolist())}
            rows = [position[c] for c in wanted]
        weights = np.abs(self.coef_[rows]).astype(np.float64)
        ranking = ranking_from_scores(
            self.name, self.get_params(), weights, wanted, ids, names,
            store_fingerprint=self.store_fingerprint_,
            label_layer=self.label_layer_,
        )
        if self.ranking == "weight-mass":
            # Global order over the ranked concepts only: the others' weights say nothing
            # about them. Score = share of mass levels at which the neuron is selected.
            entry = _entry_steps(weights, self.search_stride)
            order, cutoffs = weight_mass_ordering(weights, self.search_stride)
            ranking.global_order = ids[order]
            ranking.global_scores = (self.search_stride + 1 - entry[order]) / (
                self.search_stride + 1
            )
            ranking.extra["cutoffs"] = cutoffs.tolist()
        tops = weight_mass_top(weights, float(self.mass))
        ranking.extra.update({
            "mass": float(self.mass),
            "top_neurons": {str(c): [names[i] for i in t] for c, t in zip(wanted, tops,
                                                                          strict=True)},
            "top_neurons_union": [names[i] for i in sorted({int(i) for t in tops for i in t})],
            "train_accuracy": self.train_accuracy_,
            "validation_accuracy": self.validation_accuracy_,
            "n_epochs": self.n_epochs_,
            "zero_weight_fraction": float(np.mean(self.coef_ == 0)),
        })
        return ranking

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write parameters and fitted state with ``torch.save`` (tensors and plain types only,
        so :meth:`load` can use ``weights_only`` loading)."""
        self._check_fitted()
        state = {
            "format": FORMAT,
            "version": 1,
            "params": {k: _plain(v) for k, v in self.get_params().items()},
            "coef": torch.from_numpy(np.ascontiguousarray(self.coef_)),
            "intercept": torch.from_numpy(np.ascontiguousarray(self.intercept_)),
            "classes": None if self.classes_ is None else self.classes_.tolist(),
            "mean": None if self.mean_ is None else torch.from_numpy(self.mean_),
            "scale": None if self.scale_ is None else torch.from_numpy(self.scale_),
            "neuron_ids": torch.from_numpy(self.neuron_ids_.astype(np.int64)),
            "neuron_names": list(self.neuron_names_),
            "n_features_in": int(self.n_features_in_),
            "label_layer": self.label_layer_,
            "store_fingerprint": self.store_fingerprint_,
            "n_epochs": int(self.n_epochs_),
            "best_epoch": int(self.best_epoch_),
            "train_accuracy": float(self.train_accuracy_),
            "validation_accuracy": (None if self.validation_accuracy_ is None
                                    else float(self.validation_accuracy_)),
        }
        torch.save(state, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearProbe:
        """Read a probe written by :meth:`save` (safe ``weights_only`` loading)."""
        path = Path(path)
        if not path.exists():
            raise NeuronscopeError(f"probe file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for corrupt or foreign files
            raise NeuronscopeError(f"{path}: not a readable probe file: {err}") from err
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise NeuronscopeError(f"{path}: not a neuronscope linear probe")
        probe = cls().set_params(**state["params"])
        assert isinstance(probe, LinearProbe)
        probe.coef_ = state["coef"].numpy()
        probe.intercept_ = state["intercept"].numpy()
        probe.classes_ = None if state["classes"] is None else np.asarray(state["classes"])
        probe.mean_ = None if state["mean"] is None else state["mean"].numpy()
        probe.scale_ = None if state["scale"] is None else state["scale"].numpy()
        probe.neuron_ids_ = state["neuron_ids"].numpy()
        probe.neuron_names_ = list(state["neuron_names"])
        probe.n_features_in_ = state["n_features_in"]
        probe.label_layer_ = state["label_layer"]
        probe.store_fingerprint_ = state["store_fingerprint"]
        probe.n_epochs_ = state["n_epochs"]
        probe.best_epoch_ = state["best_epoch"]
        probe.train_accuracy_ = state["train_accuracy"]
        probe.validation_accuracy_ = state["validation_accuracy"]
        return probe


# ---------------------------------------------------------------------- training
class _Trainer:
    """Minibatch proximal Adam on ``W`` (outputs x neurons) and ``b``.

    Rows of ``x`` are gathered by index, so the training and validation splits never copy
    the matrix. Normalization is folded into the weights (``(x - mean) / scale @ W.T`` ==
    ``x @ (W / scale).T - (W / scale) @ mean``) so raw rows are used as they are, saving an
    elementwise pass over every minibatch.
    """

    def __init__(
        self,
        x: np.ndarray,
        target: np.ndarray,
        n_classes: int | None,
        mean: np.ndarray | None,
        scale: np.ndarray | None,
        device: torch.device,
        lambda1: float,
        lambda2: float,
        lr: float,
        cosine: bool,
        batch_size: int,
        seed: int,
    ) -> None:
        self.device = device
        self.x_host = x
        self.x_device = None
        if device.type != "cpu":
            self.x_device = _to_device_if_fits(x, device)
        self.y = torch.from_numpy(target).to(device)
        self.classify = n_classes is not None
        n_out = n_classes if n_classes is not None else 1
        self.mean = None if mean is None else torch.from_numpy(mean).to(device)
        self.inv_scale = None if scale is None else torch.from_numpy(1.0 / scale).to(device)
        self.lambda1, self.lambda2, self.lr = lambda1, lambda2, lr
        self.base_lr, self.cosine = lr, cosine
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.weight = torch.zeros(n_out, x.shape[1], device=device)
        self.bias = torch.zeros(n_out, device=device)
        self._adam = [torch.zeros_like(t) for t in (self.weight, self.weight,
                                                    self.bias, self.bias)]
        self._steps = 0
        self._buffer = np.empty((max(batch_size, _BLOCK_ROWS), x.shape[1]), dtype=np.float32)

    def _rows(self, idx: np.ndarray) -> torch.Tensor:
        """Raw rows ``idx`` (sorted) as a tensor on the device; valid until the next call."""
        if self.x_device is not None:
            return self.x_device.index_select(0, torch.from_numpy(idx).to(self.device))
        # numpy's take into a reused buffer is several times faster than torch.index_select
        # for row gathers on CPU, and allocates nothing.
        block = self._buffer[: len(idx)]
        np.take(self.x_host, idx, axis=0, out=block)
        return torch.from_numpy(block).to(self.device)

    def _effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias acting on raw rows."""
        if self.inv_scale is None:
            return self.weight, self.bias
        weight = self.weight * self.inv_scale
        return weight, self.bias - weight @ self.mean

    def _outputs(self, xb: torch.Tensor) -> torch.Tensor:
        weight, bias = self._effective()
        return torch.addmm(bias, xb, weight.T)

    def _step(self, idx: np.ndarray) -> None:
        xb = self._rows(idx)
        yb = self.y[torch.from_numpy(idx).to(self.device)]
        out = self._outputs(xb)
        # Gradient of the mean loss w.r.t. the outputs, by hand: (p - onehot) / B for
        # cross-entropy, (prediction - y) / B for half the squared error.
        if self.classify:
            grad = torch.softmax(out, dim=1)
            grad[torch.arange(len(yb), device=self.device), yb] -= 1.0
        else:
            grad = out - yb[:, None]
        grad /= len(yb)
        grad_b = grad.sum(dim=0)
        grad_w = grad.T @ xb
        if self.inv_scale is not None:
            # Chain rule through the folded normalization.
            grad_w.sub_(torch.outer(grad_b, self.mean)).mul_(self.inv_scale)
        if self.lambda2:
            grad_w.add_(self.weight, alpha=self.lambda2)
        self._steps += 1
        m_w, v_w, m_b, v_b = self._adam
        denom_w = self._adam_update(self.weight, grad_w, m_w, v_w)
        self._adam_update(self.bias, grad_b, m_b, v_b)
        if self.lambda1:
            # Proximal L1 step in Adam's metric: soft-threshold by lr * lambda1 / denom.
            shrink = denom_w.reciprocal_().mul_(self.lr * self.lambda1)
            self.weight.copy_(torch.sign(self.weight) * (self.weight.abs() - shrink).clamp_(min=0))

    def _adam_update(self, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor,
                     v: torch.Tensor) -> torch.Tensor:
        """One Adam step on ``p`` in place; returns the per-coordinate step denominator."""
        m.mul_(_BETA1).add_(g, alpha=1 - _BETA1)
        v.mul_(_BETA2).addcmul_(g, g, value=1 - _BETA2)
        m_hat_scale = 1 / (1 - _BETA1**self._steps)
        denom = (v / (1 - _BETA2**self._steps)).sqrt_().add_(_EPS)
        p.addcdiv_(m, denom, value=-self.lr * m_hat_scale)
        return denom

    @torch.no_grad()
    def evaluate(self, idx: np.ndarray) -> tuple[float, float]:
        """``(accuracy, mean loss)`` on these rows (``(R^2, mean squared error)`` when
        regressing), block by block."""
        correct, loss, sq_total = 0.0, 0.0, 0.0
        y_all = self.y[torch.from_numpy(idx).to(self.device)]
        y_mean = float(y_all.float().mean()) if not self.classify else 0.0
        for start in range(0, len(idx), _BLOCK_ROWS):
            out = self._outputs(self._rows(idx[start : start + _BLOCK_ROWS]))
            yb = y_all[start : start + _BLOCK_ROWS]
            if self.classify:
                correct += float((out.argmax(dim=1) == yb).sum())
                loss += float(torch.nn.functional.cross_entropy(out, yb, reduction="sum"))
            else:
                loss += float(((out[:, 0] - yb) ** 2).sum())
                sq_total += float(((yb - y_mean) ** 2).sum())
        n = max(len(idx), 1)
        if self.classify:
            return correct / n, loss / n
        return (1.0 - loss / sq_total if sq_total > 0 else 0.0), loss / n

    @torch.no_grad()
    def train(self, train_idx: np.ndarray, val_idx: np.ndarray, max_epochs: int,
              patience: int) -> dict[str, Any]:
        """Epochs of shuffled minibatches; early stopping on the validation rows (accuracy,
        ties broken by loss), restoring the best weights."""
        if self.classify:
            # Start from the log class priors: the first steps then learn features, not counts.
            counts = torch.bincount(self.y[torch.from_numpy(train_idx).to(self.device)],
                                    minlength=len(self.bias))
            self.bias = torch.log((counts.float() + 1) / (len(train_idx) + len(self.bias)))
        best: tuple[float, float] | None = None
        best_state = (self.weight.clone(), self.bias.clone())
        best_epoch, waited, epoch = 0, 0, 0
        n_batches = -(-len(train_idx) // self.batch_size)
        for epoch in range(1, max_epochs + 1):
            order = train_idx[torch.randperm(len(train_idx), generator=self.generator).numpy()]
            for j, start in enumerate(range(0, len(order), self.batch_size)):
                if self.cosine:
                    done = ((epoch - 1) * n_batches + j) / (max_epochs * n_batches)
                    self.lr = self.base_lr * (_LR_FLOOR + (1 - _LR_FLOOR) * 0.5
                                              * (1 + math.cos(math.pi * done)))
                # Sorted rows within a batch: same gradient, friendlier memory access.
                self._step(np.sort(order[start : start + self.batch_size]))
            if len(val_idx) == 0:
                continue
            acc, loss = self.evaluate(val_idx)
            if best is None or (acc, -loss) > best:
                best, best_epoch, waited = (acc, -loss), epoch, 0
                best_state = (self.weight.clone(), self.bias.clone())
            else:
                waited += 1
                if waited >= patience:
                    break
        if len(val_idx) == 0:
            return {"n_epochs": epoch, "best_epoch": epoch, "validation": None}
        self.weight, self.bias = best_state
        return {"n_epochs": epoch, "best_epoch": best_epoch, "validation": best[0]}


# ---------------------------------------------------------------------- helpers
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    ) and math.isfinite(float(value))


def _n_columns(activations: Activations) -> int:
    if isinstance(activations, ActivationView):
        return activations.source_neurons
    if isinstance(activations, ActivationStore):
        return activations.n_neurons
    if isinstance(activations, np.ndarray) and activations.ndim == 2:
        return activations.shape[1]
    raise NeuronscopeError(
        "activations must be an ActivationStore or a 2-D numpy array, "
        f"not {type(activations).__name__}"
        + (f" of shape {activations.shape}" if isinstance(activations, np.ndarray) else "")
    )


def _training_matrix(data: MethodInput) -> np.ndarray:
    """The selected activations as float32 rows, without copying a float32 array that is
    already laid out as needed (it is only read)."""
    src = data.source
    if (isinstance(src, np.ndarray) and src.dtype == np.float32 and src.flags.c_contiguous
            and data.n_neurons == src.shape[1]
            and np.array_equal(data.ids, np.arange(src.shape[1]))):
        for start in range(0, len(src), 16 * _BLOCK_ROWS):
            check_finite(src[start : start + 16 * _BLOCK_ROWS], start)
        return src
    return data.matrix()


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted training and validation row indices (a seeded random split)."""
    n_val = int(round(fraction * n)) if fraction > 0 else 0
    if fraction > 0:
        n_val = max(n_val, 1)
    if n - n_val < 1:
        raise NeuronscopeError(
            f"{n} rows leave none for training with validation_fraction={fraction}"
        )
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _streaming_moments(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column over ``rows``, one block at a time
    (Chan et al.'s pairwise merge, float64), without a float64 copy of the matrix."""
    mask = np.zeros(len(x), dtype=bool)
    mask[rows] = True
    count, mean, m2 = 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for start in range(0, len(x), _BLOCK_ROWS):
        keep = mask[start : start + _BLOCK_ROWS]
        block = x[start : start + _BLOCK_ROWS][keep]
        if not len(block):
            continue
        b_mean = block.mean(axis=0, dtype=np.float64)
        dev = block - b_mean.astype(np.float32)
        b_m2 = np.einsum("ij,ij->j", dev, dev, dtype=np.float64)
        total = count + len(block)
        delta = b_mean - mean
        mean += delta * (len(block) / total)
        m2 += b_m2 + delta**2 * (count * len(block) / total)
        count = total
    std = np.sqrt(m2 / max(count, 1))
    # Constant neurons keep scale 1 (as in scikit-learn's StandardScaler).
    std[std < 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, restoring the previous count."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _batch_size(setting: int | str, n_train: int) -> int:
    if setting == "auto":
        return int(min(2048, max(32, n_train // 200)))
    return int(setting)


def _to_device_if_fits(x: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The whole matrix on the accelerator when it leaves room to spare; otherwise ``None``
    (minibatches are then gathered on the host and moved one at a time)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if x.nbytes > 0.6 * free:
            return None
    with warnings.catch_warnings():
        # A read-only input (e.g. a memory map) is fine: it is only copied.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(x).to(device)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else 0.0


def _plain(value: Any) -> Any:
    """Parameters as the plain types ``weights_only`` loading accepts."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    return value
