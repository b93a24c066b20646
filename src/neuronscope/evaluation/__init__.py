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

import importlib
from typing import Any

# Public name -> submodule. Imported on first use, so that `neuronscope` CLI start-up (which
# imports `neuronscope.cli.evaluation`) does not pay for matplotlib, pandas and scipy.stats.
_EXPORTS: dict[str, str] = {
    "NeuronMatrix": "_common",
    "Probe": "_common",
    "ProbeFactory": "_common",
    "default_probe_factory": "_common",
    "load_neurons": "_common",
    "train_test_masks": "_common",
    "AblationCurves": "ablation",
    "ablation_curves": "ablation",
    "default_steps": "ablation",
    "agreement_matrix": "agreement",
    "compare_rankings": "agreement",
    "overlap_at_k": "agreement",
    "rank_correlation": "agreement",
    "ControlSelectivity": "control",
    "control_selectivity": "control",
    "entropy_bits": "information",
    "equal_frequency_bins": "information",
    "gaussian_mutual_information": "information",
    "neuron_mutual_information": "information",
    "plugin_mutual_information": "information",
    "LayerDistribution": "layers",
    "layer_distribution": "layers",
    "check_ranking_matches_store": "pipeline",
    "run_evaluation": "pipeline",
    "plot_ablation": "plots",
    "plot_layer_distribution": "plots",
    "plot_selection": "plots",
    "save_figure": "plots",
    "DEFAULT_KS": "selected",
    "MinimalSubsetResult": "selected",
    "SelectionResult": "selected",
    "evaluate_selection": "selected",
    "minimal_subset": "selected",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "DEFAULT_KS",
    "AblationCurves",
    "ControlSelectivity",
    "LayerDistribution",
    "MinimalSubsetResult",
    "NeuronMatrix",
    "Probe",
    "ProbeFactory",
    "SelectionResult",
    "ablation_curves",
    "agreement_matrix",
    "check_ranking_matches_store",
    "compare_rankings",
    "control_selectivity",
    "default_probe_factory",
    "default_steps",
    "entropy_bits",
    "equal_frequency_bins",
    "evaluate_selection",
    "gaussian_mutual_information",
    "layer_distribution",
    "load_neurons",
    "minimal_subset",
    "neuron_mutual_information",
    "overlap_at_k",
    "plot_ablation",
    "plot_layer_distribution",
    "plot_selection",
    "plugin_mutual_information",
    "rank_correlation",
    "run_evaluation",
    "save_figure",
    "train_test_masks",
]
