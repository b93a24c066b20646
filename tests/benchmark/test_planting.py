"""Planting: ground-truth bookkeeping, signal levels of each kind, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.benchmark import (
    KINDS,
    PlantedBenchmark,
    synthetic_background,
    synthetic_labels,
    zero_sum_direction,
)
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError


def test_every_kind_snr_and_concept_gets_a_unit(planted, bench_params):
    snrs = (0.5, 1.0, 2.0)
    assert len(planted.units) == len(KINDS) * len(snrs) * bench_params["n_concepts"]
    sizes = {"focused": 1, "group": 3, "polysemous": 1, "redundant": 3}
    for unit in planted.units:
        assert len(unit.ids) == sizes[unit.kind]
        assert len(unit.concepts) == (2 if unit.kind == "polysemous" else 1)
        assert unit.snr in snrs
    # Each SNR got its own concepts (8 classes are enough for 3 x 2).
    by_snr = planted.meta["concepts_by_snr"]
    assert planted.meta["separate_snrs"] is True
    assert len({c for cs in by_snr.values() for c in cs}) == 6
    truth = planted.truth()
    assert set(truth) == set(planted.concepts)
    assert sum(len(v) for v in truth.values()) == sum(len(u.concepts) for u in planted.units)


def test_truth_ids_in_range_unique_and_shuffled(planted, background, labels):
    ids = [i for u in planted.units for i in u.ids]
    assert len(ids) == len(set(ids)) == len(planted.planted_ids)
    assert min(ids) >= 0 and max(ids) < planted.n_columns
    assert planted.n_columns == background.shape[1] + len(ids)
    # Not appended at the end, nor in planting order.
    assert set(ids) != set(range(background.shape[1], planted.n_columns))
    assert ids != sorted(ids)
    # Planted columns spread over the whole range.
    assert min(ids) < planted.n_columns // 4 and max(ids) > 3 * planted.n_columns // 4
    # Background columns are the original neurons (rows permuted against the labels).
    for col in planted.background_ids[:10]:
        source = int(planted.names[col].removeprefix("bg"))
        assert np.allclose(np.sort(planted.activations[:, col]), np.sort(background[:, source]))
    assert (planted.labels == labels).all()


def test_background_kept_in_place_without_shuffling(background, labels):
    data = PlantedBenchmark(n_concepts=1, kinds=["focused"], shuffle_background=False,
                            max_words=500, max_background=40, random_state=3).build(
        background, labels)
    rows = np.asarray(data.meta["rows"])
    assert len(rows) == 500 and data.meta["n_background"] == 40
    for col in data.background_ids:
        source = int(data.names[col].removeprefix("bg"))
        np.testing.assert_array_equal(data.activations[:, col], background[rows, source])
    np.testing.assert_array_equal(data.labels, labels[rows])


def test_focused_polysemous_redundant_have_designed_snr(planted):
    table = planted.signal_table()
    single = table[table["kind"] != "group"]
    # Cohen's d within sampling error (about 0.07 for ~250 concept words) of the design.
    assert np.allclose(single["measured_d"], single["designed_d"], atol=0.25)
    assert (single["designed_d"] == single["snr"]).all()


def test_group_neurons_weak_alone_but_decodable_together(planted):
    table = planted.signal_table()
    group = table[table["kind"] == "group"]
    focused = table[table["kind"] == "focused"].groupby("snr")["measured_d"].mean()
    # Designed marginal: snr * group_noise * |v_i| <= 0.082 * snr for m = 3.
    assert (group["designed_d"] <= 0.0825 * group["snr"]).all()
    for snr, rows in group.groupby("snr"):
        # Each neuron alone: within sampling noise of its tiny design, far below a focused one.
        assert (rows["measured_d"].abs() <= rows["designed_d"] + 0.2).all()
        assert rows["measured_d"].abs().max() < 0.3 * focused[snr]
        # The whole group: the designed snr (Mahalanobis distance), up to sampling error.
        assert rows["joint_d"].iloc[0] == pytest.approx(snr, rel=0.2)


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_zero_sum_direction(m):
    v = zero_sum_direction(m, np.random.default_rng(m))
    assert v.shape == (m,)
    assert abs(v.sum()) < 1e-12 and np.linalg.norm(v) == pytest.approx(1.0)
    assert np.all(np.abs(v) > 0.3)  # every neuron takes part


def test_same_seed_same_instance_other_seed_other_instance(background, labels, planted):
    again = PlantedBenchmark(n_concepts=2, random_state=0).build(background, labels)
    np.testing.assert_array_equal(again.activations, planted.activations)
    assert again.units == planted.units
    other = PlantedBenchmark(n_concepts=2, random_state=1).build(background, labels)
    assert [u.ids for u in other.units] != [u.ids for u in planted.units]


def test_explicit_concepts_and_polysemous_partner(background, labels):
    data = PlantedBenchmark(concepts=["C0"], kinds=["polysemous", "focused"], snrs=[1.0],
                            random_state=0).build(background, labels)
    poly = [u for u in data.units if u.kind == "polysemous"]
    assert len(poly) == 1 and poly[0].concepts[0] == "C0" and poly[0].concepts[1] != "C0"
    assert data.concepts == ["C0", poly[0].concepts[1]]


def test_store_background(extracted, small_corpus):
    store = extracted("bert", components=("hidden",))
    labels = small_corpus.concept_labels("upos")
    data = PlantedBenchmark(n_concepts=2, kinds=["focused"], snrs=[2.0], min_concept_words=5,
                            max_background=50, random_state=0).build(store, labels)
    assert data.meta["n_background"] == 50 and data.n_words == store.n_words
    names = [data.names[i] for i in data.background_ids]
    assert all(n.startswith("L") and ".hidden." in n for n in names)
    cols = np.asarray(data.meta["background_columns"])
    expected = np.sort(store.neurons(cols.tolist()), axis=0)
    got = data.activations[:, data.background_ids]
    # Same neurons (as multisets of columns), whatever their new positions and row order.
    assert sorted(map(tuple, np.sort(got, axis=0).T.round(5))) == sorted(
        map(tuple, expected.T.round(5)))
    other = small_corpus.subset(range(1, small_corpus.n_sentences))
    with pytest.raises(NeuronscopeError):
        PlantedBenchmark(min_concept_words=5).build(store, other.concept_labels("upos"))
    wrong = type(labels)(labels.values, "upos", "not-this-corpus")
    with pytest.raises(FingerprintMismatchError):
        PlantedBenchmark(min_concept_words=5).build(store, wrong)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"snrs": (0.0, 1.0)}, "snr"),
        ({"snrs": (-1.0,)}, "snr"),
        ({"snrs": ()}, "snr"),
        ({"kinds": ("focused", "bogus")}, "kinds"),
        ({"group_size": 1}, "group_size"),
        ({"n_redundant": 1}, "n_redundant"),
        ({"group_noise": 1.0}, "group_noise"),
        ({"n_concepts": 0}, "n_concepts"),
        ({"max_words": 0}, "max_words"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(NeuronscopeError, match=message):
        PlantedBenchmark(**params)


def test_too_few_words_for_a_concept(background, labels):
    counts = {c: int((labels == c).sum()) for c in set(labels)}
    rare = min(counts, key=counts.get)
    with pytest.raises(NeuronscopeError, match=f"concept '{rare}' has {counts[rare]}"):
        PlantedBenchmark(concepts=[rare], min_concept_words=counts[rare] + 1).build(
            background, labels)
    with pytest.raises(NeuronscopeError, match="label"):
        PlantedBenchmark(n_concepts=3, max_words=60).build(background, labels)
    with pytest.raises(NeuronscopeError, match="separate_snrs"):
        PlantedBenchmark(n_concepts=3, separate_snrs=True).build(background, labels)
    with pytest.raises(NeuronscopeError, match="single class"):
        PlantedBenchmark().build(background, np.array(["A"] * len(labels)))
    with pytest.raises(NeuronscopeError, match="labels"):
        PlantedBenchmark().build(background, labels[:-1])


def test_synthetic_generators_are_seeded():
    a = synthetic_background(50, 10, random_state=4)
    assert a.dtype == np.float32 and a.shape == (50, 10)
    np.testing.assert_array_equal(a, synthetic_background(50, 10, random_state=4))
    y = synthetic_labels(1000, 4, random_state=1)
    counts = [int((y == f"C{i}").sum()) for i in range(4)]
    assert counts == sorted(counts, reverse=True) and sum(counts) == 1000
