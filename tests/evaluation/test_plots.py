"""Figures are written as PNG and SVG."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation import (
    AblationCurves,
    LayerDistribution,
    SelectionResult,
    plot_ablation,
    plot_layer_distribution,
    plot_selection,
)


def _check(paths, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = svg.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text


def test_selection_plot(tmp_path):
    result = SelectionResult(
        method="probe", concept="NOUN", ks=[10, 50, 100], n_neurons=500, full_accuracy=0.95,
        majority_accuracy=0.7, top=[0.9, 0.93, 0.94], random_mean=[0.75, 0.8, 0.85],
        random_std=[0.02, 0.02, 0.01], random_runs=[[0.75, 0.75]] * 3, bottom=[0.7, 0.71, 0.72],
        top_neurons={}, n_train=100, n_test=20, random_state=0, pool_ids=np.arange(500),
    )
    _check(plot_selection(result, tmp_path / "sub" / "selection.png"), "selection")
    # The axis labels and the legend made it into the figure.
    svg = (tmp_path / "sub" / "selection.svg").read_text(encoding="utf-8")
    assert "number of neurons k" in svg and "top-k" in svg and "all 500 neurons" in svg


def test_ablation_plot(tmp_path):
    curves = AblationCurves(
        method="probe", concept=None, mode="mean", steps=[0, 1, 5, 10], n_neurons=10,
        top=[0.9, 0.6, 0.5, 0.5], bottom=[0.9, 0.9, 0.88, 0.5], random_mean=[0.9, 0.85, 0.7, 0.5],
        random_std=[0, 0.03, 0.05, 0], per_class={}, class_counts={"A": 5, "B": 5},
        majority=0.5, n_random=3, random_state=0,
    )
    # Derived from the accuracies: the share of the gain over the majority class lost.
    assert curves.drop_in_gain["top"] == pytest.approx([0.0, 0.75, 1.0, 1.0])
    assert curves.drop_in_gain["random_mean"] == pytest.approx([0.0, 0.125, 0.5, 1.0])
    assert curves.drop_in_gain["random_std"] == pytest.approx([0, 0.075, 0.125, 0])
    _check(plot_ablation(curves, tmp_path / "ablation"), "ablation")
    svg = (tmp_path / "ablation.svg").read_text(encoding="utf-8")
    assert "neurons ablated" in svg and "drop in gain over the majority class" in svg


@pytest.mark.parametrize("kind", ["stacked", "grouped"])
def test_layer_plot(tmp_path, kind):
    dist = LayerDistribution("probe", ["NOUN", "VERB", "ADJ"], ["L0.hidden", "L1.hidden"],
                             np.array([[3, 1], [0, 4], [2, 2]]), k=4)
    _check(plot_layer_distribution(dist, tmp_path / kind, kind=kind, normalize=kind == "grouped"),
           kind)


def test_layer_plot_failures(tmp_path):
    dist = LayerDistribution("probe", ["NOUN"], [], np.zeros((1, 0), dtype=int), k=4)
    with pytest.raises(NeuronscopeError, match="empty"):
        plot_layer_distribution(dist, tmp_path / "x")
    with pytest.raises(NeuronscopeError, match="kind"):
        plot_layer_distribution(dist, tmp_path / "x", kind="pie")
