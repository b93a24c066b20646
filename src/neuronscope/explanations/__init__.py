"""Explaining neurons beyond rankings (survey §6.3, §6.4, §7).

* :class:`CompositionalExplainer`: logical formulas of concepts that match a neuron's top
  activations (Mu & Andreas 2020).
* :class:`LatentConceptDiscovery`: clusters of a layer's word representations aligned with
  annotated concepts; the unaligned ones are candidate novel concepts (Dalvi et al. 2022).
* :class:`NeuronTextGenerator`: token sequences that excite a neuron, by Gumbel-softmax input
  optimization (Poerner, Roth & Schütze 2018).
* :class:`GeneticSelector` / :func:`compare_with_probe`: genetic search for neuron groups that
  encode a concept jointly, against the LinearProbe's top-k.
* :class:`DomainNeurons` / :func:`adaptation_effect`: neurons that separate two domains and
  the effect of shifting them (Gu et al. 2021; Antverg et al. 2022, IDANI).

Names are imported on first use, so the CLI can register the commands without loading torch.
"""

from __future__ import annotations

from neuronscope._lazy import lazy_exports

_EXPORTS = {
    "neuronscope.explanations.compositional": [
        "AtomSet", "CompositionalExplainer", "Explanation", "Formula", "ScoredFormula",
        "explain_neurons",
    ],
    "neuronscope.explanations.latent": [
        "ConceptDiscovery", "LatentCluster", "LatentConceptDiscovery",
    ],
    "neuronscope.interventions.generation": [
        "GeneratedText", "GenerationResult", "NeuronTextGenerator", "generate_for_neuron",
    ],
    "neuronscope.explanations.evolutionary": [
        "EvolutionResult", "GeneticSelector", "GroupProblem", "LDAClassifier",
        "ProbeComparison", "compare_with_probe", "planted_group_problem",
    ],
    "neuronscope.explanations.domains": [
        "AdaptationResult", "DomainNeurons", "DomainShift", "adaptation_effect",
        "adaptation_intervention", "cohens_d", "domain_shift", "shift_activations",
    ],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
