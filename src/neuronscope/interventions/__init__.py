"""Interventions on running models: ablation, attribution and steering of named neurons.

* :func:`intervene` / :class:`Intervention`: edit named neurons (zero, mean, constant, scale,
  add) at all, the last, or chosen token positions, during forward passes and generation.
* :func:`ablation_effect`: top-k vs random-k vs bottom-k ablation, measured on the model's
  own loss (or accuracy) for a concept's words versus the others.
* :class:`ErasureRanking`, :class:`ClassFlipRanking`: rankings from ablation effects.
* :func:`knowledge_neurons`: integrated-gradients knowledge neurons (Dai et al. 2021).
* :func:`steer`: force a concept's neurons during generation and count the concept.
"""

from __future__ import annotations

from neuronscope._lazy import lazy_exports

#: public name -> defining module; imported on first use, so that loading the CLI (which
#: imports ``neuronscope.cli.interventions``) does not import torch and Captum.
_EXPORTS = {
    "neuronscope.interventions.ablation": ["AblationResult", "ablation_effect"],
    "neuronscope.interventions.ablation_ranking": ["ClassFlipRanking", "ErasureRanking"],
    "neuronscope.interventions.editing": [
        "OPS", "EncodedWords", "Intervention", "PromptTooLongError", "encode_prompt",
        "encode_words", "intervene", "neuron_means", "token_positions",
    ],
    "neuronscope.interventions.knowledge": [
        "KnowledgeNeurons", "PromptAttribution", "attribute", "default_other_facts",
        "edit_effect", "knowledge_neurons", "parse_fact",
    ],
    "neuronscope.interventions.scoring": ["ClassificationScorer", "LMScorer", "TokenScores"],
    "neuronscope.interventions.steering": [
        "SteeringResult", "concept_values", "generate", "regex_detector", "spacy_detector",
        "steer", "tag_rate", "word_detector",
    ],
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
