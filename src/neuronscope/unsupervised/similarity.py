"""Representation-level similarity: linear CKA, SVCCA and PWCCA, all from covariances.

Each measure only needs the covariance of the two representations and their cross-
covariance, so they stream over words like the correlation matrix (the joint covariance of
``[X, Y]`` is accumulated chunk by chunk) and never hold the activations.

* **Linear CKA** (Kornblith et al. 2019, "Similarity of Neural Network Representations
  Revisited"): ``||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F)`` on centred features. 1 for a
  representation with itself; invariant to orthogonal transforms and isotropic scaling.
* **SVCCA** (Raghu et al. 2017): keep, for each representation, the top principal directions
  explaining ``variance`` (default 99%) of its variance, then CCA between the reduced
  representations; the similarity is the mean canonical correlation.
* **PWCCA** (Morcos et al. 2018, "Insights on representational similarity in neural
  networks with canonical correlation"): CCA on the full representations, canonical
  correlations averaged with weights ``alpha_i = sum_j |<h_i, x_j>|`` (``h_i`` the i-th
  canonical variate of the side with fewer dimensions, normalized; ``x_j`` its centred
  neurons), normalized to sum to 1, as in the authors' ``compute_pwcca``.

CCA is computed as the SVD of ``S_xx^{-1/2} S_xy S_yy^{-1/2}``; directions of ``S_xx`` with
eigenvalue below ``rcond`` times the largest are dropped (numerically null: duplicated or
constant neurons), which is the pseudo-inverse square root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.store.provenance import check_same_rows
from neuronscope.store.store import ActivationStore
from neuronscope.unsupervised.correlation import (
    Activations,
    ColumnSource,
    _block_pass,
)

#: Relative eigenvalue cut-off of the whitening (below: numerically null directions).
RCOND = 1e-6


# ---------------------------------------------------------------------- from covariances
def cka_from_cov(sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray) -> float:
    """Linear CKA from the two covariance matrices and the cross-covariance."""
    denom = np.linalg.norm(sxx) * np.linalg.norm(syy)
    if denom <= 0:
        return 0.0  # a constant representation shares nothing
    return float(np.sum(np.square(sxy)) / denom)


@dataclass
class Spectrum:
    """Eigendecomposition of a covariance matrix, eigenvalues descending (computed once)."""

    values: np.ndarray
    vectors: np.ndarray

    @classmethod
    def of(cls, s: np.ndarray) -> Spectrum:
        """Decompose a (symmetrized) covariance matrix."""
        vals, vecs = np.linalg.eigh((s + s.T) / 2)
        return cls(np.clip(vals[::-1], 0.0, None), vecs[:, ::-1])

    def inv_sqrt(self, rcond: float = RCOND) -> np.ndarray:
        """``V diag(lambda^-1/2)`` over eigenvalues above ``rcond * max`` (``d x r``)."""
        top = self.values[0] if len(self.values) else 0.0
        if top <= 0:
            return np.zeros((len(self.vectors), 0))
        keep = self.values > rcond * top
        return self.vectors[:, keep] / np.sqrt(self.values[keep])

    def top(self, variance: float) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and vectors of the fewest directions explaining ``variance``."""
        total = self.values.sum()
        if total <= 0:
            return self.values[:0], self.vectors[:, :0]
        k = int(np.searchsorted(np.cumsum(self.values) / total, variance - 1e-12) + 1)
        return self.values[:k], self.vectors[:, :k]


