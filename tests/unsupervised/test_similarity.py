"""CKA, SVCCA and PWCCA: invariances and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import FingerprintMismatchError
from neuronscope.unsupervised.similarity import (
    linear_cka,
    representation_similarity,
)

from .conftest import make_corpus, write_store


def representation(n: int = 3000, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) @ rng.standard_normal((d, d))).astype(np.float32)


def test_cka_of_a_representation_with_itself_is_one():
    x = representation()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)


def test_cka_invariant_to_rotation_and_isotropic_scaling_only():
    x = representation()
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((16, 16)))
    rotated = (x.astype(np.float64) @ q * 7.5 + 3.0).astype(np.float32)
    assert linear_cka(x, rotated) == pytest.approx(1.0, abs=1e-6)
    stretched = x * np.linspace(0.1, 10, 16, dtype=np.float32)  # not isotropic
    assert linear_cka(x, stretched) < 0.95


def test_svcca_finds_shared_directions_of_linearly_related_stores(tmp_path):
    corpus = make_corpus(n_sentences=300)
    n = corpus.n_words
    rng = np.random.default_rng(2)
    shared = rng.standard_normal((n, 4))
    a = np.concatenate([shared, rng.standard_normal((n, 4))], axis=1)
    mix = rng.standard_normal((4, 4)) + 3 * np.eye(4)
    b = np.concatenate([shared @ mix, rng.standard_normal((n, 2))], axis=1)
    sa = write_store(tmp_path / "a", corpus, {"hidden": a.astype(np.float32)}, layers=(0,))
    sb = write_store(tmp_path / "b", corpus, {"hidden": b.astype(np.float32)}, layers=(0,))
    sim = representation_similarity(sa, sb, variance=0.999)
    top = sim.svcca_correlations
    np.testing.assert_allclose(top[:4], 1.0, atol=1e-5)
    assert np.all(top[4:] < 0.2)
    assert sim.svcca_dims == (8, 6)
    np.testing.assert_allclose(sim.pwcca_correlations[:4], 1.0, atol=1e-5)
    assert 0 < sim.cka < 1
    self_sim = representation_similarity(sa, sa)
    assert self_sim.pwcca == pytest.approx(1.0, abs=1e-6)
    assert self_sim.svcca == pytest.approx(1.0, abs=1e-6)
    assert self_sim.cka == pytest.approx(1.0, abs=1e-9)


def test_different_corpora_refused(tmp_path):
    c1, c2 = make_corpus(seed=0), make_corpus(seed=1)
    x = np.zeros((c1.n_words, 2), dtype=np.float32)
    s1 = write_store(tmp_path / "a", c1, {"hidden": x}, layers=(0,))
    s2 = write_store(tmp_path / "b", c2, {"hidden": x}, layers=(0,))
    with pytest.raises(FingerprintMismatchError, match="different corpora"):
        representation_similarity(s1, s2)
