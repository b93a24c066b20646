"""Where activations, labels and rankings come from, and which of them may be combined.

:class:`Provenance` gathers the identities a store records (store, model and corpus
fingerprints, aggregation, neuron layout) and a ranking records (its store fingerprint, which
reads ``{model}-{corpus}-{aggregation}``, and its neuron names). The one acceptance policy of
neuronscope lives here; every stage that combines these objects calls it:

* **Labels** must come from the store's own corpus (same corpus fingerprint) and give one
  label per activation row. A plain label array carries no fingerprint; only its shape and
  length are checked. (:func:`neuronscope.store.view.align_labels`)
* **A corpus** handed along with a store must be the store's corpus (same fingerprint).
* **A ranking** may be used with a store when it names the same neurons: the same model
  fingerprint, the same aggregation (word vectors made another way are other activations)
  and the same neuron layout (every id of the ranking has the store's name for that id). The
  *corpus may differ*: ranking on training text and evaluating on held-out text of the same
  model is what a held-out evaluation needs. A ranking without a store fingerprint (edited by
  hand, or computed on a plain array) is checked by its names only, with a warning.
  (:func:`check_ranking_compatible`)
* **Two stores** compared neuron by neuron (domain neurons) must share model, aggregation
  and layout; their corpora may differ (:func:`check_same_neurons`). Stores compared *row by
  row* (similarity of two models, multi-model correlation) must share the corpus and may
  differ in model (:func:`check_same_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from neuronscope.errors import FingerprintMismatchError
from neuronscope.store.names import NeuronLayout
from neuronscope.store.store import ActivationStore


class RankingLike(Protocol):
    """What the policy reads from a ranking (a :class:`~neuronscope.methods.Ranking`)."""

    method: str
    store_fingerprint: str | None
    names: dict[int, str]


@dataclass(frozen=True)
class Provenance:
    """Identities of one set of activations (or of what a ranking was computed on).

    Attributes:
        store_fingerprint: ``{model}-{corpus}-{aggregation}`` (``None``: unknown, e.g. arrays).
        model_fingerprint: hash of the model's config and weights.
        corpus_fingerprint: hash of the corpus the rows belong to.
        aggregation: how subword vectors became word vectors.
        label_layer: the label layer a ranking was computed against, if any.
        where: a short description for error messages (a store path, "ranking (probe)").
    """

    store_fingerprint: str | None = None
    model_fingerprint: str | None = None
    corpus_fingerprint: str | None = None
    aggregation: str | None = None
    label_layer: str | None = None
    where: str = "activations"

    @classmethod
    def of_store(cls, store: ActivationStore) -> Provenance:
        """The provenance a store records."""
        return cls(store.fingerprint, store.model_fingerprint, store.corpus_fingerprint,
                   str(store.meta.get("aggregation")), None, f"store {store.path}")

    @classmethod
    def from_fingerprint(cls, fingerprint: str | None, label_layer: str | None = None,
                         where: str = "ranking") -> Provenance:
        """Split a store fingerprint ``{model}-{corpus}-{aggregation}`` into its parts.

        Model and corpus fingerprints are hex digests, so the first two dashes separate the
        parts. A fingerprint without a dash is a bare model fingerprint (what rankings over
        two corpora, e.g. domain neurons, record); one of another shape keeps only
        ``store_fingerprint``.
        """
        if not fingerprint:
            return cls(label_layer=label_layer, where=where)
        parts = fingerprint.split("-", 2)
        if len(parts) == 1:
            return cls(fingerprint, fingerprint, label_layer=label_layer, where=where)
        if len(parts) != 3:
            return cls(fingerprint, label_layer=label_layer, where=where)
        return cls(fingerprint, parts[0], parts[1], parts[2], label_layer, where)

    @classmethod
    def of_ranking(cls, ranking: RankingLike) -> Provenance:
        """The provenance a ranking records."""
        return cls.from_fingerprint(ranking.store_fingerprint,
                                    getattr(ranking, "label_layer", None),
                                    f"the {ranking.method} ranking")

    def same_neurons(self, other: Provenance) -> bool | None:
        """Whether both describe the same neurons (model and aggregation); ``None``: unknown."""
        if self.store_fingerprint is None or other.store_fingerprint is None:
            return None
        if self.store_fingerprint == other.store_fingerprint:
            return True
        if None in (self.model_fingerprint, other.model_fingerprint) or (
                self.model_fingerprint != other.model_fingerprint):
            return False
        # A bare model fingerprint does not say how words were aggregated: not a difference.
        return None in (self.aggregation, other.aggregation) or (
            self.aggregation == other.aggregation)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``where`` left out)."""
        return {"store_fingerprint": self.store_fingerprint,
                "model_fingerprint": self.model_fingerprint,
                "corpus_fingerprint": self.corpus_fingerprint,
                "aggregation": self.aggregation, "label_layer": self.label_layer}


