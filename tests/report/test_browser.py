"""The report in a real browser: headless Chromium driven by Playwright, pages opened from disk.

Skipped when ``/usr/bin/chromium`` (or ``$NEURONSCOPE_CHROMIUM``) or Playwright is missing,
unless ``NEURONSCOPE_REQUIRE_BROWSER=1`` (CI), where that is a failure. Never downloads a browser:
the system Chromium is launched with the network-quiet flags below. Every test saves a
screenshot to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Debian's chromium; NEURONSCOPE_CHROMIUM points elsewhere (another distribution's path).
CHROMIUM = Path(os.environ.get("NEURONSCOPE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Background networking off: the sandboxed network refuses Chromium's own connections,
# which would otherwise show up as noise (or hangs) while the pages load from disk.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = f"browser tests need {' and '.join(missing)}"
        if os.environ.get("NEURONSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (NEURONSCOPE_REQUIRE_BROWSER=1)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A persistent Chromium context with a fresh profile (Playwright's way to pass
    ``--user-data-dir``)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900}, offline=True,
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """A page plus the console errors and uncaught exceptions it produced."""

    def __init__(self, context, name: str) -> None:
        self.page = context.new_page()
        self.name = name
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console",
                     lambda m: self.errors.append(f"console: {m.text}") if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri(), wait_until="load")

    def finish(self) -> None:
        """Check the page stayed quiet and local."""
        # Everything loaded came from the report folder or is inline (data:).
        assert all(u.startswith(("file://", "data:")) for u in self.requests), self.requests
        assert self.errors == []

    def screenshot(self, suffix: str = "") -> None:
        """Save the page as a test artifact (also when the test failed: that is when it
        is most useful)."""
        ARTIFACTS.mkdir(exist_ok=True)
        name = f"report-{self.name}{'-' + suffix if suffix else ''}.png"
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.fixture
def page(browser, request):
    p = Page(browser, request.node.name.removeprefix("test_"))
    yield p
    try:
        if p.page.url.startswith("file://"):
            p.screenshot()
    finally:
        p.page.close()


def expect(locator):
    """Playwright's auto-waiting assertions (imported late: Playwright may be absent)."""
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def _assert_visible(locator, what: str, at_least: int = 1) -> int:
    items = locator.all()
    assert len(items) >= at_least, f"expected {at_least}+ {what}, got {len(items)}"
    for item in items:
        item.scroll_into_view_if_needed()
        box = item.bounding_box()
        assert item.is_visible() and box and box["width"] > 10 and box["height"] > 10, what
    return len(items)


def test_index_renders_with_plots(page, report_dir):
    page.open(report_dir / "index.html")
    pg = page.page
    assert "neuronscope report" in pg.title()
    # Layer distribution and agreement (inline SVG), evaluation curves, the evaluation PNG.
    _assert_visible(pg.locator("svg.plot"), "inline SVG plots", at_least=4)
    _assert_visible(pg.locator("img.plot"), "embedded images")
    assert pg.locator("img.plot").first.evaluate("i => i.complete && i.naturalWidth") > 0
    assert pg.locator("#concepts tbody tr").count() == 8
    page.finish()


def test_search_finds_neurons_and_words(page, report_dir, report_rankings):
    page.open(report_dir / "index.html")
    pg = page.page
    neuron = report_rankings[0].top(1, "NOUN")[0]
    box = pg.locator("#search")
    box.fill(neuron)
    results = pg.locator("#search-results li")
    expect(results.filter(has_text=re.compile(rf"neuron\s*{re.escape(neuron)}(?!\d)")).first
           ).to_be_visible()
    # The concepts table is filtered down to the rows listing that neuron.
    shown = pg.locator("#concepts tbody tr:visible")
    assert 0 < shown.count() < 8
    for i in range(shown.count()):
        assert neuron in shown.nth(i).inner_text()
    # A word: one of the neuron's top words finds it.
    card = (report_dir / "neurons" / f"{neuron}.html").read_text()
    word = re.search(r'<table class="words">.*?title="(.*?): ', card).group(1)
    box.fill(word)
    word_hits = pg.locator("#search-results li", has_text=re.compile(
        rf"{re.escape(word)} \u2192 ", re.IGNORECASE))
    expect(word_hits.first).to_be_visible()
    page.screenshot("word")
    assert any(neuron in word_hits.nth(i).inner_text() for i in range(word_hits.count()))
    # Following a result opens the neuron's card.
    box.fill(neuron)
    pg.locator("#search-results a", has_text=neuron).first.click()
    pg.wait_for_load_state("load")
    assert pg.locator("#neuron-name").inner_text() == neuron
    pg.go_back()
    pg.locator("#search").fill("zzz-no-such-thing")
    expect(pg.locator("#search-results li")).to_have_text("no match")
    expect(pg.locator("#concepts tbody tr:visible")).to_have_count(0)
    pg.locator("#search").fill("")
    expect(pg.locator("#concepts tbody tr:visible")).to_have_count(8)
    page.finish()