def cca_from_cov(
    sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, rcond: float = RCOND,
    spectra: tuple[Spectrum, Spectrum] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlations (descending) and the canonical weights of X and of Y.

    Weights ``a`` (``d_x x k``) give unit-variance canonical variates ``X_c a``.
    """
    sx, sy = spectra or (Spectrum.of(sxx), Spectrum.of(syy))
    wx, wy = sx.inv_sqrt(rcond), sy.inv_sqrt(rcond)
    if wx.shape[1] == 0 or wy.shape[1] == 0:
        return np.zeros(0), np.zeros((len(sxx), 0)), np.zeros((len(syy), 0))
    u, rho, vt = np.linalg.svd(wx.T @ sxy @ wy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), wx @ u, wy @ vt.T


def svcca_from_cov(
    sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, variance: float = 0.99,
    spectra: tuple[Spectrum, Spectrum] | None = None,
) -> tuple[float, np.ndarray, int, int]:
    """SVCCA: ``(mean canonical correlation, correlations, kept dims of X, kept dims of Y)``."""
    if not 0 < variance <= 1:
        raise NeuronscopeError(f"variance must be in (0, 1], got {variance}")
    sx, sy = spectra or (Spectrum.of(sxx), Spectrum.of(syy))
    lx, vx = sx.top(variance)
    ly, vy = sy.top(variance)
    if len(lx) == 0 or len(ly) == 0:
        return 0.0, np.zeros(0), len(lx), len(ly)
    # The reduced representations X V_x have diagonal covariance diag(l_x).
    reduced = (Spectrum(lx, np.eye(len(lx))), Spectrum(ly, np.eye(len(ly))))
    rho, _, _ = cca_from_cov(np.diag(lx), np.diag(ly), vx.T @ sxy @ vy, spectra=reduced)
    return (float(rho.mean()) if len(rho) else 0.0), rho, len(lx), len(ly)


def pwcca_from_cov(
    sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, rcond: float = RCOND,
    spectra: tuple[Spectrum, Spectrum] | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """PWCCA: ``(weighted mean canonical correlation, correlations, weights)``."""
    rho, ax, ay = cca_from_cov(sxx, syy, sxy, rcond, spectra)
    if len(rho) == 0:
        return 0.0, rho, rho
    # Weights from the side with fewer dimensions (Morcos et al.'s choice). For unit-variance
    # variates h_i = X_c a_i, <h_i / |h_i|, x_j> is proportional to (S_xx a_i)_j.
    proj = sxx @ ax if ax.shape[0] <= ay.shape[0] else syy @ ay
    alpha = np.abs(proj).sum(axis=0)
    total = alpha.sum()
    if total <= 0:
        return 0.0, rho, alpha
    alpha = alpha / total
    return float(np.sum(alpha * rho)), rho, alpha


# ---------------------------------------------------------------------- streaming front end
@dataclass
class JointCovariance:
    """Float64 population covariance of several row-aligned representations side by side."""

    cov: np.ndarray
    mean: np.ndarray
    n_words: int
    offsets: np.ndarray
    names: list[str]

    def block(self, i: int, j: int) -> np.ndarray:
        """Covariance between part ``i`` and part ``j``."""
        a, b = self.offsets[i], self.offsets[i + 1]
        c, d = self.offsets[j], self.offsets[j + 1]
        return self.cov[a:b, c:d]


def joint_covariance(
    parts: Sequence[tuple[Activations, Sequence[str | int] | np.ndarray | None]],
    chunk_words: int = 8192,
    precision: str = "float64",
) -> JointCovariance:
    """Stream the joint covariance of several representations of the same words."""
    source = ColumnSource(parts, chunk_words)
    if source.n_rows < 2:
        raise NeuronscopeError(f"covariances need at least 2 words, got {source.n_rows}")
    moments, m2 = _block_pass(source, 0, source.n_cols, precision, None)
    n = int(moments.count_[0])
    return JointCovariance(m2 / n, moments.mean_[0], n, source.offsets, source.names)


@dataclass
class RepresentationSimilarity:
    """CKA, SVCCA and PWCCA between two representations, with the details behind them."""

    cka: float
    svcca: float
    pwcca: float
    svcca_correlations: np.ndarray = field(repr=False)
    pwcca_correlations: np.ndarray = field(repr=False)
    pwcca_weights: np.ndarray = field(repr=False)
    svcca_dims: tuple[int, int] = (0, 0)

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """JSON-ready summary (the ``top`` canonical correlations of each method)."""
        return {
            "cka": self.cka,
            "svcca": self.svcca,
            "pwcca": self.pwcca,
            "svcca_dims": list(self.svcca_dims),
            "svcca_top_correlations": self.svcca_correlations[:top].tolist(),
            "pwcca_top_correlations": self.pwcca_correlations[:top].tolist(),
        }


def similarity_from_cov(
    sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, variance: float = 0.99,
    spectra: tuple[Spectrum, Spectrum] | None = None,
) -> RepresentationSimilarity:
    """All three measures from covariance blocks (``spectra``: precomputed ``Spectrum``s)."""
    spectra = spectra or (Spectrum.of(sxx), Spectrum.of(syy))
    sv, sv_rho, kx, ky = svcca_from_cov(sxx, syy, sxy, variance, spectra)
    pw, pw_rho, alpha = pwcca_from_cov(sxx, syy, sxy, spectra=spectra)
    return RepresentationSimilarity(
        cka=cka_from_cov(sxx, syy, sxy), svcca=sv, pwcca=pw, svcca_correlations=sv_rho,
        pwcca_correlations=pw_rho, pwcca_weights=alpha, svcca_dims=(kx, ky),
    )


def representation_similarity(
    a: Activations,
    b: Activations,
    neurons_a: Sequence[str | int] | None = None,
    neurons_b: Sequence[str | int] | None = None,
    variance: float = 0.99,
    chunk_words: int = 8192,
) -> RepresentationSimilarity:
    """Linear CKA, SVCCA and PWCCA between two representations of the same words."""
    _check_same_corpus(a, b)
    joint = joint_covariance([(a, neurons_a), (b, neurons_b)], chunk_words)
    return similarity_from_cov(joint.block(0, 0), joint.block(1, 1), joint.block(0, 1),
                               variance)


def linear_cka(a: Activations, b: Activations, chunk_words: int = 8192) -> float:
    """Linear CKA between two representations (arrays or stores) of the same words."""
    _check_same_corpus(a, b)
    joint = joint_covariance([(a, None), (b, None)], chunk_words)
    return cka_from_cov(joint.block(0, 0), joint.block(1, 1), joint.block(0, 1))


def _check_same_corpus(a: Activations, b: Activations) -> None:
    check_same_rows([x for x in (a, b) if isinstance(x, ActivationStore)], "comparing two "
                    "representations")