def check_ranking_compatible(
    ranking: RankingLike, target: Provenance, layout: NeuronLayout | None = None
) -> list[str]:
    """Apply the acceptance policy to a ranking and the activations it is used with.

    Args:
        ranking: the ranking to use.
        target: provenance of the activations (``Provenance.of_store(store)`` or a view's).
        layout: the activations' neuron layout, to check the ranking's names against.

    Returns:
        Notes on what was accepted without being verifiable or with a difference (another
        corpus, no fingerprint); empty when everything matched.

    Raises:
        FingerprintMismatchError: another model or aggregation, or neuron ids whose names
            differ from the layout's (another layout).
    """
    theirs = Provenance.of_ranking(ranking)
    notes: list[str] = []
    same = theirs.same_neurons(target)
    if same is False:
        raise FingerprintMismatchError(
            f"{theirs.where} was computed on activations of another model or aggregation "
            f"(store fingerprint {theirs.store_fingerprint}) than {target.where} "
            f"({target.store_fingerprint}); rank the neurons of this store first"
        )
    if same and None not in (theirs.corpus_fingerprint, target.corpus_fingerprint) and (
            theirs.corpus_fingerprint != target.corpus_fingerprint):
        notes.append(
            f"{theirs.where} was computed on another corpus (fingerprint "
            f"{theirs.corpus_fingerprint}) of the same model; its neurons are used on "
            f"{target.where}'s corpus ({target.corpus_fingerprint})"
        )
    if theirs.store_fingerprint is None and target.store_fingerprint is not None:
        notes.append(f"{theirs.where} records no store fingerprint; only its neuron names "
                     "were checked against the store")
    if layout is not None:
        check_names(ranking.names, layout, theirs.where, target.where)
    return notes


def check_rankings_comparable(a: RankingLike, b: RankingLike) -> None:
    """Refuse comparing two rankings neuron by neuron unless their ids name the same neurons
    (same model and aggregation, and no id named differently); their corpora may differ."""
    pa, pb = Provenance.of_ranking(a), Provenance.of_ranking(b)
    if pa.same_neurons(pb) is False:
        raise FingerprintMismatchError(
            f"rankings {a.method!r} and {b.method!r} were computed on different stores of "
            f"another model or aggregation ({pa.store_fingerprint} vs {pb.store_fingerprint}); "
            "their neuron ids do not name the same neurons"
        )
    wrong = [i for i, n in a.names.items() if i in b.names and b.names[i] != n]
    if wrong:
        i = wrong[0]
        raise FingerprintMismatchError(
            f"rankings {a.method!r} and {b.method!r} name neuron id {i} differently "
            f"({a.names[i]!r} vs {b.names[i]!r}): different stores with another neuron layout"
        )


def check_names(names: Mapping[int, str], layout: NeuronLayout, what: str, where: str) -> None:
    """Refuse neuron ids outside the layout or named otherwise than the layout names them."""
    ids = np.asarray(sorted(names), dtype=np.int64)
    if not len(ids):
        return
    if ids.min() < 0 or ids.max() >= layout.n_neurons:
        raise FingerprintMismatchError(
            f"{what} names neuron ids {ids.min()}..{ids.max()}, but {where} has "
            f"{layout.n_neurons} neurons: it was computed on another neuron layout"
        )
    wrong = [i for i in ids.tolist() if layout.name(i) != names[i]]
    if wrong:
        i = wrong[0]
        raise FingerprintMismatchError(
            f"{len(wrong)} neuron name(s) of {what} differ from {where}'s (id {i}: "
            f"{names[i]!r} vs {layout.name(i)!r}): it was computed on another neuron layout"
        )


def check_same_neurons(a: ActivationStore, b: ActivationStore, why: str) -> None:
    """Refuse two stores whose neuron ids do not name the same neurons (their corpora may
    differ): another model, aggregation, or components/layers."""
    pa, pb = Provenance.of_store(a), Provenance.of_store(b)
    if pa.model_fingerprint != pb.model_fingerprint:
        raise FingerprintMismatchError(
            f"stores {a.path} and {b.path} come from different models (fingerprints "
            f"{pa.model_fingerprint} and {pb.model_fingerprint}); {why}"
        )
    if a.layout.components != b.layout.components:
        raise FingerprintMismatchError(
            f"stores {a.path} and {b.path} hold different components or layers; {why}")
    if pa.aggregation != pb.aggregation:
        raise FingerprintMismatchError(
            f"stores {a.path} and {b.path} aggregate subwords differently ({pa.aggregation} "
            f"vs {pb.aggregation}); {why}"
        )


def check_same_rows(stores: list[ActivationStore], why: str) -> None:
    """Refuse stores compared row by row (word for word) unless they share one corpus."""
    fps = {s.corpus_fingerprint for s in stores}
    if len(fps) > 1:
        detail = ", ".join(f"{s.path} ({s.corpus_fingerprint})" for s in stores)
        raise FingerprintMismatchError(
            f"{why} needs stores of the same corpus, word for word; these come from "
            f"different corpora: {detail}"
        )
