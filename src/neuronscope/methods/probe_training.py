"""Training machinery of :class:`~neuronscope.methods.linear_probe.LinearProbe`.

Optimization is minibatch Adam on shuffled rows; weights start at zero (or at the previous
point of a regularization path: warm start), the intercept at the log class priors. The L1
term is applied as a proximal (soft-thresholding) step after each Adam step, in Adam's own
diagonal metric: a weight is shrunk by ``lr * lambda_1 / (sqrt(v_hat) + eps)``, the same
scaling its gradient step gets. Unlike adding the subgradient ``sign(w)`` (which makes weights
oscillate around zero), this yields exact zeros: a weight stays zero while its averaged
minibatch gradient stays below ``lambda_1``.

Stopping is tolerance-based ("reduce on plateau"): after every window of training rows (half
an epoch by default, see :func:`check_window`) the penalized training objective
(mean minibatch loss of the window plus the penalty) is compared with the best so far; a
window that does not lower it by a relative ``tol`` halves the step size, and training stops
after ``patience`` such windows in all (converged) or at ``max_epochs`` (not converged,
reported).
Halving the step averages out minibatch noise, so the weights settle at the optimum instead
of wandering around it at a fixed step size.

Validation is by *sentence* whenever sentence ids are known: words of one sentence share
context, so a word-level split lets the validation words leak through their neighbours and
overstates accuracy (0.954 by word vs 0.928 on real dev sentences, MiniLM/EWT).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import Activations
from neuronscope.methods.probe_data import RowSource
from neuronscope.splits import split_by_sentence
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

# Adam's usual constants; the learning rate is a parameter.
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
class Trainer:
    """Minibatch proximal Adam on ``W`` (outputs x neurons) and ``b``.

    Rows come from a row source (:mod:`neuronscope.methods.probe_data`: an in-memory matrix
    or the store, streamed), so the training and validation splits never copy the matrix.
    Normalization is folded into the weights (``(x - mean) / scale @ W.T`` ==
    ``x @ (W / scale).T - (W / scale) @ mean``) so raw rows are used as they are, saving an
    elementwise pass over every minibatch. The penalty can be changed between calls of
    :meth:`train` (a regularization path), keeping weights and Adam's moments.
    """

    def __init__(
        self,
        source: RowSource,
        target: np.ndarray,
        n_classes: int | None,
        mean: np.ndarray | None,
        scale: np.ndarray | None,
        device: torch.device,
        batch_size: int,
        seed: int,
        check_rows: int | str | None = None,
    ) -> None:
        self.device = device
        self.source = source
        self.check_rows = check_rows
        self.y = torch.from_numpy(target).to(device)
        self.classify = n_classes is not None
        n_out = n_classes if n_classes is not None else 1
        self.mean = None if mean is None else torch.from_numpy(mean).to(device)
        self.inv_scale = None if scale is None else torch.from_numpy(1.0 / scale).to(device)
        self.lambda1, self.lambda2, self.lr = 0.0, 0.0, 1e-3
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.weight = torch.zeros(n_out, source.n_features, device=device)
        self.bias = torch.zeros(n_out, device=device)
        self._adam = [torch.zeros_like(t) for t in (self.weight, self.weight,
                                                    self.bias, self.bias)]
        self._steps = 0
        self._prior_set = False

    def _effective(self, weight: torch.Tensor | None = None,
                   bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias acting on raw rows (of the current or of the given weights)."""
        weight = self.weight if weight is None else weight
        bias = self.bias if bias is None else bias
        if self.inv_scale is None or self.mean is None:
            return weight, bias
        weight = weight * self.inv_scale
        return weight, bias - weight @ self.mean

    def _step(self, idx: np.ndarray, parts: list[torch.Tensor]) -> torch.Tensor:
        """One proximal Adam step on rows ``idx`` (``parts``, stacked, are their rows);
        returns the sum of their losses before the step (a tensor: no synchronization per
        step on accelerators)."""
        y = self.y[torch.from_numpy(idx).to(self.device)]
        weight, bias = self._effective()
        grad_w = torch.zeros_like(self.weight)
        grad_b = torch.zeros_like(self.bias)
        loss = torch.zeros((), device=self.device)
        # Each row's loss gradient needs only that row's outputs, so the parts can be
        # grouped freely; the sums still run part by part, in the part order, so every
        # grouping gives the same step bit for bit. Parts gathered into one block (in the
        # last-level cache) go as one group: the softmax, log, scatter and scaling then run
        # once per batch instead of once per part (100 steps of 8 x 115 rows x 2,688:
        # 0.56 s against 0.60 s, load 3.5-4.2). Parts read where they lie in main memory
        # (layout tiles, 1.2 MB each) go one by one, so the backward product reads the
        # part from the core's L2 cache, not from memory again: the default fit on EWT
        # train took 43.3-43.5 s against 44.2-45.0 s batch by batch (runs alternated, load
        # 0.8-1.1).
        groups = [[xb] for xb in parts] if self.source.parts_in_place else [parts]
        start = 0
        for group in groups:
            n_rows = sum(len(xb) for xb in group)
            self._part_gradients(group, y[start : start + n_rows], weight, bias,
                                 1.0 / len(idx), grad_w, grad_b, loss)
            start += n_rows
        if self.inv_scale is not None and self.mean is not None:
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
        return loss

    def _part_gradients(self, parts: list[torch.Tensor], y: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor, scale: float, grad_w: torch.Tensor,
                        grad_b: torch.Tensor, loss: torch.Tensor) -> None:
        """Add the gradients of ``scale`` x the loss of these parts' rows (targets ``y``)
        to ``grad_w`` and ``grad_b``, and their loss to ``loss``, part by part."""
        bounds = [0, *itertools.accumulate(len(xb) for xb in parts)]
        out = torch.empty(bounds[-1], len(self.bias), device=self.device)
        for xb, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
            torch.addmm(bias, xb, weight.T, out=out[lo:hi])
        # Gradient of the mean loss w.r.t. the outputs, by hand: (p - onehot) / B for
        # cross-entropy, (prediction - y) / B for half the squared error.
        if self.classify:
            grad = torch.softmax(out, dim=1)
            picked = y[:, None]
            losses = torch.log(grad.gather(1, picked).clamp_min_(1e-30)).neg_()
            grad.scatter_add_(1, picked, torch.full_like(picked, -1.0, dtype=grad.dtype))
        else:
            grad = out - y[:, None]
            losses = grad**2
        grad *= scale
        for xb, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
            loss += losses[lo:hi].sum() if self.classify else 0.5 * losses[lo:hi].sum()
            grad_b += grad[lo:hi].sum(dim=0)
            grad_w.addmm_(grad[lo:hi].T, xb)

    def _adam_update(self, p: torch.Tensor, g: torch.Tensor, m: torch.Tensor,
                     v: torch.Tensor) -> torch.Tensor:
        """One Adam step on ``p`` in place; returns the per-coordinate step denominator."""
        m.mul_(_BETA1).add_(g, alpha=1 - _BETA1)
        v.mul_(_BETA2).addcmul_(g, g, value=1 - _BETA2)
        m_hat_scale = 1 / (1 - _BETA1**self._steps)
        denom = (v / (1 - _BETA2**self._steps)).sqrt_().add_(_EPS)
        p.addcdiv_(m, denom, value=-self.lr * m_hat_scale)
        return denom

    def alpha_max(self, idx: np.ndarray, target_sums: np.ndarray, train_sum: np.ndarray
                  ) -> float:
        """The largest |gradient| of the mean loss at zero weights (intercept at the class
        priors or the target mean): the L1 strength below which the first weight enters.

        ``target_sums``, ``train_sum``: the training rows' target-weighted sums and plain sum
        (:class:`~neuronscope.methods.probe_data.Scan`), so no pass over the rows is needed:
        the gradient is ``sum_rows (prior - onehot(y)) x`` (``(mean(y) - y) x`` when
        regressing).
        """
        n = max(len(idx), 1)
        y = self.y[torch.from_numpy(idx).to(self.device)].cpu().numpy()
        if self.classify:
            counts = np.bincount(y, minlength=len(self.bias)).astype(np.float64)
            prior = counts / n
            grad = np.outer(prior, train_sum) - target_sums
            out_sum = prior * len(idx) - counts
        else:
            y_sum = float(y.astype(np.float64).sum())
            y_mean = y_sum / n
            grad = y_mean * train_sum[None, :] - target_sums
            out_sum = np.array([y_mean * len(idx) - y_sum])
        if self.inv_scale is not None and self.mean is not None:
            # The gradient on standardized rows, folded: (x - mean) * inv_scale.
            grad = ((grad - np.outer(out_sum, self.mean.cpu().numpy()))
                    * self.inv_scale.cpu().numpy())
        return float(np.abs(grad).max()) / n

    def penalty(self) -> float:
        """Current value of the penalty term."""
        value = 0.0
        if self.lambda1:
            value += self.lambda1 * float(self.weight.abs().sum())
        if self.lambda2:
            value += 0.5 * self.lambda2 * float((self.weight**2).sum())
        return value

    @torch.no_grad()
    def evaluate(self, idx: np.ndarray, points: list[tuple[np.ndarray, np.ndarray]] | None = None
                 ) -> list[tuple[float, float]]:
        """``(accuracy, mean loss)`` on these rows (``(R^2, mean squared error)`` when
        regressing) of every ``(weight, bias)`` in ``points`` (default: the current weights),
        in one ordered pass over the rows."""
        if points is None:
            stacked = [(self.weight, self.bias)]
        else:
            stacked = [(torch.from_numpy(w).to(self.device), torch.from_numpy(b).to(self.device))
                       for w, b in points]
        effective = [self._effective(w, b) for w, b in stacked]
        n_out = len(self.bias)
        weight = torch.cat([w for w, _ in effective])
        bias = torch.cat([b for _, b in effective])
        k = len(effective)
        correct, loss = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
        y_all = self.y[torch.from_numpy(idx).to(self.device)]
        y_mean = float(y_all.float().mean()) if not self.classify and len(idx) else 0.0
        sq_total = float(((y_all - y_mean) ** 2).sum()) if not self.classify else 0.0
        for rows, xb in self.source.blocks(idx):
            out = torch.addmm(bias, xb, weight.T).view(len(rows), k, n_out)
            yb = self.y[torch.from_numpy(rows).to(self.device)]
            if self.classify:
                correct += (out.argmax(dim=2) == yb[:, None]).sum(dim=0).double().cpu()
                logp = torch.log_softmax(out, dim=2)
                picked = logp.gather(2, yb[:, None, None].expand(-1, k, 1))[..., 0]
                loss -= picked.sum(dim=0).double().cpu()
            else:
                loss += ((out[..., 0] - yb[:, None]) ** 2).sum(dim=0).double().cpu()
        n = max(len(idx), 1)
        if self.classify:
            return [(float(c) / n, float(s) / n) for c, s in zip(correct, loss, strict=True)]
        return [((1.0 - float(s) / sq_total if sq_total > 0 else 0.0), float(s) / n)
                for s in loss]

    @torch.no_grad()
    def train(self, train_idx: np.ndarray, *, lambda1: float, lambda2: float, lr: float,
              max_epochs: int, tol: float, patience: int) -> dict[str, Any]:
        """Shuffled minibatches from the current weights until the penalized objective stops
        improving by a relative ``tol`` (see the module docstring); the objective is the
        mean minibatch loss over each window of one epoch, or of ``check_rows`` rows when
        that is fewer."""
        self.lambda1, self.lambda2, self.lr = lambda1, lambda2, lr
        if self.classify and not self._prior_set:
            # Start from the log class priors: the first steps then learn features, not counts.
            counts = torch.bincount(self.y[torch.from_numpy(train_idx).to(self.device)],
                                    minlength=len(self.bias))
            self.bias = torch.log((counts.float() + 1) / (len(train_idx) + len(self.bias)))
            self._prior_set = True
        window = check_window(self.check_rows, len(train_idx), self.batch_size)
        best, waited, n_epochs, converged = math.inf, 0, 0, False
        total, seen = torch.zeros((), dtype=torch.float64, device=self.device), 0
        while n_epochs < max_epochs and not converged:
            n_epochs += 1
            for rows, parts in self.source.shuffled_batches(train_idx, self.batch_size,
                                                            self.generator):
                total += self._step(rows, parts)
                seen += len(rows)
                if seen < window:
                    continue
                objective = float(total) / seen + self.penalty()
                total.zero_()
                seen = 0
                if best == math.inf or objective < best - tol * abs(best):
                    best = objective
                else:
                    # Plateaus count in total (not in a row): each one halves the step, so
                    # the step size, not the count of good windows, decides when we are done.
                    waited += 1
                    self.lr *= 0.5
                    if waited >= patience:
                        converged = True
                        break
        return {"n_epochs": n_epochs, "converged": converged, "objective": best}


