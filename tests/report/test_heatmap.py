"""Heatmap colours, escaping and the small hand-written SVG plots."""

from __future__ import annotations

import re

import numpy as np
import pytest

from neuronscope.report import activation_rgb, heatmap_html, heatmap_svg, histogram_svg
from neuronscope.report.heatmap import (
    NEGATIVE_RGB,
    POSITIVE_RGB,
    activation_color,
    legend,
    needs_log_counts,
)
from neuronscope.report.html import script_json, slug
from neuronscope.report.plots import (
    agreement_svg,
    concept_layers_svg,
    curves_svg,
    heatmap_grid_svg,
    layer_distribution_svg,
)


def _style_colors(markup: str) -> list[tuple[int, int, int]]:
    hexes = re.findall(r"background-color:#([0-9a-f]{6})", markup)
    return [tuple(int(h[i:i + 2], 16) for i in (0, 2, 4)) for h in hexes]


def test_colour_follows_sign_and_magnitude():
    assert activation_rgb(0.0, 1.0) == (255, 255, 255)
    assert activation_rgb(1.0, 1.0) == POSITIVE_RGB
    assert activation_rgb(-1.0, 1.0) == NEGATIVE_RGB
    assert activation_rgb(5.0, 1.0) == POSITIVE_RGB  # clipped at the scale
    r, g, b = activation_rgb(0.5, 1.0)
    assert r > b and r > g  # positive: red
    r, g, b = activation_rgb(-0.5, 1.0)
    assert b > r and b > g  # negative: blue
    # Stronger activations are darker, in both directions, and symmetric in intensity.
    for sign in (1, -1):
        darkness = [sum(activation_rgb(sign * v, 2.0)) for v in (0, 0.5, 1, 1.5, 2)]
        assert darkness == sorted(darkness, reverse=True)
        assert len(set(darkness)) == 5
    assert activation_color(1.0, 1.0) == "#b2182b"
    assert activation_rgb(float("nan"), 1.0) == (255, 255, 255)


def test_heatmap_html_colours_each_word_and_shows_values_on_hover():
    words = ["low", "zero", "mid", "high"]
    markup = heatmap_html(words, [-2.0, 0.0, 1.0, 2.0])
    colors = _style_colors(markup)
    assert len(colors) == 4
    assert colors[0] == NEGATIVE_RGB and colors[3] == POSITIVE_RGB
    assert colors[1] == (255, 255, 255)
    assert colors[2][0] > colors[2][2] and sum(colors[2]) > sum(colors[3])
    # Default normalization: the largest |value| shown, stated on the element.
    assert 'data-scale="2"' in markup
    assert 'title="high: +2"' in markup and 'title="low: -2"' in markup
    # An explicit scale: 1.0 saturates at 1, so "mid" is as dark as "high".
    colors = _style_colors(heatmap_html(words, [-2.0, 0.0, 1.0, 2.0], scale=1.0))
    assert colors[2] == colors[3] == POSITIVE_RGB


def test_heatmap_escapes_words():
    words = ["<script>alert(1)</script>", "&", '"q"', "a&amp;b"]
    for markup in (heatmap_html(words, [1, -1, 0.5, 0]),
                   heatmap_svg(words, [1, -1, 0.5, 0])):
        assert "<script>" not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
        assert ">&amp;<" in markup
        assert "&quot;q&quot;" in markup
        assert "a&amp;amp;b" in markup  # escaped once more, shown literally


def test_heatmap_marks_centre_and_underlines():
    markup = heatmap_html(["a", "b", "c"], [0.1, 0.2, 0.3], center=1,
                          underline=[True, False, True])
    spans = re.findall(r'<span class="([^"]*)"', markup)
    assert spans == ["w u", "w c", "w u"]
    with pytest.raises(ValueError):
        heatmap_html(["a"], [1.0, 2.0])


