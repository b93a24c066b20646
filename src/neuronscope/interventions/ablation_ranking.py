"""Rank neurons by what ablating them does to the model (causal rankings, survey §3.4).

* :class:`ErasureRanking` (Li et al. 2016, "Understanding neural networks through
  representation erasure"): unsupervised; a neuron's importance is the rise of the model's
  loss when it is erased. The global order uses all scored tokens; with labels, each concept
  also gets the rise on its own words.
* :class:`ClassFlipRanking` (Lakretz et al. 2019, "The emergence of number and syntax units
  in LSTM language models"): supervised; a neuron ranks high for a concept when its ablation
  changes the model's loss (``criterion="loss"``), turns correct top-1 predictions wrong
  (``"accuracy"``) or flips them at all (``"flip"``) on the concept's words more than on
  other words.

Both are :class:`~neuronscope.methods.families.CausalRanker` rankers: configure the candidate
neurons and the scoring in ``__init__``, then
``rank(model, corpus, labels, activations=store)``
(the store is optional; with it the ranking carries the store's ids and fingerprint). Cost is
one pass over the corpus per candidate (or per group of ``group_size`` candidates), with
sentences batched; restrict ``candidates`` (a layer such as ``"L3.mlp"``, a list of names or
another ranking's top-N) and ``max_sentences`` to keep it affordable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import ConceptLabels, Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.interventions.editing import (
    Intervention,
    check_same_model,
    neuron_means,
    resolve_neuron_spec,
)
from neuronscope.interventions.scoring import LMScorer, TokenScores
from neuronscope.interventions.sites import as_loaded, model_sites
from neuronscope.methods.base import Activations, Labels, require_concepts
from neuronscope.methods.families import CausalRanker
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.models.loading import LoadedModel
from neuronscope.store.names import parse_name
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import check_labels

Candidates = str | Sequence[str] | tuple[Any, ...]
CRITERIA = ("loss", "accuracy", "flip")


def candidate_names(spec: Candidates, loaded: LoadedModel) -> list[str]:
    """Neuron names from ``"mlp"`` (every layer), ``"L3.mlp"`` (one layer), names, or a slice."""
    if isinstance(spec, str) and parse_name(spec) is None:
        sites = model_sites(loaded)
        layout = sites.layout()
        if "." in spec:
            layer_s, component = spec.split(".", 1)
            if not (layer_s.startswith("L") and layer_s[1:].isdigit()):
                raise NeuronscopeError(f"bad candidates {spec!r}; use e.g. 'L3.mlp' or 'mlp'")
            layers: list[int] | None = [int(layer_s[1:])]
        else:
            component, layers = spec, None
        if component not in sites.components:
            why = sites.missing.get(component, f"components: {', '.join(sites.components)}")
            raise NeuronscopeError(f"candidates {spec!r}: no component {component!r} ({why})")
        return layout.names(layout.select([component], layers))
    return resolve_neuron_spec(spec, loaded)


class _AblationRanking(CausalRanker):
    """Shared machinery: ablate each candidate (group) and score the corpus."""

    def __init__(
        self,
        candidates: Candidates = "mlp",
        batch_size: int = 32,
        op: str = "zero",
        group_size: int = 1,
        max_sentences: int | None = None,
        mask_fraction: float = 0.15,
        concepts: Sequence[str] | None = None,
        random_state: int = 0,
    ) -> None:
        self.candidates = candidates
        self.batch_size = batch_size
        self.op = op
        self.group_size = group_size
        self.max_sentences = max_sentences
        self.mask_fraction = mask_fraction
        self.concepts = concepts
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers
    def _labels(self, corpus: Corpus, labels: Labels | None) -> np.ndarray | None:
        if labels is None:
            return None
        return check_labels(labels, corpus.n_words, corpus.fingerprint,
                            f"corpus {corpus.name!r}")

    def _effects(
        self, loaded: LoadedModel, corpus: Corpus, activations: Activations | None,
        reduce: Callable[[TokenScores, TokenScores], np.ndarray],
    ) -> tuple[TokenScores, np.ndarray, ActivationStore | None]:
        """Baseline scores, ``reduce(baseline, ablated)`` per candidate (rows), the store.

        Reducing right away keeps memory at one row per candidate, not one per token.
        """
        if self.op not in ("zero", "mean"):
            raise NeuronscopeError(f"op must be zero or mean, not {self.op!r}")
        if self.group_size < 1:
            raise NeuronscopeError("group_size must be at least 1")
        store = activations if isinstance(activations, ActivationStore) else None
        if store is not None:
            check_same_model(store.model_fingerprint, loaded, f"store {store.path}")
        names = candidate_names(self.candidates, loaded)
        if not names:
            raise NeuronscopeError("no candidate neurons")
        if store is not None:  # refused before the (long) passes, not after them
            store.layout.ids(names)
        self.candidates_ = names
        means = None
        if self.op == "mean":
            if store is None:
                raise NeuronscopeError("op 'mean' needs the activation store as activations")
            means = neuron_means(store, names)
        sentences = None
        if self.max_sentences is not None and self.max_sentences < corpus.n_sentences:
            rng = np.random.default_rng(self.random_state)
            sentences = np.sort(rng.choice(corpus.n_sentences, self.max_sentences,
                                           replace=False)).tolist()
        scorer = LMScorer(loaded, corpus, batch_size=self.batch_size,
                          mask_fraction=self.mask_fraction, seed=self.random_state,
                          sentences=sentences)
        base = scorer.baseline
        rows: list[np.ndarray] = []
        for start in range(0, len(names), self.group_size):
            group = names[start : start + self.group_size]
            value = None if means is None else means[start : start + len(group)]
            with Intervention(loaded, group, op=self.op, value=value):
                row = reduce(base, scorer.run())
            # A group's effect is shared by its members (coarse, but group_size x cheaper).
            rows.extend([row] * len(group))
        return base, np.asarray(rows, dtype=np.float64), store

    def _ids(self, loaded: LoadedModel, corpus: Corpus, store: ActivationStore | None
             ) -> tuple[np.ndarray, str]:
        if store is not None:
            return store.layout.ids(self.candidates_), store.fingerprint
        layout = model_sites(loaded).layout()
        return (layout.ids(self.candidates_),
                f"{loaded.fingerprint}-{corpus.fingerprint}-model")

    @staticmethod
    def _provenance(loaded: LoadedModel, corpus: Corpus) -> dict[str, Any]:
        # The model and corpus are inputs, not parameters: recorded beside the results.
        return {"model": loaded.name, "corpus": corpus.name,
                "corpus_fingerprint": corpus.fingerprint}


def _group_means(values: np.ndarray, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per concept code: mean of ``values`` on its tokens and on all other tokens."""
    counts = np.bincount(codes, minlength=n).astype(np.float64)
    sums = np.bincount(codes, weights=values, minlength=n)
    total, n_all = values.sum(), len(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.where(counts > 0, sums / counts, 0.0)
        outside = np.where(n_all - counts > 0, (total - sums) / (n_all - counts), 0.0)
    return inside, outside


class ErasureRanking(_AblationRanking):
    """Unsupervised: neurons whose erasure raises the model's loss most (Li et al. 2016).

    Args:
        candidates: ``"mlp"``, ``"L3.mlp"``, a list of names, or ``(ranking, concept, N)``.
        batch_size: pieces per forward pass.
        op: ``zero`` or ``mean`` (store means; pass the store as ``activations``).
            ``rank(model, corpus, labels=None, *, activations=None)``: the model is a causal
            or masked language model, the corpus the text to score; labels (optional, one per
            corpus word) add each concept's own loss rise.
        group_size: candidates ablated together (each gets the group's score).
        max_sentences: score a seeded sample of this many sentences.
        mask_fraction: masked LMs: fraction of words masked.
        concepts: concepts to rank (default: every label).
        random_state: seed of sentence sampling and masking.
    """

    name = "erasure"
    requires_labels = False

    def rank(self, model: LoadedModel | Any, corpus: Corpus, labels: Labels | None = None, *,
             activations: Activations | None = None) -> Ranking:
        """Rank candidates by mean loss increase (global) and on each concept's words."""
        loaded = as_loaded(model)
        y = self._labels(corpus, labels)
        concepts = require_concepts(y, self.concepts) if y is not None else []
        codes = present = None

        def reduce(base: TokenScores, ablated: TokenScores) -> np.ndarray:
            nonlocal codes, present
            delta = ablated.nll - base.nll
            if y is None:
                return np.asarray([delta.mean()])
            if codes is None:
                token_labels = y[base.word]
                present = sorted(set(token_labels.tolist()), key=str)
                code_of = {v: i for i, v in enumerate(present)}
                codes = np.asarray([code_of[v] for v in token_labels], dtype=np.int64)
            inside, _ = _group_means(delta, codes, len(present))
            return np.asarray([delta.mean()] + [inside[present.index(c)] if c in present
                                                else 0.0 for c in concepts])

        base, rows, store = self._effects(loaded, corpus, activations, reduce)
        overall = rows[:, 0]
        scores = rows[:, 1:].T
        ids, fingerprint = self._ids(loaded, corpus, store)
        extra: dict[str, Any] = {"baseline_loss": float(base.nll.mean()),
                                 "tokens": int(len(base.nll)),
                                 **self._provenance(loaded, corpus)}
        if y is not None:
            extra["concepts_without_tokens"] = [c for c in concepts if c not in (present or [])]
        order = np.argsort(-overall, kind="stable")
        provenance: dict[str, Any] = {
            "store_fingerprint": fingerprint,
            "label_layer": labels.layer if isinstance(labels, ConceptLabels) else None,
            "extra": extra,
        }
        if not concepts:  # unsupervised only: the global order is the whole ranking
            return Ranking(self.name, self.get_params(), {}, dict(zip(ids.tolist(),
                           self.candidates_, strict=True)), ids[order], overall[order],
                           **provenance)
        ranking = ranking_from_scores(self.name, self.get_params(), scores, concepts, ids,
                                      self.candidates_, **provenance)
        ranking.global_order, ranking.global_scores = ids[order], overall[order]
        return ranking


class ClassFlipRanking(_AblationRanking):
    """Supervised: neurons whose ablation changes the model most on a concept's words.

    Score of a neuron for concept c: mean change on c's tokens minus on other tokens, after
    Lakretz et al. (2019). The change per token is the loss increase (``criterion="loss"``),
    the accuracy lost (``"accuracy"``: +1 when a correct top-1 prediction turns wrong, -1 the
    other way round) or any flip of the top-1 prediction (``"flip"``). Other arguments as
    :class:`ErasureRanking`; ``rank(model, corpus, labels, *, activations=None)`` needs the
    labels.
    """

    name = "class-flip"

    def __init__(
        self,
        candidates: Candidates = "mlp",
        batch_size: int = 32,
        criterion: str = "loss",
        op: str = "zero",
        group_size: int = 1,
        max_sentences: int | None = None,
        mask_fraction: float = 0.15,
        concepts: Sequence[str] | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(candidates, batch_size, op, group_size, max_sentences,
                         mask_fraction, concepts, random_state)
        self.criterion = criterion

    def rank(self, model: LoadedModel | Any, corpus: Corpus, labels: Labels | None = None, *,
             activations: Activations | None = None) -> Ranking:
        """Rank candidates per concept by concept-specific change of loss or prediction."""
        loaded = as_loaded(model)
        if self.criterion not in CRITERIA:
            raise NeuronscopeError(
                f"criterion must be one of {', '.join(CRITERIA)}, not {self.criterion!r}"
            )
        y = self._labels(corpus, labels)
        if y is None:
            raise NeuronscopeError("class-flip ranking is supervised: give the concept labels")
        concepts = require_concepts(y, self.concepts)
        codes = present = None

        def reduce(base: TokenScores, ablated: TokenScores) -> np.ndarray:
            nonlocal codes, present
            if codes is None:
                token_labels = y[base.word]
                present = sorted(set(token_labels.tolist()), key=str)
                code_of = {v: i for i, v in enumerate(present)}
                codes = np.asarray([code_of[v] for v in token_labels], dtype=np.int64)
            if self.criterion == "loss":
                change = ablated.nll - base.nll
            elif self.criterion == "accuracy":  # +1 correct -> wrong, -1 wrong -> correct
                change = base.correct.astype(np.float64) - ablated.correct
            else:
                change = (ablated.pred != base.pred).astype(np.float64)
            inside, outside = _group_means(change, codes, len(present))
            return np.asarray([inside[present.index(c)] - outside[present.index(c)]
                               if c in present else 0.0 for c in concepts])

        base, rows, store = self._effects(loaded, corpus, activations, reduce)
        ids, fingerprint = self._ids(loaded, corpus, store)
        return ranking_from_scores(
            self.name, self.get_params(), rows.T, concepts, ids, self.candidates_,
            store_fingerprint=fingerprint,
            label_layer=labels.layer if isinstance(labels, ConceptLabels) else None,
            extra={"baseline_loss": float(base.nll.mean()), "tokens": int(len(base.nll)),
                   **self._provenance(loaded, corpus),
                   "concepts_without_tokens": [c for c in concepts if c not in (present or [])]},
        )
