"""The static report site: files, links, self-containment, escaping, caps and the CLI."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus import load_demo_corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.extraction import extract
from neuronscope.methods import Ranking, get_method
from neuronscope.methods import inspection as cs
from neuronscope.report import CorpusIndex, build_report, report_for_demo
from neuronscope.report.evaluation import as_curve, read_evaluation
from neuronscope.report.rankings import method_labels, overlap_at_k, probe_weights


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.scripts: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src", "xlink:href"):
            if attrs.get(key):
                self.refs.append(attrs[key])
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.scripts.append({"tag": tag, **attrs})


def _parse(path: Path) -> _Refs:
    parser = _Refs()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _files(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*") if p.is_file())


def check_site(site: Path) -> int:
    """Every generated file is URL-free; every link resolves to a file; returns link count."""
    n_links = 0
    for path in _files(site):
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, path
        assert "//cdn" not in text and "@import" not in text and "@font-face" not in text
        if path.suffix != ".html":
            continue
        refs = _parse(path)
        for s in refs.scripts:  # inline scripts, or the report's own search index
            assert s["tag"] == "script", (path, s)
            assert "src" not in s or s["src"] == "search-index.js", (path, s)
        for ref in refs.refs:
            if ref.startswith("data:"):
                continue
            parts = urlsplit(ref)
            assert not parts.scheme and not parts.netloc, (path, ref)
            if parts.path:
                target = (path.parent / unquote(parts.path)).resolve()
                assert target.is_file(), f"{path.name}: broken link {ref}"
                assert site.resolve() in target.parents
                n_links += 1
            if parts.fragment:
                target_ids = _parse(target).ids if parts.path else refs.ids
                assert parts.fragment in target_ids, f"{path.name}: missing #{parts.fragment}"
    return n_links


# ------------------------------------------------------------------------ the site
def test_site_layout(report_dir, report_rankings, small_corpus):
    assert (report_dir / "index.html").is_file()
    manifest = json.loads((report_dir / "neuronscope-report.json").read_text())
    assert manifest["methods"] == ["probeless", "selectivity", "iou"]
    concepts = set(report_rankings[0].concept_names)
    assert set(manifest["pages"]["concepts"]) == concepts
    for name, href in manifest["pages"]["concepts"].items():
        assert (report_dir / href).is_file()
        assert href == f"concepts/{name}.html"
    cards = manifest["pages"]["neurons"]
    assert 0 < len(cards) <= 40
    # Every method's best neuron of every concept has a card (cards go best-rank first).
    for r in report_rankings:
        for c in r.concept_names:
            assert r.top(1, c)[0] in cards
    assert manifest["sampled"]["sentences_analysed"] == small_corpus.n_sentences
    assert manifest["options"]["top_k"] == 5


def test_site_is_self_contained_and_links_resolve(report_dir):
    assert check_site(report_dir) > 100


def test_index_content(report_dir, report_rankings):
    html = (report_dir / "index.html").read_text()
    assert 'id="search"' in html and '<script src="search-index.js">' in html
    assert html.count("<script") == 2  # the search index (a local file) and the search code
    for method in ("probeless", "selectivity", "iou"):
        assert f"<th>{method}</th>" in html
    assert "Layer distribution" in html
    assert html.count('<svg class="plot matrix"') == 3 + 1  # one per method, agreement
    assert "Method agreement" in html and "overlap@5" in html
    assert "all 10 sentences" in html  # what was analysed is stated
    assert "40 of the" in html  # the card cap is stated
    # Evaluation results: curves (selection and ablation), scalars, embedded image.
    assert 'data-kind="ablation"' in html and 'data-kind="selection"' in html
    assert "overall_accuracy" in html and 'src="data:image/png;base64,' in html
    # ... from `neuronscope evaluate`: its curves with reference levels, the control table,
    # and its figures once each (PNG, not also the SVG copy).
    assert "probeless · all upos: probes on the top / random / bottom k neurons" in html
    assert "probeless · all upos: ablation in a trained probe" in html
    assert "majority class (" in html and "control-task selectivity" in html
    assert 'alt="selection.png"' in html and 'alt="selection.svg"' not in html
    assert "per-concept curves are on the concept pages" in html
    # ... from `neuronscope ablate`: its table.
    assert "model ablation of the top 3 neurons of NOUN" in html



def _search_index(site: Path) -> dict:
    text = (site / "search-index.js").read_text(encoding="utf-8")
    assert text.startswith("var NEURONSCOPE_INDEX = ") and text.endswith(";\n")
    return json.loads(text[len("var NEURONSCOPE_INDEX = "):-2])


def test_search_index_holds_every_neuron(report_dir, report_store, report_rankings):
    """Every neuron of the store is in the index, with statistics that match a direct read
    of its column, its top word, and where each method ranks it best."""
    data = _search_index(report_dir)
    rows = {r[0]: r for r in data["neurons"]}
    assert len(rows) == report_store.layout.n_neurons
    cards = json.loads((report_dir / "neuronscope-report.json").read_text())["pages"]["neurons"]
    assert {n for n, r in rows.items() if r[1]} == set(cards)
    words = report_store.words()
    for name in ("L0.hidden.3", "L1.mlp.60", report_rankings[0].top(1, "NOUN")[0]):
        column = report_store.neurons([name])[:, 0].astype(np.float64)
        _, _, mean, std, low, high, zero, top, best = rows[name]
        assert mean == pytest.approx(column.mean(), rel=1e-3, abs=1e-5)
        assert std == pytest.approx(column.std(), rel=1e-3, abs=1e-5)
        assert (low, high) == (pytest.approx(column.min(), rel=1e-3),
                               pytest.approx(column.max(), rel=1e-3))
        assert zero == pytest.approx(np.mean(np.abs(column) <= 1e-6), abs=1e-3)
        assert top[0] == words[int(np.argmax(column))]
        assert len(top) == len(set(top)) == 3
        for (concept_pos, rank), r in zip(best, report_rankings, strict=True):
            concept = data["concepts"][concept_pos][0]
            assert r.concepts[concept].ids[rank - 1] == report_store.layout.ids([name])[0]
            assert all(rank <= list(c.ids).index(report_store.layout.ids([name])[0]) + 1
                       for c in r.concepts.values())
    assert data["methods"] == ["probeless", "selectivity", "iou"]
    # A neuron without a card links to the generic page from the concept pages.
    html = (report_dir / "concepts" / "NOUN.html").read_text()
    assert "../neuron.html?n=" in html or all(rows[n][1] for n in report_rankings[0].top(5, "NOUN"))
    page = (report_dir / "neuron.html").read_text()
    assert '<script src="search-index.js">' in page and 'id="neuron"' in page


def test_concept_page(report_dir, report_rankings):
    html = (report_dir / "concepts" / "NOUN.html").read_text()
    for r in report_rankings:
        for name in r.top(5, "NOUN"):
            assert name in html
    assert "Example sentences" in html and 'class="w u"' in html  # concept words underlined
    assert 'class="plot bars"' in html
    # NOUN's evaluation results are on its page: the free-form curves, the per-class ablation
    # curve of `neuronscope evaluate`, the model ablation table; not other concepts' ones.
    assert "concepts / NOUN / ablation" in html
    assert "probeless · NOUN: ablation in a trained probe" in html
    assert "model ablation of the top 3 neurons of NOUN" in html
    verb = (report_dir / "concepts" / "VERB.html").read_text()
    assert "probeless · VERB: ablation" in verb
    assert "concepts / NOUN" not in verb and "neurons of NOUN" not in verb


def test_neuron_card(report_dir, report_rankings, report_store):
    first = report_rankings[0]
    noun = first.top(1, "NOUN")[0]
    html = (report_dir / "neurons" / f"{noun}.html").read_text()
    layer, component, index = noun.split(".")
    assert f"layer {layer[1:]}, component {component}, neuron {index}" in html
    assert 'class="plot hist"' in html
    for section in ("Top words", "Bottom words", "Top contexts", "Top sentences",
                    "Concepts and methods that rank it high", "Labels of its top"):
        assert section in html
    # Its rank for NOUN under probeless is #1, linked to the concept page.
    row = re.search(r'<a href="../concepts/NOUN.html">NOUN</a></td><td>(.*?)</td>', html)
    assert row and "#1<" in row.group(1)
    # The evaluation's per-neuron ablation effect is shown, and the model ablation of the
    # NOUN top-3 set it belongs to.
    assert "Ablation and attribution effects" in html and "0.125" in html
    assert "ablating the top 3 of NOUN with it" in html and "delta_concept: 0.75" in html
    verb = first.top(1, "VERB")[0]
    if verb != noun:
        assert "attribution: 0.5" in (report_dir / "neurons" / f"{verb}.html").read_text()


def test_nasty_words_and_labels_are_escaped(nasty_report):
    check_site(nasty_report)
    concepts = {p.stem for p in (nasty_report / "concepts").glob("*.html")}
    assert "NOUN" in concepts and len(concepts) == 6  # ",", "a/b", "<X>" get safe names
    for path in nasty_report.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "</div>\"" not in text
        assert "<b>bold" not in text and "<X>" not in text
    index = (nasty_report / "index.html").read_text()
    assert "&lt;nasty &amp; co&gt;" in index
    assert "&lt;X&gt;" in index
    cards = "".join(p.read_text() for p in (nasty_report / "neurons").glob("*.html"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in cards
    assert "&lt;/div&gt;" in cards and "&lt;!--" in cards and "a&amp;b" in cards


# ------------------------------------------------------------------------ card content
def test_card_searches_match_concept_search(report_store, small_corpus):
    index = CorpusIndex.build(report_store, small_corpus)
    for neuron in ("L0.hidden.3", "L1.mlp.17", "L2.hidden.31"):
        values = cs.read_columns(report_store, [neuron])[:, 0]
        np.testing.assert_array_equal(values, report_store.neurons([neuron])[:, 0])
        for lowest in (False, True):
            # The card's index (built from the corpus) gives what a one-neuron search of the
            # store gives.
            assert index.top_words(values, 8, lowest) == cs.top_words(
                report_store, neuron, 8, lowest=lowest)
            assert index.top_contexts(values, 6, 5, lowest) == cs.top_contexts(
                report_store, neuron, 6, window=5, lowest=lowest)
            reduce = "min" if lowest else "max"
            assert index.top_sentences(values, 3, reduce, lowest) == cs.top_sentences(
                report_store, neuron, 3, reduce=reduce, lowest=lowest)


def test_sentence_sample_is_stated_and_consistent(report_store, small_corpus, report_rankings,
                                                  tmp_path):
    index = CorpusIndex.build(report_store, small_corpus, max_sentences=4)
    assert index.n_sentences == 4 and index.sampled
    assert "4 of 10 sentences" in index.describe()
    values = cs.read_columns(report_store, ["L1.hidden.5"], index.rows)[:, 0]
    np.testing.assert_array_equal(values, report_store.neurons(["L1.hidden.5"])[index.rows, 0])
    # Contexts never cross the sampled sentences' edges.
    for c in index.top_contexts(values, 10, 9):
        sent = small_corpus.sentences[c.sentence_id]
        start = c.position - c.center
        assert list(c.words) == sent[start:start + len(c.words)]
    site = build_report(report_store, small_corpus, report_rankings[:1], tmp_path / "s",
                        max_sentences=4, top_k=2, max_neurons=3, max_concepts=2)
    manifest = json.loads((site.parent / "neuronscope-report.json").read_text())
    assert manifest["sampled"]["sentences_analysed"] == 4
    assert manifest["sampled"]["neuron_cards"] == 3
    assert manifest["sampled"]["concepts_shown"] == 2
    # The two most frequent concepts are kept.
    assert set(manifest["pages"]["concepts"]) == {"NOUN", "DET"} or \
        set(manifest["pages"]["concepts"]) == {"NOUN", "PUNCT"}
    assert len(list((site.parent / "neurons").glob("*.html"))) == 3
    text = site.read_text()
    assert "random sample of 4 of 10 sentences" in text and "2 of 8 concepts" in text
    check_site(site.parent)


def test_probe_weights_from_extra(report_store, small_corpus, report_rankings, tmp_path):
    base = report_rankings[0]
    top = base.top(1, base.concept_names[0])[0]  # the first card written
    ranking = Ranking.from_dict(base.to_dict())
    ranking.method = "probe"
    ranking.extra = {"probe_weights": {"NOUN": {top: -0.75}, "VERB": {top: 0.25}}}
    assert probe_weights(ranking, top) == [("NOUN", -0.75), ("VERB", 0.25)]
    columns = Ranking.from_dict(base.to_dict())
    columns.extra = {"coef": [[1.0, 2.0], [3.0, 4.0]], "classes": ["A", "B"],
                     "neurons": ["L0.hidden.0", "L0.hidden.1"]}
    assert probe_weights(columns, "L0.hidden.1") == [("A", 2.0), ("B", 4.0)]
    assert probe_weights(base, top) == []
    site = build_report(report_store, small_corpus, [ranking], tmp_path / "s", top_k=1,
                        max_neurons=1)
    card = (site.parent / "neurons" / f"{top}.html").read_text()
    assert "Probe weights" in card and "-0.75" in card


def test_helpers():
    assert overlap_at_k(np.array([1, 2, 3]), np.array([3, 2, 9]), 3) == pytest.approx(2 / 3)
    assert overlap_at_k(np.array([1]), np.array([1, 2]), 5) == 1.0
    r = Ranking("probe", {}, {}, {}, label_layer="upos")
    c = Ranking("probe", {}, {}, {}, label_layer="upos-control")
    assert method_labels([r, c]) == ["probe [upos]", "probe [upos-control]"]
    assert method_labels([r, r]) == ["probe [upos] #1", "probe [upos] #2"]
    assert as_curve({"10": 0.5, "1": 0.2}) == ([1.0, 10.0], [0.2, 0.5], "number of neurons",
                                               "value")
    assert as_curve([{"n_neurons": 2, "acc": 0.3}]) == ([2.0], [0.3], "n_neurons", "acc")
    assert as_curve({"accuracy": 0.9}) is None


def test_evaluation_records_and_missing_folders(tmp_path):
    folder = tmp_path / "ev"
    folder.mkdir()
    records = [{"concept": "NOUN", "selection": s, "k": k, "accuracy": 0.1 * k}
               for s in ("top", "random", "bottom") for k in (1, 2, 3)]
    (folder / "curves.json").write_text(json.dumps({"results": records}))
    (folder / "broken.json").write_text("{not json")
    result = read_evaluation([folder, tmp_path / "missing"], ["L0.hidden.1"])
    assert len(result.curves) == 1
    assert set(result.curves[0].curves) == {"top", "random", "bottom"}
    assert "concept=NOUN" in result.curves[0].title
    assert any("not found" in n for n in result.notes)
    assert any("broken.json" in n for n in result.notes)
    assert read_evaluation(None).empty


def test_refuses_foreign_rankings_and_folders(report_store, small_corpus, report_rankings,
                                              tmp_path):
    foreign = Ranking.from_dict(report_rankings[0].to_dict())
    foreign.store_fingerprint = "someone-else"
    with pytest.raises(NeuronscopeError, match="another model or aggregation"):
        build_report(report_store, small_corpus, [foreign], tmp_path / "a")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("do not delete")
    with pytest.raises(NeuronscopeError, match="holds no neuronscope report"):
        build_report(report_store, small_corpus, report_rankings[:1], tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.tex").exists()


def test_rebuild_replaces_old_pages(report_store, small_corpus, report_rankings, tmp_path):
    out = tmp_path / "site"
    build_report(report_store, small_corpus, report_rankings, out, top_k=2, max_neurons=6)
    assert len(list((out / "neurons").glob("*.html"))) == 6
    build_report(report_store, small_corpus, report_rankings[:1], out, top_k=1, max_neurons=2)
    assert len(list((out / "neurons").glob("*.html"))) == 2
    check_site(out)


def test_no_rankings(report_store, small_corpus, tmp_path):
    index = build_report(report_store, small_corpus, [], tmp_path / "s")
    assert "No rankings were given" in index.read_text()
    check_site(index.parent)


# ------------------------------------------------------------------------ CLI and demo
def test_cli_report(report_store, small_conllu, report_rankings, tmp_path):
    paths = []
    for r in report_rankings[:2]:
        paths.append(tmp_path / f"{r.method}.json")
        r.to_json(paths[-1])
    out = tmp_path / "site"
    result = CliRunner().invoke(app, [
        "report", str(report_store.path), str(small_conllu), *map(str, paths), "--out", str(out),
        "--top-k", "3", "--max-neurons", "5", "--title", "My <report>",
    ])
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output
    assert "My &lt;report&gt;" in (out / "index.html").read_text()
    assert len(list((out / "neurons").glob("*.html"))) == 5
    check_site(out)


def test_cli_report_probe_weights_and_histogram_scale(report_store, small_conllu, small_corpus,
                                                     report_rankings, tmp_path):
    """``--probe`` puts a saved probe's signed weights on the cards; ``--histogram-scale``
    sets the histograms' count axis; a bad scale is refused before any work."""
    from neuronscope.methods import LinearProbe

    probe = LinearProbe(alpha=1e-4, max_epochs=3, random_state=0)
    probe.fit(report_store, small_corpus.concept_labels("upos"))
    probe.save(tmp_path / "upos-probe.pt")
    ranking = tmp_path / "r.json"
    report_rankings[0].to_json(ranking)
    out = tmp_path / "site"
    args = ["report", str(report_store.path), str(small_conllu), str(ranking), "--out",
            str(out), "--top-k", "3", "--max-neurons", "4", "--probe",
            str(tmp_path / "upos-probe.pt")]
    result = CliRunner().invoke(app, [*args, "--histogram-scale", "log"])
    assert result.exit_code == 0, result.output
    cards = sorted((out / "neurons").glob("*.html"))
    assert len(cards) == 4
    for card in cards:
        html = card.read_text()
        assert html.count('data-scale="log"') == 1
        column = probe.coef_[:, list(probe.neuron_names_).index(card.stem)]
        strongest = int(np.argmax(np.abs(column)))
        if column[strongest] != 0:
            assert (f"<td>upos-probe</td><td>{probe.classes_[strongest]}</td><td><span "
                    f'class="num">{column[strongest]:.3g}</span>') in html
    bad = CliRunner().invoke(app, [*args, "--histogram-scale", "sqrt", "--overwrite"])
    assert bad.exit_code != 0
    assert "histogram_scale must be one of" in str(bad.exception) + bad.output


