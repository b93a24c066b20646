"""Gaussian probe (Torroba Hennigen et al. 2020): planted neuron pairs found first, MI and
accuracy curves against a from-scratch Student-t reference, tiny classes, streaming == in-memory
== store, per-concept gains, scale invariance without float32 overflow, unbiased reporting and
early stopping on noise, no mutation, clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_t

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import prepare_input
from neuronscope.methods.gaussian_probe import GaussianProbe, _scatter_pass
from neuronscope.methods.ranking import Ranking

from .conftest import labelled_store

N, D = 2000, 12


def quadrants(seed: int = 0, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """12 noise neurons; the class is the sign quadrant of (n3, n8), so it takes both of them.

    n5 = n3 + noise is a decoy: informative alone, redundant once n3 is known.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)).astype(np.float32)
    x[:, 5] = x[:, 3] + 2.0 * rng.standard_normal(n).astype(np.float32)
    y = np.asarray(["A", "B", "C", "D"])[2 * (x[:, 3] > 0) + (x[:, 8] > 0)]
    return x, y


def reference_log_joint(
    x: np.ndarray, y: np.ndarray, held: np.ndarray, cols: list[int], unused: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """``(C, H)`` log prior + Student-t posterior predictive of the held-out rows on ``cols``,
    from the Normal-Inverse-Wishart formulas applied to the training rows directly (all but
    ``held`` and the other held-out rows ``unused``)."""
    train = np.ones(len(y), dtype=bool)
    train[held] = False
    train[unused] = False
    xt, yt = x[train][:, cols].astype(np.float64), y[train]
    classes = sorted(set(y.tolist()))
    mu0 = xt.mean(0)
    within = sum(((xt[yt == c] - xt[yt == c].mean(0)) ** 2).sum(0) for c in classes)
    lam = np.maximum(within / (len(xt) - len(classes)), 1e-6 * xt.var(0))
    out = []
    for c in classes:
        xc = xt[yt == c]
        n, mean = len(xc), xc.mean(0)
        kappa, df = 0.01 + n, n + 3.0
        diff = mean - mu0
        scatter = (xc - mean).T @ (xc - mean)
        lam_n = np.diag(lam) + scatter + 0.01 * n / kappa * np.outer(diff, diff)
        dist = multivariate_t(loc=(0.01 * mu0 + n * mean) / kappa,
                              shape=lam_n * (kappa + 1) / (kappa * df), df=df)
        out.append(np.log(n / len(xt)) + np.atleast_1d(dist.logpdf(x[held][:, cols])))
    return np.stack(out), classes


@pytest.fixture(scope="module")
def fitted() -> tuple[GaussianProbe, Ranking, np.ndarray, np.ndarray]:
    x, y = quadrants()
    probe = GaussianProbe(max_neurons=6, min_gain=None)  # the whole curve, no early stop
    return probe, probe.rank(x, y), x, y


def test_planted_pair_selected_first_then_plateau(fitted) -> None:
    probe, ranking, x, _ = fitted
    assert set(probe.selected_[:2].tolist()) == {3, 8}
    assert set(ranking.top(2)) == {"n3", "n8"}
    mi = np.array([step["mi_bits"] for step in probe.curve_])
    acc = np.array([step["accuracy"] for step in probe.curve_])
    entropy = ranking.extra["class_entropy_bits"]
    assert entropy == pytest.approx(2.0, abs=0.01)  # four balanced quadrants
    assert (mi >= 0).all() and (mi <= entropy + 1e-9).all()
    assert abs(probe.baseline_["mi_bits"]) < 0.01  # class prior alone: no information
    # One sign carries about half of the two bits, both most of them; the rest adds nothing.
    assert 0.6 < mi[0] < 1.1 and mi[1] > mi[0] + 0.5 and mi[1] > 1.4
    # Measured on report words that did not choose them, noise neurons add nothing (their
    # estimation noise costs a little): no selection bias lifts the plateau.
    assert (mi[2:] <= mi[1] + 0.005).all() and (mi[2:] > mi[1] - 0.06).all()
    assert acc[1] > 0.95 and probe.baseline_["accuracy"] < 0.35  # chance is 0.25
    np.testing.assert_allclose(ranking.global_scores[:6], mi)
    curve = ranking.extra["selection_curve"]
    assert [c["neuron"] for c in curve] == probe.selected_names_
    assert set(curve[0]) == {"neuron", "id", "mi_bits", "accuracy"}
    # Every neuron is ordered: the six selected first, the rest by univariate information.
    assert ranking.method == "gaussian" and ranking.extra["n_selected"] == 6
    assert len(ranking.global_order) == x.shape[1]
    assert ranking.global_order[:6].tolist() == probe.selected_.tolist()
    assert (np.diff(ranking.global_scores[6:]) <= 0).all()


def test_curve_and_predictions_match_student_t_reference(fitted) -> None:
    probe, _, x, y = fitted
    held = probe.report_rows_
    assert not np.isin(held, probe.validation_rows_).any()
    truth = np.searchsorted(probe.classes_, y[held])
    for k in range(1, 4):
        joint, classes = reference_log_joint(x, y, held, probe.selected_[:k].tolist(),
                                             probe.validation_rows_)
        assert classes == probe.classes_
        log_post = joint - logsumexp(joint, axis=0)
        freq = np.bincount(truth) / len(truth)
        own = log_post[truth, np.arange(len(held))]
        mi = -(freq * np.log2(freq)).sum() + own.mean() / np.log(2)
        assert probe.curve_[k - 1]["mi_bits"] == pytest.approx(mi, abs=1e-6)
        assert probe.curve_[k - 1]["accuracy"] == pytest.approx(
            (log_post.argmax(0) == truth).mean())
        np.testing.assert_allclose(probe.predict_log_proba(x[held], n_neurons=k), log_post.T,
                                   atol=1e-9)
    pred = probe.predict(x[held], n_neurons=2)
    assert pred.shape == (len(held),) and set(pred.tolist()) <= set(probe.classes_)
    assert probe.score(x[held], y[held], n_neurons=2) == pytest.approx(probe.curve_[1]["accuracy"])
    assert probe.score(x[held], y[held], n_neurons=2, metric="mi") == pytest.approx(
        probe.curve_[1]["mi_bits"], abs=1e-9)


def test_accuracy_criterion_finds_the_pair() -> None:
    x, y = quadrants(seed=1)
    probe = GaussianProbe(criterion="accuracy", max_neurons=3, random_state=3)
    ranking = probe.rank(x, y)
    assert set(probe.selected_[:2].tolist()) == {3, 8}
    np.testing.assert_allclose(ranking.global_scores[:len(probe.curve_)],
                               [c["accuracy"] for c in probe.curve_])
    assert ranking.global_scores[1] > 0.95


def test_per_concept_order_and_class_gains() -> None:
    """n2 marks A, n7 marks B: per concept, one-vs-rest information puts each first; the
    class gains of the selection say A's words gain more from n2 than from n7 (about log2 3
    bits against 0 when n2 comes first), B's words the other way round."""
    rng = np.random.default_rng(2)
    y = np.asarray(["A", "B", "C"])[rng.integers(0, 3, N)]
    x = rng.standard_normal((N, D)).astype(np.float32)
    x[y == "A", 2] += 5.0
    x[y == "B", 7] += 5.0
    ranking = GaussianProbe(max_neurons=3, concepts=["A", "B"]).rank(x, y)
    assert ranking.concept_names == ["A", "B"]
    assert ranking.top(1, "A") == ["n2"] and ranking.top(1, "B") == ["n7"]
    assert set(ranking.top(2)) == {"n2", "n7"}
    selected = [f"n{i}" for i in ranking.global_order[:ranking.extra["n_selected"]]]
    gains_a = dict(zip(selected, ranking.extra["class_gains"]["A"], strict=True))
    gains_b = dict(zip(selected, ranking.extra["class_gains"]["B"], strict=True))
    assert gains_a["n2"] > gains_a["n7"] + 0.4 and gains_b["n7"] > gains_b["n2"] + 0.3
    back = Ranking.from_json(ranking.to_json())
    assert back.extra["selection_curve"] == ranking.extra["selection_curve"]


def test_tiny_classes_stay_finite() -> None:
    x, y = quadrants(n=400)
    y = y.astype(object)
    y[:2], y[2] = "tiny", "single"  # a class of 2 words and one of 1
    probe = GaussianProbe(max_neurons=4, min_gain=None)
    ranking = probe.rank(x, y)
    assert set(probe.selected_[:2].tolist()) == {3, 8}
    assert all(np.isfinite([c["mi_bits"], c["accuracy"]]).all() for c in probe.curve_)
    proba = probe.predict_log_proba(x)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(np.exp(proba).sum(1), 1.0)
    for concept in ("tiny", "single"):
        assert np.isfinite(ranking.concepts[concept].scores).all()
        assert len(ranking.concepts[concept].ids) == x.shape[1]


def test_store_streaming_matches_in_memory(tmp_path: Path) -> None:
    x, y = quadrants()
    store, corpus = labelled_store(tmp_path / "store", x, y, "quadrants")
    from_store = GaussianProbe(max_neurons=4)
    ranking = from_store.rank(store, corpus.concept_labels("tag"))
    in_memory = GaussianProbe(max_neurons=4)
    in_memory.rank(x, y)
    np.testing.assert_array_equal(from_store.selected_, in_memory.selected_)
    for a, b in zip(from_store.curve_, in_memory.curve_, strict=True):
        assert a["mi_bits"] == pytest.approx(b["mi_bits"], abs=1e-9)
    assert ranking.store_fingerprint == store.fingerprint and ranking.label_layer == "tag"
    assert ranking.names[int(from_store.selected_[0])] == store.layout.names(
        from_store.selected_[:1])[0]
    assert from_store.score(store, corpus.concept_labels("tag")) == pytest.approx(
        in_memory.score(x, y))


def test_streamed_statistics_match_direct_computation() -> None:
    """Many small chunks (some all held out) give the same moments as one in-memory pass."""
    x, y = quadrants(n=500)
    x[:, 0] += 1000.0  # a large offset must not cost digits (moments are taken about a shift)
    data = prepare_input(x, y, chunk_words=37)
    code = np.searchsorted(["A", "B", "C", "D"], y)
    held = np.zeros(len(y), dtype=bool)
    held[::3] = True
    held[:37] = True
    counts, means, scatter, x_held, varying = _scatter_pass(data, code, held, 4)
    np.testing.assert_array_equal(x_held, x[held])
    assert varying.all()
    x64 = x.astype(np.float64)
    for c in range(4):
        rows = x64[(code == c) & ~held]
        assert counts[c] == len(rows)
        np.testing.assert_allclose(means[c], rows.mean(0), rtol=1e-12)
        centred = rows - rows.mean(0)
        np.testing.assert_allclose(scatter[c], centred.T @ centred, rtol=1e-9, atol=1e-9)


def test_rescaled_neurons_give_the_same_selection_without_warnings() -> None:
    """Huge scales and offsets (BERT-like outlier dimensions) and tiny scales (MiniLM has a
    neuron of magnitude 1e-32) once overflowed the float32 scoring (inverse variances, squared
    residuals), so NaN scores won the argmax. Neurons are standardized internally: the model is
    affine-equivariant, so selection, curve and posteriors match the unscaled data."""
    x, y = quadrants()
    scaled = x.copy()
    scaled[:, [0, 3, 11]] = scaled[:, [0, 3, 11]] * 1e3 + 1e3
    scaled[:, [5, 8]] *= 1e-30
    reference = GaussianProbe(max_neurons=4, min_gain=None)
    reference.rank(x, y)
    probe = GaussianProbe(max_neurons=4, min_gain=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe.rank(scaled, y)
        proba = probe.predict_log_proba(scaled)
    np.testing.assert_array_equal(probe.selected_, reference.selected_)
    assert set(probe.selected_[:2].tolist()) == {3, 8}
    for a, b in zip(probe.curve_, reference.curve_, strict=True):
        assert a["mi_bits"] == pytest.approx(b["mi_bits"], abs=1e-4)
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=2e-3)
    np.testing.assert_allclose(proba, reference.predict_log_proba(x), atol=1e-3)


def test_held_out_spike_of_a_near_constant_neuron_stays_finite() -> None:
    """A neuron almost constant on the training words but far off on held-out ones has
    standardized residuals beyond float32's squares: they are clipped, nothing overflows."""
    x, y = quadrants(n=600)
    first = GaussianProbe(max_neurons=3)
    first.rank(x, y)
    x[:, 0] *= 1e-30
    x[first.validation_rows_[:5], 0] = 1.0  # the same seed and labels give the same split
    x[first.report_rows_[:5], 0] = 1.0
    probe = GaussianProbe(max_neurons=3, min_gain=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe.rank(x, y)
    assert set(probe.selected_[:2].tolist()) == {3, 8}
    assert all(np.isfinite([c["mi_bits"], c["accuracy"]]).all() for c in probe.curve_)


def test_pure_noise_stops_early_and_reports_no_information() -> None:
    """Labels independent of 60 noise neurons: the validation words always find a neuron that
    'gains' a little on them, but the curve is measured on report words that did not choose
    it, so it stays at about 0 bits, and the search stops as soon as a neuron fails there."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 60)).astype(np.float32)
    y = np.asarray(["A", "B", "C", "D"])[rng.integers(0, 4, 3000)]
    probe = GaussianProbe(max_neurons=20)
    ranking = probe.rank(x, y)
    assert probe.stopped_early_ and ranking.extra["stopped_early"]
    assert 1 <= len(probe.selected_) <= 3
    assert all(c["mi_bits"] <= 0.01 for c in probe.curve_)
    n = len(probe.selected_)
    assert ranking.extra["n_selected"] == n and len(ranking.global_order) == x.shape[1]
    for concept in "ABCD":
        assert len(ranking.concepts[concept].ids) == x.shape[1]
        assert len(ranking.extra["class_gains"][concept]) == n
    # Without the stopping rule, the full curve is still reported without selection bias.
    full = GaussianProbe(max_neurons=20, min_gain=None)
    full.rank(x, y)
    assert len(full.selected_) == 20 and not full.stopped_early_
    mi = np.array([c["mi_bits"] for c in full.curve_])
    assert (mi <= 0.02).all() and mi[-1] < 0.0  # each noise neuron costs a little
    np.testing.assert_array_equal(full.selected_[: len(probe.selected_)], probe.selected_)


def test_stops_once_the_planted_pair_is_found() -> None:
    x, y = quadrants()
    probe = GaussianProbe(max_neurons=10)
    ranking = probe.rank(x, y)
    assert set(probe.selected_[:2].tolist()) == {3, 8}
    assert probe.stopped_early_ and len(probe.selected_) <= 4
    assert ranking.extra["n_report"] == len(probe.report_rows_)
    assert ranking.extra["n_validation"] == len(probe.validation_rows_)
    # Three disjoint parts; report words are about 10% of every class.
    assert not np.isin(probe.report_rows_, probe.validation_rows_).any()
    assert abs(len(probe.report_rows_) - 0.1 * len(y)) <= 4
    assert abs(len(probe.validation_rows_) - 0.2 * len(y)) <= 4
    assert ranking.extra["n_train"] == len(y) - len(probe.report_rows_) - len(
        probe.validation_rows_)
    # A high bar stops after the first neuron, which is always kept.
    strict = GaussianProbe(max_neurons=10, min_gain=5.0)
    strict.rank(x, y)
    assert len(strict.selected_) == 1 and strict.stopped_early_


def test_candidate_prefilter_keeps_informative_neurons() -> None:
    x, y = quadrants()
    x[:, 10] = 7.0  # constant: never a candidate
    probe = GaussianProbe(max_neurons=2, max_candidates=4)
    ranking = probe.rank(x, y)
    assert {3, 8} <= set(probe.candidates_.tolist()) and 10 not in probe.candidates_
    assert ranking.extra["n_candidates"] == 4
    assert set(probe.selected_.tolist()) == {3, 8}


def test_constant_neurons_are_dropped_and_max_neurons_capped() -> None:
    x, y = quadrants(n=300)
    x = x[:, [3, 8, 0]].copy()
    x[:, 2] = 1.5
    probe = GaussianProbe(max_neurons=10)
    probe.rank(x, y)
    assert sorted(probe.selected_.tolist()) == [0, 1]


def test_inputs_not_mutated() -> None:
    x, y = quadrants(n=300)
    x_copy, y_copy = x.copy(), y.copy()
    GaussianProbe(max_neurons=2).rank(x, y)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)


@pytest.mark.parametrize(
    ("params", "activations", "labels", "message"),
    [
        ({}, np.zeros((10, 3), np.float32) + np.arange(10)[:, None], ["A"] * 10, "single class"),
        ({}, np.ones((10, 3), np.float32), ["A", "B"] * 4, "8 labels for 10"),
        ({}, np.full((10, 3), np.nan, np.float32), ["A", "B"] * 5, "NaN"),
        ({"criterion": "f1"}, np.ones((10, 3), np.float32), ["A", "B"] * 5, "criterion"),
        ({"max_neurons": 0}, np.ones((10, 3), np.float32), ["A", "B"] * 5, "max_neurons"),
        ({"validation_fraction": 1.0}, np.ones((10, 3), np.float32), ["A", "B"] * 5,
         "validation_fraction"),
        ({"report_fraction": 0.0}, np.ones((10, 3), np.float32), ["A", "B"] * 5,
         "report_fraction"),
        ({"validation_fraction": 0.5, "report_fraction": 0.5}, np.ones((10, 3), np.float32),
         ["A", "B"] * 5, "below 1"),
        ({"min_gain": float("nan")}, np.ones((10, 3), np.float32), ["A", "B"] * 5, "min_gain"),
        ({"concepts": ["Z"]}, np.ones((10, 3), np.float32), ["A", "B"] * 5, "absent"),
        ({}, np.ones((4, 3), np.float32), ["A", "B", "C", "D"], "held out"),
        ({}, np.ones((10, 3), np.float32), ["A", "B"] * 5, "constant"),
    ],
)
def test_failures_are_clear(params, activations, labels, message) -> None:
    with pytest.raises(NeuronscopeError, match=message):
        GaussianProbe(**params).rank(activations, np.asarray(labels))


def test_prediction_errors_are_clear(fitted) -> None:
    probe, _, x, y = fitted
    with pytest.raises(NeuronscopeError, match="not fitted"):
        GaussianProbe().predict(x)
    with pytest.raises(NeuronscopeError, match="n_neurons"):
        probe.predict(x, n_neurons=7)
    with pytest.raises(NeuronscopeError, match="columns"):
        probe.predict(x[:, :4])
    with pytest.raises(NeuronscopeError, match="not seen"):
        probe.score(x[:3], np.asarray(["A", "B", "Q"]))
    with pytest.raises(NeuronscopeError, match="metric"):
        probe.score(x, y, metric="f1")
