"""The report's concept pages: top neurons per method, agreement, the layer distribution
against random-k, example sentences heatmapped by each method's best neuron, and the
concept's evaluation results (split from :mod:`neuronscope.report.site`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuronscope.io import atomic_write_text
from neuronscope.report.evaluation import CurveGroup
from neuronscope.report.heatmap import heatmap_html, legend
from neuronscope.report.html import esc, fmt, page, table
from neuronscope.report.index_page import curves_html, result_table
from neuronscope.report.plots import concept_layers_svg
from neuronscope.report.rankings import layer_counts, layer_keys

if TYPE_CHECKING:
    from neuronscope.report.site import _Builder, _Concept

__all__ = ["write_concepts"]

#: Example sentences' maximum shown length.
EXAMPLE_WORDS = 40


def _top_table(b: _Builder, concept: _Concept, root: str, k: int) -> str:
    methods = [m for m in b.methods if m in concept.top]
    counts: dict[int, int] = {}
    for m in methods:
        for i in concept.top[m][:k].tolist():
            counts[i] = counts.get(i, 0) + 1
    rows = []
    for rank in range(k):
        cells = [str(rank + 1)]
        for m in methods:
            ids, scores = concept.top[m], concept.scores[m]
            if rank >= len(ids):
                cells.append("")
                continue
            nid = int(ids[rank])
            link = b.neuron_link(nid, root)
            shared = counts[nid] > 1
            cells.append((f"<b>{link}</b>" if shared else link)
                         + f'<span class="val">{fmt(float(scores[rank]))}</span>')
        rows.append(cells)
    return table(["#", *methods], rows, cls="top")


def write_concepts(b: _Builder) -> None:
    keys = layer_keys(b.store)
    for concept in b.concepts:
        parts = [f"<h1>{esc(concept.name)}</h1>"]
        where = f"label layer <b>{esc(concept.key.layer)}</b>" if concept.key.layer else ""
        if concept.n_words is not None:
            share = f" ({100 * concept.share:.1f}% of words)" if concept.share else ""
            parts.append(f"<p>{where} · {concept.n_words} words in the corpus{share}</p>")
        elif where:
            parts.append(f"<p>{where}</p>")
        parts.append(f"<h2>Top {b.top_k} neurons per method</h2>"
                     + _top_table(b, concept, "../", b.top_k)
                     + '<p class="note">Score after each neuron; bold: in the top '
                     f"{b.top_k} of more than one method.</p>")
        agreement = b._agreement_rows(concept)
        if agreement:
            rows = [(esc(a), esc(b), f"{v:.2f}") for a, b, v in agreement]
            parts.append("<h2>Method agreement</h2>"
                         + table(["method", "method", f"overlap@{b.top_k}"], rows))
        parts.append(_layers_html(b, concept, keys))
        parts.append(_examples_html(b, concept))
        curves = [g for g in b.evaluation.curves if _mentions(g, concept.key.concept)]
        tables = [t for t in b.evaluation.tables if t.concept == concept.key.concept]
        if curves or tables:
            parts.append("<h2>Evaluation</h2>" + curves_html(curves)
                         + "".join(result_table(t) for t in tables))
        parts.append(b.sampling_note())
        html = page(f"{concept.name} · concept", "".join(parts), root="../",
                    subtitle=b.title)
        atomic_write_text(b.out / "concepts" / f"{concept.file}.html", html)


def _layers_html(b: _Builder, concept: _Concept, keys: list[str]) -> str:
    """Share of each method's top ``layer_k`` neurons per layer, against random-k."""
    counts: dict[str, dict[str, int]] = {}
    expected: dict[str, float] = {}
    k = b.layer_k
    for label, r in zip(b.methods, b.rankings, strict=True):
        if label in concept.top:
            ids = r.concepts[concept.key.concept].ids
            counts[label] = layer_counts(b.store, ids[:k].tolist())
            if not expected:  # the layers' shares of all neurons the ranking orders
                every = layer_counts(b.store, ids.tolist())
                expected = {key: v / len(ids) for key, v in every.items()}
            k = min(k, len(ids))
    plot = concept_layers_svg(concept.name, counts, keys, k, expected=expected)
    return (f"<h2>Layers</h2><figure>{plot}<figcaption>Share of each method's top {k} "
            f"neurons for {esc(concept.name)} in each layer (cf. Figure 2 of Sajjad et al. "
            "2022); the dashed grey mark is the share a random set of k would have there "
            "(the layer's share of all ranked neurons).</figcaption></figure>")

def _examples_html(b: _Builder, concept: _Concept) -> str:
    if not concept.examples:
        return ""
    labels = b.index.labels[concept.key.layer or ""]
    parts = [f"<h2>Example sentences</h2><p class=\"note\">{len(concept.examples)} "
             f"sentences with {esc(concept.name)} (underlined), picked at random (seeded), "
             "coloured by each method's best neuron; colours saturate at that neuron's "
             "max |activation|.</p>"]
    done: set[int] = set()
    for m, ids in concept.top.items():
        if not len(ids) or int(ids[0]) in done or int(ids[0]) not in b.summaries:
            continue
        nid = int(ids[0])
        done.add(nid)
        s = b.summaries[nid]
        items = []
        for lo, hi in concept.examples:
            values = b.example_values.get((nid, lo))
            if values is None:
                continue
            words = b.index.words[lo:hi].tolist()
            under = (labels[lo:hi] == concept.key.concept).tolist()
            if len(words) > EXAMPLE_WORDS:
                first = under.index(True)
                a = max(0, min(first - EXAMPLE_WORDS // 2, len(words) - EXAMPLE_WORDS))
                words, values, under = (words[a:a + EXAMPLE_WORDS],
                                        values[a:a + EXAMPLE_WORDS],
                                        under[a:a + EXAMPLE_WORDS])
            items.append(f"<li>{heatmap_html(words, values, s.scale, underline=under)}</li>")
        parts.append(f"<h3>{esc(m)}: {b.neuron_link(nid, '../')}</h3>"
                     f"<p>{legend(s.scale)}</p><ol class=\"snips\">{''.join(items)}</ol>")
    return "".join(parts)


def _mentions(group: CurveGroup, concept: str) -> bool:
    """Whether a curve group is about ``concept`` (known, or named in its title's path)."""
    if group.concept is not None:
        return group.concept == concept
    parts = [p.strip() for p in group.title.split("/")]
    return any(p == concept or p.endswith(f"={concept}") for p in parts)
