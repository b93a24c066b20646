"""Sentence-level and multi-label concepts for any supervised ranker, keeping neuron names.

* **Sentence level**: a store extracted with sentence pooling holds one pooled vector per
  sentence and component (``ActivationStore.sentence_vectors``). :func:`rank_sentences` ranks
  those columns against one label per sentence (topic, sentiment, ...) and maps the columns
  back to the store's neuron ids and names (``L3.mlp.17``), so the ranking reads like a
  word-level one and is written with the store's fingerprint.
* **Multi-label**: a label layer whose values are *sets* (``"Past|Perf"``, several tags per
  word) has no single class per row. :func:`rank_multilabel` ranks every concept one
  against the rest (rows whose set holds it vs all others), the usual reduction for
  multi-label data, and merges the per-concept orders into one ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import NO_LABEL, ConceptLabels
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.families import SupervisedRanker
from neuronscope.methods.ranking import ConceptRanking, Ranking
from neuronscope.store.store import ActivationStore

__all__ = ["REST", "parse_label_sets", "rank_multilabel", "rank_sentences", "relabel",
           "sentence_activations"]

#: The "every other row" class of a one-vs-rest task (not a label any corpus uses).
REST = "__rest__"


def sentence_activations(store: ActivationStore, components: Sequence[str] | None = None,
                         neurons: Sequence[int] | None = None
                         ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled sentence vectors of ``components`` (default all) side by side.

    Returns ``(X, ids, names)``: ``X`` is ``(n_sentences, n_columns)`` float32, ``ids`` the
    store's global id of each column and ``names`` its readable name. ``neurons`` (global
    ids) keeps only those columns.
    """
    comps = list(components) if components is not None else list(store.layout.components)
    blocks, ids = [], []
    for name in comps:
        block = store.sentence_vectors(name)  # clear error when the store has none
        offset = store.layout.offset(name)
        blocks.append(block)
        ids.append(np.arange(offset, offset + block.shape[1], dtype=np.int64))
    x = np.concatenate(blocks, axis=1)
    col_ids = np.concatenate(ids)
    if neurons is not None:
        keep = np.isin(col_ids, np.asarray(list(neurons), dtype=np.int64))
        x, col_ids = x[:, keep], col_ids[keep]
        if not len(col_ids):
            raise NeuronscopeError("none of the selected neurons has sentence vectors")
    return x, col_ids, store.layout.names(col_ids)


def relabel(ranking: Ranking, ids: np.ndarray, names: Sequence[str], *,
            store_fingerprint: str | None = None, label_layer: str | None = None) -> Ranking:
    """A ranking of array columns with the columns' real neuron ids and names.

    ``ids[j]`` and ``names[j]`` are the neuron behind column ``j`` of the ranked array.
    """
    ids = np.asarray(ids, dtype=np.int64)

    def mapped(cols: np.ndarray) -> np.ndarray:
        return ids[np.asarray(cols, dtype=np.int64)]

    concepts = {c: ConceptRanking(mapped(r.ids), r.scores) for c, r in ranking.concepts.items()}
    assert ranking.global_order is not None  # set by Ranking.__post_init__
    return Ranking(
        method=ranking.method, params=dict(ranking.params), concepts=concepts,
        names={int(i): str(n) for i, n in zip(ids.tolist(), names, strict=True)},
        global_order=mapped(ranking.global_order), global_scores=ranking.global_scores,
        store_fingerprint=store_fingerprint or ranking.store_fingerprint,
        label_layer=label_layer or ranking.label_layer, extra=dict(ranking.extra),
    )


