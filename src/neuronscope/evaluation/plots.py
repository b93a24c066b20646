"""Figures of the evaluations, each written as PNG and SVG.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas), never through
``pyplot``: no global state, no GUI backend, safe in threads and on headless machines.
Each function takes an output path *stem* (``out/selection`` or ``out/selection.png``) and
returns the written paths.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation.ablation import AblationCurves
from neuronscope.evaluation.layers import LayerDistribution
from neuronscope.evaluation.selected import SelectionResult
from neuronscope.io import atomic_path
from neuronscope.methods.ranking import GLOBAL
from neuronscope.palette import CONDITION_COLORS

FORMATS = ("png", "svg")
# One colour per condition across every figure (report plots included).
_COLORS = CONDITION_COLORS


def _new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` (folders created); returns paths."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        out = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt)
        written.append(out)
    return written


def _title(kind: str, method: str, concept: str | None) -> str:
    return f"{kind}: {method} ranking, " + (f"concept {concept}" if concept else "all labels")


def plot_selection(result: SelectionResult, path: str | os.PathLike) -> list[Path]:
    """Accuracy of probes retrained on the top / random / bottom ``k`` neurons against ``k``,
    with the full-neuron probe and the majority baseline as horizontal lines."""
    fig = _new_figure()
    ax = fig.add_subplot()
    ks = np.asarray(result.ks)
    ax.plot(ks, result.top, "o-", color=_COLORS["top"], label="top-k")
    ax.errorbar(ks, result.random_mean, yerr=result.random_std, fmt="s--", capsize=3,
                color=_COLORS["random"], label=f"random-k (mean ± sd, {len(result.random_runs[0])}"
                " draws)")
    ax.plot(ks, result.bottom, "v-", color=_COLORS["bottom"], label="bottom-k")
    ax.axhline(result.full_accuracy, color=_COLORS["full"], linestyle=":",
               label=f"all {result.n_neurons} neurons ({result.full_accuracy:.3f})")
    ax.axhline(result.majority_accuracy, color=_COLORS["majority"], linestyle="-.",
               linewidth=0.8, label=f"majority class ({result.majority_accuracy:.3f})")
    if len(ks) > 1 and ks.max() / ks.min() >= 10:
        ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("number of neurons k")
    return _finish_accuracy_plot(
        fig, ax, _title("Probing with selected neurons", result.method, result.concept), path)


def _finish_accuracy_plot(fig: Figure, ax: Axes, title: str,
                          path: str | os.PathLike) -> list[Path]:
    """The y axis, title, grid and legend shared by the accuracy plots; saves the figure."""
    ax.set_ylabel("probe accuracy (held-out)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def plot_ablation(curves: AblationCurves, path: str | os.PathLike) -> list[Path]:
    """Drop in gain of a fixed probe against the number of ablated neurons, per order.

    The y axis is the share of the intact probe's gain over the majority class that is lost
    (0: intact, 1: down to the majority class), never raw accuracy, which a probe falling
    back to the majority class inflates. Random orders: mean ± sd band.
    """
    fig = _new_figure()
    ax = fig.add_subplot()
    steps = np.asarray(curves.steps)
    drop = curves.drop_in_gain
    ax.plot(steps, drop["top"], "o-", color=_COLORS["top"], label="top neurons first")
    mean, std = np.asarray(drop["random_mean"]), np.asarray(drop["random_std"])
    ax.plot(steps, mean, "s--", color=_COLORS["random"],
            label=f"random order (mean ± sd, {curves.n_random} orders)")
    ax.fill_between(steps, mean - std, mean + std, color=_COLORS["random"], alpha=0.2)
    ax.plot(steps, drop["bottom"], "v-", color=_COLORS["bottom"], label="bottom neurons first")
    ax.axhline(1.0, color=_COLORS["majority"], linestyle="-.", linewidth=0.8,
               label=f"down to the majority class ({curves.majority:.3f})")
    ax.set_xlabel(f"neurons ablated ({'set to 0' if curves.mode == 'zero' else 'set to mean'})"
                  f", of {curves.n_neurons}")
    ax.set_ylabel("drop in gain over the majority class")
    top = max(1.05, float(np.nanmax([*drop["top"], *drop["bottom"], *(mean + std)])) + 0.05)
    ax.set_ylim(min(-0.05, float(np.nanmin([*drop["top"], *drop["bottom"]])) - 0.05), top)
    ax.set_title(_title("Ablation in a trained probe", curves.method, curves.concept))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def plot_layer_distribution(
    dist: LayerDistribution,
    path: str | os.PathLike,
    kind: str = "stacked",
    normalize: bool = False,
) -> list[Path]:
    """Bars of top neurons per concept and layer (like Figure 2 of the survey).

    ``kind="stacked"``: one bar per concept, split by layer (lower layers lighter);
    ``"grouped"``: one group per layer, one bar per concept. ``normalize`` shows shares of each
    concept's neurons instead of counts.
    """
    if kind not in ("stacked", "grouped"):
        raise NeuronscopeError(f"kind must be 'stacked' or 'grouped', got {kind!r}")
    if not dist.columns:
        raise NeuronscopeError("the layer distribution is empty: nothing to plot")
    values = dist.shares() if normalize else dist.counts.astype(np.float64)
    # matplotlib hides legend labels starting with "_", so the global row gets a plain name.
    labels = ["all concepts" if c == GLOBAL else c for c in dist.concepts]
    n_concepts, n_layers = values.shape
    width = min(max(6.4, 0.45 * (n_concepts if kind == "stacked" else n_layers * 1.5) + 3), 18)
    fig = _new_figure(width, 4.6)
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    if kind == "stacked":
        colors = cmap(np.linspace(0.95, 0.1, n_layers))
        bottom = np.zeros(n_concepts)
        x = np.arange(n_concepts)
        for j, col in enumerate(dist.columns):
            ax.bar(x, values[:, j], bottom=bottom, color=colors[j], label=col,
                   edgecolor="white", linewidth=0.4)
            bottom += values[:, j]
        ax.set_xticks(x, labels, rotation=45 if n_concepts > 6 else 0,
                      ha="right" if n_concepts > 6 else "center")
        ax.set_xlabel("concept")
        # Legend top-down like the stack: highest layer first.
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], title="layer", fontsize="small",
                  loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        colors = cmap(np.linspace(0.1, 0.95, n_concepts))
        x = np.arange(n_layers)
        bar = 0.8 / n_concepts
        for i, concept in enumerate(labels):
            ax.bar(x - 0.4 + bar * (i + 0.5), values[i], width=bar, color=colors[i],
                   label=concept)
        ax.set_xticks(x, dist.columns, rotation=45 if n_layers > 8 else 0,
                      ha="right" if n_layers > 8 else "center")
        ax.set_xlabel("layer")
        ax.legend(title="concept", fontsize="small", loc="upper left",
                  bbox_to_anchor=(1.0, 1.0), ncol=1 if n_concepts <= 20 else 2)
    what = f"top {dist.k}" if dist.k is not None else f"top {dist.mass:.0%} mass"
    ax.set_ylabel("share of neurons" if normalize else "number of neurons")
    ax.set_title(f"Layer distribution of the {what} neurons ({dist.method})")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
