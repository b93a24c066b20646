"""The linear probe's passes over its rows: the scan's statistics against NumPy, the row
gather, the finite check of an array used as it is, and the training step against a
part-by-part reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import prepare_input
from neuronscope.methods.linear_probe import LinearProbe
from neuronscope.methods.probe_data import BLOCK_ROWS, Scan, gather_rows, in_memory_rows
from neuronscope.methods.probe_training import Trainer


def rows_and_split(n: int = 2 * BLOCK_ROWS + 300, d: int = 7, seed: int = 0):
    """Rows on assorted scales and offsets (one column at 1e4 +- 1e-2), three classes, and a
    training split that leaves runs of other rows inside every block."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * rng.uniform(0.1, 5, d) + rng.uniform(-50, 50, d))
    x[:, 0] = 1e4 + rng.normal(scale=1e-2, size=n)
    y = rng.integers(0, 3, n)
    train = np.flatnonzero(np.repeat(rng.random(n // 10 + 1) < 0.8, 10)[:n])
    return x.astype(np.float32), y, train


@pytest.mark.parametrize("copy_array", [True, False])
@pytest.mark.parametrize("n_classes", [3, None])
def test_scan_matches_numpy(copy_array: bool, n_classes: int | None) -> None:
    # In the layout (blocks of training rows or of other rows) or as the array is (blocks
    # mixing both): training moments, target sums and every row's figures as NumPy has them.
    x, y, train = rows_and_split()
    target = y if n_classes is not None else (y * 0.7 - 1).astype(np.float32)
    source = in_memory_rows(prepare_input(x, y), torch.device("cpu"), 64, train, seed=1,
                            copy_array=copy_array)
    assert source.in_layout == copy_array
    mask = np.zeros(len(x), dtype=bool)
    mask[train] = True
    scan = Scan(source, mask, target, n_classes)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(scan.train_mean, x64[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scan.mean, x64[train].mean(axis=0).astype(np.float32))
    np.testing.assert_allclose(scan.scale, x64[train].std(axis=0), rtol=1e-6)
    assert scan.count == len(x)
    np.testing.assert_allclose(scan.all_mean, x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scan.all_m2, len(x) * x64.var(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(scan.max_abs, np.abs(x).max(axis=0))
    if n_classes is not None:  # float64 class sums
        want = np.stack([x64[train][y[train] == c].sum(axis=0) for c in range(3)])
        np.testing.assert_allclose(scan.target_sums, want, rtol=1e-12)
    else:  # a float32 product per block
        want = target[train].astype(np.float64) @ x64[train]
        np.testing.assert_allclose(scan.target_sums, want[None, :], rtol=1e-5, atol=1e-3)


def test_gather_rows_copies_the_rows_of_any_array() -> None:
    x = np.arange(60, dtype=np.float32).reshape(12, 5)
    rows = np.array([7, 0, 11, 7])
    out = np.full((4, 5), -1, dtype=np.float32)
    assert gather_rows(x, rows, out) is out
    np.testing.assert_array_equal(out, x[rows])
    x.flags.writeable = False  # e.g. a memory map opened read-only: read without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(gather_rows(x, rows[::-1].copy(), out), x[rows[::-1]])


def test_a_single_fit_names_the_row_of_a_nan_in_the_array() -> None:
    # An array used as it is (a single fit) is checked by the scan, block by block.
    x, y, _ = rows_and_split()
    for row, value in ((BLOCK_ROWS + 37, np.nan), (5, np.inf)):
        bad = x.copy()
        bad[row, 3] = value
        with pytest.raises(NeuronscopeError, match=f"row {row}, column 3"):
            LinearProbe.for_evaluation(max_epochs=1).fit(bad, y)


def reference_step(trainer: Trainer, idx: np.ndarray, parts: list[torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss and gradients as the step computed them before, part by part."""
    y = trainer.y[torch.from_numpy(idx)]
    weight, bias = trainer._effective()
    grad_w, grad_b = torch.zeros_like(trainer.weight), torch.zeros_like(trainer.bias)
    loss = torch.zeros(())
    start = 0
    for xb in parts:
        yb = y[start : start + len(xb)]
        start += len(xb)
        out = torch.addmm(bias, xb, weight.T)
        if trainer.classify:
            grad = torch.softmax(out, dim=1)
            loss += -torch.log(grad.gather(1, yb[:, None]).clamp_min_(1e-30)).sum()
            grad.scatter_add_(1, yb[:, None], torch.full_like(yb[:, None], -1.0,
                                                              dtype=grad.dtype))
        else:
            grad = out - yb[:, None]
            loss += 0.5 * (grad**2).sum()
        grad *= 1.0 / len(idx)
        grad_b += grad.sum(dim=0)
        grad_w.addmm_(grad.T, xb)
    return loss, grad_w, grad_b


@pytest.mark.parametrize("parts_in_place", [False, True])
@pytest.mark.parametrize("n_classes", [3, None])
def test_the_step_equals_the_part_by_part_step(n_classes: int | None,
                                                parts_in_place: bool) -> None:
    # The step's loss and gradients are bit for bit those of a part-by-part step, with the
    # parts taken as one group (gathered) or one by one (read in place).
    x, y, _ = rows_and_split(n=300, d=40)
    target = y if n_classes is not None else (y * 0.7 - 1).astype(np.float32)
    trainer = Trainer(_Shape(40, parts_in_place), target, n_classes, None, None,
                      torch.device("cpu"), 300, 0)
    torch.manual_seed(0)
    trainer.weight = torch.randn_like(trainer.weight) * 0.1
    trainer.bias = torch.randn_like(trainer.bias)
    idx = np.arange(17, 17 + 250)
    xt = torch.from_numpy(x)
    parts = [xt[17:117], xt[117:217], xt[217:267]]
    want_loss, want_w, want_b = reference_step(trainer, idx, parts)
    grads: list[torch.Tensor] = []
    trainer._adam_update = lambda p, g, m, v: grads.append(g.clone()) or g  # type: ignore
    trainer.lr = 0.0
    loss = trainer._step(idx, parts)
    assert torch.equal(loss, want_loss)
    assert torch.equal(grads[0], want_w) and torch.equal(grads[1], want_b)


class _Shape:
    """The only attributes of a row source the trainer reads when built and stepping."""

    def __init__(self, n_features: int, parts_in_place: bool = False) -> None:
        self.n_features = n_features
        self.parts_in_place = parts_in_place
