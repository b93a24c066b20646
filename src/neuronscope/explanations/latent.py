"""Latent concept discovery (Dalvi et al. 2022, "Discovering Latent Concepts Learned in BERT").

The method (ICLR 2022; code ``hsajjad/ConceptX``) clusters the contextual representations of
word occurrences of one layer and treats each cluster as a *latent concept*, then asks which
clusters an annotated concept explains:

* **Clustering.** ConceptX runs ``sklearn.cluster.AgglomerativeClustering(n_clusters=K)``
  (``scripts/get_agglomerative_clusters.py``), whose default linkage is Ward's minimum
  variance. Agglomerative clustering needs memory quadratic in the points, so here it runs on
  a seeded sample of at most ``max_fit_words`` occurrences; every other occurrence joins the
  cluster with the nearest centroid. ``method="kmeans"`` (Hawasly et al. 2023, "Scaling up
  Discovery of Latent Concepts in Deep NLP Models", found K-means concepts of similar
  quality at a fraction of the cost) fits K-means on the same sample.
* **Occurrence filter.** ConceptX's ``frequency_filter_data.py`` drops word types rarer than a
  minimum frequency and keeps at most a maximum number of occurrences per type (its script
  defaults 5 and 50; its ``getclusters.sh`` disables both): ``min_count`` and
  ``max_per_type`` (default: no filter).
* **Alignment.** For each label layer, a cluster's alignment score with a label is the share
  of its occurrences carrying that label; the cluster is aligned when the best label's share
  reaches ``threshold``. ConceptX's ``scripts/align_with_auto_tags.py`` uses 0.9
  (``--threshold 0.90``) with a strict ``>``; ``>=`` is used here (they differ only at
  exactly 90 %). Words without a label (``NO_LABEL``) count in the cluster's size but are
  never a label, as ConceptX's ``_UNK`` labels. Besides the corpus layers, lexical layers are
  available as in ConceptX's "trivial" auto-labels: ``form`` (the lowercased word) and
  ``ending`` (every 2-4 character ending; a word carries several). A corpus layer of the same
  name takes precedence.
* **Unexplained clusters** (aligned with no layer) are the candidate novel concepts; each
  cluster is shown with its most frequent words and the contexts of its most central
  occurrences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import check_finite
from neuronscope.params import Configurable, jsonable
from neuronscope.store.store import ActivationStore

METHODS = ("agglomerative", "kmeans")
#: Lexical pseudo-layers that can be aligned besides the corpus' label layers.
LEXICAL_LAYERS = ("form", "ending")


@dataclass
class LatentCluster:
    """One latent concept: a cluster of word occurrences.

    ``top_words``: most frequent word forms with counts; ``contexts``: windows around the
    occurrences closest to the centroid, the word in brackets; ``best``: per layer, the
    label with the largest share and that share; ``aligned``: the ``(layer, label, share)``
    whose share reaches the threshold.
    """

    id: int
    size: int
    top_words: list[tuple[str, int]]
    contexts: list[str]
    best: dict[str, tuple[str, float]]
    aligned: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def explained(self) -> bool:
        """Whether some label layer explains this cluster."""
        return bool(self.aligned)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "id": self.id, "size": self.size, "explained": self.explained,
            "top_words": [[w, c] for w, c in self.top_words], "contexts": self.contexts,
            "best": {k: [v[0], v[1]] for k, v in self.best.items()},
            "aligned": [list(a) for a in self.aligned],
        }


@dataclass
class ConceptDiscovery:
    """The latent concepts of one layer and their alignment with annotated concepts.

    ``rows`` are the store rows clustered; ``labels[i]`` the cluster of ``rows[i]``.
    """

    component: str
    layer: int
    method: str
    k: int
    threshold: float
    layers: list[str]
    rows: np.ndarray
    labels: np.ndarray
    clusters: list[LatentCluster]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def unexplained(self) -> list[LatentCluster]:
        """Clusters no label layer explains, largest first."""
        return sorted((c for c in self.clusters if not c.explained), key=lambda c: -c.size)

    def aligned_share(self) -> dict[str, float]:
        """Per label layer, the share of clusters it explains (and ``"any"``)."""
        n = max(len(self.clusters), 1)
        out = {layer: sum(any(a[0] == layer for a in c.aligned) for c in self.clusters) / n
               for layer in self.layers}
        out["any"] = sum(c.explained for c in self.clusters) / n
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (cluster assignments included as ``rows``/``labels``)."""
        return {
            "component": self.component, "layer": self.layer, "method": self.method,
            "k": self.k, "threshold": self.threshold, "layers": self.layers,
            "aligned_share": self.aligned_share(), "params": jsonable(self.params),
            "clusters": [c.to_dict() for c in self.clusters],
            "rows": self.rows.tolist(), "labels": self.labels.tolist(),
        }


