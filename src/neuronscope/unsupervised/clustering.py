"""Correlation clustering of neurons and redundancy analysis (Dalvi et al. 2020).

Following "Analyzing Redundancy in Pretrained Transformer Models" (Dalvi, Sajjad, Durrani &
Belinkov, EMNLP 2020) and its implementation in NeuroX (``create_correlation_clusters`` /
``extract_independent_neurons``):

* distance between two neurons: ``1 - |rho|`` (Pearson correlation over words; the sign is
  ignored, as a negated copy carries the same information);
* agglomerative hierarchical clustering with **average** linkage (NeuroX' default and the
  paper's setting), cut at distance ``1 - threshold`` (scipy ``fcluster``, criterion
  "distance"). The paper's configuration uses a distance cut of 0.3, i.e. ``threshold=0.7``.
  The linkage runs on each connected component of the pairs with ``|rho| >= threshold``
  alone, which gives the same flat clusters (:func:`_flat_clusters`).

What ``threshold`` means: two clusters are merged while the *average* ``|rho|`` over all
pairs across them is at least ``threshold``. So every cluster has an average within-cluster
``|rho| >= threshold`` at each merge, but single pairs inside a cluster may be lower. With
``linkage="complete"`` every pair in a cluster has ``|rho| >= threshold`` (stricter, more
clusters); with ``"single"`` a chain of pairs each ``>= threshold`` suffices (looser).

* representative: one neuron per cluster is kept. The paper (NeuroX) picks a **random**
  member (``representative="random"``, seeded here); ``"central"`` picks the member with the
  highest mean ``|rho|`` to the rest of its cluster instead (deterministic).
* redundant neurons: every neuron that is not its cluster's representative. Constant neurons
  (no variation over the corpus) carry no information: they are left out of the clustering
  (label ``-1``) and counted as redundant.

Layer-level redundancy is measured between every pair of layers (per component) by linear
CKA (Kornblith et al. 2019) and by the mean max-correlation: for each (non-constant) neuron
of layer A, its largest ``|rho|`` with a neuron of layer B (other than itself), averaged over
A; the matrix is not symmetric.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster import hierarchy
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from neuronscope.errors import NeuronscopeError
from neuronscope.store.names import parse_name
from neuronscope.unsupervised.correlation import (
    DEFAULT_MAX_BYTES,
    Activations,
    ColumnSource,
    CorrelationResult,
    correlation_matrix,
)

LINKAGES = ("average", "complete", "single", "weighted")
REPRESENTATIVES = ("random", "central")


def group_of(name: str) -> str:
    """Layer group of a neuron name: ``"L3.mlp"`` for ``L3.mlp.17``; ``"all"`` otherwise."""
    parsed = parse_name(name)
    return parsed.group if parsed is not None else "all"


def _group_order(groups: Sequence[str]) -> list[str]:
    """Distinct groups, by component (first appearance) then layer number."""
    seen: dict[str, int] = {}
    for g in groups:
        seen.setdefault(g, len(seen))

    def key(g: str) -> tuple:
        if g == "all":
            return (0, "", 0)
        layer, comp = g.split(".", 1)
        first = min(i for h, i in seen.items() if h.split(".", 1)[-1] == comp)
        return (first, comp, int(layer[1:]))

    return sorted(seen, key=key)


# ---------------------------------------------------------------------- layer similarity
@dataclass
class LayerSimilarity:
    """Similarity between layer groups (``"L3.hidden"``, ...).

    Attributes:
        labels: the groups, in order.
        cka: linear CKA between groups (symmetric, 1 on the diagonal).
        max_corr: ``max_corr[a, b]`` = mean over neurons of ``a`` of their largest ``|rho|``
            with a neuron of ``b`` (excluding themselves).
    """

    labels: list[str]
    cka: np.ndarray
    max_corr: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"labels": self.labels, "cka": np.round(self.cka, 6).tolist(),
                "max_corr": np.round(self.max_corr, 6).tolist()}


def layer_similarity(corr: CorrelationResult) -> LayerSimilarity:
    """Linear CKA and mean max-correlation between every pair of layer groups."""
    groups = [group_of(n) for n in corr.names]
    labels = _group_order(groups)
    index = {g: np.asarray([i for i, h in enumerate(groups) if h == g]) for g in labels}
    k = len(labels)
    hsic = np.zeros((k, k))  # ||S_ab||_F^2
    max_corr = np.zeros((k, k))
    varying = ~corr.constant_mask
    for a, ga in enumerate(labels):
        ia = index[ga]
        live = varying[ia]
        for b, gb in enumerate(labels[a:], start=a):
            ib = index[gb]
            block = corr.block(ia, ib).astype(np.float64)
            cov = block * corr.std[ia][:, None] * corr.std[ib][None, :]
            hsic[a, b] = hsic[b, a] = float(np.sum(cov * cov))
            np.abs(block, out=block)
            if a == b:
                np.fill_diagonal(block, 0.0)  # a neuron's correlation with itself
            if live.any():
                max_corr[a, b] = float(block.max(axis=1)[live].mean())
            live_b = varying[ib]
            if b != a and live_b.any():
                max_corr[b, a] = float(block.max(axis=0)[live_b].mean())
    norms = np.sqrt(np.diag(hsic))
    denom = np.outer(norms, norms)
    cka = np.divide(hsic, denom, out=np.zeros_like(hsic), where=denom > 0)
    np.fill_diagonal(cka, [1.0 if n > 0 else 0.0 for n in norms])
    return LayerSimilarity(labels, cka, max_corr)


# ---------------------------------------------------------------------- clustering
@dataclass
class ClusteringResult:
    """Correlation clusters of neurons, their representatives and redundancy statistics.

    Attributes:
        threshold: the ``|rho|`` threshold (distance cut ``1 - threshold``).
        linkage: the scipy linkage method.
        names: neuron names; ``ids`` their global ids.
        labels: cluster index of each neuron (clusters numbered by decreasing size), ``-1``
            for constant neurons.
        representatives: column index of each cluster's representative (cluster order).
        constant: names of the constant neurons (left out, counted redundant).
        redundancy: ``{"overall": {...}, "groups": {group: {...}}}`` with counts of
            neurons, redundant neurons and their share.
        layers: layer-level similarity (CKA, mean max-correlation), when computed.
    """

    threshold: float
    linkage: str
    representative: str
    names: list[str]
    ids: np.ndarray
    labels: np.ndarray
    representatives: np.ndarray
    constant: list[str]
    redundancy: dict[str, Any]
    layers: LayerSimilarity | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        """Number of clusters (constant neurons excluded)."""
        return len(self.representatives)

    def clusters(self) -> list[list[str]]:
        """Member names of each cluster, largest cluster first."""
        order = np.argsort(self.labels, kind="stable")
        sorted_labels = self.labels[order]
        out = []
        for c in range(self.n_clusters):
            lo, hi = np.searchsorted(sorted_labels, [c, c + 1])
            out.append([self.names[i] for i in order[lo:hi]])
        return out

    @property
    def representative_names(self) -> list[str]:
        """Names of the kept (non-redundant) neurons, one per cluster."""
        return [self.names[i] for i in self.representatives]

    @property
    def representative_ids(self) -> np.ndarray:
        """Global ids of the kept neurons."""
        return self.ids[self.representatives]

    def to_dict(self, max_clusters: int | None = None) -> dict[str, Any]:
        """JSON-ready result: clusters (largest first) with their representative."""
        clusters = self.clusters()
        shown = clusters if max_clusters is None else clusters[:max_clusters]
        return {
            "format": "neuronscope-clusters",
            "params": dict(self.params),
            "threshold": self.threshold,
            "linkage": self.linkage,
            "representative_rule": self.representative,
            "n_neurons": len(self.names),
            "n_clusters": self.n_clusters,
            "constant": self.constant,
            "redundancy": self.redundancy,
            "clusters": [
                {"representative": self.names[r], "size": len(m), "members": m}
                for r, m in zip(self.representatives.tolist(), shown, strict=False)
            ],
            "representatives": self.representative_names,
            "layers": None if self.layers is None else self.layers.to_dict(),
        }


def _kept_runs(keep: np.ndarray) -> list[tuple[int, int]] | None:
    """The kept columns as runs of consecutive indices, ``None`` when there are many."""
    cuts = np.flatnonzero(np.diff(keep) != 1) + 1
    runs = [(int(r[0]), int(r[-1]) + 1) for r in np.split(keep, cuts)] if len(keep) else []
    return runs if len(runs) <= 64 else None


def _kept_rows(matrix: np.ndarray, keep: np.ndarray, a: int, b: int,
               runs: list[tuple[int, int]] | None) -> np.ndarray:
    """Rows ``keep[a:b]`` of the matrix restricted to the columns ``keep`` (float32)."""
    if len(keep) == matrix.shape[0]:
        return np.asarray(matrix[a:b], dtype=np.float32)
    rows = np.asarray(matrix[keep[a:b]], dtype=np.float32)
    if runs is not None:  # constant neurons are few: slices copy much faster than an index
        return np.concatenate([rows[:, s:e] for s, e in runs], axis=1)
    return rows[:, keep]


def _condensed_distances(matrix: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``1 - |rho|`` over pairs of ``keep`` as scipy's condensed vector (float64).

    Built row by row so that no second ``D x D`` array is needed besides the output.
    """
    k = len(keep)
    out = np.empty(k * (k - 1) // 2, dtype=np.float64)
    runs = _kept_runs(keep)
    pos = 0
    step = 256
    for a in range(0, k, step):
        b = min(a + step, k)
        rows = _kept_rows(matrix, keep, a, b, runs)
        for r in range(b - a):
            i = a + r
            tail = rows[r, i + 1:]
            n = len(tail)
            seg = out[pos:pos + n]
            np.abs(tail, out=seg, casting="unsafe")
            np.subtract(1.0, seg, out=seg)
            pos += n
    np.clip(out, 0.0, 1.0, out=out)
    return out


#: Most edges (pairs with |rho| >= threshold) gathered to split the neurons into components;
#: a denser graph (a low threshold) is clustered by one linkage of all neurons instead.
MAX_EDGES = 2**24


def _components(matrix: np.ndarray, keep: np.ndarray, threshold: float) -> np.ndarray | None:
    """Connected components (labels over ``keep``) of the pairs with ``|rho| >= threshold``.

    The test is loosened by 1e-6 so that float32 rounding can only add edges: coarser
    components are still a valid split (see :func:`_flat_clusters`). ``None`` when the graph
    has more than :data:`MAX_EDGES` edges.
    """
    k = len(keep)
    runs = _kept_runs(keep)
    heads, tails, total = [], [], 0
    step = 512
    for a in range(0, k, step):
        b = min(a + step, k)
        i, j = np.nonzero(np.abs(_kept_rows(matrix, keep, a, b, runs)) >= threshold - 1e-6)
        upper = j > i + a
        heads.append(i[upper] + a)
        tails.append(j[upper])
        total += int(upper.sum())
        if total > MAX_EDGES:
            return None
    graph = coo_matrix((np.ones(total, dtype=np.int8),
                        (np.concatenate(heads), np.concatenate(tails))), shape=(k, k))
    return connected_components(graph, directed=False)[1]


def _flat_clusters(corr: CorrelationResult, keep: np.ndarray, threshold: float,
                   linkage: str) -> np.ndarray:
    """Flat clusters (``0..n-1``, any order) of the neurons ``keep`` cut at ``1 - threshold``.

    No merge at a height ``<= 1 - threshold`` joins two connected components of the graph of
    pairs with ``|rho| >= threshold``: every pair across them is farther apart, and the
    average, complete, single or weighted linkage distance of two clusters is never below
    the least distance between their members. So scipy's linkage runs on each component
    alone (most are single neurons: 11,904 MiniLM neurons at 0.7 make 10,026 components of
    at most 52) and the flat clusters equal those of one linkage of all neurons, without
    its ``D^2 / 2`` condensed distances (567 MB) and their copy.
    """
    comp = _components(corr.matrix, keep, threshold)
    if comp is None:
        comp = np.zeros(len(keep), dtype=np.int64)
    order = np.argsort(comp, kind="stable")  # members of a component in increasing order
    bounds = np.searchsorted(comp[order], np.arange(comp.max() + 2))
    sizes = np.diff(bounds)
    flat = np.empty(len(keep), dtype=np.int64)
    single = np.flatnonzero(sizes == 1)
    flat[order[bounds[single]]] = np.arange(len(single))
    n = len(single)
    for c in np.flatnonzero(sizes > 1):
        members = order[bounds[c]:bounds[c + 1]]
        dist = _condensed_distances(corr.matrix, keep[members])
        if dist.nbytes >= SPILL_BYTES:  # the linkage copies it: map the matrix from a file
            _spill(corr)
        tree = hierarchy.linkage(dist, method=linkage)
        del dist
        labels = hierarchy.fcluster(tree, t=1.0 - threshold, criterion="distance") - 1
        flat[members] = labels + n
        n += int(labels.max()) + 1
    return flat


#: In-memory matrices at least this large go to a temporary file during the linkage.
SPILL_BYTES = 256 * 2**20


def _spill(corr: CorrelationResult) -> None:
    """Move a large in-memory matrix to a memory-mapped temporary file (same values).

    SciPy's linkage copies the float64 condensed distances (``D^2 / 2`` values each), so
    with the matrix also resident the peak would be three ``D x D / 2`` float64 arrays;
    mapped from a file, the matrix only takes memory again when it is read afterwards (layer
    similarity, central representatives). Only a linkage of that size spills (a low
    threshold, whose components are large; see :func:`_flat_clusters`).
    """
    matrix = corr.matrix
    if isinstance(matrix, np.memmap) or matrix.nbytes < SPILL_BYTES:
        return
    with tempfile.TemporaryDirectory(prefix="neuronscope-corr-", ignore_cleanup_errors=True) as tmp:
        path = Path(tmp) / "matrix.npy"
        np.save(path, matrix)
        # The mapping keeps the file's data alive after the directory is removed (POSIX).
        corr.matrix = np.load(path, mmap_mode="r")


def _check(threshold: float, linkage: str, representative: str) -> None:
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise NeuronscopeError(f"threshold must be an |correlation| in [0, 1], got {threshold}")
    if linkage not in LINKAGES:
        raise NeuronscopeError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if representative not in REPRESENTATIVES:
        raise NeuronscopeError(
            f"representative must be one of {REPRESENTATIVES}, got {representative!r}"
        )


def cluster_correlations(
    corr: CorrelationResult,
    threshold: float = 0.7,
    linkage: str = "average",
    representative: str = "random",
    random_state: int | None = 0,
    layers: bool = True,
) -> ClusteringResult:
    """Cluster the neurons of a correlation matrix (see the module docstring).

    Args:
        corr: from :func:`~neuronscope.unsupervised.correlation.correlation_matrix`.
        threshold: neurons (clusters) whose average ``|rho|`` is at least this are merged.
        linkage: ``"average"`` (the paper), ``"complete"``, ``"single"`` or ``"weighted"``.
        representative: ``"random"`` (the paper; seeded by ``random_state``) or
            ``"central"`` (highest mean ``|rho|`` within the cluster).
        layers: also compute layer-level similarity (CKA, mean max-correlation).
    """
    _check(threshold, linkage, representative)
    d = corr.n_neurons
    constant = corr.constant_mask
    keep = np.nonzero(~constant)[0]
    labels = np.full(d, -1, dtype=np.int64)
    if len(keep) == 1:
        labels[keep] = 0
    elif len(keep) > 1:
        flat = _flat_clusters(corr, keep, threshold, linkage)
        # Number clusters by decreasing size, ties by their first member.
        sizes = np.bincount(flat)
        first = np.full(len(sizes), len(flat))
        np.minimum.at(first, flat, np.arange(len(flat)))
        order = np.lexsort((first, -sizes))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        labels[keep] = rank[flat]
    n_clusters = int(labels.max()) + 1 if len(keep) else 0
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    members = [order[bounds[c]:bounds[c + 1]] for c in range(n_clusters)]
    rng = np.random.default_rng(random_state)
    reps = np.empty(n_clusters, dtype=np.int64)
    for c, m in enumerate(members):
        if len(m) == 1:
            reps[c] = m[0]
        elif representative == "random":
            reps[c] = rng.choice(m)
        else:
            block = np.abs(np.asarray(corr.matrix[m][:, m], dtype=np.float64))
            reps[c] = m[int(np.argmax(block.sum(axis=1)))]
    result = ClusteringResult(
        threshold=float(threshold), linkage=linkage, representative=representative,
        names=list(corr.names), ids=np.asarray(corr.ids), labels=labels, representatives=reps,
        constant=list(corr.constant), redundancy=_redundancy(corr.names, reps, constant),
        layers=layer_similarity(corr) if layers else None,
        params={"threshold": threshold, "linkage": linkage, "representative": representative,
                "random_state": random_state, "n_words": corr.n_words},
    )
    return result


def _redundancy(names: list[str], reps: np.ndarray, constant: np.ndarray) -> dict[str, Any]:
    """Share of redundant (non-representative) neurons overall and per layer group."""
    groups = [group_of(n) for n in names]
    kept = np.zeros(len(names), dtype=bool)
    kept[reps] = True
    totals = Counter(groups)
    redundant: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    for g, k, c in zip(groups, kept.tolist(), constant.tolist(), strict=True):
        if not k:
            redundant[g] += 1
        if c:
            dead[g] += 1

    def entry(n: int, r: int, c: int) -> dict[str, Any]:
        return {"neurons": n, "redundant": r, "constant": c, "kept": n - r,
                "share": (r / n) if n else 0.0}

    return {
        "overall": entry(len(names), int((~kept).sum()), int(constant.sum())),
        "groups": {g: entry(totals[g], redundant[g], dead[g]) for g in _group_order(groups)},
    }


def cluster_neurons(
    activations: Activations | ColumnSource | CorrelationResult,
    threshold: float = 0.7,
    linkage: str = "average",
    representative: str = "random",
    random_state: int | None = 0,
    neurons: Sequence[str | int] | None = None,
    chunk_words: int = 8192,
    max_bytes: int = DEFAULT_MAX_BYTES,
    layers: bool = True,
    rows: np.ndarray | None = None,
) -> ClusteringResult:
    """Correlation-cluster neurons of a store or array (streams the correlation first).

    See :func:`cluster_correlations` for the clustering parameters; ``neurons``,
    ``chunk_words``, ``max_bytes`` and ``rows`` go to
    :func:`~neuronscope.unsupervised.correlation.correlation_matrix`.
    """
    _check(threshold, linkage, representative)
    if isinstance(activations, CorrelationResult):
        corr = activations
    else:
        corr = correlation_matrix(activations, neurons, chunk_words=chunk_words,
                                  max_bytes=max_bytes, rows=rows)
    return cluster_correlations(corr, threshold, linkage, representative, random_state, layers)
