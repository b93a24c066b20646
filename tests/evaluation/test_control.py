"""Control-task selectivity with known answers.

Word types ``w0..w19`` each have a fixed task label (``P0..P4``, four types each), so the task
is word-type based like POS without ambiguity. Two representations:

* *identity*: a one-hot vector of the word type. A probe can memorize any type -> label map,
  so it solves the task **and** the control task: selectivity ~ 0.
* *label*: a one-hot vector of the task label. It solves the task but knows nothing about the
  type, so on the control task it can at best map each task label to one control label:
  selectivity is high, and control accuracy is exactly what that best map achieves.

The ``Lookup`` probe memorizes the majority label of each distinct input (an unlimited-capacity
probe), which makes the expected accuracies exact.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from neuronscope.corpus.control import control_layer
from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.evaluation import NeuronMatrix, control_selectivity
from neuronscope.methods.linear_probe import LinearProbe


class Lookup:
    """Majority label of each distinct input row seen in training; else the overall majority."""

    def fit(self, x, y):
        table: dict[bytes, Counter] = defaultdict(Counter)
        for row, label in zip(x, y, strict=True):
            table[row.tobytes()][label] += 1
        self.table_ = {k: c.most_common(1)[0][0] for k, c in table.items()}
        self.default_ = Counter(y.tolist()).most_common(1)[0][0]
        return self

    def predict(self, x):
        return np.asarray([self.table_.get(row.tobytes(), self.default_) for row in x])


@pytest.fixture(scope="module")
def typed():
    rng = np.random.default_rng(0)
    sentences = [[f"w{i}" for i in rng.integers(0, 20, size=5)] for _ in range(200)]
    sentences[-1] = sentences[-1] + ["hapax", "x"]  # an unseen type and an unlabelled word
    labels = [[NO_LABEL if w == "x" else "P4" if w == "hapax" else f"P{int(w[1:]) // 4}"
               for w in s] for s in sentences]
    corpus = Corpus(sentences, {"pos": labels}, name="typed")
    words = corpus.words()
    types = sorted(set(words))
    identity = np.eye(len(types), dtype=np.float32)[[types.index(w) for w in words]]
    y = corpus.labels_array("pos")
    tags = sorted(set(y.tolist()))
    label_rep = np.eye(len(tags), dtype=np.float32)[[tags.index(t) for t in y.tolist()]]
    sentence = corpus.sentence_ids()
    test = sentence >= 160  # the last 40 sentences, hapax included
    return corpus, identity, label_rep, test


def _best_map_accuracy(task, control, train, test):
    """Accuracy on test words of mapping each task label to its majority control label."""
    majority = {t: Counter(control[train & (task == t)].tolist()).most_common(1)[0][0]
                for t in set(task[train].tolist())}
    return float(np.mean([majority[t] == c for t, c in zip(task[test], control[test],
                                                           strict=True)]))


def test_identity_neurons_are_not_selective(typed):
    corpus, identity, _, test = typed
    result = control_selectivity(identity, corpus, "pos", probe_factory=Lookup, test_mask=test)
    words = np.asarray(corpus.words())
    labelled = corpus.labels_array("pos") != NO_LABEL
    seen = set(words[~test].tolist())
    share = np.mean([w in seen for w in words[test & labelled]])
    assert result.seen_type_share == pytest.approx(share) and share < 1
    # Memorizing types solves both tasks on every seen type; the hapax is the only miss.
    assert result.task_accuracy >= share and result.control_accuracy >= share - 1e-9
    assert abs(result.selectivity) <= 1 - share + 1e-9
    assert result.n_test == int((test & labelled).sum())
    assert result.n_train == int((~test & labelled).sum())


def test_label_neurons_are_selective_with_the_exact_control_accuracy(typed):
    corpus, _, label_rep, test = typed
    result = control_selectivity(label_rep, corpus, "pos", probe_factory=Lookup, test_mask=test,
                                 random_state=0)
    assert result.task_accuracy == 1.0
    task = corpus.labels_array("pos")
    control = control_layer(corpus, "pos", random_state=0).labels_array("pos-control")
    labelled = task != NO_LABEL
    expected = _best_map_accuracy(task, control, ~test & labelled, test & labelled)
    assert result.control_accuracy == pytest.approx(expected)
    assert result.selectivity == pytest.approx(1.0 - expected)
    assert result.selectivity > 0.4
    assert result.gain_selectivity == pytest.approx(
        (result.task_accuracy - result.task_majority)
        - (result.control_accuracy - result.control_majority))
    assert result.to_dict()["gain_selectivity"] == result.gain_selectivity
    assert result.to_dict()["neurons"] == [f"n{i}" for i in range(label_rep.shape[1])]
    # Baseline-aware by default: the reported score compares gains over each majority.
    assert result.baseline == "majority" and result.score == result.gain_selectivity
    assert result.to_dict()["score"] == result.gain_selectivity
    plain = control_selectivity(label_rep, corpus, "pos", probe_factory=Lookup, test_mask=test,
                                random_state=0, baseline="none")
    assert plain.score == plain.selectivity == result.selectivity
    with pytest.raises(NeuronscopeError, match="baseline must be"):
        control_selectivity(label_rep, corpus, "pos", probe_factory=Lookup, baseline="gain")


def test_linear_probe_agrees_and_subsets_matter(typed):
    corpus, identity, label_rep, test = typed
    both = np.concatenate([identity, label_rep], axis=1)

    def factory():
        return LinearProbe.for_evaluation(0, penalty="none", learning_rate=0.05, max_epochs=30)

    on_label = control_selectivity(both, corpus, "pos", neurons=range(identity.shape[1],
                                                                       both.shape[1]),
                                   probe_factory=factory, test_mask=test)
    on_identity = control_selectivity(both, corpus, "pos", neurons=range(identity.shape[1]),
                                      probe_factory=factory, test_mask=test)
    assert on_label.task_accuracy > 0.97 and on_identity.task_accuracy > 0.97
    assert on_identity.control_accuracy > 0.95
    assert on_label.selectivity > on_identity.selectivity + 0.3


def test_concept_is_one_vs_rest_on_both_tasks(typed):
    corpus, _, label_rep, test = typed
    result = control_selectivity(label_rep, corpus, "pos", concept="P0", probe_factory=Lookup,
                                 test_mask=test)
    assert result.concept == "P0" and result.task_accuracy == 1.0
    task = corpus.labels_array("pos")
    control = control_layer(corpus, "pos", random_state=0).labels_array("pos-control")
    labelled = task != NO_LABEL
    expected = _best_map_accuracy(task, (control == "P0").astype(int), ~test & labelled,
                                  test & labelled)
    assert result.control_accuracy == pytest.approx(expected)


def test_default_split_is_by_sentence_and_seeded(typed):
    corpus, _, label_rep, _ = typed
    a = control_selectivity(label_rep, corpus, "pos", probe_factory=Lookup, random_state=1)
    b = control_selectivity(label_rep, corpus, "pos", probe_factory=Lookup, random_state=1)
    assert a == b
    # 20 % of 200 sentences of ~5 labelled words each.
    assert 180 <= a.n_test <= 220


def test_failures(typed):
    corpus, identity, _, test = typed
    with pytest.raises(NeuronscopeError, match="corpus words"):
        control_selectivity(identity[:-1], corpus, "pos", probe_factory=Lookup)
    with pytest.raises(NeuronscopeError, match="no label layer 'upos'"):
        control_selectivity(identity, corpus, "upos", probe_factory=Lookup)
    stamped = NeuronMatrix(identity, np.arange(identity.shape[1]),
                           [f"n{i}" for i in range(identity.shape[1])], corpus_fingerprint="zz")
    with pytest.raises(FingerprintMismatchError, match="not the corpus"):
        control_selectivity(stamped, corpus, "pos", probe_factory=Lookup)
    with pytest.raises(NeuronscopeError, match="does not occur"):
        control_selectivity(identity, corpus, "pos", concept="NOPE", probe_factory=Lookup,
                            test_mask=test)
