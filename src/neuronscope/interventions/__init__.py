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

import importlib
import sys
import types
from typing import Any

#: public name -> defining module; imported on first use, so that loading the CLI (which
#: imports ``neuronscope.cli.interventions``) does not import torch and Captum.
_EXPORTS = {
    "neuronscope.interventions.ablation": ["AblationResult", "ablation_effect"],
    "neuronscope.interventions.ablation_ranking": ["ClassFlipRanking", "ErasureRanking"],
    "neuronscope.interventions.intervene": [
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
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Keeps ``neuronscope.interventions.intervene`` the function, not the same-named module.

    Importing a submodule makes the import system set it as an attribute of its package,
    which would shadow the lazily exported function ``intervene``; that one assignment is
    skipped (the module stays in ``sys.modules``, so ``from ...intervene import X`` works).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "intervene" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = sorted(_WHERE)