# ---------------------------------------------------------------------- splits and moments
def split_rows(n: int, fraction: float, rng: np.random.Generator,
               groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted training and validation row indices: whole sentences (``groups``) held out when
    given, else rows (:func:`neuronscope.splits.split_by_sentence`); no validation at 0."""
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    if groups is not None and len(groups) != n:
        raise NeuronscopeError(f"{len(groups)} sentence ids for {n} rows")
    return split_by_sentence(None if groups is None else np.asarray(groups), fraction, rng,
                             n_rows=n)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, restoring the previous count."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def check_window(setting: int | str | None, n_train: int, batch_size: int) -> int:
    """Rows between convergence checks: ``"auto"``, half an epoch but at least 50
    minibatches (a window's mean minibatch loss must not be mostly noise); ``None``, one
    epoch; or the given number (at most one epoch)."""
    if setting == "auto":
        setting = max(n_train // 2, 50 * batch_size)
    return max(min(n_train, int(setting or n_train)), 1)


def auto_batch_size(setting: int | str, n_train: int) -> int:
    """Rows per step: ``"auto"`` aims at about 200 steps per epoch (32..2048 rows)."""
    if setting == "auto":
        return int(min(2048, max(32, n_train // 200)))
    return int(setting)


# ---------------------------------------------------------------------- probe helpers
def check_probe_params(self: Any, tasks: tuple[str, ...], penalties: tuple[str, ...],
                       rankings: tuple[str, ...]) -> None:
    """Raise a clear error for the first invalid parameter of a linear probe."""
    alphas_ok = self.alphas is None or (
        isinstance(self.alphas, (list, tuple, np.ndarray)) and len(self.alphas) > 0
        and all(is_number(a) and a > 0 for a in self.alphas))
    checks = [
        (self.task in tasks, f"task must be one of {tasks}, got {self.task!r}"),
        (self.penalty in penalties,
         f"penalty must be one of {penalties}, got {self.penalty!r}"),
        (self.ranking in rankings, f"ranking must be one of {rankings}, got {self.ranking!r}"),
        (self.alpha == "auto" or (is_number(self.alpha) and float(self.alpha) >= 0),
         f"alpha must be 'auto' or a number >= 0, got {self.alpha!r}"),
        (alphas_ok, f"alphas must be None or a non-empty list of numbers > 0, "
                    f"got {self.alphas!r}"),
        (isinstance(self.n_alphas, int) and self.n_alphas >= 1,
         f"n_alphas must be a positive integer, got {self.n_alphas!r}"),
        (is_number(self.selection_tolerance) and self.selection_tolerance >= 0,
         f"selection_tolerance must be >= 0, got {self.selection_tolerance!r}"),
        (is_number(self.l1_ratio) and 0 <= self.l1_ratio <= 1,
         f"l1_ratio must be in [0, 1], got {self.l1_ratio}"),
        (is_number(self.mass) and 0 < self.mass <= 1,
         f"mass must be in (0, 1], got {self.mass}"),
        (isinstance(self.search_stride, int) and self.search_stride >= 1,
         f"search_stride must be a positive integer, got {self.search_stride}"),
        (self.batch_size == "auto" or (isinstance(self.batch_size, int)
                                       and self.batch_size >= 1),
         f"batch_size must be a positive integer or 'auto', got {self.batch_size!r}"),
        (is_number(self.learning_rate) and self.learning_rate > 0,
         f"learning_rate must be > 0, got {self.learning_rate}"),
        (isinstance(self.max_epochs, int) and self.max_epochs >= 1,
         f"max_epochs must be a positive integer, got {self.max_epochs}"),
        (is_number(self.tol) and self.tol >= 0, f"tol must be >= 0, got {self.tol!r}"),
        (is_number(self.validation_fraction) and 0 <= self.validation_fraction < 1,
         f"validation_fraction must be in [0, 1), got {self.validation_fraction}"),
        (isinstance(self.patience, int) and self.patience >= 1,
         f"patience must be a positive integer, got {self.patience}"),
        (self.n_threads is None or (isinstance(self.n_threads, int) and self.n_threads >= 1),
         f"n_threads must be a positive integer or None, got {self.n_threads!r}"),
        (self.check_rows is None or self.check_rows == "auto"
         or (isinstance(self.check_rows, int) and not isinstance(self.check_rows, bool)
             and self.check_rows >= 1),
         f"check_rows must be 'auto', None or a positive integer, got {self.check_rows!r}"),
        (self.streaming in (True, False, "auto"),
         f"streaming must be True, False or 'auto', got {self.streaming!r}"),
        (self.buffer_rows is None or (isinstance(self.buffer_rows, int)
                                      and not isinstance(self.buffer_rows, bool)
                                      and self.buffer_rows >= 1),
         f"buffer_rows must be a positive integer or None, got {self.buffer_rows!r}"),
        (not (self.alpha == "auto" and self.validation_fraction == 0),
         "alpha='auto' chooses the penalty on held-out sentences: give "
         "validation_fraction > 0 or a fixed alpha"),
    ]
    for ok, message in checks:
        if not ok:
            raise NeuronscopeError(message)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    ) and math.isfinite(float(value))


def n_columns(activations: Activations) -> int:
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


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else 0.0