def test_concept_page_renders(page, report_dir):
    page.open(report_dir / "concepts" / "NOUN.html")
    pg = page.page
    assert pg.locator("h1").inner_text() == "NOUN"
    _assert_visible(pg.locator("svg.plot"), "layer bars and evaluation curves", at_least=3)
    spans = pg.locator(".hm span.w")
    assert spans.count() > 5
    # Heatmap words carry their value on hover and a real background colour.
    first = spans.first
    assert re.match(r".+: [+-]\d", first.get_attribute("title"))
    colour = first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour.startswith("rgb")
    page.finish()


def test_neuron_card_renders(page, report_dir, report_rankings):
    neuron = report_rankings[0].top(1, "NOUN")[0]
    page.open(report_dir / "neurons" / f"{neuron}.html")
    pg = page.page
    assert pg.locator("#neuron-name").inner_text() == neuron
    _assert_visible(pg.locator("svg.hist"), "activation histogram")
    assert pg.locator("svg.hist rect").count() >= 10
    assert pg.locator("ol.snips li").count() >= 5
    # The concept link goes to the concept page.
    pg.locator("a", has_text=re.compile(r"^NOUN$")).first.click()
    pg.wait_for_load_state("load")
    assert pg.locator("h1").inner_text() == "NOUN"
    page.finish()


def _search_index(site: Path) -> dict:
    import json

    text = (site / "search-index.js").read_text(encoding="utf-8")
    return json.loads(text[len("var NEURONSCOPE_INDEX = "):-2])


def test_demo_report_search_evaluation_and_probe_weights(page, demo_run):
    """The report `neuronscope demo` writes: a neuron without a card and a word are found by
    the search box, the evaluation section shows its curves, a card shows probe weights."""
    folder, result, _ = demo_run
    site = folder / "report"
    data = _search_index(site)
    page.open(site / "index.html")
    pg = page.page
    # The evaluation section: selection and ablation curves from the demo's evaluation.
    heading = pg.locator("h2", has_text=re.compile(r"^Evaluation$"))
    expect(heading).to_be_visible()
    _assert_visible(pg.locator('figure.curve[data-kind="selection"] svg.plot'),
                    "selection curves")
    _assert_visible(pg.locator('figure.curve[data-kind="ablation"] svg.plot'), "ablation curves")
    expect(pg.locator("figure.curve figcaption").first).to_contain_text("probe · all upos")
    # A neuron without a card: found by name, opens the page filled from the index.
    row = next(r for r in reversed(data["neurons"]) if not r[1])
    name = row[0]
    assert not (site / "neurons" / f"{name}.html").exists()
    box = pg.locator("#search")
    box.fill(name)
    hit = pg.locator("#search-results li", has_text=re.compile(
        rf"neuron\s*{re.escape(name)}(?!\d)")).first
    expect(hit).to_be_visible()
    expect(hit).to_contain_text("no card")
    hit.locator("a").click()
    pg.wait_for_load_state("load")
    assert "neuron.html?n=" in pg.url
    expect(pg.locator("#neuron-name")).to_have_text(name)
    expect(pg.locator("#card-note")).to_contain_text("no card")
    cells = pg.locator("#neuron-stats tr").nth(1).locator("td")
    assert float(cells.nth(0).inner_text()) == row[2]  # the mean, as indexed
    assert float(cells.nth(3).inner_text()) == row[5]  # the max
    expect(pg.locator("#neuron-words li").first).to_have_text(row[7][0])
    _assert_visible(pg.locator("#neuron-ranks tr"), "rank rows", at_least=2)
    page.screenshot("no-card")
    pg.go_back()
    pg.wait_for_load_state("load")
    # A word: one of that neuron's top words finds it (and the neurons sharing the word).
    word = row[7][0]
    pg.locator("#search").fill(word)
    word_hits = pg.locator("#search-results li", has_text=re.compile(
        rf"{re.escape(word)} \u2192 ", re.IGNORECASE))
    expect(word_hits.first).to_be_visible()
    texts = [word_hits.nth(i).inner_text() for i in range(word_hits.count())]
    assert any(re.search(rf"\u2192 {re.escape(name)}(?!\d)", t) for t in texts) or \
        pg.locator("#search-results li.muted", has_text="more").count() == 1
    page.screenshot("word")
    # A card of the probe's top neurons shows the saved probe's signed weights.
    cards = {p.stem for p in (site / "neurons").glob("*.html")}
    card = next(n for n in result.methods["probe"]["top"]["NOUN"] if n in cards)
    pg.goto((site / "neurons" / f"{card}.html").as_uri(), wait_until="load")
    weights = pg.locator("table.probe-weights tr")
    if weights.count() == 0:  # a sparse probe may leave its NOUN neuron at zero: next card
        card = next(n for n in cards if 'id="probe-weights"' in
                    (site / "neurons" / f"{n}.html").read_text(encoding="utf-8"))
        pg.goto((site / "neurons" / f"{card}.html").as_uri(), wait_until="load")
    expect(pg.locator("#probe-weights")).to_be_visible()
    rows = pg.locator("table.probe-weights tr")
    assert rows.count() >= 2  # header and at least one weight
    first = rows.nth(1).locator("td")
    assert first.nth(0).inner_text() == "probe.upos"
    assert first.nth(1).inner_text() in data_concepts(data)
    assert float(first.nth(2).inner_text()) != 0
    page.finish()


def data_concepts(data: dict) -> set[str]:
    """The concept names of a search index."""
    return {c[0] for c in data["concepts"]}
