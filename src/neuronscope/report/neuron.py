"""Neuron cards: what one neuron responds to, computed from its activation column.

A report holds hundreds of cards, so the corpus side (word types, sentence boundaries, the
optional sentence sample) is indexed once in a :class:`CorpusIndex`, and each neuron's
column is read from the store once (neurons of a layer together, see
:func:`read_columns`). Top words, contexts and sentences follow exactly the definitions of
:mod:`neuronscope.methods.concept_search` (tests check they agree); they are recomputed here
only because those functions re-read the store and re-index the words on every call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import check_finite
from neuronscope.methods.concept_search import Context, SentenceActivation, WordActivation
from neuronscope.report.heatmap import heatmap_html, histogram_svg, legend, word_span
from neuronscope.report.html import esc, fmt, scoped_css, table
from neuronscope.store.store import ActivationStore


# ---------------------------------------------------------------------------- corpus side
@dataclass
class CorpusIndex:
    """Words of the analysed rows with their sentence structure and word-type codes.

    ``rows`` are the store rows analysed (all of them, or those of a sentence sample), in
    increasing order; every other array is aligned with them.
    """

    words: np.ndarray
    sentence_ids: np.ndarray
    positions: np.ndarray
    rows: np.ndarray
    n_sentences_total: int
    n_words_total: int
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.types, self.first, self.inverse, self.counts = np.unique(
            self.words, return_index=True, return_inverse=True, return_counts=True
        )
        self.inverse = self.inverse.reshape(-1)
        _, self.sent_starts, self.sent_lengths = np.unique(
            self.sentence_ids, return_index=True, return_counts=True
        )
        self.row_start = np.repeat(self.sent_starts, self.sent_lengths)
        self.row_stop = self.row_start + np.repeat(self.sent_lengths, self.sent_lengths)

    @property
    def n_rows(self) -> int:
        """Rows (words) analysed."""
        return len(self.words)

    @property
    def n_sentences(self) -> int:
        """Sentences analysed."""
        return len(self.sent_starts)

    @property
    def sampled(self) -> bool:
        """Whether only a sample of the sentences is analysed."""
        return self.n_sentences < self.n_sentences_total

    def describe(self) -> str:
        """One sentence saying what was analysed, for the pages."""
        if not self.sampled:
            return (f"all {self.n_sentences_total} sentences ({self.n_words_total} words) "
                    "of the corpus")
        return (f"a random sample of {self.n_sentences} of {self.n_sentences_total} sentences "
                f"({self.n_rows} of {self.n_words_total} words; whole store chunks drawn at "
                "random, seed 0)")

    @classmethod
    def build(
        cls,
        store: ActivationStore,
        corpus: Corpus | None = None,
        max_sentences: int | None = None,
        label_layers: Sequence[str] = (),
        seed: int = 0,
    ) -> CorpusIndex:
        """Index the store's words (from ``corpus`` when given: faster than the store's).

        Args:
            store: the activation store.
            corpus: the store's corpus (fingerprint-checked), optional.
            max_sentences: analyse at most this many sentences (a seeded random sample).
            label_layers: corpus label layers to keep, aligned with the analysed rows.
            seed: seed of the sentence sample.
        """
        if corpus is not None:
            store.check_corpus(corpus)
            words = np.asarray(corpus.words(), dtype=object)
            sentence_ids, positions = corpus.sentence_ids(), corpus.positions()
        else:
            words = np.asarray(store.words(), dtype=object)
            sentence_ids, positions = store.sentence_ids(), store.positions()
        n_words = len(words)
        n_sent = store.n_sentences
        rows = np.arange(n_words, dtype=np.int64)
        if max_sentences is not None and max_sentences < n_sent:
            if max_sentences < 1:
                raise NeuronscopeError(f"max_sentences must be >= 1, got {max_sentences}")
            keep = _sample_sentences(sentence_ids, max_sentences, store.chunk_words, seed)
            rows = np.nonzero(keep[sentence_ids])[0]
        labels = {}
        if corpus is not None:
            for layer in label_layers:
                if layer in corpus.labels:
                    labels[layer] = corpus.labels_array(layer)[rows]
        return cls(words[rows], sentence_ids[rows], positions[rows], rows, n_sent, n_words,
                   labels)


def _sample_sentences(sentence_ids: np.ndarray, n: int, chunk_words: int,
                      seed: int) -> np.ndarray:
    """A seeded sample of ``n`` sentences, drawn as whole store chunks (boolean mask).

    Sentences are taken chunk by chunk (chunks in random order), not one by one: a store is
    read in chunks of ``chunk_words`` rows, so a sample spread over every chunk would cost a
    full read of the store, while this one costs reading about ``n / n_sentences`` of it.
    """
    n_sent = int(sentence_ids.max()) + 1 if len(sentence_ids) else 0
    first_row = np.full(n_sent, len(sentence_ids), dtype=np.int64)
    np.minimum.at(first_row, sentence_ids, np.arange(len(sentence_ids)))
    chunk_of = first_row // max(chunk_words, 1)
    order = np.random.default_rng(seed).permutation(int(chunk_of.max()) + 1)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    # Sentences sorted by (random chunk rank, position): the first n are the sample.
    picked = np.lexsort((np.arange(n_sent), rank[chunk_of]))[:n]
    keep = np.zeros(n_sent, dtype=bool)
    keep[picked] = True
    return keep


def read_columns(
    store: ActivationStore, neurons: Sequence[str | int], rows: np.ndarray | None = None
) -> np.ndarray:
    """Activations ``(len(rows), k)`` of some neurons on some rows (sorted store rows).

    Only the store chunks holding some of ``rows`` are read. Pass neurons of the same layer
    together: the store's chunks hold whole layers, so each chunk is then read once for all
    of them.
    """
    ids = store.layout.ids(neurons).tolist()
    if rows is None:
        rows = np.arange(store.n_words, dtype=np.int64)
    out = np.empty((len(rows), len(ids)), dtype=np.float32)
    step = store.chunk_words
    for chunk in np.unique(rows // step).tolist():
        start, stop = chunk * step, min((chunk + 1) * step, store.n_words)
        lo, hi = np.searchsorted(rows, [start, stop])
        block = store.neurons(ids, rows=slice(start, stop))
        picked = block[rows[lo:hi] - start]
        check_finite(picked, start)
        out[lo:hi] = picked
    return out


# ---------------------------------------------------------------------------- searches
def _ranked_rows(values: np.ndarray, at_least: int) -> np.ndarray:
    """Indices of the ``at_least`` highest values plus ties, highest first, ties by index."""
    n = len(values)
    if at_least >= n:
        candidates = np.arange(n)
    else:
        threshold = np.partition(values, n - at_least)[n - at_least]
        candidates = np.nonzero(values >= threshold)[0]
    return candidates[np.lexsort((candidates, -values[candidates]))]


def top_words(index: CorpusIndex, values: np.ndarray, k: int = 15,
              lowest: bool = False) -> list[WordActivation]:
    """Word types ranked by their strongest occurrence (as ``concept_search.top_words``)."""
    values = np.asarray(values, dtype=np.float64)
    if k <= 0 or len(values) == 0:
        return []
    signed = -values if lowest else values
    best = np.full(len(index.types), -np.inf)
    np.maximum.at(best, index.inverse, signed)
    sums = np.bincount(index.inverse, weights=values, minlength=len(index.types))
    order = np.lexsort((index.first, -best))[:k]
    sign = -1.0 if lowest else 1.0
    return [WordActivation(str(index.types[t]), float(sign * best[t]),
                           float(sums[t] / index.counts[t]), int(index.counts[t]))
            for t in order]


def top_contexts(index: CorpusIndex, values: np.ndarray, k: int = 15, window: int = 9,
                 lowest: bool = False) -> list[Context]:
    """Distinct windows around the most activating occurrences (as ``concept_search``)."""
    if k <= 0 or len(values) == 0:
        return []
    signed = -values if lowest else values
    half = window // 2
    seen: set[tuple[tuple[str, ...], int]] = set()
    out: list[Context] = []
    wanted, done = max(4 * k, 64), 0
    while True:
        rows = _ranked_rows(signed, wanted)
        for row in rows[done:].tolist():
            lo = max(row - half, int(index.row_start[row]))
            hi = min(row + half + 1, int(index.row_stop[row]))
            key = (tuple(index.words[lo:hi].tolist()), row - lo)
            if key in seen:
                continue
            seen.add(key)
            out.append(Context(key[0], key[1], float(values[row]), int(index.sentence_ids[row]),
                               int(index.positions[row])))
            if len(out) == k:
                return out
        done = len(rows)
        if done >= len(values):
            return out
        wanted *= 4


def top_sentences(index: CorpusIndex, values: np.ndarray, k: int = 5,
                  lowest: bool = False) -> list[SentenceActivation]:
    """Sentences ranked by their max activation (as ``concept_search.top_sentences``)."""
    values = np.asarray(values, dtype=np.float64)
    if k <= 0 or len(values) == 0:
        return []
    starts, lengths = index.sent_starts, index.sent_lengths
    maxima = np.maximum.reduceat(values, starts)
    means = np.add.reduceat(values, starts) / lengths
    score = np.minimum.reduceat(values, starts) if lowest else maxima
    order = _ranked_rows(-score if lowest else score, k)[:k]
    out = []
    for s in order.tolist():
        lo, hi = int(starts[s]), int(starts[s] + lengths[s])
        out.append(SentenceActivation(
            sentence_id=int(index.sentence_ids[lo]), words=index.words[lo:hi].tolist(),
            activations=[float(v) for v in values[lo:hi]], max_activation=float(maxima[s]),
            mean_activation=float(means[s]), score=float(score[s]),
        ))
    return out


def label_shares(index: CorpusIndex, values: np.ndarray, n_top: int,
                 max_labels: int = 5) -> dict[str, list[tuple[str, float, float]]]:
    """Per label layer: the labels of the ``n_top`` most activating words.

    Returns ``layer -> [(label, share among the top words, share in the analysed corpus)]``,
    most frequent first; a neuron whose top words are 90% NOUN against a 25% base rate is
    plainly a noun detector.
    """
    if not index.labels or len(values) == 0:
        return {}
    top = _ranked_rows(np.asarray(values, dtype=np.float64), n_top)[:n_top]
    out = {}
    for layer, labels in index.labels.items():
        here = Counter(labels[top].tolist())
        base = Counter(labels.tolist())
        out[layer] = [(str(lab), c / len(top), base[lab] / len(labels))
                      for lab, c in here.most_common(max_labels)]
    return out


# ---------------------------------------------------------------------------- summary
@dataclass
class NeuronSummary:
    """Everything a card shows about one neuron (JSON-ready through :meth:`to_dict`)."""

    name: str
    id: int
    component: str
    layer: int
    index: int
    head: int | None
    head_dim: int | None
    n_rows: int
    mean: float
    std: float
    minimum: float
    maximum: float
    zero_fraction: float
    scale: float
    histogram: str
    top_words: list[WordActivation]
    bottom_words: list[WordActivation]
    top_contexts: list[Context]
    bottom_contexts: list[Context]
    top_sentences: list[SentenceActivation]
    label_shares: dict[str, list[tuple[str, float, float]]]
    n_label_top: int

    @property
    def location(self) -> str:
        """Readable location: ``layer 3, mlp, neuron 17`` (with the head for attention)."""
        where = f"layer {self.layer}, component {self.component}"
        if self.head is not None:
            return f"{where}, head {self.head}, dimension {self.index % (self.head_dim or 1)}"
        return f"{where}, neuron {self.index}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the histogram markup)."""
        return {
            "name": self.name, "id": self.id, "component": self.component, "layer": self.layer,
            "index": self.index, "head": self.head, "n_rows": self.n_rows, "mean": self.mean,
            "std": self.std, "min": self.minimum, "max": self.maximum,
            "zero_fraction": self.zero_fraction, "scale": self.scale,
            "top_words": [w.to_dict() for w in self.top_words],
            "bottom_words": [w.to_dict() for w in self.bottom_words],
            "top_contexts": [c.to_dict() for c in self.top_contexts],
            "bottom_contexts": [c.to_dict() for c in self.bottom_contexts],
            "top_sentences": [s.to_dict() for s in self.top_sentences],
            "label_shares": self.label_shares,
        }


