"""The report's plots, as hand-written inline SVG.

No plotting library: a report holds one plot per concept page (and per evaluation curve), and
writing the SVG directly takes a millisecond where a matplotlib figure takes a good part of a
second; the markup is small, needs no fonts or URLs (text is drawn in a local sans-serif
font), and every cell, bar and point carries a ``<title>`` tooltip with its exact value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from neuronscope.palette import CONDITION_COLORS, CONDITION_DASHES, CONDITION_MARKERS, condition_of
from neuronscope.report.html import esc

#: Colour-blind safe qualitative colours (Paul Tol's "bright"), one per method.
METHOD_COLORS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb",
                 "#000000"]

_CHAR_W = 7.2  # width of an 11px sans-serif capital, for laying out labels (errs wide)


def _ramp(t: float, end: tuple[int, int, int]) -> str:
    """White (t = 0) to ``end`` (t = 1)."""
    t = min(max(float(t), 0.0), 1.0)
    r, g, b = (round(255 + (e - 255) * t) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_grid_svg(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: np.ndarray,
    vmax: float,
    end_rgb: tuple[int, int, int] = (8, 81, 156),
    value_format: str = "{:.0f}",
    separators: Sequence[int] = (),
    cell: int = 22,
    show_zero: bool = False,
) -> str:
    """A labelled matrix of coloured cells (white at 0 to ``end_rgb`` at ``vmax``).

    Args:
        title: drawn above the grid.
        rows, columns: labels.
        values: ``(len(rows), len(columns))``; NaN cells stay blank.
        vmax: the value of the darkest colour.
        value_format: how cell numbers are written.
        separators: column indices before which a vertical line is drawn (components).
        cell: cell size in pixels.
        show_zero: write zeros in their cells (by default left out: easier to scan).
    """
    values = np.asarray(values, dtype=np.float64)
    left = int(max([len(r) for r in rows] + [4]) * _CHAR_W) + 10
    top = 22 + int(max([len(c) for c in columns] + [4]) * _CHAR_W * 0.75) + 8
    width = left + cell * len(columns) + 10
    height = top + cell * len(rows) + 8
    out = [f'<text x="2" y="14" font-size="12" font-weight="bold">{esc(title)}</text>']
    for j, col in enumerate(columns):
        x = left + j * cell + cell / 2
        out.append(f'<text transform="translate({x + 3:.1f},{top - 4}) rotate(-50)" '
                   f'font-size="10">{esc(col)}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell
        out.append(f'<text x="{left - 5}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
                   f"{esc(row)}</text>")
        for j, col in enumerate(columns):
            v = values[i, j]
            x = left + j * cell
            if not np.isfinite(v):
                continue
            t = v / vmax if vmax > 0 else 0.0
            fill = _ramp(t, end_rgb)
            out.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                       f'fill="{fill}" stroke="#e6e6e6" stroke-width="0.5">'
                       f"<title>{esc(row)}, {esc(col)}: {value_format.format(v)}</title></rect>")
            if v or show_zero:
                color = "#ffffff" if t > 0.55 else "#222222"
                out.append(f'<text x="{x + cell / 2 - 0.5:.1f}" y="{y + cell / 2 + 3.5:.1f}" '
                           f'text-anchor="middle" font-size="9" fill="{color}" '
                           f'pointer-events="none">{value_format.format(v)}</text>')
    for j in separators:
        x = left + j * cell - 0.5
        out.append(f'<line x1="{x}" y1="{top - 2}" x2="{x}" y2="{top + cell * len(rows)}" '
                   'stroke="#333" stroke-width="1.2"/>')
    return (f'<svg class="plot matrix" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}" '
            f'font-family="sans-serif" font-size="11" fill="#222">{"".join(out)}</svg>')


def layer_distribution_svg(
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    layer_keys: Sequence[str],
    k: int,
) -> str:
    """Where each method's top-``k`` neurons per concept sit: one concept x layer matrix per
    method, side by side (cf. Figure 2 of the survey), on one colour scale.

    Args:
        counts: method -> concept -> ``"L{layer}.{component}"`` -> count.
        layer_keys: the columns, in display order (every layer of the store).
        k: the k of top-k (for the titles).
    """
    methods = list(counts)
    concepts = list(dict.fromkeys(c for m in methods for c in counts[m]))
    vmax = max([1] + [v for m in methods for c in counts[m].values() for v in c.values()])
    comps = [key.split(".", 1)[1] for key in layer_keys]
    separators = [j for j in range(1, len(comps)) if comps[j] != comps[j - 1]]
    panels = []
    for method in methods:
        grid = np.array([[counts[method][c].get(key, 0) if c in counts[method] else np.nan
                          for key in layer_keys] for c in concepts], dtype=np.float64)
        panels.append(heatmap_grid_svg(method, concepts, layer_keys,
                                       grid.reshape(len(concepts), len(layer_keys)), vmax,
                                       separators=separators))
    key = (f'<span class="legend">0 <span class="bar" style="background:linear-gradient('
           f'to right, #fff, rgb(8,81,156))"></span> {vmax} of the top {k}</span>')
    return f'<div class="grid">{"".join(panels)}</div>{key}'


def concept_layers_svg(
    concept: str,
    counts: Mapping[str, Mapping[str, int]],
    layer_keys: Sequence[str],
    k: int,
    expected: Mapping[str, float] | None = None,
) -> str:
    """Grouped bars: how many of each method's top-``k`` neurons for one concept per layer.

    With ``expected`` (layer -> share of all ranked neurons in it), the survey's view
    (Fig. 2 of Sajjad et al. 2022): bars are the *share* of each method's top ``k`` in each
    layer, and a dashed mark per layer is the share random-k would have there (the layer's
    share of all ranked neurons), so a layer above its mark is over-represented.

    Hand-written SVG rather than matplotlib: there is one per concept page, and this takes a
    millisecond where a matplotlib figure takes a good part of a second.
    """
    totals = {m: max(sum(c.values()), 1) if expected is not None else 1
              for m, c in counts.items()}
    # Shares in percent against random-k, or plain counts.
    values = {m: {key: (100.0 * v / totals[m] if expected is not None else float(v))
                  for key, v in c.items()} for m, c in counts.items()}
    unit = "%" if expected is not None else ""
    methods = list(values)
    n_groups, n_series = len(layer_keys), max(len(methods), 1)
    bar = 7 if n_series > 3 else 10
    group_w = n_series * bar + 10
    left, top, bottom = 34, 26, 70
    legend_w = 150
    width = left + max(n_groups * group_w, 200) + 20 + legend_w
    ph = 150
    height = top + ph + bottom
    peak = max([1] + [v for m in methods for v in values[m].values()]
               + [100.0 * v for v in (expected or {}).values()])
    if expected is not None:
        peak = float(min(100, 10 * np.ceil(peak / 10)))
    what = "share of the top" if expected is not None else "layer of the top"
    out = [f'<text x="{left}" y="14" font-size="12" font-weight="bold">'
           f"{esc(concept)}: {what} {k} neurons per layer</text>"]
    for t in sorted({0, peak // 2, peak}):
        y = top + ph - ph * t / peak
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + n_groups * group_w}" '
                   f'y2="{y:.1f}" stroke="#ddd"/><text x="{left - 4}" y="{y + 3:.1f}" '
                   f'text-anchor="end">{t:g}{unit}</text>')
    for g, key in enumerate(layer_keys):
        x0 = left + g * group_w + 5
        for i, m in enumerate(methods):
            v = values[m].get(key, 0)
            h = ph * v / peak
            out.append(f'<rect x="{x0 + i * bar}" y="{top + ph - h:.1f}" width="{bar - 1}" '
                       f'height="{h:.1f}" fill="{METHOD_COLORS[i % len(METHOD_COLORS)]}">'
                       f"<title>{esc(m)}, {esc(key)}: {v:.3g}{unit}</title></rect>")
        if expected is not None:
            e = 100.0 * expected.get(key, 0.0)
            y = top + ph - ph * e / peak
            out.append(f'<line x1="{x0 - 2}" y1="{y:.1f}" x2="{x0 + n_series * bar + 1}" '
                       f'y2="{y:.1f}" stroke="{CONDITION_COLORS["random"]}" stroke-width="2" '
                       f'stroke-dasharray="3,2"><title>random-{k} expectation, {esc(key)}: '
                       f"{e:.3g}%</title></line>")
        cx = x0 + n_series * bar / 2
        out.append(f'<text transform="translate({cx:.1f},{top + ph + 8}) rotate(60)" '
                   f'font-size="10">{esc(key)}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + n_groups * group_w}" '
               f'y2="{top + ph}" stroke="#333"/>')
    lx = left + n_groups * group_w + 20
    for i, m in enumerate(methods):
        y = top + 12 + i * 16
        out.append(f'<rect x="{lx}" y="{y - 9}" width="10" height="10" '
                   f'fill="{METHOD_COLORS[i % len(METHOD_COLORS)]}"/>'
                   f'<text x="{lx + 14}" y="{y}">{esc(m)}</text>')
    if expected is not None:
        y = top + 12 + len(methods) * 16
        out.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 10}" y2="{y - 4}" '
                   f'stroke="{CONDITION_COLORS["random"]}" stroke-width="2" '
                   f'stroke-dasharray="3,2"/><text x="{lx + 14}" y="{y}">random-{k}</text>')
    return (f'<svg class="plot bars" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="layer distribution for '
            f'{esc(concept)}" font-family="sans-serif" font-size="11" fill="#222">'
            f'{"".join(out)}</svg>')


def agreement_svg(methods: Sequence[str], matrix: np.ndarray, k: int) -> str:
    """Method x method matrix of mean overlap@k over concepts (0 to 1)."""
    return heatmap_grid_svg(f"Mean overlap@{k} over concepts", list(methods), list(methods),
                            matrix, 1.0, end_rgb=(0, 109, 44), value_format="{:.2f}", cell=42,
                            show_zero=True)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = np.ceil(lo / step - 1e-9) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


def _tick_label(v: float) -> str:
    """``5``, ``2976``, ``0.25``: integers in full, the rest with 3 significant digits."""
    v = float(v) + 0.0  # no "-0"
    if abs(v) < 1e-12:
        return "0"
    return str(int(round(v))) if float(v).is_integer() and abs(v) < 1e7 else f"{v:.3g}"


_SHAPES = {"o": "circle", "s": "square", "v": "triangle"}


def _curve_style(name: str, i: int) -> tuple[str, str]:
    """Colour and marker of a curve: the condition's (top / random / bottom, the same in
    every figure, see :mod:`neuronscope.palette`) or else the i-th method colour."""
    cond = condition_of(name)
    if cond in CONDITION_MARKERS:
        return CONDITION_COLORS[cond], _SHAPES[CONDITION_MARKERS[cond]]
    return METHOD_COLORS[i % len(METHOD_COLORS)], "circle"


def _level_style(name: str, j: int) -> tuple[str, str]:
    """Colour and dashes of a reference level (all neurons, majority class, ...)."""
    cond = condition_of(name)
    if cond in CONDITION_DASHES:
        return CONDITION_COLORS[cond], CONDITION_DASHES[cond]
    return METHOD_COLORS[(j + 2) % len(METHOD_COLORS)], "4,2"


def _marker(kind: str, x: float, y: float, color: str, tip: str) -> str:
    title = f"<title>{esc(tip)}</title>"
    if kind == "square":
        return (f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{color}">'
                f"{title}</rect>")
    if kind == "triangle":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y + 3:.1f} {x + 4:.1f},'
                f'{y + 3:.1f}" fill="{color}">{title}</polygon>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{color}">{title}</circle>'


def curves_svg(
    title: str,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    hlines: Mapping[str, float] | None = None,
) -> str:
    """Line chart of named curves (e.g. accuracy vs number of top/random/bottom neurons) with
    optional labelled reference levels (all neurons, majority class), as hand-written SVG.

    Not matplotlib: a report can hold one per concept and evaluation, and this is fast and
    small; hovering a point shows its values. The x axis turns logarithmic when x spans more
    than a factor 50 (neuron counts such as 10, 100, 1000).
    """
    hlines = dict(hlines or {})
    xs_all = [float(x) for xs, _ in curves.values() for x in xs]
    ys_all = [float(y) for _, ys in curves.values() for y in ys] + list(hlines.values())
    if not xs_all:
        return '<p class="muted">no data</p>'
    log = min(xs_all) > 0 and max(xs_all) / min(xs_all) > 50
    tx = np.log10 if log else (lambda v: v)
    x_lo, x_hi = float(tx(min(xs_all))), float(tx(max(xs_all)))
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = min(ys_all), max(ys_all)
    if 0 <= y_lo and y_hi <= 1:  # accuracies: show the whole 0..1 range, as readers expect
        y_lo, y_hi = 0.0, 1.0
    elif y_hi <= y_lo:
        y_lo, y_hi = y_lo - 1, y_hi + 1
    width, height, left, right, top, bottom = 500, 290, 52, 180, 28, 44
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (float(tx(v)) - x_lo) / (x_hi - x_lo) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y_lo) / (y_hi - y_lo) * ph

    out = [f'<text x="{left}" y="16" font-size="11" font-weight="bold">{esc(title[:90])}</text>']
    for t in _nice_ticks(y_lo, y_hi):
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" '
                   f'stroke="#e3e3e3"/><text x="{left - 5}" y="{sy(t) + 3:.1f}" '
                   f'text-anchor="end">{_tick_label(t)}</text>')
    xticks = sorted(set(xs_all)) if len(set(xs_all)) <= 8 else [
        10 ** t if log else t for t in _nice_ticks(x_lo, x_hi)]
    shown: list[float] = []
    for t in xticks:  # drop ticks crowding the previous one (0 and 1 of 0..10000)
        if not shown or sx(t) - sx(shown[-1]) >= 28:
            shown.append(t)
    for t in shown:
        out.append(f'<line x1="{sx(t):.1f}" y1="{top + ph}" x2="{sx(t):.1f}" y2="{top + ph + 4}" '
                   f'stroke="#333"/><text x="{sx(t):.1f}" y="{top + ph + 15}" '
                   f'text-anchor="middle">{_tick_label(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               'stroke="#333" stroke-width="0.8"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">'
               f"{esc(xlabel)}{' (log scale)' if log else ''}</text>")
    out.append(f'<text transform="translate(13,{top + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    legend = []
    for j, (name, level) in enumerate(hlines.items()):
        color, dash = _level_style(name, j)
        out.append(f'<line x1="{left}" y1="{sy(level):.1f}" x2="{left + pw}" '
                   f'y2="{sy(level):.1f}" stroke="{color}" stroke-dasharray="{dash}">'
                   f"<title>{esc(name)}: {level:.4g}</title></line>")
        legend.append((f'<line x1="0" y1="0" x2="16" y2="0" stroke="{color}" '
                       f'stroke-dasharray="{dash}"/>', f"{name} ({level:.3g})"))
    for i, (name, (xs, ys)) in enumerate(curves.items()):
        color, kind = _curve_style(name, i)
        pts = [(sx(x), sy(y), x, y) for x, y in zip(xs, ys, strict=True)]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"/>')
        out += [_marker(kind, px, py, color, f"{name}: {x:.4g} → {y:.4g}")
                for px, py, x, y in pts]
        legend.append((_marker(kind, 8, 0, color, name)
                       + f'<line x1="0" y1="0" x2="16" y2="0" stroke="{color}"/>', name))
    lx = left + pw + 12
    for j, (mark, text) in enumerate(legend):
        y = top + 8 + 16 * j
        out.append(f'<g transform="translate({lx},{y})">{mark}</g>'
                   f'<text x="{lx + 22}" y="{y + 4}">{esc(text[:30])}</text>')
    return (f'<svg class="plot curves" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}" '
            f'font-family="sans-serif" font-size="10" fill="#222">{"".join(out)}</svg>')
