"""Activation heatmaps: words coloured by one neuron's activation, as HTML or SVG.

Colours are diverging: white at 0, red for positive and blue for negative activations, the
intensity growing linearly with ``|activation| / scale`` (clipped at 1). The scale is stated
next to every heatmap, so two heatmaps with the same scale compare directly; hovering a word
shows its exact activation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuronscope.report.html import esc, fmt

#: End colours of the diverging scale (ColorBrewer RdBu ends), reached at |value| = scale.
POSITIVE_RGB = (178, 24, 43)
NEGATIVE_RGB = (33, 102, 172)

# Character width used to lay out SVG text without a font-metrics library (a monospace-ish
# estimate is enough: boxes only need to fit the word).
_CHAR_W = 7.4


def activation_rgb(value: float, scale: float) -> tuple[int, int, int]:
    """RGB of an activation: white at 0, red (> 0) or blue (< 0) at ``|value| >= scale``."""
    if not np.isfinite(value) or scale <= 0 or not np.isfinite(scale):
        return (255, 255, 255)
    t = min(abs(float(value)) / float(scale), 1.0)
    end = POSITIVE_RGB if value > 0 else NEGATIVE_RGB
    return tuple(round(255 + (e - 255) * t) for e in end)  # type: ignore[return-value]


def activation_color(value: float, scale: float) -> str:
    """``activation_rgb`` as a ``#rrggbb`` string."""
    r, g, b = activation_rgb(value, scale)
    return f"#{r:02x}{g:02x}{b:02x}"


def text_color(value: float, scale: float) -> str:
    """Black on light backgrounds, white on dark ones (keeps strong words readable)."""
    r, g, b = activation_rgb(value, scale)
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "#111111"


def default_scale(values: Sequence[float] | np.ndarray) -> float:
    """The scale used when none is given: the largest |value| shown (1.0 if all are 0)."""
    arr = np.abs(np.asarray(values, dtype=np.float64))
    arr = arr[np.isfinite(arr)]
    top = float(arr.max()) if arr.size else 0.0
    return top if top > 0 else 1.0


def word_span(word: str, value: float, scale: float, extra_class: str = "") -> str:
    """One word as a coloured ``<span>``; hovering shows its activation."""
    cls = "w" + (f" {extra_class}" if extra_class else "")
    style = f"background-color:{activation_color(value, scale)};color:{text_color(value, scale)}"
    return (
        f'<span class="{cls}" style="{style}" data-a="{value:.6g}" '
        f'title="{esc(word)}: {value:+.4g}">{esc(word)}</span>'
    )


def heatmap_html(
    words: Sequence[str],
    values: Sequence[float] | np.ndarray,
    scale: float | None = None,
    center: int | None = None,
    underline: Sequence[bool] | None = None,
) -> str:
    """Words coloured by activation as a ``<div class="hm">`` of inline-styled spans.

    Args:
        words: the words, in order.
        values: one activation per word.
        scale: |activation| at which colours saturate; default: the largest |value| here.
        center: index of a word to outline (the activating word of a context).
        underline: words to underline (e.g. those carrying the concept of a page).
    """
    values = np.asarray(values, dtype=np.float64)
    if len(words) != len(values):
        raise ValueError(f"{len(words)} words but {len(values)} activations")
    scale = default_scale(values) if scale is None else float(scale)
    spans = []
    for i, (word, value) in enumerate(zip(words, values.tolist(), strict=True)):
        classes = []
        if center is not None and i == center:
            classes.append("c")
        if underline is not None and underline[i]:
            classes.append("u")
        spans.append(word_span(word, value, scale, " ".join(classes)))
    return f'<div class="hm" data-scale="{scale:.6g}">{" ".join(spans)}</div>'


def heatmap_svg(
    words: Sequence[str],
    values: Sequence[float] | np.ndarray,
    scale: float | None = None,
    width: int = 640,
    standalone: bool = False,
) -> str:
    """Words coloured by activation as SVG (wrapped into lines ``width`` pixels wide).

    Each word is a ``<rect>`` plus ``<text>`` in a group with a ``<title>`` tooltip holding its
    activation. ``standalone=True`` adds the SVG namespace so the string can be saved as an
    ``.svg`` file; inline in HTML it is not needed (and the report keeps every page free of
    URLs).
    """
    values = np.asarray(values, dtype=np.float64)
    if len(words) != len(values):
        raise ValueError(f"{len(words)} words but {len(values)} activations")
    scale = default_scale(values) if scale is None else float(scale)
    line_h, pad, gap = 24, 4, 4
    x, y = 0.0, 0.0
    parts = []
    for word, value in zip(words, values.tolist(), strict=True):
        w = len(word) * _CHAR_W + 2 * pad
        if x > 0 and x + w > width:
            x, y = 0.0, y + line_h
        parts.append(
            f'<g><title>{esc(word)}: {value:+.4g}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{line_h - 4}" rx="3" '
            f'fill="{activation_color(value, scale)}"/>'
            f'<text x="{x + pad:.1f}" y="{y + 15:.1f}" fill="{text_color(value, scale)}">'
            f"{esc(word)}</text></g>"
        )
        x += w + gap
    height = int(y + line_h)
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    return (
        f'<svg{ns} class="hm-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="monospace" font-size="12" '
        f'data-scale="{scale:.6g}">{"".join(parts)}</svg>'
    )


