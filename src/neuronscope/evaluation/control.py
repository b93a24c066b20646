"""Control-task selectivity (Hewitt & Liang 2019, "Designing and Interpreting Probes with
Control Tasks").

``selectivity = task accuracy - control accuracy``: a probe on the same neurons is trained
once on the real labels and once on the control task's (every word *type* carries one random
label, see :func:`neuronscope.corpus.control.control_layer`), with the same probe, the same
training words and the same held-out words. A high task accuracy with a low control
accuracy means the neurons encode the property rather than merely word identity, which a
probe could map to any labelling.

Split, as in the paper: by *sentence* (the paper uses the standard Penn Treebank train/dev/test
sentences). The control labels are drawn once per word type over the whole corpus, so a type
keeps its control label on both sides of the split; frequent types occur in training and test
alike, and test words of types never seen in training carry labels no probe can infer (in the
paper too). ``seen_type_share`` reports the share of test words whose type occurs in training,
which bounds what word identity alone can reach on the control task.

Words whose label is ``NO_LABEL`` (``"_"``) are not part of the task (nor of the control task,
which keeps them blank) and are left out of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronscope.corpus.control import control_layer
from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.evaluation._common import (
    Activations,
    ProbeFactory,
    concept_target,
    default_probe_factory,
    fingerprints,
    fit_and_score,
    load_neurons,
    majority_accuracy,
    n_rows,
    resolve_split,
)


@dataclass
class ControlSelectivity:
    """Task and control-task accuracy of probes on the same neurons, and their difference.

    ``gain_selectivity`` compares the two tasks on a common footing: each accuracy minus its
    own majority-class baseline (the control task's majority is usually lower, which inflates
    the plain difference).
    """

    layer: str
    control_layer: str
    concept: str | None
    neurons: list[str]
    task_accuracy: float
    control_accuracy: float
    selectivity: float
    task_majority: float
    control_majority: float
    seen_type_share: float
    n_train: int
    n_test: int
    random_state: int | None

    @property
    def gain_selectivity(self) -> float:
        """``(task - task majority) - (control - control majority)``."""
        return ((self.task_accuracy - self.task_majority)
                - (self.control_accuracy - self.control_majority))

    def to_pandas(self) -> Any:
        """One row: the scalars of :meth:`to_dict` (neurons left out)."""
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in self.to_dict().items() if k != "neurons"}])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (neurons listed when at most 200)."""
        return {
            "layer": self.layer,
            "control_layer": self.control_layer,
            "concept": self.concept,
            "n_neurons": len(self.neurons),
            "neurons": self.neurons if len(self.neurons) <= 200 else None,
            "task_accuracy": self.task_accuracy,
            "control_accuracy": self.control_accuracy,
            "selectivity": self.selectivity,
            "gain_selectivity": self.gain_selectivity,
            "task_majority": self.task_majority,
            "control_majority": self.control_majority,
            "seen_type_share": self.seen_type_share,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "random_state": self.random_state,
        }


def control_selectivity(
    activations: Activations,
    corpus: Corpus,
    layer: str,
    neurons: Sequence[str | int] | np.ndarray | None = None,
    concept: str | None = None,
    *,
    probe_factory: ProbeFactory | None = None,
    train_mask: np.ndarray | None = None,
    test_mask: np.ndarray | None = None,
    test_size: float = 0.2,
    control_seed: int | None = None,
    random_state: int | None = 0,
) -> ControlSelectivity:
    """Task accuracy minus control-task accuracy of probes on a neuron subset.

    Args:
        activations: a store, an array or a :class:`NeuronMatrix` whose rows are the words
            of ``corpus``.
        corpus: the corpus (checked against a store's fingerprint) holding ``layer``.
        layer: the word-level label layer, e.g. ``"upos"``.
        neurons: the subset (names or ids; default: all loaded neurons).
        concept: one-vs-rest on both tasks (label == concept, control label == concept; the
            control keeps the concept's frequency in expectation).
        probe_factory: builds each probe; default ``LinearProbe.for_evaluation(random_state)``.
        train_mask, test_mask: explicit split; otherwise ``test_size`` of the sentences are
            held out (seeded).
        control_seed: seed of the control labels (default: ``random_state``).
        random_state: seed of the split and the default probe.
    """
    _, corpus_fp = fingerprints(activations)
    if corpus_fp is not None and corpus_fp != corpus.fingerprint:
        raise FingerprintMismatchError(
            f"corpus {corpus.name!r} (fingerprint {corpus.fingerprint}) is not the corpus the "
            f"activations were extracted from ({corpus_fp})"
        )
    if n_rows(activations) != corpus.n_words:
        raise NeuronscopeError(
            f"{corpus.n_words} corpus words for {n_rows(activations)} activation rows"
        )
    seed = random_state if control_seed is None else control_seed
    name = f"{layer}-control"
    with_control = control_layer(corpus, layer, name=name, random_state=seed)
    y = corpus.labels_array(layer)
    yc = with_control.labels_array(name)
    labelled = y != NO_LABEL
    train, test = resolve_split(len(y), train_mask, test_mask, test_size,
                                corpus.sentence_ids(), random_state)
    train, test = train & labelled, test & labelled
    if not train.any() or not test.any():
        raise NeuronscopeError(
            f"no labelled word of layer {layer!r} on one side of the split; use more sentences"
        )
    y_task = concept_target(y, concept)
    y_control = yc if concept is None else (yc == concept).astype(np.int8)
    if len(set(y_control[train].tolist())) < 2:
        raise NeuronscopeError(
            f"the control task of {layer!r} has a single label on the training words"
            + (f" (it never assigns {concept!r} there)" if concept is not None else "")
            + "; try another control_seed or more sentences"
        )
    matrix = load_neurons(activations, neurons)
    if matrix.x.shape[1] == 0:
        raise NeuronscopeError("no neurons selected")
    x_train, x_test = matrix.x[train], matrix.x[test]
    factory = probe_factory or default_probe_factory(random_state)
    task_acc, _ = fit_and_score(factory, x_train, y_task[train], x_test, y_task[test])
    control_acc, _ = fit_and_score(factory, x_train, y_control[train], x_test, y_control[test])
    words = np.asarray(corpus.words(), dtype=object)
    seen = set(words[train].tolist())
    seen_share = float(np.mean([w in seen for w in words[test].tolist()]))
    return ControlSelectivity(
        layer=layer, control_layer=name, concept=concept, neurons=list(matrix.names),
        task_accuracy=task_acc, control_accuracy=control_acc,
        selectivity=task_acc - control_acc,
        task_majority=majority_accuracy(y_task[train], y_task[test]),
        control_majority=majority_accuracy(y_control[train], y_control[test]),
        seen_type_share=seen_share, n_train=int(train.sum()), n_test=int(test.sum()),
        random_state=random_state,
    )
