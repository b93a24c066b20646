"""The report's index page and manifest: overview, search, rankings, layer distribution,
method agreement and evaluation results (split from :mod:`neuronscope.report.site`, which
builds the concept pages and neuron cards)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuronscope import __version__
from neuronscope.io import atomic_write_json, atomic_write_text
from neuronscope.report.evaluation import MAX_CURVE_GROUPS, CurveGroup, ResultTable
from neuronscope.report.html import esc, fmt, page, table
from neuronscope.report.neuron_index import (
    INDEX_FILE,
    NEURON_JS,
    NEURON_PAGE,
    SEARCH_JS,
    NeuronStats,
    index_script,
    neuron_page_body,
    neuron_stats,
)
from neuronscope.report.plots import agreement_svg, curves_svg, layer_distribution_svg
from neuronscope.report.rankings import layer_counts, layer_keys

if TYPE_CHECKING:
    from neuronscope.report.site import _Builder

__all__ = ["MARKER", "curves_html", "result_table", "write_index"]

#: The manifest's file name; its presence marks a folder as a report (safe to overwrite).
MARKER = "neuronscope-report.json"
#: Top neurons per method in the index's concept table.
_INDEX_TOP = 5
MAX_TABLES = 20
MAX_TABLE_ROWS = 50


def _write_search_index(b: _Builder) -> None:
    """``search-index.js`` (every neuron of the store, or the carded ones) and
    ``neuron.html``, the page showing a neuron from it."""
    if b.index_all:
        stats = neuron_stats(b.store, b.index)
    else:
        cards = list(b.summaries.values())
        def field(name: str) -> np.ndarray:
            return np.asarray([getattr(s, name) for s in cards], dtype=np.float64)

        stats = NeuronStats(
            ids=np.asarray([s.id for s in cards], dtype=np.int64), mean=field("mean"),
            std=field("std"), minimum=field("minimum"), maximum=field("maximum"),
            zero_fraction=field("zero_fraction"),
            top_words=[[w.word for w in s.top_words[:3]] for s in cards],
            n_rows=b.index.n_rows)
    concepts = [(c.name, c.href, c.key.concept) for c in b.concepts]
    script = index_script(b.store, stats, b.summaries, concepts, b.methods, b.rankings,
                          b.index.describe())
    atomic_write_text(b.out / INDEX_FILE, script)
    html = page("neuron · neuronscope report", neuron_page_body(), subtitle=b.title,
                script=NEURON_JS)
    atomic_write_text(b.out / NEURON_PAGE, html)


def write_index(b: _Builder) -> Path:
    """Write ``index.html`` (overview, search, rankings, agreement, evaluation) and the
    ``neuronscope-report.json`` manifest; returns the index path."""
    info = b.store.info()
    keys = layer_keys(b.store)
    parts = [f"<h1>{esc(b.title)}</h1>"]
    comps = "; ".join(f"{n}: layers {c['layers'][0]}–{c['layers'][-1]} × {c['neurons']}"
                      for n, c in info["components"].items())
    rows = [("model", esc(info["model"])), ("corpus", esc(info["corpus"])),
            ("sentences / words", f"{info['n_sentences']} / {info['n_words']}"),
            ("components", esc(comps)), ("neurons", str(info["n_neurons"])),
            ("aggregation", esc(info["aggregation"])), ("dtype", esc(info["dtype"])),
            ("store", esc(Path(info["path"]).name)
             + f' <span class="muted">{esc(b.store.fingerprint)}</span>'),
            ("tool version", esc(__version__))]
    parts.append('<div class="grid"><div class="box" style="flex:1 1 420px">'
                 "<h3>Model, corpus and store</h3>"
                 + "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
                 + "</table></div>"
                 + '<div class="box" style="flex:1 1 360px"><h3>Search</h3>'
                 '<input id="search" type="search" '
                 'placeholder="neuron (L1.mlp.7), concept or word" autocomplete="off">'
                 '<ul id="search-results"></ul><p class="note">Finds every neuron of the '
                 "store by name (those without a card open a page of their statistics), "
                 "concepts by name, and neurons by the words that activate them most.</p>"
                 "</div></div>")
    parts.append(b.sampling_note())
    if not b.rankings:
        parts.append('<p class="warn">No rankings were given: pass ranking JSON files '
                     "(from <code>neuronscope rank</code>) to see neurons per concept.</p>")
    else:
        parts.append(_rankings_html(b))
        parts.append(_concepts_table(b))
        counts = {m: {c.name: layer_counts(b.store, c.top[m].tolist())
                      for c in b.concepts if m in c.top} for m in b.methods}
        parts.append("<h2>Layer distribution</h2><figure>"
                     + layer_distribution_svg(counts, keys, b.top_k)
                     + f"<figcaption>Number of each concept's top {b.top_k} neurons in each "
                     "layer, per method (cf. Figure 2 of Sajjad et al. 2022).</figcaption>"
                     "</figure>")
        parts.append(_agreement_html(b))
    parts.append(_evaluation_html(b))
    cards = " ".join(b.neuron_link(nid, "") for nid in b.summaries)
    parts.append(f"<h2>All neuron cards ({len(b.summaries)})</h2><details><summary>show"
                 f"</summary><p>{cards}</p></details>")
    _write_search_index(b)
    body = "".join(parts) + f'<script src="{INDEX_FILE}"></script>'
    html = page(f"{b.title} · neuronscope report", body, subtitle=b.title,
                script=SEARCH_JS)
    index = b.out / "index.html"
    atomic_write_text(index, html)
    _write_manifest(b)
    return index

def _rankings_html(b: _Builder) -> str:
    rows = []
    for label, r in zip(b.methods, b.rankings, strict=True):
        params = ", ".join(f"{k}={v}" for k, v in r.params.items()
                           if not isinstance(v, (list, dict)))
        extras = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}"
                           for k, v in r.extra.items()
                           if isinstance(v, (int, float, str)) and not isinstance(v, bool))
        rows.append((esc(label), esc(r.label_layer or "—"), str(len(r.concepts)),
                     str(r.n_ranked), esc(params), esc(extras)))
    return ("<h2>Rankings</h2>"
            + table(["method", "labels", "concepts", "neurons", "parameters", "results"],
                    rows))

def _concepts_table(b: _Builder) -> str:
    rows = []
    for c in b.concepts:
        cells = [f'<a href="{esc(c.href)}">{esc(c.name)}</a>',
                 str(c.n_words) if c.n_words is not None else "—"]
        names = [c.name.lower()]
        for m in b.methods:
            ids = c.top.get(m)
            if ids is None:
                cells.append('<span class="muted">—</span>')
                continue
            cells.append(" ".join(b.neuron_link(int(i), "")
                                  for i in ids[:_INDEX_TOP]))
            names += [b.store.layout.name(int(i)).lower() for i in ids[:_INDEX_TOP]]
        rows.append((" ".join(names), cells))
    head = "".join(f"<th>{esc(h)}</th>"
                   for h in ["concept", "words", *b.methods])
    body = "".join(f'<tr data-s="{esc(s)}">' + "".join(f"<td>{c}</td>" for c in cells)
                   + "</tr>" for s, cells in rows)
    return (f"<h2>Concepts: top {_INDEX_TOP} neurons per method</h2>"
            f'<table id="concepts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table><p class=\"note\">The search box also filters this table. Concept pages "
            f"list the top {b.top_k}.</p>")

def _agreement_html(b: _Builder) -> str:
    n = len(b.methods)
    if n < 2:
        return ""
    sums, counts = np.zeros((n, n)), np.zeros((n, n))
    rows = []
    for c in b.concepts:
        for m1, m2, v in b._agreement_rows(c):
            i, j = b.methods.index(m1), b.methods.index(m2)
            if np.isfinite(v):
                sums[i, j] += v
                sums[j, i] += v
                counts[i, j] += 1
                counts[j, i] += 1
        cells = {f"{m1} / {m2}": f"{v:.2f}" for m1, m2, v in b._agreement_rows(c)}
        rows.append((c, cells))
    mean = np.divide(sums, counts, out=np.full((n, n), np.nan), where=counts > 0)
    np.fill_diagonal(mean, 1.0)
    pairs = [f"{m1} / {m2}" for i, m1 in enumerate(b.methods) for m2 in b.methods[i + 1:]]
    table_rows = [[f'<a href="{esc(c.href)}">{esc(c.name)}</a>',
                   *(cells.get(p, "—") for p in pairs)] for c, cells in rows]
    return ("<h2>Method agreement</h2><figure>"
            + agreement_svg(b.methods, mean, b.top_k)
            + f"<figcaption>overlap@{b.top_k}: share of the top {b.top_k} neurons two "
            "methods have in common for a concept, averaged over the concepts both rank "
            "(blank: none).</figcaption>"
            "</figure><details><summary>per concept</summary>"
            + table(["concept", *pairs], table_rows) + "</details>")

def _evaluation_html(b: _Builder) -> str:
    ev = b.evaluation
    parts = ["<h2>Evaluation</h2>"]
    if not ev.folders:
        parts.append('<p class="muted">No evaluation results given (pass --evaluation DIR '
                     "with the output of <code>neuronscope evaluate</code>).</p>")
        return "".join(parts)
    parts.append(f'<p class="note">From {esc(", ".join(ev.folders))}.</p>')
    if ev.empty:
        parts.append('<p class="muted">No results found there.</p>')
    overall = [g for g in ev.curves if not g.per_class]
    if overall:
        parts.append(curves_html(overall[:MAX_CURVE_GROUPS]))
        if len(overall) > MAX_CURVE_GROUPS:
            parts.append(f'<p class="note">{len(overall)} result curves were found; the '
                         f"first {MAX_CURVE_GROUPS} are shown here.</p>")
    n_per_class = len(ev.curves) - len(overall)
    if n_per_class:
        parts.append(f'<p class="note">{n_per_class} per-concept curves are on the concept '
                     "pages.</p>")
    for t in ev.tables[:MAX_TABLES]:
        parts.append(result_table(t))
    if ev.scalars:
        parts.append("<h3>Summary</h3>" + table(["result", "value"],
                                                 [(esc(k), esc(v)) for k, v in ev.scalars]))
    if ev.images:
        figs = "".join(f'<figure style="width:440px"><img class="plot" src="{uri}" '
                       f'alt="{esc(name)}">'
                       f"<figcaption>{esc(name)}</figcaption></figure>"
                       for name, uri in ev.images)
        parts.append(f'<h3>Figures found in the results</h3><div class="grid">{figs}</div>')
    if ev.effects:
        parts.append(f'<p class="note">Per-neuron effects were found for {len(ev.effects)} '
                     "of the neurons with cards; they are on their cards.</p>")
    for note in ev.notes:
        parts.append(f'<p class="note">{esc(note)}</p>')
    return "".join(parts)

def _write_manifest(b: _Builder) -> None:
    manifest = {
        "format": "neuronscope-report",
        "tool_version": __version__,
        "title": b.title,
        "store": str(b.store.path),
        "store_fingerprint": b.store.fingerprint,
        "methods": b.methods,
        "options": {"top_k": b.top_k, "max_neurons": b.max_neurons,
                    "max_concepts": b.max_concepts, "max_sentences": b.max_sentences,
                    "n_words": b.n_words, "n_contexts": b.n_contexts,
                    "n_sentences": b.n_sentences},
        "sampled": {"description": b.index.describe(),
                    "sentences_analysed": b.index.n_sentences,
                    "sentences_total": b.index.n_sentences_total,
                    "concepts_shown": len(b.concepts),
                    "concepts_total": b.n_concepts_total,
                    "neuron_cards": len(b.summaries),
                    "neuron_candidates": b.n_candidates},
        "notes": b.notes + b.evaluation.notes,
        "pages": {"concepts": {c.name: c.href for c in b.concepts},
                  "neurons": {s.name: f"neurons/{s.name}.html"
                              for s in b.summaries.values()}},
    }
    atomic_write_json(b.out / MARKER, manifest)


def curves_html(groups: Sequence[CurveGroup]) -> str:
    figs = []
    for g in groups:
        kind = "ablation" if g.is_ablation else "selection"
        figs.append(f'<figure class="curve" data-kind="{kind}">'
                    + curves_svg(g.title, g.curves, g.xlabel, g.ylabel, g.hlines)
                    + f"<figcaption>{esc(g.title)}</figcaption></figure>")
    return f'<div class="grid">{"".join(figs)}</div>' if figs else ""


def result_table(t: ResultTable) -> str:
    rows = [[esc(c) for c in row] for row in t.rows[:MAX_TABLE_ROWS]]
    more = (f'<p class="note">{len(t.rows) - MAX_TABLE_ROWS} more rows not shown.</p>'
            if len(t.rows) > MAX_TABLE_ROWS else "")
    return f"<h3>{esc(t.title)}</h3>" + table(t.headers, rows) + more