def legend(scale: float, what: str = "") -> str:
    """The colour key of heatmaps with this scale, stating the normalization."""
    note = f" ({esc(what)})" if what else ""
    return (
        f'<span class="legend"><span>{-scale:.3g}</span><span class="bar"></span>'
        f"<span>+{scale:.3g}</span><span>colours saturate at |activation| = {scale:.3g}"
        f"{note}; white = 0; hover a word for its value</span></span>"
    )


#: Auto rule of :func:`needs_log_counts`: the tallest bin over the median non-empty bin.
LOG_RATIO = 20.0
HISTOGRAM_SCALES = ("auto", "linear", "log")


def needs_log_counts(counts: np.ndarray, ratio: float = LOG_RATIO) -> bool:
    """Whether a histogram's counts need a log axis: its tallest bin holds more than
    ``ratio`` times as many values as the median non-empty bin.

    That is the case for sparse neurons (most words in the bin at 0: a ReLU/GELU MLP neuron)
    and for heavy tails (a few words far out): on a linear axis their rare bins are bars of
    less than a pixel, and the tail the card is about is invisible.
    """
    nonzero = np.asarray(counts)[np.asarray(counts) > 0]
    return bool(nonzero.size and nonzero.max() > ratio * np.median(nonzero))


def histogram_svg(
    values: np.ndarray,
    bins: int = 40,
    width: int = 420,
    height: int = 170,
    scale: float | None = None,
    log: bool | str = "auto",
) -> str:
    """A small activation histogram as inline SVG (bars coloured like the heatmaps).

    Drawn by hand rather than with matplotlib: a report has one per neuron card and this is
    a few kilobytes and a millisecond each.

    Args:
        log: count axis: ``"auto"`` (log where :func:`needs_log_counts`), ``"log"`` /
            True, or ``"linear"`` / False. On the log axis a bar's height is
            ``log10(1 + count)``, so a bin of one word still shows.
    """
    if isinstance(log, str) and log not in HISTOGRAM_SCALES:
        raise ValueError(f"log must be one of {HISTOGRAM_SCALES} or a bool, got {log!r}")
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return '<p class="muted">no activations</p>'
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    scale = default_scale(values) if scale is None else scale
    left, right, top, bottom = 44, 10, 8, 34
    pw, ph = width - left - right, height - top - bottom
    peak = max(int(counts.max()), 1)
    use_log = needs_log_counts(counts) if log == "auto" else log in (True, "log")
    height_of = (lambda c: np.log10(1 + c) / np.log10(1 + peak)) if use_log else (
        lambda c: c / peak)

    def sx(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    bars = []
    for c, a, b in zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        h = ph * float(height_of(c))
        mid = (a + b) / 2
        bars.append(
            f'<rect x="{sx(a):.1f}" y="{top + ph - h:.1f}" width="{max(sx(b) - sx(a) - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{activation_color(mid, scale)}" stroke="#555" '
            f'stroke-width="0.4"><title>[{a:.3g}, {b:.3g}): {c} words</title></rect>'
        )
    axis = (
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>'
    )
    ticks = []
    for v in (lo, (lo + hi) / 2, hi):
        ticks.append(
            f'<text x="{sx(v):.1f}" y="{top + ph + 14}" text-anchor="middle">{fmt(v)}</text>'
        )
    if lo < 0 < hi:
        ticks.append(
            f'<line x1="{sx(0):.1f}" y1="{top}" x2="{sx(0):.1f}" y2="{top + ph}" '
            'stroke="#222" stroke-dasharray="3,3"/>'
        )
    mean = float(values.mean())
    ticks.append(
        f'<line x1="{sx(mean):.1f}" y1="{top}" x2="{sx(mean):.1f}" y2="{top + ph}" '
        f'stroke="#e08b00" stroke-width="1.5"><title>mean {mean:.4g}</title></line>'
    )
    if use_log:  # decade ticks between 1 and the peak
        for t in (10 ** e for e in range(1, len(str(peak)))):
            if t < peak:
                y = top + ph - ph * float(height_of(t))
                ticks.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{t}'
                             f'</text><line x1="{left - 2}" y1="{y:.1f}" x2="{left}" '
                             f'y2="{y:.1f}" stroke="#333"/>')
    axis_note = "; count axis log scale" if use_log else ""
    labels = (
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>'
        f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">0</text>'
        f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">activation '
        f"({values.size} words; orange: mean, dashed: 0{axis_note})</text>"
    )
    return (
        f'<svg class="plot hist{" log" if use_log else ""}" data-scale="'
        f'{"log" if use_log else "linear"}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="activation histogram" font-family="sans-serif" font-size="10" '
        f'fill="#333">{"".join(bars)}{axis}{"".join(ticks)}{labels}</svg>'
    )
