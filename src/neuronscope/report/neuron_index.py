"""The report's search index of every neuron of the store, and the page that shows one.

Cards are written for a few hundred neurons at most; every other neuron is still findable:
``search-index.js`` holds one compact row per neuron of the store (statistics on the analysed
rows, its top words, where each method ranks it best), and ``neuron.html?n=NAME`` renders
that row for a neuron without a card (and links to the card of one with a card). The index
is a script file (``var NEURONSCOPE_INDEX = {...}``) rather than JSON so that pages opened
from disk can load it: browsers refuse ``fetch`` on ``file://`` but run a local script.

Statistics are computed in one streaming pass over the analysed rows, layer by layer and one
store chunk at a time, so memory stays at one chunk of one layer however large the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.methods.inspection import CorpusIndex
from neuronscope.methods.ranking import Ranking
from neuronscope.report.html import script_json
from neuronscope.store.store import ActivationStore

__all__ = ["INDEX_FILE", "NEURON_PAGE", "NeuronStats", "best_ranks", "index_script",
           "neuron_stats"]

INDEX_FILE = "search-index.js"
NEURON_PAGE = "neuron.html"
#: Candidate rows kept per neuron while streaming, from which its top words are taken.
_CANDIDATES = 12


@dataclass
class NeuronStats:
    """Statistics of neurons on the analysed rows, aligned with ``ids``."""

    ids: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    zero_fraction: np.ndarray
    top_words: list[list[str]]
    n_rows: int


_LayerStats = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[list[str]]]


def _layer_stats(store: ActivationStore, component: str, layer: int, index: CorpusIndex,
                 n_words: int) -> _LayerStats:
    """Streaming statistics of one layer's neurons over ``index.rows``."""
    rows = index.rows
    width = store.layout.components[component].neurons
    total = np.zeros(width)
    squares = np.zeros(width)
    low = np.full(width, np.inf)
    high = np.full(width, -np.inf)
    zeros = np.zeros(width)
    best_val = np.full((0, width), -np.inf, dtype=np.float32)
    best_pos = np.zeros((0, width), dtype=np.int64)
    step = store.chunk_words
    for chunk in np.unique(rows // step).tolist():
        start, stop = chunk * step, min((chunk + 1) * step, store.n_words)
        lo, hi = np.searchsorted(rows, [start, stop])
        block = store.layer(component, layer, rows=slice(start, stop))[rows[lo:hi] - start]
        b64 = block.astype(np.float64)
        total += b64.sum(axis=0)
        squares += (b64 * b64).sum(axis=0)
        low = np.minimum(low, block.min(axis=0))
        high = np.maximum(high, block.max(axis=0))
        zeros += (np.abs(block) <= 1e-6).sum(axis=0)
        # Keep the best few rows per neuron: merge this chunk's with those kept so far.
        vals = np.concatenate([best_val, block])
        pos = np.concatenate([best_pos, np.broadcast_to(
            np.arange(lo, hi)[:, None], block.shape)])
        if len(vals) > _CANDIDATES:
            keep = np.argpartition(-vals, _CANDIDATES - 1, axis=0)[:_CANDIDATES]
            vals = np.take_along_axis(vals, keep, axis=0)
            pos = np.take_along_axis(pos, keep, axis=0)
        best_val, best_pos = vals, pos
    n = max(len(rows), 1)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    order = np.argsort(-best_val, axis=0, kind="stable")
    best_pos = np.take_along_axis(best_pos, order, axis=0)
    words = []
    for j in range(width):
        seen: dict[str, None] = {}
        for p in best_pos[:, j].tolist():
            seen.setdefault(str(index.words[p]), None)
            if len(seen) == n_words:
                break
        words.append(list(seen))
    return mean, std, low, high, zeros / n, words


def neuron_stats(store: ActivationStore, index: CorpusIndex, n_words: int = 3) -> NeuronStats:
    """Mean, sd, min, max, share of |a| <= 1e-6 and the ``n_words`` distinct words with the
    highest activations, for every neuron of the store on ``index.rows``."""
    parts: list[_LayerStats] = []
    ids = []
    for component, comp in store.layout.components.items():
        for layer in comp.layers:
            sl = store.layout.layer_slice(component, layer)
            ids.append(np.arange(sl.start, sl.stop))
            parts.append(_layer_stats(store, component, layer, index, n_words))

    def column(i: int) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0)

    return NeuronStats(
        ids=np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64), mean=column(0),
        std=column(1), minimum=column(2), maximum=column(3), zero_fraction=column(4),
        top_words=[w for p in parts for w in p[5]], n_rows=len(index.rows))


