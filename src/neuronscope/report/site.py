"""The static report site: ``index.html``, one page per concept, one card per top neuron.

Layout of ``out_dir``::

    index.html              model, corpus and store; search; per-concept top neurons per
                            method; layer distribution; method agreement; evaluation results
    concepts/<concept>.html one per concept: top neurons per method, agreement, layers,
                            example sentences heatmapped by each method's best neuron
    neurons/<name>.html     one card per top neuron
    report.json             what was built, with every cap and sample stated

Everything is self-contained (inline CSS, inline SVG plots, one small inline script for the
search), so the folder can be zipped, mailed and opened from disk without network.

Large inputs stay fast because what is analysed and embedded is capped: at most
``max_sentences`` sentences (a seeded random sample) are analysed, ``max_concepts`` concepts
and ``max_neurons`` neuron cards are written (the best-ranked first), and each card embeds a
fixed number of words, contexts and sentences. Each page states what was sampled.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope import __version__
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_write_json, atomic_write_text
from neuronscope.methods.inspection import (
    N_CONTEXTS,
    N_SENTENCES,
    N_WORDS,
    WINDOW,
    CorpusIndex,
    read_columns,
)
from neuronscope.methods.ranking import Ranking
from neuronscope.report.evaluation import (
    MAX_CURVE_GROUPS,
    CurveGroup,
    EvaluationResults,
    ResultTable,
    read_evaluation,
)
from neuronscope.report.heatmap import heatmap_html, legend
from neuronscope.report.html import esc, fmt, page, script_json, slug, table
from neuronscope.report.neuron import (
    NeuronSummary,
    RankEntry,
    card_body,
    sentence_values_for,
    summarize,
)
from neuronscope.report.plots import (
    agreement_svg,
    concept_layers_svg,
    curves_svg,
    layer_distribution_svg,
)
from neuronscope.report.rankings import (
    ConceptKey,
    check_rankings,
    layer_counts,
    layer_keys,
    method_labels,
    overlap_at_k,
    probe_weights,
)
from neuronscope.store.store import ActivationStore

#: Memory for activation columns held at once: neurons of one layer are read together (each
#: store chunk holds a whole layer, so reading them apart would re-read it), up to this.
_READ_BYTES = 256 * 2**20
#: Example sentences per concept page, and their maximum shown length.
_EXAMPLES = 3
_EXAMPLE_WORDS = 40
#: Neurons per method shown for a concept on the index (the concept page shows top_k).
_INDEX_TOP = 5
#: Words of each card that the search box knows.
_SEARCH_WORDS = 10
_MARKER = "neuronscope-report.json"
#: Result tables on the index, and rows per table, at most.
MAX_TABLES = 20
MAX_TABLE_ROWS = 50


@dataclass
class _Concept:
    key: ConceptKey
    name: str
    href: str
    file: str
    top: dict[str, np.ndarray]  # method label -> top ids
    scores: dict[str, np.ndarray]
    n_words: int | None = None
    share: float | None = None
    examples: list[tuple[int, int]] = field(default_factory=list)  # (lo, hi) in index rows


def _as_ranking(r: Ranking | str | os.PathLike) -> Ranking:
    return r if isinstance(r, Ranking) else Ranking.from_json(r)


def _prepare_out(out_dir: Path) -> None:
    """Create ``out_dir`` or refresh a report written earlier; never wipe another folder."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise NeuronscopeError(f"report output {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / _MARKER).exists():
            raise NeuronscopeError(
                f"report output {out_dir} is a non-empty folder that holds no neuronscope "
                "report; choose an empty or new folder"
            )
        for sub in ("concepts", "neurons"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / "concepts").mkdir(parents=True, exist_ok=True)
    (out_dir / "neurons").mkdir(parents=True, exist_ok=True)


def build_report(
    store: ActivationStore | str | os.PathLike,
    corpus: Corpus | None,
    rankings: Sequence[Ranking | str | os.PathLike],
    out_dir: str | os.PathLike,
    evaluation_dir: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
    max_sentences: int = 10_000,
    top_k: int = 10,
    max_neurons: int = 200,
    max_concepts: int = 60,
    n_words: int = N_WORDS,
    n_contexts: int = N_CONTEXTS,
    n_sentences: int = N_SENTENCES,
    title: str | None = None,
) -> Path:
    """Write a self-contained static report site and return the path of its ``index.html``.

    Args:
        store: the activation store (or its path).
        corpus: the corpus the store was extracted from (fingerprint-checked); None reads
            the words from the store and leaves out label statistics.
        rankings: :class:`Ranking` objects or ranking JSON files, one per method.
        out_dir: folder to write (created; an earlier report there is replaced).
        evaluation_dir: folder(s) of evaluation / intervention results, optional; whatever
            is found there is shown (see :mod:`neuronscope.report.evaluation`).
        max_sentences: analyse at most this many sentences (seeded random sample beyond).
        top_k: neurons per concept and method listed, compared (overlap@k) and counted
            in the layer distribution.
        max_neurons: neuron cards written at most (best ranks first, round robin over
            concepts and methods).
        max_concepts: concepts given pages at most (the most frequent first when the
            corpus has their layer).
        n_words: top (and bottom) words per card.
        n_contexts: top contexts per card (a third as many most negative ones).
        n_sentences: top sentences per card.
        title: page title (default: model and corpus names).
    """
    if top_k < 1 or max_neurons < 0 or max_concepts < 1:
        raise NeuronscopeError("top_k and max_concepts must be >= 1 and max_neurons >= 0")
    st = store if isinstance(store, ActivationStore) else ActivationStore(store)
    ranks = [_as_ranking(r) for r in rankings]
    check_rankings(st, ranks)
    out = Path(out_dir)
    _prepare_out(out)
    builder = _Builder(st, corpus, ranks, out, top_k, max_neurons, max_concepts,
                       max_sentences, n_words, n_contexts, n_sentences, title)
    builder.collect_concepts()
    builder.choose_neurons()
    builder.index = CorpusIndex.build(st, corpus, max_sentences, builder.label_layers())
    builder.pick_examples()
    builder.summarize_neurons()
    builder.evaluation = read_evaluation(evaluation_dir, builder.card_names())
    builder.write_neurons()
    builder.write_concepts()
    return builder.write_index()


def report_for_demo(demo_dir: str | os.PathLike, **options: Any) -> Path:
    """Write ``DIR/report/`` for a demo run (``DIR/store``, ``DIR/ranking.*.json``).

    Evaluation results in ``DIR/evaluation`` are included when present; ``options`` go to
    :func:`build_report` (``top_k``, ``max_neurons``, ...). Returns the path of
    ``DIR/report/index.html``.
    """
    from neuronscope.corpus import load_demo_corpus

    demo = Path(demo_dir)
    rankings = sorted(demo.glob("ranking.*.json"))
    evaluation = demo / "evaluation"
    return build_report(
        demo / "store", load_demo_corpus(), rankings, demo / "report",
        evaluation_dir=evaluation if evaluation.is_dir() else None, **options,
    )


class _Builder:
    """The state of one report build (kept out of the public API)."""

    def __init__(self, store: ActivationStore, corpus: Corpus | None, rankings: list[Ranking],
                 out: Path, top_k: int, max_neurons: int, max_concepts: int,
                 max_sentences: int, n_words: int, n_contexts: int, n_sentences: int,
                 title: str | None) -> None:
        self.store, self.corpus, self.rankings, self.out = store, corpus, rankings, out
        self.top_k, self.max_neurons, self.max_concepts = top_k, max_neurons, max_concepts
        self.max_sentences = max_sentences
        self.n_words, self.n_contexts, self.n_sentences = n_words, n_contexts, n_sentences
        self.methods = method_labels(rankings)
        info = store.info()
        self.title = title or f"{_short_model_name(str(info['model']))} on {info['corpus']}"
        self.concepts: list[_Concept] = []
        self.n_concepts_total = 0
        self.card_ids: list[int] = []
        self.n_candidates = 0
        self.summaries: dict[int, NeuronSummary] = {}
        self.sentence_values: dict[int, dict[int, np.ndarray]] = {}
        self.example_values: dict[tuple[int, int], np.ndarray] = {}  # (neuron, lo) -> values
        self.index: CorpusIndex
        self.evaluation = EvaluationResults()
        self.notes: list[str] = []

    # ------------------------------------------------------------------ choosing
    def label_layers(self) -> list[str]:
        layers = {r.label_layer for r in self.rankings if r.label_layer}
        return sorted(x for x in layers if self.corpus is not None and x in self.corpus.labels)

    def collect_concepts(self) -> None:
        keys: dict[ConceptKey, None] = {}
        for r in self.rankings:
            for c in r.concept_names:
                keys[ConceptKey(r.label_layer, c)] = None
        qualified = len({k.layer for k in keys}) > 1
        counts: dict[ConceptKey, int] = {}
        if self.corpus is not None:
            for layer in {k.layer for k in keys}:
                if layer in self.corpus.labels:
                    lc = self.corpus.label_counts(layer)
                    for k in keys:
                        if k.layer == layer:
                            counts[k] = int(lc.get(k.concept, 0))
        ordered = list(keys)
        self.n_concepts_total = len(ordered)
        if len(ordered) > self.max_concepts:
            # The most frequent concepts first: they have the most evidence behind them.
            ordered = sorted(ordered, key=lambda k: -counts.get(k, 0))[: self.max_concepts]
            self.notes.append(f"{self.max_concepts} of {self.n_concepts_total} concepts are "
                              "shown (the most frequent in the corpus)")
        n_total = self.corpus.n_words if self.corpus is not None else None
        used: set[str] = set()
        for key in ordered:
            name = key.display(qualified)
            file = slug(name)
            while file.lower() in used:  # case-insensitive file systems: keep names apart
                file += "_"
            used.add(file.lower())
            top, scores = {}, {}
            for label, r in zip(self.methods, self.rankings, strict=True):
                if key.concept in r.concepts and r.label_layer == key.layer:
                    c = r.concepts[key.concept]
                    top[label], scores[label] = c.ids[: self.top_k], c.scores[: self.top_k]
            n = counts.get(key)
            self.concepts.append(_Concept(
                key, name, f"concepts/{file}.html", file, top, scores, n,
                n / n_total if n is not None and n_total else None,
            ))

    def choose_neurons(self) -> None:
        """Card neurons, round robin: every concept's and method's #1, then every #2, ..."""
        chosen: dict[int, None] = {}
        for rank in range(self.top_k):
            for concept in self.concepts:
                for ids in concept.top.values():
                    if rank < len(ids):
                        chosen.setdefault(int(ids[rank]), None)
        self.n_candidates = len(chosen)
        self.card_ids = list(chosen)[: self.max_neurons]
        if self.n_candidates > self.max_neurons:
            self.notes.append(
                f"neuron cards were written for {self.max_neurons} of the "
                f"{self.n_candidates} neurons in the top {self.top_k} lists (best ranks first)"
            )

    def card_names(self) -> list[str]:
        return [self.store.layout.name(i) for i in self.card_ids]

    def pick_examples(self) -> None:
        """A few example sentences per concept (seeded), for its page's heatmaps."""
        idx = self.index
        for n, concept in enumerate(self.concepts):
            labels = idx.labels.get(concept.key.layer or "")
            if labels is None:
                continue
            hit = labels == concept.key.concept
            sent_pos = np.unique(np.searchsorted(idx.sent_starts, np.nonzero(hit)[0],
                                                 side="right") - 1)
            if len(sent_pos) == 0:
                continue
            rng = np.random.default_rng(n)
            pick = np.sort(rng.choice(sent_pos, min(_EXAMPLES, len(sent_pos)), replace=False))
            concept.examples = [(int(idx.sent_starts[p]),
                                 int(idx.sent_starts[p] + idx.sent_lengths[p])) for p in pick]

    # ------------------------------------------------------------------ computing
    def summarize_neurons(self) -> None:
        """Read card neurons layer by layer and compute every card's content."""
        example_neurons: dict[int, set[int]] = {}
        for concept in self.concepts:
            for ids in concept.top.values():
                if len(ids):
                    example_neurons.setdefault(int(ids[0]), set()).update(
                        lo for lo, _ in concept.examples)
        spans = {lo: hi for c in self.concepts for lo, hi in c.examples}
        groups: dict[tuple[str, int], list[int]] = {}
        for nid in self.card_ids:
            groups.setdefault(self.store.layout.locate(nid)[:2], []).append(nid)
        group = max(1, _READ_BYTES // (4 * max(self.index.n_rows, 1)))
        for ids in groups.values():
            for start in range(0, len(ids), group):
                part = ids[start:start + group]
                columns = read_columns(self.store, part, self.index.rows)
                for j, nid in enumerate(part):
                    values = columns[:, j]
                    s = summarize(self.store, self.index, nid, values, self.n_words,
                                  self.n_contexts, self.n_sentences)
                    self.summaries[nid] = s
                    self.sentence_values[nid] = sentence_values_for(s, self.index, values)
                    for lo in example_neurons.get(nid, ()):
                        self.example_values[(nid, lo)] = values[lo:spans[lo]].astype(np.float64)

    # ------------------------------------------------------------------ links
    def neuron_href(self, nid: int, root: str) -> str | None:
        return f"{root}neurons/{self.store.layout.name(nid)}.html" if nid in self.summaries \
            else None

    def neuron_link(self, nid: int, root: str, extra: str = "") -> str:
        name = self.store.layout.name(nid)
        href = self.neuron_href(nid, root)
        if href is None:
            return f'<span class="muted" title="no card: beyond the card cap">{esc(name)}</span>'
        return f'<a href="{esc(href)}"{extra}>{esc(name)}</a>'

    def sampling_note(self) -> str:
        parts = [f"Neuron statistics, words, contexts and sentences come from "
                 f"{self.index.describe()}."]
        parts += [n[0].upper() + n[1:] + "." for n in self.notes]
        parts.append(f"Each card shows {self.n_words} top and bottom words, "
                     f"{self.n_contexts} top contexts ({WINDOW}-word windows), "
                     f"{self.n_sentences} top sentences (cut to {_EXAMPLE_WORDS} words).")
        return f'<p class="note">{esc(" ".join(parts))}</p>'

    # ------------------------------------------------------------------ neuron pages
    def rank_entries(self) -> dict[int, list[RankEntry]]:
        """Per card neuron: concepts where some method ranks it in the top k, all ranks."""
        card = np.asarray(self.card_ids, dtype=np.int64)
        found: dict[int, dict[int, dict[str, tuple[int, float, int]]]] = {}
        for ci, concept in enumerate(self.concepts):
            for label, r in zip(self.methods, self.rankings, strict=True):
                if label not in concept.top:
                    continue
                cr = r.concepts[concept.key.concept]
                pos = np.nonzero(np.isin(cr.ids, card))[0]
                for p in pos.tolist():
                    found.setdefault(int(cr.ids[p]), {}).setdefault(ci, {})[label] = (
                        p + 1, float(cr.scores[p]), len(cr.ids))
        out: dict[int, list[RankEntry]] = {}
        for nid, per_concept in found.items():
            entries = []
            for ci, ranks in per_concept.items():
                if min(rk for rk, _, _ in ranks.values()) <= self.top_k:
                    c = self.concepts[ci]
                    entries.append((min(rk for rk, _, _ in ranks.values()),
                                    RankEntry(c.name, f"../{c.href}", ranks)))
            out[nid] = [e for _, e in sorted(entries, key=lambda t: t[0])]
        return out

    def write_neurons(self) -> None:
        ranks = self.rank_entries()
        for nid, s in self.summaries.items():
            probe = [(label, c, w) for label, r in zip(self.methods, self.rankings, strict=True)
                     for c, w in probe_weights(r, s.name)]
            effects = self.evaluation.effects.get(s.name, [])
            body = (card_body(s, self.index, self.sentence_values[nid], ranks.get(nid, []),
                              self.methods, probe, effects)
                    + self.sampling_note())
            html = page(f"{s.name} · neuron card", body, root="../", subtitle=self.title)
            atomic_write_text(self.out / "neurons" / f"{s.name}.html", html)

    # ------------------------------------------------------------------ concept pages
    def _top_table(self, concept: _Concept, root: str, k: int) -> str:
        methods = [m for m in self.methods if m in concept.top]
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
                link = self.neuron_link(nid, root)
                shared = counts[nid] > 1
                cells.append((f"<b>{link}</b>" if shared else link)
                             + f'<span class="val">{fmt(float(scores[rank]))}</span>')
            rows.append(cells)
        return table(["#", *methods], rows, cls="top")

    def _agreement_rows(self, concept: _Concept) -> list[tuple[str, str, float]]:
        methods = [m for m in self.methods if m in concept.top]
        return [(a, b, overlap_at_k(concept.top[a], concept.top[b], self.top_k))
                for i, a in enumerate(methods) for b in methods[i + 1:]]

    def write_concepts(self) -> None:
        keys = layer_keys(self.store)
        for concept in self.concepts:
            parts = [f"<h1>{esc(concept.name)}</h1>"]
            where = f"label layer <b>{esc(concept.key.layer)}</b>" if concept.key.layer else ""
            if concept.n_words is not None:
                share = f" ({100 * concept.share:.1f}% of words)" if concept.share else ""
                parts.append(f"<p>{where} · {concept.n_words} words in the corpus{share}</p>")
            elif where:
                parts.append(f"<p>{where}</p>")
            parts.append(f"<h2>Top {self.top_k} neurons per method</h2>"
                         + self._top_table(concept, "../", self.top_k)
                         + '<p class="note">Score after each neuron; bold: in the top '
                         f"{self.top_k} of more than one method.</p>")
            agreement = self._agreement_rows(concept)
            if agreement:
                rows = [(esc(a), esc(b), f"{v:.2f}") for a, b, v in agreement]
                parts.append("<h2>Method agreement</h2>"
                             + table(["method", "method", f"overlap@{self.top_k}"], rows))
            counts = {m: layer_counts(self.store, ids.tolist())
                      for m, ids in concept.top.items()}
            plot = concept_layers_svg(concept.name, counts, keys, self.top_k)
            parts.append(f"<h2>Layers</h2><figure>{plot}"
                         f"<figcaption>Layer of each method's top {self.top_k} neurons for "
                         f"{esc(concept.name)}.</figcaption></figure>")
            parts.append(self._examples_html(concept))
            curves = [g for g in self.evaluation.curves if _mentions(g, concept.key.concept)]
            tables = [t for t in self.evaluation.tables if t.concept == concept.key.concept]
            if curves or tables:
                parts.append("<h2>Evaluation</h2>" + _curves_html(curves)
                             + "".join(_result_table(t) for t in tables))
            parts.append(self.sampling_note())
            html = page(f"{concept.name} · concept", "".join(parts), root="../",
                        subtitle=self.title)
            atomic_write_text(self.out / "concepts" / f"{concept.file}.html", html)

    def _examples_html(self, concept: _Concept) -> str:
        if not concept.examples:
            return ""
        labels = self.index.labels[concept.key.layer or ""]
        parts = [f"<h2>Example sentences</h2><p class=\"note\">{len(concept.examples)} "
                 f"sentences with {esc(concept.name)} (underlined), picked at random (seeded), "
                 "coloured by each method's best neuron; colours saturate at that neuron's "
                 "max |activation|.</p>"]
        done: set[int] = set()
        for m, ids in concept.top.items():
            if not len(ids) or int(ids[0]) in done or int(ids[0]) not in self.summaries:
                continue
            nid = int(ids[0])
            done.add(nid)
            s = self.summaries[nid]
            items = []
            for lo, hi in concept.examples:
                values = self.example_values.get((nid, lo))
                if values is None:
                    continue
                words = self.index.words[lo:hi].tolist()
                under = (labels[lo:hi] == concept.key.concept).tolist()
                if len(words) > _EXAMPLE_WORDS:
                    first = under.index(True)
                    a = max(0, min(first - _EXAMPLE_WORDS // 2, len(words) - _EXAMPLE_WORDS))
                    words, values, under = (words[a:a + _EXAMPLE_WORDS],
                                            values[a:a + _EXAMPLE_WORDS],
                                            under[a:a + _EXAMPLE_WORDS])
                items.append(f"<li>{heatmap_html(words, values, s.scale, underline=under)}</li>")
            parts.append(f"<h3>{esc(m)}: {self.neuron_link(nid, '../')}</h3>"
                         f"<p>{legend(s.scale)}</p><ol class=\"snips\">{''.join(items)}</ol>")
        return "".join(parts)

    # ------------------------------------------------------------------ index
    def _search_data(self) -> dict[str, Any]:
        neurons, words = [], {}
        for i, (nid, s) in enumerate(self.summaries.items()):
            top = [w.word for w in s.top_words[:_SEARCH_WORDS]]
            neurons.append([s.name, self.neuron_href(nid, ""), "top words: " + ", ".join(top[:5])])
            for w in top:
                words.setdefault(w, []).append(i)
        concepts = [[c.name, c.href] for c in self.concepts]
        return {"neurons": neurons, "concepts": concepts,
                "words": sorted([w, ids] for w, ids in words.items())}

    def write_index(self) -> Path:
        info = self.store.info()
        keys = layer_keys(self.store)
        parts = [f"<h1>{esc(self.title)}</h1>"]
        comps = "; ".join(f"{n}: layers {c['layers'][0]}–{c['layers'][-1]} × {c['neurons']}"
                          for n, c in info["components"].items())
        rows = [("model", esc(info["model"])), ("corpus", esc(info["corpus"])),
                ("sentences / words", f"{info['n_sentences']} / {info['n_words']}"),
                ("components", esc(comps)), ("neurons", str(info["n_neurons"])),
                ("aggregation", esc(info["aggregation"])), ("dtype", esc(info["dtype"])),
                ("store", esc(Path(info["path"]).name)
                 + f' <span class="muted">{esc(self.store.fingerprint)}</span>'),
                ("tool version", esc(__version__))]
        parts.append('<div class="grid"><div class="box" style="flex:1 1 420px">'
                     "<h3>Model, corpus and store</h3>"
                     + "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
                     + "</table></div>"
                     + '<div class="box" style="flex:1 1 360px"><h3>Search</h3>'
                     '<input id="search" type="search" '
                     'placeholder="neuron (L1.mlp.7), concept or word" autocomplete="off">'
                     '<ul id="search-results"></ul><p class="note">Finds neuron cards by name, '
                     "concepts by name, and neurons by the words that activate them most.</p>"
                     "</div></div>")
        parts.append(self.sampling_note())
        if not self.rankings:
            parts.append('<p class="warn">No rankings were given: pass ranking JSON files '
                         "(from <code>neuronscope rank</code>) to see neurons per concept.</p>")
        else:
            parts.append(self._rankings_html())
            parts.append(self._concepts_table())
            counts = {m: {c.name: layer_counts(self.store, c.top[m].tolist())
                          for c in self.concepts if m in c.top} for m in self.methods}
            parts.append("<h2>Layer distribution</h2><figure>"
                         + layer_distribution_svg(counts, keys, self.top_k)
                         + f"<figcaption>Number of each concept's top {self.top_k} neurons in each "
                         "layer, per method (cf. Figure 2 of Sajjad et al. 2022).</figcaption>"
                         "</figure>")
            parts.append(self._agreement_html())
        parts.append(self._evaluation_html())
        cards = " ".join(self.neuron_link(nid, "") for nid in self.summaries)
        parts.append(f"<h2>All neuron cards ({len(self.summaries)})</h2><details><summary>show"
                     f"</summary><p>{cards}</p></details>")
        body = ("".join(parts) + '<script type="application/json" id="search-data">'
                + script_json(self._search_data()) + "</script>")
        html = page(f"{self.title} · neuronscope report", body, subtitle=self.title,
                    script=_SEARCH_JS)
        index = self.out / "index.html"
        atomic_write_text(index, html)
        self._write_manifest()
        return index

    def _rankings_html(self) -> str:
        rows = []
        for label, r in zip(self.methods, self.rankings, strict=True):
            params = ", ".join(f"{k}={v}" for k, v in r.params.items()
                               if not isinstance(v, (list, dict)))
            extras = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}"
                               for k, v in r.extra.items()
                               if isinstance(v, (int, float, str)) and not isinstance(v, bool))
            rows.append((esc(label), esc(r.label_layer or "—"), str(len(r.concepts)),
                         str(len(r.global_order)), esc(params), esc(extras)))
        return ("<h2>Rankings</h2>"
                + table(["method", "labels", "concepts", "neurons", "parameters", "results"],
                        rows))

    def _concepts_table(self) -> str:
        rows = []
        for c in self.concepts:
            cells = [f'<a href="{esc(c.href)}">{esc(c.name)}</a>',
                     str(c.n_words) if c.n_words is not None else "—"]
            names = [c.name.lower()]
            for m in self.methods:
                ids = c.top.get(m)
                if ids is None:
                    cells.append('<span class="muted">—</span>')
                    continue
                cells.append(" ".join(self.neuron_link(int(i), "")
                                      for i in ids[:_INDEX_TOP]))
                names += [self.store.layout.name(int(i)).lower() for i in ids[:_INDEX_TOP]]
            rows.append((" ".join(names), cells))
        head = "".join(f"<th>{esc(h)}</th>"
                       for h in ["concept", "words", *self.methods])
        body = "".join(f'<tr data-s="{esc(s)}">' + "".join(f"<td>{c}</td>" for c in cells)
                       + "</tr>" for s, cells in rows)
        return (f"<h2>Concepts: top {_INDEX_TOP} neurons per method</h2>"
                f'<table id="concepts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                "</table><p class=\"note\">The search box also filters this table. Concept pages "
                f"list the top {self.top_k}.</p>")

    def _agreement_html(self) -> str:
        n = len(self.methods)
        if n < 2:
            return ""
        sums, counts = np.zeros((n, n)), np.zeros((n, n))
        rows = []
        for c in self.concepts:
            for a, b, v in self._agreement_rows(c):
                i, j = self.methods.index(a), self.methods.index(b)
                if np.isfinite(v):
                    sums[i, j] += v
                    sums[j, i] += v
                    counts[i, j] += 1
                    counts[j, i] += 1
            cells = {f"{a} / {b}": f"{v:.2f}" for a, b, v in self._agreement_rows(c)}
            rows.append((c, cells))
        mean = np.divide(sums, counts, out=np.full((n, n), np.nan), where=counts > 0)
        np.fill_diagonal(mean, 1.0)
        pairs = [f"{a} / {b}" for i, a in enumerate(self.methods) for b in self.methods[i + 1:]]
        table_rows = [[f'<a href="{esc(c.href)}">{esc(c.name)}</a>',
                       *(cells.get(p, "—") for p in pairs)] for c, cells in rows]
        return ("<h2>Method agreement</h2><figure>"
                + agreement_svg(self.methods, mean, self.top_k)
                + f"<figcaption>overlap@{self.top_k}: share of the top {self.top_k} neurons two "
                "methods have in common for a concept, averaged over the concepts both rank "
                "(blank: none).</figcaption>"
                "</figure><details><summary>per concept</summary>"
                + table(["concept", *pairs], table_rows) + "</details>")

    def _evaluation_html(self) -> str:
        ev = self.evaluation
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
            parts.append(_curves_html(overall[:MAX_CURVE_GROUPS]))
            if len(overall) > MAX_CURVE_GROUPS:
                parts.append(f'<p class="note">{len(overall)} result curves were found; the '
                             f"first {MAX_CURVE_GROUPS} are shown here.</p>")
        n_per_class = len(ev.curves) - len(overall)
        if n_per_class:
            parts.append(f'<p class="note">{n_per_class} per-concept curves are on the concept '
                         "pages.</p>")
        for t in ev.tables[:MAX_TABLES]:
            parts.append(_result_table(t))
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

    def _write_manifest(self) -> None:
        manifest = {
            "format": "neuronscope-report",
            "tool_version": __version__,
            "title": self.title,
            "store": str(self.store.path),
            "store_fingerprint": self.store.fingerprint,
            "methods": self.methods,
            "options": {"top_k": self.top_k, "max_neurons": self.max_neurons,
                        "max_concepts": self.max_concepts, "max_sentences": self.max_sentences,
                        "n_words": self.n_words, "n_contexts": self.n_contexts,
                        "n_sentences": self.n_sentences},
            "sampled": {"description": self.index.describe(),
                        "sentences_analysed": self.index.n_sentences,
                        "sentences_total": self.index.n_sentences_total,
                        "concepts_shown": len(self.concepts),
                        "concepts_total": self.n_concepts_total,
                        "neuron_cards": len(self.summaries),
                        "neuron_candidates": self.n_candidates},
            "notes": self.notes + self.evaluation.notes,
            "pages": {"concepts": {c.name: c.href for c in self.concepts},
                      "neurons": {s.name: f"neurons/{s.name}.html"
                                  for s in self.summaries.values()}},
        }
        atomic_write_json(self.out / _MARKER, manifest)


def _short_model_name(model: str) -> str:
    """A model path's telling part for titles: ``.../all_minilm/model`` -> ``all_minilm``."""
    parts = [p for p in Path(model).parts if p not in ("/", "")]
    generic = {"model", "models", "snapshots", "main", "weights", "checkpoint"}
    while len(parts) > 1 and parts[-1].lower() in generic:
        parts.pop()
    return parts[-1] if parts else model


def _mentions(group: CurveGroup, concept: str) -> bool:
    """Whether a curve group is about ``concept`` (known, or named in its title's path)."""
    if group.concept is not None:
        return group.concept == concept
    parts = [p.strip() for p in group.title.split("/")]
    return any(p == concept or p.endswith(f"={concept}") for p in parts)


def _curves_html(groups: Sequence[CurveGroup]) -> str:
    figs = []
    for g in groups:
        kind = "ablation" if g.is_ablation else "selection"
        figs.append(f'<figure class="curve" data-kind="{kind}">'
                    + curves_svg(g.title, g.curves, g.xlabel, g.ylabel, g.hlines)
                    + f"<figcaption>{esc(g.title)}</figcaption></figure>")
    return f'<div class="grid">{"".join(figs)}</div>' if figs else ""


def _result_table(t: ResultTable) -> str:
    rows = [[esc(c) for c in row] for row in t.rows[:MAX_TABLE_ROWS]]
    more = (f'<p class="note">{len(t.rows) - MAX_TABLE_ROWS} more rows not shown.</p>'
            if len(t.rows) > MAX_TABLE_ROWS else "")
    return f"<h3>{esc(t.title)}</h3>" + table(t.headers, rows) + more


_SEARCH_JS = """
(function () {
  var data = JSON.parse(document.getElementById('search-data').textContent);
  var box = document.getElementById('search');
  var out = document.getElementById('search-results');
  var rows = document.querySelectorAll('#concepts tbody tr');
  var MAX = 40;
  function add(kind, text, href, hint) {
    var li = document.createElement('li');
    var k = document.createElement('span'); k.className = 'kind'; k.textContent = kind;
    var a = document.createElement('a'); a.href = href; a.textContent = text;
    li.appendChild(k); li.appendChild(a);
    if (hint) { var h = document.createElement('span'); h.className = 'val';
                h.textContent = hint; li.appendChild(h); }
    out.appendChild(li);
  }
  function run() {
    var q = box.value.trim().toLowerCase();
    out.textContent = '';
    var hits = {}, n = 0;
    if (q) {
      data.neurons.forEach(function (e) {
        if (e[0].toLowerCase().indexOf(q) >= 0) {
          hits[e[0].toLowerCase()] = true;
          if (n++ < MAX) add('neuron', e[0], e[1], e[2]);
        }
      });
      data.concepts.forEach(function (e) {
        if (e[0].toLowerCase().indexOf(q) >= 0 && n++ < MAX) add('concept', e[0], e[1], '');
      });
      data.words.forEach(function (e) {
        if (e[0].toLowerCase().indexOf(q) !== 0) return;
        e[1].forEach(function (i) {
          var nr = data.neurons[i];
          hits[nr[0].toLowerCase()] = true;
          if (n++ < MAX) add('word', e[0] + ' \\u2192 ' + nr[0], nr[1], nr[2]);
        });
      });
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
