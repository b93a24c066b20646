"""Functional groups of neurons: UMAP embedding + k-means (Meyes et al. 2020).

"Under the Hood of Neural Networks: Characterizing Learned Representations by Functional
Neuron Populations and Network Ablations" (Meyes, Lu, de Puiseau & Meisen, 2020) describes
each neuron by its activation profile over the data, embeds the neurons in two dimensions
with UMAP and groups them with k-means into functional populations. Here a neuron's profile
is either

* ``"activations"``: its z-scored activations over a seeded random sample of
  ``sample_words`` words (the paper's choice), or
* ``"correlation"``: its row of the (streamed) neuron correlation matrix, i.e. how it
  co-varies with every other neuron (signed: a negated copy lands far away).

UMAP comes from the optional dependency ``umap-learn`` (``pip install 'neuronscope[umap]'``).
``embedding="pca"`` uses a linear PCA embedding instead -- a different method, used only when
asked for. k-means (scikit-learn, ``n_init=10``) then runs on the embedding.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.unsupervised.clustering import group_of
from neuronscope.unsupervised.correlation import (
    Activations,
    ColumnSource,
    correlation_matrix,
)

PROFILES = ("activations", "correlation")
EMBEDDINGS = ("umap", "pca")


@dataclass
class GroupingResult:
    """Neuron groups found by k-means on a 2-D (or n-D) embedding of neuron profiles.

    Attributes:
        names: neuron names; ``ids`` their global ids.
        labels: group index of each neuron (groups numbered by decreasing size).
        embedding: ``(n_neurons, n_components)`` coordinates.
        groups: member names of each group, largest first.
        layers: per group, how many members sit in each layer group (``"L3.mlp"``...).
    """

    names: list[str]
    ids: np.ndarray
    labels: np.ndarray
    embedding: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def groups(self) -> list[list[str]]:
        """Member names per group."""
        return [[self.names[i] for i in np.nonzero(self.labels == g)[0]]
                for g in range(self.n_groups)]

    @property
    def layers(self) -> list[dict[str, int]]:
        """Layer composition of each group."""
        return [dict(Counter(group_of(n) for n in members)) for members in self.groups]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "format": "neuronscope-groups",
            "params": dict(self.params),
            "groups": [{"size": len(m), "layers": lay, "members": m}
                       for m, lay in zip(self.groups, self.layers, strict=True)],
            "embedding": {n: [round(float(v), 5) for v in e]
                          for n, e in zip(self.names, self.embedding, strict=True)},
        }


def _umap(features: np.ndarray, n_components: int, n_neighbors: int, min_dist: float,
          random_state: int | None) -> np.ndarray:
    try:
        import umap  # optional dependency, heavy import (numba)
    except ImportError as err:
        raise NeuronscopeError(
            "UMAP grouping needs the optional package umap-learn: "
            "pip install 'neuronscope[umap]' (or pass embedding='pca' for a PCA embedding)"
        ) from err
    reducer = umap.UMAP(n_components=n_components, n_neighbors=min(n_neighbors,
                                                                    len(features) - 1),
                        min_dist=min_dist, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and numba notes
        return np.asarray(reducer.fit_transform(features), dtype=np.float64)


def group_neurons(
    activations: Activations,
    n_groups: int = 8,
    neurons: Sequence[str | int] | None = None,
    profile: str = "activations",
    embedding: str = "umap",
    n_components: int = 2,
    sample_words: int = 5000,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    chunk_words: int = 8192,
    random_state: int | None = 0,
) -> GroupingResult:
    """Embed neurons by their profiles (UMAP or PCA) and group them with k-means.

    Args:
        activations: a store or a ``(n_words, n_neurons)`` array.
        n_groups: k of k-means.
        neurons: the neurons to group (default: all).
        profile: ``"activations"`` (z-scored activations on a word sample) or
            ``"correlation"`` (correlation rows, streamed over all words).
        embedding: ``"umap"`` (needs umap-learn) or ``"pca"``.
        n_components: embedding dimensions.
        sample_words: words sampled for ``"activations"`` profiles.
        n_neighbors, min_dist: UMAP parameters.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    if profile not in PROFILES:
        raise NeuronscopeError(f"profile must be one of {PROFILES}, got {profile!r}")
    if embedding not in EMBEDDINGS:
        raise NeuronscopeError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    source = ColumnSource.of(activations, neurons, chunk_words)
    d = source.n_cols
    if not isinstance(n_groups, (int, np.integer)) or n_groups < 1 or n_groups > d:
        raise NeuronscopeError(f"n_groups must be in 1..{d} (the number of neurons), "
                               f"got {n_groups!r}")
    if d < 3:
        raise NeuronscopeError(f"grouping needs at least 3 neurons, got {d}")
    if not 1 <= n_components < d:
        raise NeuronscopeError(f"n_components must be in 1..{d - 1}, got {n_components}")
    rng = np.random.default_rng(random_state)
    if profile == "activations":
        n = source.n_rows
        rows = np.arange(n) if sample_words >= n else np.sort(
            rng.choice(n, size=sample_words, replace=False))
        x = source.take(rows).astype(np.float64)
        x -= x.mean(axis=0)
        sd = x.std(axis=0)
        x /= np.where(sd > 0, sd, 1.0)  # constant neurons: an all-zero profile
        features = x.T
    else:
        features = np.asarray(correlation_matrix(source).matrix, dtype=np.float64)
    if embedding == "umap":
        coords = _umap(features, n_components, n_neighbors, min_dist, random_state)
    else:
        coords = PCA(n_components=n_components, random_state=random_state).fit_transform(
            features)
    seed = None if random_state is None else int(random_state)
    kmeans = KMeans(n_clusters=int(n_groups), n_init=10, random_state=seed).fit(coords)
    raw = kmeans.labels_
    sizes = np.bincount(raw, minlength=int(n_groups))
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return GroupingResult(
        names=source.names, ids=source.ids, labels=rank[raw], embedding=coords,
        params={"n_groups": int(n_groups), "profile": profile, "embedding": embedding,
                "n_components": n_components, "sample_words": sample_words,
                "n_neighbors": n_neighbors, "min_dist": min_dist, "random_state": random_state},
    )