def best_ranks(ranking: Ranking, concepts: Sequence[str], n_neurons: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron id: the position in ``concepts`` where ``ranking`` ranks it best, and that
    rank (1-based); -1 and 0 where it ranks the neuron for none of them."""
    best = np.full(n_neurons, np.iinfo(np.int64).max, dtype=np.int64)
    which = np.full(n_neurons, -1, dtype=np.int64)
    for ci, concept in enumerate(concepts):
        if concept not in ranking.concepts:
            continue
        ids = np.asarray(ranking.concepts[concept].ids, dtype=np.int64)
        rank = np.arange(1, len(ids) + 1)
        better = rank < best[ids]
        best[ids[better]] = rank[better]
        which[ids[better]] = ci
    best[which < 0] = 0
    return which, best


def _num(v: float) -> float | None:
    return float(f"{v:.4g}") if np.isfinite(v) else None


def index_script(
    store: ActivationStore,
    stats: NeuronStats,
    cards: Iterable[int],
    concepts: Sequence[tuple[str, str, str]],
    methods: Sequence[str],
    rankings: Sequence[Ranking],
    description: str,
) -> str:
    """The ``search-index.js`` text: ``var NEURONSCOPE_INDEX = {...};``.

    Args:
        stats: :func:`neuron_stats` of the neurons to index.
        cards: ids of the neurons with a card (their rows link to it).
        concepts: ``(display name, href, concept key in the rankings)`` of the report's
            concepts.
        methods: column labels of ``rankings``.
        description: what was analysed (shown on the neuron page).
    """
    card_set = set(int(i) for i in cards)
    keys = [c[2] for c in concepts]
    ranks = [best_ranks(r, keys, store.layout.n_neurons) for r in rankings]
    rows: list[list[Any]] = []
    for j, nid in enumerate(stats.ids.tolist()):
        best = [[int(w[nid]), int(b[nid])] if w[nid] >= 0 else None for w, b in ranks]
        rows.append([store.layout.name(nid), int(nid in card_set), _num(stats.mean[j]),
                     _num(stats.std[j]), _num(stats.minimum[j]), _num(stats.maximum[j]),
                     _num(stats.zero_fraction[j]), stats.top_words[j], best])
    data = {
        "version": 1,
        "description": description,
        "n_rows": stats.n_rows,
        "fields": ["name", "card", "mean", "std", "min", "max", "zero", "words", "best"],
        "methods": list(methods),
        "concepts": [[name, href] for name, href, _ in concepts],
        "neurons": rows,
    }
    return f"var NEURONSCOPE_INDEX = {script_json(data)};\n"


# ---------------------------------------------------------------------------- scripts
#: The index page's search box: neurons by name (exact match first), concepts by name,
#: neurons by their top words (prefix); also filters the concepts table.
SEARCH_JS = """
(function () {
  var data = window.NEURONSCOPE_INDEX;
  var box = document.getElementById('search');
  var out = document.getElementById('search-results');
  var rows = document.querySelectorAll('#concepts tbody tr');
  var MAX = 60;
  if (!data) { out.textContent = 'search index missing (search-index.js)'; return; }
  var words = {};  // lower-cased word -> {form: as first seen, ids: neurons, carded first}
  data.neurons.forEach(function (e, i) {
    e[7].forEach(function (w) { var k = w.toLowerCase();
      (words[k] = words[k] || {form: w, ids: []}).ids.push(i); });
  });
  var wordKeys = Object.keys(words).sort();
  wordKeys.forEach(function (k) { words[k].ids.sort(function (a, b) {
    return (data.neurons[b][1] - data.neurons[a][1]) || (a - b); }); });
  function href(e) {
    return e[1] ? 'neurons/' + encodeURIComponent(e[0]) + '.html'
                : 'neuron.html?n=' + encodeURIComponent(e[0]);
  }
  function hint(e) { return 'top words: ' + e[7].join(', ') + (e[1] ? '' : ' \\u00b7 no card'); }
  function add(kind, text, link, note) {
    var li = document.createElement('li');
    var k = document.createElement('span'); k.className = 'kind'; k.textContent = kind;
    var a = document.createElement('a'); a.href = link; a.textContent = text;
    li.appendChild(k); li.appendChild(a);
    if (note) { var h = document.createElement('span'); h.className = 'val';
                h.textContent = note; li.appendChild(h); }
    out.appendChild(li);
  }
  function run() {
    var q = box.value.trim().toLowerCase();
    out.textContent = '';
    var hits = {}, n = 0;
    if (q) {
      // Priority: the neuron named q, neurons whose top word is q, concepts, neurons whose
      // name contains q, neurons whose top word starts with q ("." is in every name).
      var exact = [], partial = [], concepts = [], wordExact = [], wordPrefix = [];
      data.neurons.forEach(function (e) {
        var name = e[0].toLowerCase();
        if (name === q) exact.push(e); else if (name.indexOf(q) >= 0) partial.push(e);
      });
      data.concepts.forEach(function (e) {
        if (e[0].toLowerCase().indexOf(q) >= 0) concepts.push(e);
      });
      wordKeys.forEach(function (w) {
        if (w.indexOf(q) !== 0) return;
        words[w].ids.forEach(function (i) {
          (w === q ? wordExact : wordPrefix).push([words[w].form, data.neurons[i]]);
        });
      });
      var neuron = function (e) { hits[e[0].toLowerCase()] = true;
                           if (n++ < MAX) add('neuron', e[0], href(e), hint(e)); }
      var word = function (p) { hits[p[1][0].toLowerCase()] = true;
        if (n++ < MAX) add('word', p[0] + ' \\u2192 ' + p[1][0], href(p[1]), hint(p[1])); }
      exact.forEach(neuron);
      wordExact.forEach(word);
      concepts.forEach(function (e) { if (n++ < MAX) add('concept', e[0], e[1], ''); });
      partial.forEach(neuron);
      wordPrefix.forEach(word);
      if (n > MAX) { var more = document.createElement('li'); more.className = 'muted';
                     more.textContent = (n - MAX) + ' more: refine the search';
                     out.appendChild(more); }
      if (!n) { var li = document.createElement('li'); li.className = 'muted';
                li.textContent = 'no match'; out.appendChild(li); }
    }
    rows.forEach(function (tr) {
      var s = tr.getAttribute('data-s');
      var show = !q || s.indexOf(q) >= 0 ||
        s.split(' ').some(function (t) { return hits[t]; });
      tr.style.display = show ? '' : 'none';
    });
  }
  box.addEventListener('input', run);
  run();
})();
"""

#: ``neuron.html?n=NAME``: one neuron's row of the index, for neurons without a card.
NEURON_JS = """
(function () {
  var data = window.NEURONSCOPE_INDEX;
  var main = document.getElementById('neuron');
  function el(tag, text, cls) { var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  var name = new URLSearchParams(location.search).get('n') || '';
  var row = null;
  if (data) data.neurons.forEach(function (e) { if (e[0] === name) row = e; });
  var h1 = el('h1', name || 'no neuron given'); h1.id = 'neuron-name'; main.appendChild(h1);
  if (!row) { main.appendChild(el('p', data ? 'No neuron of this store is named "' + name +
    '".' : 'search index missing (search-index.js)', 'warn')); return; }
  var m = /^L(\\d+)\\.([^.]+)\\.(?:h(\\d+)\\.)?(\\d+)$/.exec(name);
  if (m) main.appendChild(el('p', 'layer ' + m[1] + ', component ' + m[2] +
    (m[3] !== undefined ? ', head ' + m[3] + ', dimension ' : ', neuron ') + m[4], 'muted'));
  var note = el('p', '', 'note'); note.id = 'card-note';
  if (row[1]) { var a = el('a', 'its neuron card');
    a.href = 'neurons/' + encodeURIComponent(name) + '.html';
    note.appendChild(document.createTextNode('This neuron has a card: '));
    note.appendChild(a); note.appendChild(document.createTextNode('.'));
  } else { note.textContent = 'This neuron has no card (cards are written for the ' +
    'best-ranked neurons only); these are its statistics from the search index.'; }
  main.appendChild(note);
  main.appendChild(el('h2', 'Statistics'));
  var t = el('table'); t.id = 'neuron-stats';
  var head = el('tr'), body = el('tr');
  [['mean', 2], ['std', 3], ['min', 4], ['max', 5]].forEach(function (p) {
    head.appendChild(el('th', p[0])); body.appendChild(el('td', String(row[p[1]]))); });
  head.appendChild(el('th', '|a| \\u2264 1e-6'));
  body.appendChild(el('td', (100 * row[6]).toFixed(1) + '%'));
  head.appendChild(el('th', 'words')); body.appendChild(el('td', String(data.n_rows)));
  t.appendChild(head); t.appendChild(body); main.appendChild(t);
  main.appendChild(el('p', 'Computed on ' + data.description + '.', 'note'));
  main.appendChild(el('h2', 'Words that activate it most'));
  var ol = el('ol'); ol.id = 'neuron-words';
  row[7].forEach(function (w) { ol.appendChild(el('li', w)); }); main.appendChild(ol);
  main.appendChild(el('h2', 'Where each method ranks it best'));
  var rt = el('table'); rt.id = 'neuron-ranks';
  var hr = el('tr'); ['method', 'concept', 'rank'].forEach(function (h) {
    hr.appendChild(el('th', h)); }); rt.appendChild(hr);
  data.methods.forEach(function (method, i) {
    var tr = el('tr'); tr.appendChild(el('td', method));
    var best = row[8][i], td = el('td');
    if (best) { var c = data.concepts[best[0]], a = el('a', c[0]); a.href = c[1];
      td.appendChild(a); tr.appendChild(td); tr.appendChild(el('td', '#' + best[1]));
    } else { td.textContent = '\\u2014'; tr.appendChild(td); tr.appendChild(el('td', '')); }
    rt.appendChild(tr);
  });
  main.appendChild(rt);
})();
"""


def neuron_page_body() -> str:
    """The body of ``neuron.html`` (filled by :data:`NEURON_JS` from the index)."""
    return (f'<div id="neuron"></div><noscript><p class="warn">This page shows a neuron from '
            f"the search index and needs JavaScript.</p></noscript>"
            f'<script src="{INDEX_FILE}"></script>')
