"""The whole evaluation of one ranking on one store, as run by ``neuronscope evaluate``.

Loads the ranked neurons once, makes one seeded split by sentence (words labelled
``NO_LABEL`` left out), then runs probing with selected neurons, ablation in the probe trained
on all ranked neurons, control-task selectivity of every top-``k`` set and the layer
distribution, and writes ``summary.json`` and the figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope import __version__
from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.evaluation._common import (
    check_k,
    check_ranking,
    concept_target,
    load_neurons,
    ranking_order,
    train_test_masks,
)
from neuronscope.evaluation.ablation import MODES, ablation_curves, default_steps
from neuronscope.evaluation.control import control_selectivity
from neuronscope.evaluation.holdout import check_holdout, held_out_ranking
from neuronscope.evaluation.layers import layer_distribution
from neuronscope.evaluation.plots import plot_ablation, plot_layer_distribution, plot_selection
from neuronscope.evaluation.selected import DEFAULT_KS, evaluate_selection
from neuronscope.io import atomic_write_json
from neuronscope.methods.ranking import Ranking
from neuronscope.store.store import ActivationStore

SUMMARY_FORMAT = "neuronscope-evaluation"


def check_ranking_matches_store(ranking: Ranking, store: ActivationStore) -> list[str]:
    """The acceptance policy (:func:`~neuronscope.store.provenance.check_ranking_compatible`)
    for a ranking evaluated on a store: refuse another model, aggregation or neuron layout;
    returns notes for what was accepted unverified or from another corpus."""
    return check_ranking(ranking, store)


def run_evaluation(
    store: ActivationStore,
    corpus: Corpus,
    ranking: Ranking,
    layer: str,
    out: str | os.PathLike,
    ks: Sequence[int] | None = None,
    concept: str | None = None,
    *,
    n_random: int = 5,
    ablation_steps: int = 10,
    mode: str = "zero",
    test_size: float = 0.2,
    max_epochs: int = 50,
    random_state: int | None = 0,
    holdout: str = "auto",
    exclude_positions: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``ranking`` on ``store`` against ``layer`` of ``corpus``; write ``out``.

    Returns the summary written to ``out/summary.json``. Probes are ``LinearProbe`` with
    ``max_epochs`` and ``random_state``; ``ks`` default to those of (10, 50, 100) that fit.

    Held out by default (``holdout="auto"``, see :mod:`neuronscope.evaluation.holdout`): a
    supervised ranking of this corpus is recomputed on the split's train sentences (with
    ``exclude_positions``, default the ranking's own policy) and evaluated on the test
    sentences; ``summary["holdout"]`` says what was done and ``summary["split"]`` counts both
    sides' sentences and words.
    """
    started = time.perf_counter()
    # Cheap checks first: a typo should not cost the probes trained before it is noticed.
    if mode not in MODES:
        raise NeuronscopeError(f"mode must be one of {MODES}, got {mode!r}")
    default_steps(1, ablation_steps)  # raises for a bad grid size
    check_holdout(holdout)
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise NeuronscopeError(f"n_random must be a positive integer, got {n_random!r}")
    store.check_corpus(corpus)
    warnings = check_ranking_matches_store(ranking, store)
    y_all = corpus.labels_array(layer)  # clear error for an unknown layer
    if ranking.label_layer is not None and ranking.label_layer != layer:
        warnings.append(f"the ranking was computed against layer {ranking.label_layer!r}, "
                        f"evaluated here against {layer!r}")
    given_order = ranking_order(ranking, concept)
    ks_list = ([check_k(k, len(given_order)) for k in ks] if ks is not None
               else [k for k in DEFAULT_KS if k <= len(given_order)] or [len(given_order)])
    concept_target(y_all, concept)  # clear error for a concept absent from the labels

    labelled = y_all != NO_LABEL
    train, test = train_test_masks(store.n_words, test_size, store.sentence_ids(), random_state)
    # Held out by default: a ranking of these sentences is recomputed on the train ones.
    held = held_out_ranking(ranking, store, corpus, layer, train, test, holdout=holdout,
                            exclude_positions=exclude_positions, ks=tuple(ks_list),
                            concept=concept)
    warnings.extend(held.warnings)
    ranking = held.ranking
    order = ranking_order(ranking, concept)
    ks_list = ([check_k(k, len(order)) for k in ks] if ks is not None
               else [k for k in DEFAULT_KS if k <= len(order)] or [len(order)])

    from neuronscope.methods.linear_probe import LinearProbe

    def factory() -> LinearProbe:
        return LinearProbe.for_evaluation(random_state, max_epochs=max_epochs)

    matrix = load_neurons(store, np.sort(order))
    train, test = train & labelled, test & labelled
    labels = corpus.concept_labels(layer)

    selection = evaluate_selection(
        matrix, labels, ranking, ks_list, concept=concept, train_mask=train, test_mask=test,
        probe_factory=factory, n_random=n_random, random_state=random_state,
    )
    y = concept_target(y_all, concept)
    if selection.full_probe is None:  # evaluate_selection always trains it; keeps types honest
        raise NeuronscopeError("the probe on all neurons was not trained")
    ablation = ablation_curves(
        selection.full_probe, matrix.rows(test), y[test], ranking, concept, mode=mode,
        n_steps=ablation_steps, n_random=n_random, random_state=random_state,
    )
    control = [
        control_selectivity(
            matrix, corpus, layer, ranking.top_ids(k, concept), concept, probe_factory=factory,
            train_mask=train, test_mask=test, random_state=random_state,
        ).to_dict() | {"k": k}
        for k in selection.ks
    ]
    layers = layer_distribution(ranking, k=max(selection.ks),
                                concepts=None if concept is None else [concept],
                                include_global=concept is None)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = [*plot_selection(selection, out / "selection"),
             *plot_ablation(ablation, out / "ablation"),
             *plot_layer_distribution(layers, out / "layers")]
    summary = {
        "format": SUMMARY_FORMAT,
        "tool_version": __version__,
        "store": str(store.path),
        "store_fingerprint": store.fingerprint,
        "corpus": corpus.name,
        "labels": layer,
        "concept": concept,
        "ranking": {"method": ranking.method, "label_layer": ranking.label_layer,
                    "store_fingerprint": ranking.store_fingerprint,
                    "n_neurons": len(order)},
        "split": {"by": "sentence", "test_size": test_size, "n_train": int(train.sum()),
                  "n_test": int(test.sum()), "n_train_sentences": held.n_train_sentences,
                  "n_test_sentences": held.n_test_sentences, "random_state": random_state},
        "holdout": held.to_dict() | {"description": held.describe()},
        "probe": {"class": "LinearProbe", "max_epochs": max_epochs},
        "selection": selection.to_dict(),
        "ablation": ablation.to_dict(),
        "control": control,
        "layers": layers.to_dict(),
        "plots": [p.name for p in plots],
        "warnings": warnings,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary
