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
from urllib.parse import quote

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_write_text
from neuronscope.methods.inspection import (
    N_CONTEXTS,
    N_SENTENCES,
    N_WORDS,
    WINDOW,
    CorpusIndex,
    read_columns,
)
from neuronscope.methods.ranking import Ranking
from neuronscope.report.concept_page import EXAMPLE_WORDS, write_concepts
from neuronscope.report.effects import ablation_step_effects
from neuronscope.report.evaluation import (
    EvaluationResults,
    read_evaluation,
)
from neuronscope.report.heatmap import HISTOGRAM_SCALES
from neuronscope.report.html import esc, page, slug
from neuronscope.report.index_page import MARKER, write_index
from neuronscope.report.neuron import (
    NeuronSummary,
    RankEntry,
    card_body,
    sentence_values_for,
    summarize,
)
from neuronscope.report.probes import card_probe_weights, load_probes
from neuronscope.report.rankings import (
    ConceptKey,
    check_rankings,
    method_labels,
    overlap_at_k,
    probe_weights,
)
from neuronscope.store.store import ActivationStore

#: Memory for activation columns held at once: neurons of one layer are read together (each
#: store chunk holds a whole layer, so reading them apart would re-read it), up to this.
_READ_BYTES = 256 * 2**20
#: Example sentences per concept page.
_EXAMPLES = 3


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
        if any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
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
    histogram_scale: str = "auto",
    probes: Sequence[Any] = (),
    index_all: bool = True,
    layer_k: int = 50,
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
        histogram_scale: count axis of the cards' histograms: ``"auto"`` (log scale where
            the tallest bin holds over 20x the median non-empty bin: sparse or heavy-tailed
            neurons), ``"linear"`` or ``"log"``.
        probes: fitted :class:`~neuronscope.methods.LinearProbe` objects or files written by
            their ``save``; their signed weights per concept go on the cards.
        index_all: write the search index of every neuron of the store (statistics and top
            words, one pass over the analysed rows) and the page that shows a neuron
            without a card from it; False indexes the carded neurons only.
        layer_k: top neurons per concept and method whose layers the concept pages show
            (as shares, against the share random-k would have).
    """
    if histogram_scale not in HISTOGRAM_SCALES:
        raise NeuronscopeError(f"histogram_scale must be one of {HISTOGRAM_SCALES}, "
                               f"got {histogram_scale!r}")
    if top_k < 1 or max_neurons < 0 or max_concepts < 1 or layer_k < 1:
        raise NeuronscopeError("top_k, layer_k and max_concepts must be >= 1 and "
                               "max_neurons >= 0")
    st = store if isinstance(store, ActivationStore) else ActivationStore(store)
    ranks = [_as_ranking(r) for r in rankings]
    check_rankings(st, ranks)
    fitted = load_probes(probes)  # before any work: a bad probe file fails at once
    out = Path(out_dir)
    _prepare_out(out)
    builder = _Builder(st, corpus, ranks, out, top_k, max_neurons, max_concepts,
                       max_sentences, n_words, n_contexts, n_sentences, title)
    builder.collect_concepts()
    builder.choose_neurons()
    builder.index = CorpusIndex.build(st, corpus, max_sentences, builder.label_layers())
    builder.pick_examples()
    builder.index_all, builder.histogram_scale = index_all, histogram_scale
    builder.layer_k = layer_k
    builder.probes = fitted
    builder.summarize_neurons()
    if evaluation_dir is not None and not isinstance(evaluation_dir, (str, os.PathLike)):
        evaluation_dir = list(evaluation_dir)  # read twice below
    builder.evaluation = read_evaluation(evaluation_dir, builder.card_names())
    steps = ablation_step_effects(evaluation_dir, builder.rankings, builder.card_ids, st.layout)
    for name, entries in steps.items():
        builder.evaluation.effects.setdefault(name, []).extend(entries)
    builder.write_neurons()
    builder.write_concepts()
    return builder.write_index()


def report_for_demo(demo_dir: str | os.PathLike, **options: Any) -> Path:
    """Write ``DIR/report/`` for a demo run (``DIR/store``, ``DIR/ranking.*.json``).

    Evaluation results in ``DIR/evaluation`` and saved probes ``DIR/probe.*.pt`` (their
    weights go on the cards) are included when present; ``options`` go to
    :func:`build_report` (``top_k``, ``max_neurons``, ...). Returns the path of
    ``DIR/report/index.html``.
    """
    from neuronscope.corpus import load_demo_corpus

    demo = Path(demo_dir)
    rankings = sorted(demo.glob("ranking.*.json"))
    evaluation = demo / "evaluation"
    options.setdefault("probes", sorted(demo.glob("probe.*.pt")))
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
        self.index_all = True
        self.layer_k = 50
        self.probes: list[tuple[str, Any]] = []
        self.histogram_scale = "auto"

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
                    ranked = r.concepts[key.concept]
                    top[label] = ranked.ids[: self.top_k]
                    scores[label] = ranked.scores[: self.top_k]
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
        for layer_ids in groups.values():
            for start in range(0, len(layer_ids), group):
                part = layer_ids[start:start + group]
                columns = read_columns(self.store, part, self.index.rows)
                for j, nid in enumerate(part):
                    values = columns[:, j]
                    s = summarize(self.store, self.index, nid, values, self.n_words,
                                  self.n_contexts, self.n_sentences,
                                  histogram_scale=self.histogram_scale)
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
        if href is None:  # no card: the page that shows it from the search index
            return (f'<a class="muted" href="{esc(root)}neuron.html?n={esc(quote(name))}" '
                    f'title="no card: statistics from the search index">{esc(name)}</a>')
        return f'<a href="{esc(href)}"{extra}>{esc(name)}</a>'

    def sampling_note(self) -> str:
        parts = [f"Neuron statistics, words, contexts and sentences come from "
                 f"{self.index.describe()}."]
        parts += [n[0].upper() + n[1:] + "." for n in self.notes]
        parts.append(f"Each card shows {self.n_words} top and bottom words, "
                     f"{self.n_contexts} top contexts ({WINDOW}-word windows), "
                     f"{self.n_sentences} top sentences (cut to {EXAMPLE_WORDS} words).")
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
        fitted = card_probe_weights(self.probes, self.summaries)
        for nid, s in self.summaries.items():
            probe = [(label, c, w) for label, r in zip(self.methods, self.rankings, strict=True)
                     for c, w in probe_weights(r, s.name)] + fitted.get(nid, [])
            effects = self.evaluation.effects.get(s.name, [])
            body = (card_body(s, self.index, self.sentence_values[nid], ranks.get(nid, []),
                              self.methods, probe, effects)
                    + self.sampling_note())
            html = page(f"{s.name} · neuron card", body, root="../", subtitle=self.title)
            atomic_write_text(self.out / "neurons" / f"{s.name}.html", html)

    # ------------------------------------------------------------------ concept pages
    def _agreement_rows(self, concept: _Concept) -> list[tuple[str, str, float]]:
        methods = [m for m in self.methods if m in concept.top]
        return [(a, b, overlap_at_k(concept.top[a], concept.top[b], self.top_k))
                for i, a in enumerate(methods) for b in methods[i + 1:]]

    def write_concepts(self) -> None:
        """Write one page per concept (see :mod:`neuronscope.report.concept_page`)."""
        write_concepts(self)


    # ------------------------------------------------------------------ index
    def write_index(self) -> Path:
        """Write ``index.html`` and the manifest (see :mod:`neuronscope.report.index_page`)."""
        return write_index(self)


def _short_model_name(model: str) -> str:
    """A model path's telling part for titles: ``.../all_minilm/model`` -> ``all_minilm``."""
    parts = [p for p in Path(model).parts if p not in ("/", "")]
    generic = {"model", "models", "snapshots", "main", "weights", "checkpoint"}
    while len(parts) > 1 and parts[-1].lower() in generic:
        parts.pop()
    return parts[-1] if parts else model