def test_report_for_demo(tmp_path, tiny_loaded):
    corpus = load_demo_corpus()
    store = extract(corpus, tmp_path / "store", tiny_loaded, components=["hidden"],
                    progress=False)
    get_method("probeless").rank(store, corpus.concept_labels("upos")).to_json(
        tmp_path / "ranking.probeless.json")
    index = report_for_demo(tmp_path, max_neurons=20)
    assert index == tmp_path / "report" / "index.html" and index.is_file()
    assert len(list((tmp_path / "report" / "neurons").glob("*.html"))) == 20
    html = index.read_text()
    assert "probeless" in html and "NOUN" in html
    assert (tmp_path / "report" / "concepts" / "NOUN.html").is_file()
    check_site(tmp_path / "report")


def test_sentence_sample_reads_few_chunks():
    from neuronscope.methods.inspection import _sample_sentences

    sentence_ids = np.repeat(np.arange(100), 3)  # 100 sentences of 3 words
    keep = _sample_sentences(sentence_ids, 25, chunk_words=30, seed=0)
    assert keep.sum() == 25
    rows = np.nonzero(keep[sentence_ids])[0]
    chunks = np.unique(rows // 30)
    assert len(chunks) == 3  # two whole chunks of 10 sentences and half of a third
    assert not np.array_equal(chunks, [0, 1, 2])  # drawn at random, not the first ones
    assert np.array_equal(keep, _sample_sentences(sentence_ids, 25, 30, seed=0))
    assert not np.array_equal(keep, _sample_sentences(sentence_ids, 25, 30, seed=1))


def test_cards_show_ablation_steps(report_dir, report_rankings, real_evaluation, report_store):
    """A card says in which step of the evaluation's top-first ablation its neuron went, what
    that step did to accuracy, and what a random order's same step did."""
    summary = json.loads((real_evaluation / "summary.json").read_text())
    steps, top = summary["ablation"]["steps"], summary["ablation"]["top"]
    rnd = summary["ablation"]["random_mean"]
    order = report_store.layout.names(report_rankings[0].top_ids(steps[-1], None))
    cards = {p.stem for p in (report_dir / "neurons").glob("*.html")}
    checked = 0
    for p, name in enumerate(order):
        if name not in cards:
            continue
        s = int(np.searchsorted(steps, p, side="right"))
        size = steps[s] - steps[s - 1]
        html = (report_dir / "neurons" / f"{name}.html").read_text()
        assert (f"step {s}, ranks {steps[s - 1] + 1}-{steps[s]} ("
                + ("this neuron alone" if size == 1 else f"{size} neurons with it")
                + f"): accuracy {top[s - 1]:.3f} -&gt; {top[s]:.3f}; a random order&#x27;s same "
                f"step {rnd[s - 1]:.3f} -&gt; {rnd[s]:.3f}") in html, name
        checked += 1
    assert checked >= 5
