"""Held-out by default: rank on training sentences, evaluate on sentences the ranker never saw.

A ranking computed on the very corpus it is evaluated on has seen the test sentences, so its
top-``k`` probes can look better than they are. :func:`held_out_ranking` decides, for a
ranking evaluated on a store, which ranking the evaluation uses:

* ``holdout="auto"`` (the default): a ranking computed on another corpus (e.g. EWT train,
  evaluated on a dev store) is already held out and used as given; a ranking of a supervised
  method computed on this corpus (or of unknown corpus) is **recomputed** with the same
  method, parameters and position policy on the training sentences of the evaluation's split
  only; anything that cannot be recomputed (a causal ranking needs the live model) is used as
  given with a warning.
* ``"rerank"``: always recompute on the training sentences (an error when impossible).
* ``"given"``: the ranking as given (warned when it saw the test sentences).

The decision, the sentence counts of both sides and the overlap of the recomputed top-``k``
with the given ranking are returned in :class:`HeldOut` (``summary["holdout"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.families import SupervisedRanker
from neuronscope.methods.ranking import Ranking
from neuronscope.store.provenance import Provenance
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

HOLDOUT_MODES = ("auto", "rerank", "given")


@dataclass
class HeldOut:
    """Which ranking an evaluation uses and what it saw.

    Attributes:
        ranking: the ranking to evaluate (recomputed or given).
        mode: ``"reranked"`` (recomputed on the training sentences), ``"other-corpus"``
            (given, computed on another corpus) or ``"given"`` (as given, on this corpus
            or unknown: it may have seen the test sentences).
        held_out: whether the ranker never saw the test sentences.
        exclude_positions: the position policy of the recomputed ranking.
        n_train_sentences, n_test_sentences: the split's sentences (ranker / evaluation).
        overlap: for a recomputed ranking, ``{k: share of the given top-k kept}``.
        warnings: what the user must know.
    """

    ranking: Ranking
    mode: str
    held_out: bool
    exclude_positions: str
    n_train_sentences: int
    n_test_sentences: int
    overlap: dict[int, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "mode": self.mode,
            "held_out": self.held_out,
            "exclude_positions": self.exclude_positions,
            "n_train_sentences": self.n_train_sentences,
            "n_test_sentences": self.n_test_sentences,
            "overlap_with_given": {str(k): v for k, v in self.overlap.items()},
        }

    def describe(self) -> str:
        """One line for the CLI."""
        split = (f"{self.n_train_sentences} train / {self.n_test_sentences} held-out test "
                 "sentences")
        if self.mode == "reranked":
            return (f"{split}; ranking recomputed ({self.ranking.method}, same parameters, "
                    f"exclude_positions={self.exclude_positions}) on the train sentences only")
        if self.mode == "other-corpus":
            return f"{split}; ranking computed on another corpus (held out as given)"
        return f"{split}; ranking used as given (NOT held out: it may have seen the test set)"


def check_holdout(mode: str) -> str:
    """``mode`` if it is one of :data:`HOLDOUT_MODES`, else a clear error."""
    if mode not in HOLDOUT_MODES:
        raise NeuronscopeError(f"holdout must be one of {', '.join(HOLDOUT_MODES)}, got {mode!r}")
    return mode


def held_out_ranking(
    ranking: Ranking,
    store: ActivationStore,
    corpus: Corpus,
    layer: str,
    train: np.ndarray,
    test: np.ndarray,
    *,
    holdout: str = "auto",
    exclude_positions: str | None = None,
    ks: tuple[int, ...] = (10, 50, 100),
    concept: str | None = None,
) -> HeldOut:
    """The ranking to evaluate on ``test`` rows of ``store`` (see the module docstring).

    Args:
        ranking: the given ranking.
        store, corpus: the evaluation's activations and corpus (already checked together).
        layer: the evaluated label layer; the recomputed ranking uses the ranking's own
            ``label_layer`` when the corpus has it, else ``layer``.
        train, test: boolean row masks of the evaluation's split by sentence.
        holdout: one of :data:`HOLDOUT_MODES`.
        exclude_positions: position policy of the recomputed ranking (default: the one the
            given ranking recorded).
        ks, concept: where to measure the overlap of the recomputed and given top-k.
    """
    from neuronscope.methods.hygiene import (
        check_exclude_positions,
        rank_excluding,
        ranking_exclusion,
    )
    from neuronscope.methods.registry import build_method, method_spec

    check_holdout(holdout)
    policy = check_exclude_positions(exclude_positions or ranking_exclusion(ranking))
    sentences = store.sentence_ids()
    n_train_s = len(np.unique(sentences[train]))
    n_test_s = len(np.unique(sentences[test]))

    def given(mode: str, warnings: list[str]) -> HeldOut:
        return HeldOut(ranking, mode, mode == "other-corpus", ranking_exclusion(ranking),
                       n_train_s, n_test_s, warnings=warnings)

    ranked_on = Provenance.of_ranking(ranking).corpus_fingerprint
    other_corpus = ranked_on is not None and ranked_on != store.corpus_fingerprint
    if holdout == "given" or (holdout == "auto" and other_corpus):
        if other_corpus:
            return given("other-corpus", [])
        return given("given", [
            "the ranking is evaluated as given and may have been computed on these same "
            "sentences, test ones included: top-k may be optimistic (the default "
            "--holdout auto recomputes it on the train sentences)"])
    why_not = None
    try:
        family = method_spec(ranking.method).load().family
        if family != "supervised":
            why_not = (f"{ranking.method} is a {family} ranker; it cannot be recomputed "
                       "without its inputs (e.g. the live model)")
    except NeuronscopeError as err:
        why_not = f"method {ranking.method!r} is unknown here ({err})"
    rank_layer = layer if ranking.label_layer is None else ranking.label_layer
    if why_not is None and rank_layer not in corpus.layers:
        why_not = f"its label layer {rank_layer!r} is not a layer of corpus {corpus.name!r}"
    if why_not is None:
        try:
            method = build_method(ranking.method, ranking.params)
        except (NeuronscopeError, TypeError, ValueError) as err:
            why_not = f"its parameters could not be reused ({err})"
    if why_not is not None:
        if holdout == "rerank":
            raise NeuronscopeError(f"cannot recompute the ranking on the train sentences: "
                                   f"{why_not}")
        return given("given", [
            f"the ranking was not recomputed on the train sentences ({why_not}); evaluated "
            "as given, it may have seen the test sentences: top-k may be optimistic"])
    assert isinstance(method, SupervisedRanker)  # the family was checked above
    view = ActivationView(store, rows=train)
    reranked = rank_excluding(method, view, corpus.concept_labels(rank_layer), policy)
    reranked.extra["held_out"] = {"train_sentences": n_train_s, "test_sentences": n_test_s,
                                  "recomputed_from": "the given ranking's method and params"}
    overlap = {}
    for k in ks:
        a, b = _top(ranking, k, concept), _top(reranked, k, concept)
        if len(a) >= k and len(b) >= k:
            overlap[k] = len(set(a.tolist()) & set(b.tolist())) / k
    return HeldOut(reranked, "reranked", True, policy, n_train_s, n_test_s, overlap)


def _top(ranking: Ranking, k: int, concept: str | None) -> np.ndarray:
    try:
        return np.asarray(ranking.top_ids(k, concept))
    except NeuronscopeError:
        return np.asarray([], dtype=np.int64)
