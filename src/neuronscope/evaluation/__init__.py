"""Evaluation of neuron rankings (issue #4).

* :func:`evaluate_selection`, :func:`minimal_subset`: probes retrained on the top / random /
  bottom ``k`` neurons, and the fewest top neurons keeping most of the full accuracy.
* :func:`ablation_curves`: accuracy of a fixed probe as neurons are zeroed or mean-replaced in
  ranking order (Dalvi et al. 2019).
* :func:`control_selectivity`: task minus control-task accuracy (Hewitt & Liang 2019).
* :func:`gaussian_mutual_information`, :func:`neuron_mutual_information`,
  :func:`plugin_mutual_information`: mutual information with the labels, in bits.
* :func:`layer_distribution`: top neurons per concept and layer (survey, Figure 2).
* :func:`overlap_at_k`, :func:`rank_correlation`, :func:`agreement_matrix`,
  :func:`compare_rankings`: agreement between rankings (Antverg & Belinkov 2022).
* :func:`plot_selection`, :func:`plot_ablation`, :func:`plot_layer_distribution`: PNG + SVG.
* :func:`run_evaluation`: everything at once, as ``neuronscope evaluate`` runs it.
"""

from __future__ import annotations

from neuronscope._lazy import lazy_exports

# Public name -> submodule. Imported on first use, so that `neuronscope` CLI start-up (which
# imports `neuronscope.cli.evaluation`) does not pay for matplotlib, pandas and scipy.stats.
_EXPORTS: dict[str, list[str]] = {
    "_common": [
        "NeuronMatrix", "Probe", "ProbeFactory", "default_probe_factory", "load_neurons",
        "train_test_masks"
    ],
    "ablation": ["AblationCurves", "ablation_curves", "default_steps"],
    "agreement": ["agreement_matrix", "compare_rankings", "overlap_at_k", "rank_correlation"],
    "control": ["ControlSelectivity", "control_selectivity"],
    "information": [
        "entropy_bits", "equal_frequency_bins", "gaussian_mutual_information",
        "neuron_mutual_information", "plugin_mutual_information"
    ],
    "layers": ["LayerDistribution", "layer_distribution"],
    "pipeline": ["check_ranking_matches_store", "run_evaluation"],
    "plots": ["plot_ablation", "plot_layer_distribution", "plot_selection", "save_figure"],
    "selected": [
        "DEFAULT_KS", "MinimalSubsetResult", "SelectionResult", "evaluate_selection",
        "minimal_subset"
    ],
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
