"""The families of neuron rankers, one ``rank`` signature per family.

As in Captum's attribution hierarchy, the family says what a ranker needs, and each family
has exactly one entry point:

* :class:`SupervisedRanker` ranks from recorded activations and one label per word:
  ``rank(activations, labels) -> Ranking`` (``activations``: an
  :class:`~neuronscope.store.ActivationStore` or a ``(n_words, n_neurons)`` array;
  ``labels``: a corpus label layer or one label per row). Linear and Gaussian probes, IoU,
  average precision, probeless, selectivity.
* :class:`CausalRanker` ranks by intervening on a live model while it reads a corpus:
  ``rank(model, corpus, labels=None, *, activations=None) -> Ranking``. What the ranker
  cannot work without comes first (the model and the text); ``labels`` (one per corpus
  word) are required by supervised causal rankers and optional for unsupervised ones;
  ``activations`` is the store extracted from that model and corpus, when there is one: it
  gives the ranking the store's neuron ids and fingerprint (so evaluation and reports accept
  it) and the means for mean-ablation. Erasure and class-flip rankings.
* :class:`PairwiseRanker` ranks by how two sets of activations of the same model differ:
  ``rank_pair(activations_a, activations_b) -> Ranking``, one concept per side. It has its
  own verb because its inputs mean something else (two domains, no labels). Domain neurons.

Every ranker is :class:`~neuronscope.params.Configurable`: configured in ``__init__`` only,
with ``get_params``/``set_params``/``clone``; the ranking it returns records
``get_params()`` as its ``params``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from neuronscope.params import Configurable

if TYPE_CHECKING:  # types only: keeps this module free of torch and of the store
    from neuronscope.corpus.corpus import Corpus
    from neuronscope.methods.base import Activations, Labels
    from neuronscope.methods.ranking import Ranking
    from neuronscope.models.loading import LoadedModel

FAMILIES = ("supervised", "causal", "pairwise")


class Ranker(Configurable, ABC):
    """Root of the ranker families (use one of the three subclasses)."""

    #: short name used in CLIs and recorded in rankings
    name: ClassVar[str] = "method"
    #: one of :data:`FAMILIES`
    family: ClassVar[str]


class SupervisedRanker(Ranker):
    """Ranks neurons from activations and one label per word."""

    family = "supervised"

    @abstractmethod
    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons for every concept of ``labels``."""


class CausalRanker(Ranker):
    """Ranks neurons by what intervening on them does to a live model reading a corpus."""

    family = "causal"
    #: whether ``rank`` needs labels (``False``: they only add per-concept scores)
    requires_labels: ClassVar[bool] = True

    @abstractmethod
    def rank(self, model: LoadedModel | Any, corpus: Corpus, labels: Labels | None = None, *,
             activations: Activations | None = None) -> Ranking:
        """Rank neurons of ``model`` (a loaded model or a bare Hugging Face module) by their
        effect on ``corpus``'s words."""


class PairwiseRanker(Ranker):
    """Ranks neurons by how their activations differ between two sets of words."""

    family = "pairwise"

    @abstractmethod
    def rank_pair(self, activations_a: Activations, activations_b: Activations) -> Ranking:
        """Rank neurons for each side (one concept per side) of the two activation sets."""


__all__ = ["FAMILIES", "CausalRanker", "PairwiseRanker", "Ranker", "SupervisedRanker"]