def test_heatmap_svg_is_inline_by_default_and_standalone_on_request():
    svg = heatmap_svg(["the", "cat"], [1.0, -0.5])
    assert svg.startswith("<svg") and "xmlns" not in svg
    assert svg.count("<rect") == 2 and "<title>cat: -0.5</title>" in svg
    colors = re.findall(r'fill="(#[0-9a-f]{6})"', svg)
    assert colors[0] == "#b2182b"
    assert 'xmlns="http://www.w3.org/2000/svg"' in heatmap_svg(["a"], [1.0], standalone=True)
    # Long texts wrap onto more lines.
    tall = heatmap_svg(["word"] * 200, np.ones(200), width=300)
    assert int(re.search(r'height="(\d+)"', tall).group(1)) > 24 * 10


def test_histogram_svg():
    values = np.concatenate([np.linspace(-1, 0, 50), np.linspace(0, 3, 150)])
    svg = histogram_svg(values, bins=20)
    assert svg.startswith("<svg") and svg.count("<rect") == 20
    assert "200 words" in svg and "http" not in svg
    # Bars left of zero are blue-ish, right of it red-ish.
    fills = re.findall(r'<rect [^>]*fill="#([0-9a-f]{6})"', svg)
    first, last = (tuple(int(f[i:i + 2], 16) for i in (0, 2, 4)) for f in (fills[0], fills[-1]))
    assert first[2] > first[0] and last[0] > last[2]
    assert "no activations" in histogram_svg(np.array([]))
    assert histogram_svg(np.zeros(5)).startswith("<svg")  # constant: no zero-width range


def _bar_heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]


def test_histogram_log_scale_for_sparse_neurons():
    """A sparse neuron (most words at 0, a tail of a few) gets a log count axis by default,
    where its one-word bins are visible; a spread neuron keeps the linear axis."""
    rng = np.random.default_rng(0)
    sparse = np.concatenate([np.zeros(5000), rng.uniform(0.5, 4.0, 30)])
    assert needs_log_counts(np.histogram(sparse, bins=40)[0])
    auto = histogram_svg(sparse, bins=40)
    assert 'data-scale="log"' in auto and "count axis log scale" in auto
    linear = histogram_svg(sparse, bins=40, log="linear")
    assert 'data-scale="linear"' in linear and "log scale" not in linear
    # The tail's bins of one or two words: under a pixel linearly, visible on the log axis.
    tail_linear = [h for h in _bar_heights(linear) if 0 < h < 1]
    assert tail_linear and min(h for h in _bar_heights(auto) if h > 0) > 10
    spread = rng.normal(size=5000)
    assert not needs_log_counts(np.histogram(spread, bins=40)[0])
    assert 'data-scale="linear"' in histogram_svg(spread)
    assert 'data-scale="log"' in histogram_svg(spread, log="log")
    assert 'data-scale="log"' in histogram_svg(spread, log=True)
    with pytest.raises(ValueError, match="log must be one of"):
        histogram_svg(spread, log="sqrt")


def test_one_colour_per_condition_in_every_figure():
    """The report's curves and the evaluation's matplotlib figures draw each condition
    (top / random / bottom / all neurons / majority) in the palette's colour."""
    from neuronscope.evaluation import plots as eval_plots
    from neuronscope.palette import CONDITION_COLORS, condition_of

    svg = curves_svg("t", {"top": ([1, 10], [0.9, 0.95]), "random": ([1, 10], [0.5, 0.6]),
                           "bottom": ([1, 10], [0.2, 0.3])}, "k", "accuracy",
                     {"majority class": 0.3, "all 40 neurons": 0.97})
    for cond in ("top", "random", "bottom"):
        assert f'stroke="{CONDITION_COLORS[cond]}"' in svg
    assert f'stroke="{CONDITION_COLORS["all"]}" stroke-dasharray' in svg
    assert f'stroke="{CONDITION_COLORS["majority"]}" stroke-dasharray' in svg
    # The order of reference lines does not change their colours.
    swapped = curves_svg("t", {"top": ([1], [0.9])}, "k", "accuracy",
                         {"all 40 neurons": 0.97, "majority class": 0.3})
    drawn = re.findall(r'stroke="(#[0-9a-f]+)" stroke-dasharray', swapped)  # lines, legend
    assert list(dict.fromkeys(drawn)) == [CONDITION_COLORS["all"], CONDITION_COLORS["majority"]]
    assert eval_plots._COLORS is CONDITION_COLORS
    assert CONDITION_COLORS["full"] == CONDITION_COLORS["all"]
    assert [condition_of(n) for n in ("top-k", "random order (mean ± sd)", "bottom neurons "
                                      "first", "all 7 neurons", "majority class", "probe")] == [
        "top", "random", "bottom", "all", "majority", None]


