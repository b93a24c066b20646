"""Probeless ranking (Antverg & Belinkov 2022): differences of class-mean activations.

For concept ``c``, a neuron's score is ``sum_{c' != c} |q(c) - q(c')|`` where ``q(c)`` is its
mean activation over words labelled ``c``: neurons whose mean for ``c`` stands apart from every
other class come first. The global order uses the sum over all class pairs. No classifier is
trained, and one streaming pass over the store suffices.
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
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.methods.statistics import class_moments


class Probeless(RankingMethod):
    """Rank neurons by how far a concept's mean activation lies from the other classes'.

    Args:
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
    """

    name = "probeless"

    def __init__(
        self, concepts: Sequence[str] | None = None, neurons: Sequence[str | int] | None = None
    ) -> None:
        self.concepts = concepts
        self.neurons = neurons

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by summed absolute class-mean differences."""
        data = prepare_input(activations, labels, self.neurons)
        classes = require_concepts(data.y, None)
        moments = class_moments(data, classes, second_moments=False)
        means = moments.means  # (C, D)
        # |q(c) - q(c')| summed over c': (C, D)
        pair = np.abs(means[:, None, :] - means[None, :, :]).sum(axis=1)
        self.class_means_ = means
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
        return ranking
