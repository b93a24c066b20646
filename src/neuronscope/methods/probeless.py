"""Probeless ranking (Antverg & Belinkov 2022): differences of class-mean activations.

For concept ``c``, a neuron's score is ``sum_{c' != c} |q(c) - q(c')|`` where ``q(c)`` is its
mean activation over words labelled ``c``: neurons whose mean for ``c`` stands apart from every
other class come first. The global order uses the sum over all class pairs. No classifier is
trained, and one streaming pass over the store suffices (per-class moments, memory flat in
the number of words: :mod:`~neuronscope.methods.statistics`).

By default (``normalize=True``, a departure from the paper) the differences are measured in
units of the neuron's pooled within-class standard deviation (standardized mean differences,
Cohen's d). Raw differences grow with a neuron's scale, so outlier dimensions (MiniLM's
dimension 63 at every layer; SmolLM2's "massive activations") dominated every concept's top
neurons whatever their selectivity. Constant neurons score 0. ``normalize=False`` is the
paper's raw rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuronscope.methods.base import (
    Activations,
    Labels,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.budget import Memory
from neuronscope.methods.hygiene import apply_hygiene
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.methods.statistics import class_moments


class Probeless(RankingMethod):
    """Rank neurons by how far a concept's mean activation lies from the other classes'.

    Args:
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        normalize: divide by each neuron's pooled within-class standard deviation (see the
            module docstring); ``False``: raw activation units as in Antverg & Belinkov.

    Fitted attributes: ``class_means_`` (C, D), ``scale_`` (D,; 1 without ``normalize``),
    ``classes_``.
    """

    name = "probeless"

    def __init__(
        self, concepts: Sequence[str] | None = None, neurons: Sequence[str | int] | None = None,
        normalize: bool = True, *, n_jobs: int | None = None, memory: Memory = None,
    ) -> None:
        self.concepts = concepts
        self.neurons = neurons
        self.normalize = normalize
        self.n_jobs = n_jobs
        self.memory = memory

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by summed absolute class-mean differences."""
        data = prepare_input(activations, labels, self.neurons)
        classes = require_concepts(data.y, None)
        moments = class_moments(data, classes, memory=self.memory, n_jobs=self.n_jobs)
        means = moments.means  # (C, D)
        scale = np.ones(data.n_neurons)
        if self.normalize:
            within = (moments.counts[:, None] * moments.variances).sum(0)
            scale = np.sqrt(within / max(moments.counts.sum() - len(classes), 1))
        # |q(c) - q(c')| summed over c': (C, D); a constant neuron (scale 0) scores 0.
        pair = np.abs(means[:, None, :] - means[None, :, :]).sum(axis=1)
        pair = np.divide(pair, scale, out=np.zeros_like(pair), where=scale > 0)
        self.class_means_ = means
        self.scale_ = scale
        self.classes_ = classes
        wanted = require_concepts(data.y, self.concepts)
        rows = [classes.index(c) for c in wanted]
        ranking = ranking_from_scores(
            self.name, self.get_params(), pair[rows], wanted, data.ids, data.names,
            **data.ranking(self),
        )
        total = pair.sum(axis=0) / 2
        order = np.argsort(-total, kind="stable")
        ranking.global_order, ranking.global_scores = data.ids[order], total[order]
        return apply_hygiene(ranking, moments.health(data))