def test_legend_states_normalization():
    text = legend(2.5, "max |activation|")
    assert "2.5" in text and "saturate" in text and "max |activation|" in text


def test_script_json_cannot_close_the_script():
    text = script_json({"w": "</script><script>alert(1)</script>", "c": "<!--", "a": "&"})
    assert "<" not in text and ">" not in text and "&" not in text
    import json

    assert json.loads(text)["w"] == "</script><script>alert(1)</script>"


def test_slug_is_safe_and_unique():
    assert slug("NOUN") == "NOUN"
    assert slug("AUX") == "AUX_" and slug("aux") == "aux_"
    names = [",", ".", "a/b", "a_b", "-LRB-", "<X>", "..", "NOUN"]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", s) and not s.startswith(".") for s in slugs)


def test_matrix_plots():
    svg = heatmap_grid_svg("<t>", ["r<1>", "r2"], ["c1", "c&2"],
                           np.array([[0.0, 2.0], [4.0, np.nan]]), vmax=4.0)
    assert svg.startswith('<svg class="plot matrix"') and "http" not in svg
    assert "&lt;t&gt;" in svg and "r&lt;1&gt;" in svg and "c&amp;2" in svg
    cells = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"[^>]*><title>([^<]*)</title>', svg)
    assert [t for _, t in cells] == ["r&lt;1&gt;, c1: 0", "r&lt;1&gt;, c&amp;2: 2", "r2, c1: 4"]
    assert cells[0][0] == "#ffffff" and cells[2][0] == "#08519c"  # white at 0, dark at vmax
    dist = layer_distribution_svg({"a": {"NOUN": {"L0.hidden": 2}}, "b": {"VERB": {"L1.mlp": 1}}},
                                  ["L0.hidden", "L1.hidden", "L1.mlp"], 5)
    assert dist.count('<svg class="plot matrix"') == 2
    assert dist.count("<line") == 2  # a separator between hidden and mlp, in each panel
    agreement = agreement_svg(["a", "b"], np.array([[1.0, 0.25], [0.25, 1.0]]), 5)
    assert "a, b: 0.25" in agreement


def test_hand_drawn_plots():
    bars = concept_layers_svg("<NOUN>", {"probe": {"L0.hidden": 3}, "iou": {"L1.mlp": 2}},
                              ["L0.hidden", "L1.mlp"], 5)
    assert "&lt;NOUN&gt;" in bars and "<NOUN>" not in bars
    assert bars.count("<rect") == 4 + 2  # 2 layers x 2 methods, 2 legend swatches
    svg = curves_svg("<a>", {"top": ([1, 10, 20], [0.5, 0.8, 0.9]),
                             "random": ([1, 10, 20], [0.3, 0.5, 0.6])}, "k", "accuracy",
                     {"all neurons": 0.95})
    assert svg.startswith("<svg") and "&lt;a&gt;" in svg and "<a>" not in svg
    assert svg.count("<polyline") == 2 and "<title>top: 10 → 0.8</title>" in svg
    assert "all neurons (0.95)" in svg and "(log scale)" not in svg
    wide = curves_svg("w", {"top": ([1, 1000], [0.1, 0.2])}, "k", "acc")
    assert "(log scale)" in wide