def rank_sentences(ranker: SupervisedRanker, store: ActivationStore, labels: Sequence[Any],
                   *, components: Sequence[str] | None = None,
                   neurons: Sequence[int] | None = None, label_layer: str | None = None,
                   multi_label: str | None = None,
                   build: Callable[[str], SupervisedRanker] | None = None) -> Ranking:
    """Rank the store's neurons by their pooled sentence vectors against sentence labels.

    Args:
        ranker: a supervised ranker (its ``neurons`` parameter is not used: select columns
            with ``components`` / ``neurons``).
        store: a store extracted with sentence pooling.
        labels: one label per sentence of the store.
        components: components whose sentence vectors are ranked (default all).
        neurons: global ids to keep (e.g. ``--layers``).
        label_layer: recorded as the ranking's label layer.
        multi_label: separator of set-valued labels (then ``build`` makes each concept's
            ranker), see :func:`rank_multilabel`.
        build: ranker factory for one concept (multi-label only).
    """
    y = np.asarray([str(v) for v in labels], dtype=object)
    if len(y) != store.n_sentences:
        raise NeuronscopeError(f"{len(y)} sentence labels for the store's {store.n_sentences} "
                               "sentences")
    x, ids, names = sentence_activations(store, components, neurons)
    # A sentence without words has no pooled vector (NaN): it cannot be ranked on.
    keep = np.isfinite(x).all(axis=1)
    if multi_label is not None:
        if build is None:
            raise NeuronscopeError("multi-label ranking needs a ranker factory (build)")
        ranking = rank_multilabel(build, x[keep], y[keep], multi_label)
    else:
        ranking = ranker.rank(x[keep], y[keep])
    out = relabel(ranking, ids, names, store_fingerprint=store.fingerprint,
                  label_layer=label_layer)
    out.extra["level"] = "sentence"
    out.extra["n_sentences"] = int(keep.sum())
    return out


def parse_label_sets(values: Sequence[Any], sep: str = "|") -> list[frozenset[str]]:
    """Each value as a set of labels: ``"A|B"`` -> ``{"A", "B"}``; ``"_"`` and ``""`` -> empty;
    lists, tuples and sets are taken as they are."""
    if not sep:
        raise NeuronscopeError("the multi-label separator must not be empty")
    out = []
    for v in values:
        parts = v if isinstance(v, (list, tuple, set, frozenset)) else str(v).split(sep)
        out.append(frozenset(p.strip() for p in map(str, parts)
                             if p.strip() and p.strip() != NO_LABEL))
    return out


def rank_multilabel(build: Callable[[str], SupervisedRanker], activations: Any,
                    labels: ConceptLabels | Sequence[Any], sep: str = "|",
                    concepts: Sequence[str] | None = None) -> Ranking:
    """Rank neurons for each concept of set-valued labels, one concept against the rest.

    Args:
        build: a ranker for one concept (called with the concept; it should rank only that
            concept, e.g. ``build_method(name, concepts=[c])``).
        activations: a store, array or view, as for any supervised ranker.
        labels: one set per row: ``"A|B"`` strings (joined by ``sep``) or collections; a
            corpus layer (:class:`ConceptLabels`) keeps its fingerprint check.
        sep: separator inside string values.
        concepts: concepts to rank (default every label that occurs, sorted).

    Returns:
        One ranking whose concept ``c`` is the order of the ``c``-vs-rest task, with the
        neuron names of the activations; ``extra["multi_label"]`` records the separator and
        the rows holding each concept.
    """
    layer = labels.layer if isinstance(labels, ConceptLabels) else None
    values = labels.values if isinstance(labels, ConceptLabels) else labels
    sets = parse_label_sets(list(values), sep)
    present = sorted(set().union(*sets)) if sets else []
    wanted = list(concepts) if concepts is not None else present
    missing = [c for c in wanted if c not in present]
    if missing:
        raise NeuronscopeError(f"concept(s) {missing} absent from the labels; present: "
                               f"{', '.join(present[:40])}")
    if not wanted:
        raise NeuronscopeError("the labels hold no concept (every value is empty)")
    per_concept: dict[str, ConceptRanking] = {}
    names: dict[int, str] = {}
    counts: dict[str, int] = {}
    first: Ranking | None = None
    for concept in wanted:
        y = np.asarray([concept if concept in s else REST for s in sets], dtype=object)
        counts[concept] = int((y == concept).sum())
        if counts[concept] == len(y):
            raise NeuronscopeError(f"concept {concept!r} is on every row: nothing to contrast")
        task: ConceptLabels | np.ndarray = y
        if isinstance(labels, ConceptLabels):  # keeps the check against the store's corpus
            task = ConceptLabels(y, labels.layer, labels.corpus_fingerprint)
        ranking = build(concept).rank(activations, task)
        per_concept[concept] = ranking.concepts[concept]
        names.update(ranking.names)
        first = first or ranking
    assert first is not None
    return Ranking(
        method=first.method, params=dict(first.params), concepts=per_concept, names=names,
        store_fingerprint=first.store_fingerprint, label_layer=layer or first.label_layer,
        extra={"multi_label": {"separator": sep, "rows": counts}},
    )