def summarize(
    store: ActivationStore,
    index: CorpusIndex,
    neuron: str | int,
    values: np.ndarray,
    n_words: int = 15,
    n_contexts: int = 12,
    n_sentences: int = 5,
    window: int = 9,
) -> NeuronSummary:
    """Compute a neuron's card content from its activation column on ``index``'s rows."""
    nid = int(store.layout.ids([neuron])[0])
    component, layer, local = store.layout.locate(nid)
    head_dim = store.layout.components[component].head_dim
    v = np.asarray(values, dtype=np.float64)
    scale = float(np.abs(v).max()) if len(v) else 0.0
    n_top = int(min(max(20, 0.01 * len(v)), 500))
    return NeuronSummary(
        name=store.layout.name(nid), id=nid, component=component, layer=layer, index=local,
        head=local // head_dim if head_dim else None, head_dim=head_dim, n_rows=len(v),
        mean=float(v.mean()) if len(v) else 0.0, std=float(v.std()) if len(v) else 0.0,
        minimum=float(v.min()) if len(v) else 0.0, maximum=float(v.max()) if len(v) else 0.0,
        zero_fraction=float(np.mean(np.abs(v) <= 1e-6)) if len(v) else 0.0,
        scale=scale if scale > 0 else 1.0,
        histogram=histogram_svg(v, scale=scale if scale > 0 else 1.0),
        top_words=top_words(index, v, n_words),
        bottom_words=top_words(index, v, n_words, lowest=True),
        top_contexts=top_contexts(index, v, n_contexts, window),
        bottom_contexts=top_contexts(index, v, max(n_contexts // 3, 1), window, lowest=True),
        top_sentences=top_sentences(index, v, n_sentences),
        label_shares=label_shares(index, v, n_top),
        n_label_top=min(n_top, len(v)),
    )


# ---------------------------------------------------------------------------- rendering
@dataclass
class RankEntry:
    """A concept that ranks the neuron high, with its rank (1-based) per method."""

    concept: str
    href: str | None
    ranks: dict[str, tuple[int, float, int]]  # method -> (rank, score, n ranked)


def _words_table(words: list[WordActivation], scale: float, lowest: bool) -> str:
    head = "lowest" if lowest else "highest"
    rows = [
        (word_span(w.word, w.max_activation, scale), f'<span class="num">{fmt(w.max_activation)}'
         f"</span>", fmt(w.mean_activation), str(w.count))
        for w in words
    ]
    return table(["word", head, "mean", "count"], rows, cls="words")


def _cut(words: list[str], acts: list[float], width: int) -> tuple[list[str], list[float], str]:
    """Long sentences: keep ``width`` words around the most extreme activation."""
    if len(words) <= width:
        return words, acts, ""
    peak = int(np.argmax(np.abs(acts)))
    lo = min(max(peak - width // 2, 0), len(words) - width)
    note = f" (words {lo + 1}–{lo + width} of {len(words)})"
    pre = ["…"] if lo > 0 else []
    post = ["…"] if lo + width < len(words) else []
    return (pre + words[lo:lo + width] + post,
            [0.0] * len(pre) + acts[lo:lo + width] + [0.0] * len(post), note)


def contexts_html(contexts: list[Context], scale: float, values: Mapping[int, np.ndarray]
                  | None = None) -> str:
    """Contexts as a numbered list of heatmaps (the activating word outlined).

    Each window is coloured by the neuron's activation on every word of it when ``values``
    (sentence id -> activations of that sentence) is given; otherwise only the centre word.
    """
    items = []
    for c in contexts:
        acts = None
        if values is not None and c.sentence_id in values:
            sent = values[c.sentence_id]
            start = c.position - c.center
            acts = sent[start:start + len(c.words)]
        if acts is None or len(acts) != len(c.words):
            acts = np.array([c.activation if i == c.center else 0.0
                             for i in range(len(c.words))])
        items.append(f"<li>{heatmap_html(list(c.words), acts, scale, center=c.center)}"
                     f'<span class="val">{c.activation:+.4g} · sentence {c.sentence_id}'
                     "</span></li>")
    return f'<ol class="snips">{"".join(items)}</ol>' if items else '<p class="muted">none</p>'


def sentences_html(sentences: list[SentenceActivation], scale: float, width: int = 40) -> str:
    """Top sentences as heatmaps (long ones cut around their peak, and said so)."""
    items = []
    for s in sentences:
        words, acts, note = _cut(s.words, s.activations, width)
        items.append(f"<li>{heatmap_html(words, acts, scale)}<span class=\"val\">max "
                     f"{s.max_activation:+.4g}, mean {s.mean_activation:+.4g} · sentence "
                     f"{s.sentence_id}{esc(note)}</span></li>")
    return f'<ol class="snips">{"".join(items)}</ol>' if items else '<p class="muted">none</p>'


def card_body(
    s: NeuronSummary,
    index: CorpusIndex,
    sentence_values: Mapping[int, np.ndarray] | None = None,
    ranks: Sequence[RankEntry] = (),
    methods: Sequence[str] = (),
    probe: Sequence[tuple[str, str, float]] = (),
    effects: Sequence[tuple[str, str]] = (),
    preview: bool = False,
) -> str:
    """The HTML of a neuron card (without page shell).

    Args:
        s: the neuron's summary.
        index: the analysed rows (for the sampling statement).
        sentence_values: activations per sentence id, to colour whole context windows.
        ranks: concepts ranking it high, with ranks per method.
        methods: the methods, in column order.
        probe: ``(method, concept, weight)`` probe weights from rankings' extras.
        effects: ``(source, value)`` ablation / attribution results.
        preview: a shorter card (notebooks): no sentences, fewer contexts, no rank table.
    """
    stats = table(
        ["mean", "std", "min", "max", "|a| ≤ 1e-6", "words"],
        [[fmt(s.mean), fmt(s.std), fmt(s.minimum), fmt(s.maximum),
          f"{100 * s.zero_fraction:.1f}%", str(s.n_rows)]],
    )
    key = legend(s.scale, "this neuron's max |activation| over the analysed words")
    parts = [
        f'<h1 id="neuron-name">{esc(s.name)}</h1>',
        f'<p class="muted">{esc(s.location)} · global id {s.id}</p>',
        f'<div class="grid"><div class="box"><h3>Activation histogram</h3>{s.histogram}</div>'
        f'<div class="box"><h3>Statistics</h3>{stats}<p class="note">Computed on '
        f"{esc(index.describe())}.</p></div></div>",
        f"<p>{key}</p>",
    ]
    if s.label_shares and not preview:
        rows = []
        for layer, shares in s.label_shares.items():
            cells = " ".join(
                f'<span class="badge">{esc(lab)} {100 * a:.0f}% <span class="muted">(corpus '
                f"{100 * b:.0f}%)</span></span>" for lab, a, b in shares
            )
            rows.append((esc(layer), cells))
        parts.append(f"<h2>Labels of its top {s.n_label_top} words</h2>"
                     + table(["layer", "labels (share among its top words vs corpus)"], rows))
    if ranks and not preview:
        rows = []
        for entry in ranks:
            name = (f'<a href="{esc(entry.href)}">{esc(entry.concept)}</a>' if entry.href
                    else esc(entry.concept))
            cells = []
            for m in methods:
                if m in entry.ranks:
                    rank, score, n = entry.ranks[m]
                    cells.append(f'<span title="score {score:.4g}, of {n} ranked">#{rank}</span>')
                else:
                    cells.append('<span class="muted">—</span>')
            rows.append([name, *cells])
        parts.append("<h2>Concepts and methods that rank it high</h2>"
                     + table(["concept", *methods], rows)
                     + '<p class="note">Rank of this neuron in each method\'s ranking of the '
                       "concept (1 = best); hover for the score. Concepts listed are those "
                       "where at least one method ranks it in the report's top k.</p>")
    if probe and not preview:
        rows = [(esc(m), esc(c), fmt(w)) for m, c, w in probe]
        parts.append("<h2>Probe weights</h2>" + table(["method", "concept", "weight"], rows))
    if effects and not preview:
        rows = [(esc(src), esc(val)) for src, val in effects]
        parts.append("<h2>Ablation and attribution effects</h2>"
                     + table(["result", "value"], rows))
    n_ctx = 5 if preview else len(s.top_contexts)
    parts.append(
        '<div class="grid">'
        f'<div class="box"><h3>Top words</h3>{_words_table(s.top_words, s.scale, False)}</div>'
        f'<div class="box"><h3>Bottom words</h3>'
        f"{_words_table(s.bottom_words, s.scale, True)}</div></div>"
    )
    parts.append("<h2>Top contexts</h2>"
                 + contexts_html(s.top_contexts[:n_ctx], s.scale, sentence_values))
    if not preview:
        parts.append("<h2>Most negative contexts</h2>"
                     + contexts_html(s.bottom_contexts, s.scale, sentence_values))
        parts.append("<h2>Top sentences</h2>" + sentences_html(s.top_sentences, s.scale))
    return "".join(parts)


def sentence_values_for(s: NeuronSummary, index: CorpusIndex,
                        values: np.ndarray) -> dict[int, np.ndarray]:
    """Activations of the sentences the card's contexts come from (sentence id -> values)."""
    wanted = {c.sentence_id for c in (*s.top_contexts, *s.bottom_contexts)}
    out = {}
    for sid in wanted:
        pos = int(np.searchsorted(index.sentence_ids, sid))
        if pos < len(index.sentence_ids) and index.sentence_ids[pos] == sid:
            lo, hi = int(index.row_start[pos]), int(index.row_stop[pos])
            out[sid] = np.asarray(values[lo:hi], dtype=np.float64)
    return out


# ---------------------------------------------------------------------------- notebooks
class NeuronView:
    """One neuron of a store, shown as a card preview in Jupyter (``_repr_html_``).

    Args:
        store: the activation store.
        neuron: neuron name or global id.
        corpus: the store's corpus (optional; adds label shares).
        max_sentences: analyse at most this many sentences (seeded sample).
        label_layers: corpus label layers for the "labels of its top words" table.
    """

    def __init__(self, store: ActivationStore, neuron: str | int, corpus: Corpus | None = None,
                 max_sentences: int | None = 20_000,
                 label_layers: Sequence[str] = ()) -> None:
        self.store = store
        self.neuron = store.layout.name(int(store.layout.ids([neuron])[0]))
        self.corpus = corpus
        self.max_sentences = max_sentences
        self.label_layers = tuple(label_layers)
        self._summary: NeuronSummary | None = None
        self._index: CorpusIndex | None = None
        self._values: np.ndarray | None = None

    def summary(self) -> NeuronSummary:
        """The card content (computed once)."""
        if self._summary is None:
            self._index = CorpusIndex.build(self.store, self.corpus, self.max_sentences,
                                            self.label_layers)
            self._values = read_columns(self.store, [self.neuron], self._index.rows)[:, 0]
            self._summary = summarize(self.store, self._index, self.neuron, self._values)
        return self._summary

    def html(self, preview: bool = True) -> str:
        """The card as an HTML fragment with its own small stylesheet."""
        s = self.summary()
        assert self._index is not None and self._values is not None
        body = card_body(s, self._index, sentence_values_for(s, self._index, self._values),
                         preview=preview)
        return f'<div class="ns-card"><style>{scoped_css(".ns-card")}</style>{body}</div>'

    def _repr_html_(self) -> str:
        return self.html(preview=True)

    def __repr__(self) -> str:
        return f"NeuronView({self.neuron})"
