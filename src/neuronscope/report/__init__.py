"""Reports: activation heatmaps, neuron cards and a self-contained static report site.

* :func:`heatmap_html` / :func:`heatmap_svg`: words coloured by one neuron's activation.
* :class:`NeuronView`: one neuron's card, shown inline in Jupyter.
* :func:`build_report`: the static site (``index.html``, concept pages, neuron cards).
* :func:`report_for_demo`: the report of a ``neuronscope demo`` folder.
"""

from neuronscope.methods.ranking import ranking_html
from neuronscope.report.heatmap import (
    activation_color,
    activation_rgb,
    heatmap_html,
    heatmap_svg,
    histogram_svg,
)
from neuronscope.report.neuron import CorpusIndex, NeuronSummary, NeuronView
from neuronscope.report.rankings import overlap_at_k
from neuronscope.report.site import build_report, report_for_demo

__all__ = [
    "CorpusIndex",
    "NeuronSummary",
    "NeuronView",
    "activation_color",
    "activation_rgb",
    "build_report",
    "heatmap_html",
    "heatmap_svg",
    "histogram_svg",
    "overlap_at_k",
    "ranking_html",
    "report_for_demo",
]
