"""Training on a store layer, attaching the latents as a component, and using them as units."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from neuronscope.errors import NeuronscopeError, StoreError
from neuronscope.sae import SAETrainer, SparseAutoencoder, attach, evaluate_sae
from neuronscope.sae.data import shuffled_batches
from neuronscope.store import ActivationStore, store_from_arrays
from neuronscope.store.extend import add_component, remove_component
from tests.sae.conftest import D_IN, TRAIN, sparse_data


@pytest.fixture(scope="module")
def trained(sae_store, tmp_path_factory):
    store, corpus = sae_store
    trainer = SAETrainer(**TRAIN).fit(store)
    folder = tmp_path_factory.mktemp("trained") / "sae"
    trainer.sae_.save(folder)
    return trainer, folder


@pytest.fixture
def store_copy(sae_store, tmp_path):
    store, corpus = sae_store
    shutil.copytree(store.path, tmp_path / "copy")
    return ActivationStore(tmp_path / "copy"), corpus


def test_mixing_buffer_yields_every_training_row_once_per_epoch(sae_store):
    store, _ = sae_store
    rows = np.zeros(store.n_words, dtype=bool)
    rows[::3] = True
    rng = np.random.default_rng(0)
    batches = list(shuffled_batches(store, "hidden", 3, rows, 50, 200, rng))
    seen = np.concatenate(batches)
    expected = store.layer("hidden", 3)[rows]
    assert len(seen) == rows.sum()
    # Same multiset of rows, in a different order.
    assert np.array_equal(np.sort(seen, axis=0), np.sort(expected, axis=0))
    assert not np.array_equal(seen, expected)
    assert all(len(b) == 50 for b in batches[:-1])


def test_trainer_reconstructs_held_out_sparse_data(trained, sae_store):
    trainer, _ = trained
    m = trainer.metrics_
    # The data are exact 2-sparse codes: held-out sentences must be reconstructed well.
    assert m.fve > 0.85, m
    assert m.l0 <= 2.0 + 1e-9
    assert 0 <= m.dead_fraction < 0.5
    assert m.n_rows == int(trainer.test_mask_.sum()) > 0
    assert trainer.sae_.d_in == D_IN and trainer.sae_.d_sae == 32
    # The input scale makes the mean squared norm d_in, and is folded into the saved weights.
    store, _ = sae_store
    x = store.layer("hidden", 3)[~trainer.test_mask_]
    assert trainer.input_scale_ == pytest.approx(np.sqrt(D_IN / (x**2).sum(1).mean()), rel=1e-4)
    meta = trainer.sae_.neuronscope
    assert meta["layer"] == 3 and meta["input_scale"] == trainer.input_scale_
    assert meta["held_out_metrics"]["fve"] == m.fve
    assert len(trainer.history_) == TRAIN["n_epochs"]
    assert trainer.history_[-1]["recon"] < trainer.history_[0]["recon"]


def test_trainer_recovers_the_planted_dictionary(trained):
    """Most true directions have a decoder row within cos 0.9 (22 of 24 when written)."""
    trainer, _ = trained
    _, _, dictionary = sparse_data()
    w = trainer.sae_.W_dec.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    best = np.abs(w @ dictionary.T).max(axis=0)
    assert (best > 0.9).sum() >= 18, best.round(2)


def test_held_out_metrics_recomputed_from_the_saved_sae(trained, sae_store):
    trainer, folder = trained
    store, _ = sae_store
    back = SparseAutoencoder.load(folder)
    again, rate = evaluate_sae(back, store, "hidden", 3, trainer.test_mask_)
    assert again.fve == pytest.approx(trainer.metrics_.fve, abs=1e-5)
    assert rate.shape == (32,) and again.dead_fraction == pytest.approx(np.mean(rate == 0))


def test_training_is_seeded(sae_store):
    store, _ = sae_store
    params = dict(TRAIN, n_epochs=2)
    a = SAETrainer(**params).fit(store)
    b = SAETrainer(**params).fit(store)
    c = SAETrainer(**dict(params, random_state=1)).fit(store)
    assert torch.equal(a.sae_.W_dec, b.sae_.W_dec)
    assert not torch.equal(a.sae_.W_dec, c.sae_.W_dec)


def test_relu_variant_trains(sae_store):
    store, _ = sae_store
    trainer = SAETrainer(**dict(TRAIN, activation="relu", l1_coefficient=0.05,
                                n_epochs=4)).fit(store)
    assert trainer.sae_.architecture == "standard"
    assert trainer.metrics_.fve > 0.3
    assert trainer.metrics_.l0 < 32


def test_auxk_revives_dead_latents(sae_store):
    """With every latent 'dead' from the start, AuxK is the only gradient for most latents."""
    store, _ = sae_store
    params = dict(TRAIN, n_epochs=3, dead_after_rows=1)
    with_aux = SAETrainer(**params).fit(store)
    assert any(h["aux"] > 0 for h in with_aux.history_)
    without = SAETrainer(**dict(params, aux_k=0)).fit(store)
    assert all(h["aux"] == 0 for h in without.history_)


@pytest.mark.parametrize("params, message", [
    ({"layer": 7}, "no layer 7"),
    ({"component": "mlp"}, "unknown component"),
    ({"k": 0}, "k must be"),
    ({"activation": "gelu"}, "activation must be"),
    ({"layer": None}, "choose one with --layer"),
])
def test_bad_training_options(sae_store, params, message):
    store, _ = sae_store
    with pytest.raises(NeuronscopeError, match=message):
        SAETrainer(**dict(TRAIN, **params)).fit(store)


def test_attach_makes_features_a_store_component(trained, store_copy):
    trainer, folder = trained
    store, corpus = store_copy
    st = attach(store, folder)
    assert st.components == ["hidden", "sae"]
    assert st.layout.components["sae"].layers == (3,)
    assert st.layout.name(st.layout.layer_slice("sae", 3).start + 5) == "L3.sae.5"
    feats = st.layer("sae", 3)
    sae = SparseAutoencoder.load(folder)
    expected = sae.encode(torch.from_numpy(st.layer("hidden", 3))).detach().numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    assert st.neurons(["L3.sae.5"])[:, 0].tolist() == pytest.approx(feats[:, 5].tolist())
    record = st.meta["components"]["sae"]
    assert record["source"] == "sae" and record["derived"] is True
    assert record["sae"]["component"] == "hidden" and record["sae"]["layer"] == 3
    # Ranking methods work on features as on neurons, restricted with the component.
    from neuronscope.methods import get_method

    ids = st.layout.select(["sae"]).tolist()
    ranking = get_method("ap", neurons=ids).rank(st, corpus.concept_labels("tag"))
    assert ranking.top(1, "A")[0].startswith("L3.sae.")
    # A feature detects tag A (direction 0 on) far better than chance (base rate ~ 2/24).
    assert ranking.concepts["A"].scores[0] > 0.5


def test_attach_refuses_and_replaces(trained, store_copy):
    _, folder = trained
    store, _ = store_copy
    attach(store, folder)
    with pytest.raises(StoreError, match="already has a component 'sae'"):
        attach(store, folder)
    st = attach(store, folder, overwrite=True)
    assert st.components == ["hidden", "sae"]
    with pytest.raises(StoreError, match="extracted component 'hidden'"):
        add_component(store.path, "hidden", [3], 2, lambda a, b: np.zeros((b - a, 2)))
    st = attach(store, folder, name="sae2")
    assert st.components == ["hidden", "sae", "sae2"]
    st = remove_component(store.path, "sae2")
    assert st.components == ["hidden", "sae"]


def test_interrupted_attach_leaves_the_store_readable(trained, store_copy):
    _, folder = trained
    store, _ = store_copy

    def failing(start: int, stop: int) -> np.ndarray:
        if start > 0:
            raise RuntimeError("crash")
        return np.zeros((stop - start, 4), np.float32)

    with pytest.raises(RuntimeError):
        add_component(store.path, "partial", [3], 4, failing)
    st = ActivationStore(store.path)
    assert st.components == ["hidden"]  # the metadata never listed the half-written array
    st = attach(st, folder, name="partial")  # the orphan array is replaced
    assert "partial" in st.components and np.isfinite(st.layer("partial", 3)).all()


def test_attach_checks_the_model_and_width(trained, sae_store, tmp_path):
    _, folder = trained
    store, corpus = sae_store
    other = store_from_arrays(tmp_path / "other", corpus,
                              {"hidden": (np.zeros((corpus.n_words, D_IN), np.float32), [3])},
                              model_name="another")
    with pytest.raises(StoreError, match="another model"):
        attach(other, folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["metadata"]["neuronscope"]["model_fingerprint"] == store.model_fingerprint


def test_planted_benchmark_on_sae_features(trained, store_copy):
    """Planting into an SAE-feature component works as for neurons."""
    from neuronscope.benchmark import PlantedBenchmark, run_benchmark

    _, folder = trained
    store, corpus = store_copy
    st = attach(store, folder)
    features = st.layer("sae", 3)
    labels = np.array([f"C{i % 5}" for i in range(st.n_words)])
    planted = PlantedBenchmark(kinds=("focused",), snrs=(3.0,), n_concepts=2,
                               random_state=0).build(features, labels)
    board = run_benchmark(planted, methods=["selectivity"], ks=[1])
    summary = board.to_dataframe()
    recall = summary[(summary.method == "selectivity")]["recall"].mean()
    floor = summary[(summary.method == "random")]["recall"].mean()
    assert recall > 0.9 and recall > floor + 0.5
