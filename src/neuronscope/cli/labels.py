"""What ``neuronscope rank`` ranks against: a word label layer, sentence labels, label sets.

``--labels LAYER`` ranks word activations against a word layer; ``--sentence-labels`` ranks
the store's pooled sentence vectors against a sentence layer of the corpus or a file of one
label per sentence; ``--multi-label SEP`` reads set-valued labels (``"A|B"``) and ranks each
concept against the rest. Neuron names are kept in every case (see
:mod:`neuronscope.methods.label_levels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuronscope.errors import InvalidOptionError, NeuronscopeError


@dataclass
class Target:
    """The labels one ``rank`` call ranks against."""

    layer: str  # recorded as the ranking's label layer
    sentence_values: list[str] | None  # one label per sentence (sentence level), else None
    multi_label: str | None  # separator of set-valued labels, else None

    @property
    def plain(self) -> bool:
        """Word level, one label per word: every method (causal ones too) handles it."""
        return self.sentence_values is None and self.multi_label is None


def resolve_target(corpus: Any, labels: str | None, sentence_labels: str | None,
                   multi_label: str | None) -> Target:
    """Check ``--labels`` / ``--sentence-labels`` / ``--multi-label`` against the corpus."""
    if (labels is None) == (sentence_labels is None):
        raise InvalidOptionError("give one of --labels (a word label layer) or "
                                 "--sentence-labels (a sentence label layer or file)")
    if multi_label is not None and not multi_label:
        raise InvalidOptionError("--multi-label takes the separator of label sets, e.g. '|'")
    if labels is not None:
        corpus.layer(labels)  # unknown layer: a clear error listing the layers
        return Target(labels, None, multi_label)
    assert sentence_labels is not None
    if sentence_labels in corpus.sentence_labels:
        return Target(sentence_labels, list(corpus.sentence_labels[sentence_labels]),
                      multi_label)
    path = Path(sentence_labels)
    if not path.is_file():
        layers = ", ".join(corpus.sentence_labels) or "(none)"
        raise NeuronscopeError(f"--sentence-labels {sentence_labels!r} is neither a sentence "
                               f"label layer of the corpus (its layers: {layers}) nor a file")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing newline is not a sentence
    if len(lines) != corpus.n_sentences:
        raise NeuronscopeError(f"{path}: {len(lines)} labels for the corpus' "
                               f"{corpus.n_sentences} sentences (one label per line)")
    return Target(path.stem, [line.strip() for line in lines], multi_label)


def rank_target(build: Any, store: Any, corpus: Any, target: Target,
                neurons: list[int] | None, wanted: list[str] | None) -> Any:
    """Rank ``target`` with a supervised method; ``build(concepts)`` makes the ranker."""
    from neuronscope.methods.label_levels import rank_multilabel, rank_sentences

    def one(concept: str) -> Any:
        return build([concept])

    if target.sentence_values is not None:
        return rank_sentences(build(wanted), store, target.sentence_values, neurons=neurons,
                              label_layer=target.layer, multi_label=target.multi_label,
                              build=one)
    assert target.multi_label is not None
    return rank_multilabel(one, store, corpus.concept_labels(target.layer), target.multi_label,
                           concepts=wanted)
