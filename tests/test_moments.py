"""The one streaming-moments implementation against NumPy's two-pass results."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.moments import RunningMoments


def test_blocks_merge_to_the_two_pass_moments():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 6)) * [1, 2, 3, 4, 5, 6] + [0, 1, -2, 10, 0, 3]
    moments = RunningMoments(6)
    for start in range(0, 1000, 97):  # uneven blocks, the last one short
        moments.update(x[start:start + 97])
    assert moments.count_[0] == 1000
    np.testing.assert_allclose(moments.mean_[0], x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance_[0], x.var(axis=0), rtol=1e-10)


def test_large_offset_float32_keeps_its_digits():
    # Mean 1e4, spread 1e-2: the naive E[x^2] - E[x]^2 in float32 returns noise or zero.
    rng = np.random.default_rng(1)
    exact = 1e4 + rng.normal(scale=1e-2, size=(4000, 3))
    x = exact.astype(np.float32)
    moments = RunningMoments(3)
    for start in range(0, 4000, 512):
        moments.update(x[start:start + 512])
    want = x.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(moments.variance_[0], want, rtol=1e-6)
    naive = (x * x).mean(axis=0) - x.mean(axis=0) ** 2
    assert not np.allclose(naive, want, rtol=1e-2)  # the formula this module avoids


def test_grouped_moments_match_per_class_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4)) + 5
    code = rng.integers(0, 3, size=300)
    code[code == 2] = 0  # group 2 stays empty
    moments = RunningMoments(4, n_groups=3)
    for start in range(0, 300, 64):
        moments.update(x[start:start + 64], code[start:start + 64])
    for g in (0, 1):
        np.testing.assert_allclose(moments.mean_[g], x[code == g].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(moments.variance_[g], x[code == g].var(axis=0), rtol=1e-10)
    assert moments.count_[2] == 0 and not moments.variance_[2].any()


def test_misuse_fails_loudly():
    with pytest.raises(NeuronscopeError, match="shape"):
        RunningMoments(3).update(np.zeros((2, 4)))
    with pytest.raises(NeuronscopeError, match="group codes"):
        RunningMoments(3, n_groups=2).update(np.zeros((2, 3)))
    with pytest.raises(NeuronscopeError, match="0..1"):
        RunningMoments(3, n_groups=2).update(np.zeros((2, 3)), np.array([0, 2]))