class LatentConceptDiscovery(Configurable):
    """Cluster one layer's word representations and align clusters with label layers.

    Args:
        k: number of clusters.
        method: ``"agglomerative"`` (Ward linkage, as ConceptX) or ``"kmeans"``.
        threshold: alignment threshold on a label's share of a cluster (ConceptX: 0.9).
        layers: label layers to align with (default: every word-level layer of the corpus);
            ``"form"`` and ``"ending"`` name the lexical layers.
        lexical: also align with the lexical layers (when ``layers`` is not given).
        max_fit_words: most occurrences the clustering is fitted on (a seeded sample); the
            others join the nearest centroid. ``None``: fit on all. Ward clustering holds all
            pairwise distances: about ``4 * n^2`` bytes, 400 MB at the default 10,000.
        min_count: drop word types with fewer occurrences.
        max_per_type: keep at most this many occurrences per word type (the first ones).
        n_top_words: words listed per cluster.
        n_contexts: contexts shown per cluster.
        window: context window in words (odd).
        random_state: seed of the sample and of K-means.
    """

    def __init__(
        self,
        k: int = 200,
        method: str = "agglomerative",
        threshold: float = 0.9,
        layers: Sequence[str] | None = None,
        lexical: bool = True,
        max_fit_words: int | None = 10000,
        min_count: int = 1,
        max_per_type: int | None = None,
        n_top_words: int = 10,
        n_contexts: int = 3,
        window: int = 7,
        random_state: int | None = 0,
    ) -> None:
        self.k = k
        self.method = method
        self.threshold = threshold
        self.layers = layers
        self.lexical = lexical
        self.max_fit_words = max_fit_words
        self.min_count = min_count
        self.max_per_type = max_per_type
        self.n_top_words = n_top_words
        self.n_contexts = n_contexts
        self.window = window
        self.random_state = random_state

    def _check(self) -> None:
        if self.method not in METHODS:
            raise NeuronscopeError(f"method must be one of {', '.join(METHODS)}, "
                                   f"got {self.method!r}")
        if not isinstance(self.k, (int, np.integer)) or self.k < 2:
            raise NeuronscopeError(f"k must be an integer >= 2, got {self.k!r}")
        if not 0 < self.threshold <= 1:
            raise NeuronscopeError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.max_fit_words is not None and self.max_fit_words < self.k:
            raise NeuronscopeError(
                f"max_fit_words ({self.max_fit_words}) must be at least k ({self.k})")
        if self.min_count < 1 or (self.max_per_type is not None and self.max_per_type < 1):
            raise NeuronscopeError("min_count and max_per_type must be >= 1")
        if self.window < 1 or self.window % 2 == 0:
            raise NeuronscopeError(f"window must be a positive odd number, got {self.window}")

    # ------------------------------------------------------------------ clustering
    def cluster(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster the rows of ``x``: ``(labels, centroids)``; labels in ``0..k-1``."""
        self._check()
        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        if n < self.k:
            raise NeuronscopeError(f"{n} words cannot form k={self.k} clusters; lower k")
        rng = np.random.default_rng(self.random_state)
        fit_rows = np.arange(n)
        if self.max_fit_words is not None and n > self.max_fit_words:
            fit_rows = np.sort(rng.choice(n, self.max_fit_words, replace=False))
        sample = x[fit_rows].astype(np.float64)
        if self.method == "agglomerative":
            from sklearn.cluster import AgglomerativeClustering

            fit_labels = AgglomerativeClustering(n_clusters=self.k, linkage="ward").fit_predict(
                sample)
        else:
            from sklearn.cluster import KMeans

            fit_labels = KMeans(n_clusters=self.k, n_init=3,
                                random_state=self.random_state).fit_predict(sample)
        centroids = np.stack([sample[fit_labels == c].mean(axis=0) for c in range(self.k)])
        labels = np.empty(n, dtype=np.int64)
        labels[fit_rows] = fit_labels
        rest = np.setdiff1d(np.arange(n), fit_rows)
        for lo in range(0, len(rest), 8192):  # nearest centroid, in blocks
            part = rest[lo: lo + 8192]
            labels[part] = _nearest(x[part].astype(np.float64), centroids)
        return labels, centroids.astype(np.float32)

    # ------------------------------------------------------------------ entry point
    def discover(self, store: ActivationStore, corpus: Corpus, layer: int,
                 component: str = "hidden") -> ConceptDiscovery:
        """Latent concepts of ``component`` layer ``layer`` of ``store``.

        Raises:
            FingerprintMismatchError: ``corpus`` is not the store's corpus.
            UnknownComponentError: no such component or layer.
            NeuronscopeError: fewer (filtered) words than ``k``; unknown label layer.
        """
        self._check()
        store.check_corpus(corpus)
        align_layers = self._align_layers(corpus)
        store.layout.layer_slice(component, layer)  # unknown component/layer: clear error
        words = store.words()
        rows = self._rows(words)
        if len(rows) < self.k:
            raise NeuronscopeError(
                f"layer {layer} of {component!r} has {len(rows)} words"
                f"{' after filtering' if len(rows) < len(words) else ''}, fewer than "
                f"k={self.k} clusters; lower k"
            )
        x = store.layer(component, layer, rows=None if len(rows) == len(words) else rows)
        check_finite(x, 0)
        labels, centroids = self.cluster(x)
        clusters = self._describe(x, labels, centroids, rows, words, corpus, align_layers,
                                  store.sentence_ids(), store.positions())
        return ConceptDiscovery(component, layer, self.method, self.k, self.threshold,
                                align_layers, rows, labels, clusters, self.get_params())

    def _align_layers(self, corpus: Corpus) -> list[str]:
        if self.layers is not None:
            chosen = list(self.layers)
            for name in chosen:
                if name not in LEXICAL_LAYERS:
                    corpus.layer(name)  # clear error for a missing layer
            return chosen
        lexical = [n for n in LEXICAL_LAYERS if n not in corpus.labels] if self.lexical else []
        return list(corpus.layers) + lexical

    def _rows(self, words: list[str]) -> np.ndarray:
        counts = Counter(words)
        taken: Counter = Counter()
        keep = []
        for i, w in enumerate(words):
            if counts[w] < self.min_count:
                continue
            if self.max_per_type is not None and taken[w] >= self.max_per_type:
                continue
            taken[w] += 1
            keep.append(i)
        return np.asarray(keep, dtype=np.int64)

    # ------------------------------------------------------------------ description
    def _describe(self, x: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
                  rows: np.ndarray, words: list[str], corpus: Corpus, layers: list[str],
                  sentence_ids: np.ndarray, positions: np.ndarray) -> list[LatentCluster]:
        k = self.k
        sizes = np.bincount(labels, minlength=k)
        best: list[dict[str, tuple[str, float]]] = [{} for _ in range(k)]
        for layer in layers:
            pairs_rows, pairs_labels = _layer_pairs(layer, corpus, rows)
            names, codes = np.unique(pairs_labels, return_inverse=True)
            real = names != NO_LABEL
            counts = np.bincount(labels[pairs_rows] * len(names) + codes,
                                 minlength=k * len(names)).reshape(k, len(names))
            counts[:, ~real] = 0
            top = counts.argmax(axis=1)
            for c in range(k):
                if sizes[c] and counts[c, top[c]] > 0:
                    best[c][layer] = (str(names[top[c]]), float(counts[c, top[c]] / sizes[c]))

        dist = np.linalg.norm(x - centroids[labels], axis=1)
        half = self.window // 2
        sent_start = np.searchsorted(sentence_ids, sentence_ids, side="left")
        sent_stop = np.searchsorted(sentence_ids, sentence_ids, side="right")
        out = []
        for c in range(k):
            members = np.flatnonzero(labels == c)
            top_words = Counter(words[rows[i]] for i in members).most_common(self.n_top_words)
            contexts = []
            for i in members[np.argsort(dist[members], kind="stable")][: self.n_contexts]:
                r = int(rows[i])
                lo = max(r - half, int(sent_start[r]))
                hi = min(r + half + 1, int(sent_stop[r]))
                contexts.append(" ".join(f"[{words[j]}]" if j == r else words[j]
                                         for j in range(lo, hi)))
            aligned = [(layer, lab, share) for layer, (lab, share) in best[c].items()
                       if share >= self.threshold - 1e-12]
            out.append(LatentCluster(c, int(sizes[c]), top_words, contexts, best[c], aligned))
        return out


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each row (squared Euclidean)."""
    d = (x * x).sum(axis=1)[:, None] - 2 * x @ centroids.T + (centroids ** 2).sum(axis=1)
    return d.argmin(axis=1)


def _layer_pairs(layer: str, corpus: Corpus, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index into rows, label)`` pairs of a layer; a word may carry several labels."""
    if layer == "form" and "form" not in corpus.labels:
        words = corpus.words()
        return np.arange(len(rows)), np.array([words[r].lower() for r in rows], dtype=str)
    if layer == "ending" and "ending" not in corpus.labels:
        words = corpus.words()
        idx, labs = [], []
        for i, r in enumerate(rows.tolist()):
            w = words[r].lower()
            for n in (2, 3, 4):
                if len(w) > n:
                    idx.append(i)
                    labs.append("-" + w[-n:])
        if not idx:
            return np.zeros(1, dtype=np.int64), np.array([NO_LABEL])
        return np.asarray(idx, dtype=np.int64), np.array(labs, dtype=str)
    values = corpus.labels_array(layer)[rows]
    return np.arange(len(rows)), values.astype(str)
