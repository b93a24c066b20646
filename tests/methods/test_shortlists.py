"""Neuron statistics and shortlists: exact moments against numpy, planted dead, saturated and
high-variance neurons, store == array."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError, UnknownComponentError
from neuronscope.methods.shortlists import NeuronStatistics, neuron_statistics, shortlists
from neuronscope.store import store_from_arrays

N = 1000


def planted() -> np.ndarray:
    """Columns: 0 normal, 1 zeros, 2 zero but 5 rows, 3 tanh-saturated, 4 wide normal,
    5 constant 3, 6 narrow normal, 7 large offset with small spread."""
    rng = np.random.default_rng(0)
    x = np.zeros((N, 8), dtype=np.float32)
    x[:, 0] = rng.standard_normal(N)
    x[:5, 2] = 1.0
    # 900 words at +-1 (saturated), 100 spread over (-0.5, 0.5).
    x[:, 3] = np.where(rng.random(N) < 0.5, -1.0, 1.0)
    x[rng.permutation(N)[:100], 3] = rng.uniform(-0.5, 0.5, 100)
    x[:, 4] = 10 * rng.standard_normal(N)
    x[:, 5] = 3.0
    x[:, 6] = 0.01 * rng.standard_normal(N)
    x[:, 7] = 1e4 + 0.01 * rng.standard_normal(N)
    return x


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return planted()


@pytest.fixture(scope="module")
def stats(x) -> NeuronStatistics:
    return neuron_statistics(x, chunk_words=64)  # many chunks: exercises the merge


def test_moments_match_numpy(x, stats):
    ref = x.astype(np.float64)
    assert stats.count == N
    assert stats.names == [f"n{i}" for i in range(8)]
    np.testing.assert_allclose(stats.mean, ref.mean(axis=0), rtol=1e-9, atol=1e-9)
    # Column 7 (offset 1e4, spread 1e-2) breaks E[x^2] - E[x]^2; the chunk merge must not.
    np.testing.assert_allclose(stats.variance, ref.var(axis=0), rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(stats.std, ref.std(axis=0), rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(stats.minimum, ref.min(axis=0))
    np.testing.assert_array_equal(stats.maximum, ref.max(axis=0))
    np.testing.assert_allclose(stats.zero_fraction, (np.abs(x) <= 1e-6).mean(axis=0))


def test_saturation_against_observed_range(x, stats):
    # Column 3: range [-1, 1], cuts at -0.8 / 0.8: exactly the 900 words at +-1.
    assert stats.saturation[3] == pytest.approx(0.9)
    assert stats.saturation_low[3] == pytest.approx((x[:, 3] == -1).mean())
    assert stats.saturation_high[3] == pytest.approx((x[:, 3] == 1).mean())
    # Constant: no range, not saturated. Normal: only the tails beyond 80% of the range.
    assert stats.saturation[5] == 0
    assert stats.saturation[0] < 0.05
    lo, hi = x.min(axis=0), x.max(axis=0)
    for j in (0, 4, 6):
        cut = lo[j] + 0.1 * (hi[j] - lo[j])
        assert stats.saturation_low[j] == pytest.approx((x[:, j] <= cut).mean(), abs=1e-3)


def test_known_bounds_count_in_one_pass(x):
    y = np.stack([x[:, 3], np.float32(0.25) + 0.2 * np.tanh(x[:, 0])], axis=1)
    observed = neuron_statistics(y)
    bounded = neuron_statistics(y, bounds=(-1, 1))
    assert bounded.saturation[0] == pytest.approx(0.9)
    assert observed.saturation[0] == pytest.approx(0.9)
    # Values within (0.05, 0.45) never come near -1 or 1, though near their own extremes.
    assert bounded.saturation[1] == 0 and observed.saturation[1] > 0
    assert bounded.bounds == (-1.0, 1.0)
    # A neuron stuck at a bound is saturated against known bounds (and is "constant" else).
    stuck = neuron_statistics(np.ones((10, 1), dtype=np.float32), bounds=(0, 1))
    assert stuck.saturation_high[0] == 1.0


def test_shortlists_find_planted_neurons(stats):
    lists = shortlists(stats, k=3)
    assert set(lists) == {"dead", "saturated", "highest_variance", "lowest_variance"}
    assert lists["dead"] == ["n1", "n2"]  # all zero first, then 99.5% zero
    assert lists["saturated"][0] == "n3"
    assert "n1" not in lists["saturated"] and "n5" not in lists["saturated"]
    assert lists["highest_variance"][0] == "n4"
    assert lists["lowest_variance"][0] == "n5"  # constant; dead ones are excluded
    assert not {"n1", "n2"} & set(lists["lowest_variance"])
    assert all(len(v) <= 3 for v in lists.values())
    # Stricter thresholds: 99.5% zero is not dead at 99.9%, and then it counts as saturated
    # (every word sits at an end of its range [0, 1]); n3's 90% misses 95%.
    strict = shortlists(stats, k=3, dead_fraction=0.999, saturated_fraction=0.95)
    assert strict["dead"] == ["n1"] and strict["saturated"] == ["n2"]
    assert shortlists(stats, k=0)["highest_variance"] == []


def test_dead_tolerance():
    tiny = np.full((100, 1), 1e-8, dtype=np.float32)
    assert shortlists(neuron_statistics(tiny))["dead"] == ["n0"]
    assert shortlists(neuron_statistics(tiny, eps=0.0))["dead"] == []


def test_neuron_selection_and_serialization(x):
    sub = neuron_statistics(x, neurons=[4, 1])
    assert sub.names == ["n4", "n1"] and sub.ids.tolist() == [4, 1]
    d = json.loads(json.dumps(sub.to_dict()))
    assert d["names"] == ["n4", "n1"] and d["count"] == N and len(d["variance"]) == 2
    df = sub.to_dataframe()
    assert list(df.index) == ["n4", "n1"] and df.loc["n1", "zero_fraction"] == 1.0


def test_store_matches_array(tmp_path, x):
    corpus = Corpus([[f"w{i}"] for i in range(len(x))], name="stats")  # one word a sentence
    store = store_from_arrays(tmp_path / "store", corpus, {"hidden": (x, [0, 1])},
                              chunk_words=128)
    from_store = neuron_statistics(store)
    from_array = neuron_statistics(x)
    assert from_store.names[:5] == ["L0.hidden.0", "L0.hidden.1", "L0.hidden.2",
                                    "L0.hidden.3", "L1.hidden.0"]
    for key in ("mean", "variance", "minimum", "maximum", "zero_fraction",
                "saturation_low", "saturation_high"):
        np.testing.assert_allclose(getattr(from_store, key), getattr(from_array, key),
                                   rtol=1e-9, atol=1e-12)
    lists = shortlists(from_store, k=3)
    assert lists["dead"] == ["L0.hidden.1", "L0.hidden.2"]
    assert lists["saturated"][0] == "L0.hidden.3"
    assert lists["highest_variance"][0] == "L1.hidden.0"
    sub = neuron_statistics(store, neurons=["L1.hidden.1", "L0.hidden.1"])
    assert sub.names == ["L1.hidden.1", "L0.hidden.1"] and sub.ids.tolist() == [5, 1]
    with pytest.raises(UnknownComponentError, match="neurons per layer"):
        neuron_statistics(store, neurons=["L0.hidden.9"])


def test_bad_inputs():
    with pytest.raises(NeuronscopeError, match="at least one word"):
        neuron_statistics(np.zeros((0, 3), dtype=np.float32))
    with pytest.raises(NeuronscopeError, match="n_words, n_neurons"):
        neuron_statistics(np.zeros(5))
    with pytest.raises(NeuronscopeError, match="NaN"):
        neuron_statistics(np.array([[1.0], [np.nan]], dtype=np.float32))
    with pytest.raises(NeuronscopeError, match="margin"):
        neuron_statistics(np.zeros((3, 1)), margin=0.5)
    with pytest.raises(NeuronscopeError, match="bounds"):
        neuron_statistics(np.zeros((3, 1)), bounds=(1, 0))
    with pytest.raises(NeuronscopeError, match="dead_fraction"):
        shortlists(neuron_statistics(np.ones((3, 1))), dead_fraction=0)
