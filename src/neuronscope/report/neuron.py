"""Neuron cards: what one neuron responds to, computed from its activation column.

A report holds hundreds of cards, so the corpus side (word types, sentence boundaries, the
optional sentence sample) is indexed once in a
:class:`~neuronscope.methods.inspection.CorpusIndex`, and each neuron's column is read from
the store once (neurons of a layer together, see
:func:`~neuronscope.methods.inspection.read_columns`). Top words, contexts and sentences come
from :mod:`neuronscope.methods.inspection`, with its defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.methods.inspection import (
    N_CONTEXTS,
    N_SENTENCES,
    N_WORDS,
    WINDOW,
    Context,
    CorpusIndex,
    SentenceActivation,
    WordActivation,
    read_columns,
)
from neuronscope.report.heatmap import heatmap_html, histogram_svg, legend, word_span
from neuronscope.report.html import esc, fmt, scoped_css, table

__all__ = [
    "CorpusIndex",
    "NeuronSummary",
    "NeuronView",
    "RankEntry",
    "card_body",
    "contexts_html",
    "read_columns",
    "sentence_values_for",
    "sentences_html",
    "summarize",
]
from neuronscope.store.store import ActivationStore


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
    n_words: int = N_WORDS,
    n_contexts: int = N_CONTEXTS,
    n_sentences: int = N_SENTENCES,
    window: int = WINDOW,
    histogram_scale: str = "auto",
) -> NeuronSummary:
    """Compute a neuron's card content from its activation column on ``index``'s rows.

    ``histogram_scale``: the histogram's count axis, ``"auto"`` (log for sparse or
    heavy-tailed neurons, see :func:`~neuronscope.report.heatmap.needs_log_counts`),
    ``"linear"`` or ``"log"``.
    """
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
        histogram=histogram_svg(v, scale=scale if scale > 0 else 1.0, log=histogram_scale),
        top_words=index.top_words(v, n_words),
        bottom_words=index.top_words(v, n_words, lowest=True),
        top_contexts=index.top_contexts(v, n_contexts, window),
        bottom_contexts=index.top_contexts(v, max(n_contexts // 3, 1), window, lowest=True),
        top_sentences=index.top_sentences(v, n_sentences),
        label_shares=index.label_shares(v, n_top),
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
    rows: list[Sequence[str]]  # table rows of rendered cells, one table after another
    if s.label_shares and not preview:
        rows = []
        for layer, shares in s.label_shares.items():
            badges = " ".join(
                f'<span class="badge">{esc(lab)} {100 * a:.0f}% <span class="muted">(corpus '
                f"{100 * b:.0f}%)</span></span>" for lab, a, b in shares
            )
            rows.append((esc(layer), badges))
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
        rows = [(esc(m), esc(c), f'<span class="num">{fmt(w)}</span>') for m, c, w in probe]
        parts.append('<h2 id="probe-weights">Probe weights</h2>'
                     + table(["probe", "concept", "weight"], rows, cls="probe-weights")
                     + '<p class="note">Signed weight of this neuron in each linear probe, '
                       "per concept (largest |w| first; zero weights left out), in the "
                       "probe's input units: per standard deviation of the neuron when the "
                       "probe standardized its inputs.</p>")
    if effects and not preview:
        rows = [(esc(src), esc(val)) for src, val in effects]
        parts.append('<h2 id="effects">Ablation and attribution effects</h2>'
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
