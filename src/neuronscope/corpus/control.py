"""Control tasks (Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks").

A control task keeps a linguistic task's output space but replaces its labels with ones that
depend on the word type alone: each word type ``v`` gets a control label ``C(v)`` sampled
independently from the empirical distribution of the task's labels over the (training)
words, and every occurrence of ``v`` gets that label whatever its context. A method or probe
that scores well on the real layer but also on its control layer may be memorizing word
identity rather than finding the property; the difference of the two (selectivity) is the
interesting number.

The control layer is just another word-level label layer, so every ranking method,
probe and concept search uses it unchanged.
"""

from __future__ import annotations

import numpy as np

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError


def control_mapping(corpus: Corpus, layer: str, random_state: int | None = 0) -> dict[str, str]:
    """The control label ``C(v)`` of every word type ``v`` of the corpus.

    Labels are drawn independently per type from the token-level empirical distribution of
    ``layer`` (``NO_LABEL`` excluded), as Hewitt & Liang sample from the empirical
    distribution of tags in the training data. Word types are exact strings (no case
    folding). Types are drawn in order of first occurrence, so the mapping depends only on
    the corpus and ``random_state``.

    Raises:
        NeuronscopeError: unknown layer, or a layer with no labelled word.
    """
    counts = corpus.label_counts(layer)  # raises the clear "no label layer" error
    labels = sorted((c for c in counts if c != NO_LABEL), key=str)
    if not labels:
        raise NeuronscopeError(
            f"label layer {layer!r} of corpus {corpus.name!r} has no labelled word "
            f"(every label is {NO_LABEL!r}); it has no distribution to sample controls from"
        )
    weights = np.array([counts[c] for c in labels], dtype=np.float64)
    types = list(dict.fromkeys(corpus.words()))  # first-occurrence order, deterministic
    rng = np.random.default_rng(random_state)
    draws = rng.choice(len(labels), size=len(types), p=weights / weights.sum())
    return {t: labels[i] for t, i in zip(types, draws.tolist(), strict=True)}


def control_layer(
    corpus: Corpus, layer: str, name: str | None = None, random_state: int | None = 0
) -> Corpus:
    """A new corpus with a control version of ``layer`` added as layer ``name``.

    Every word type gets one random label (see :func:`control_mapping`), so identical words
    always share their control label and the labels follow the original distribution in
    expectation. Words whose original label is ``NO_LABEL`` keep ``NO_LABEL``: they are not
    part of the task, and keeping them blank keeps the control task's words the same as the
    real task's. The input corpus is not changed.

    Args:
        corpus: the corpus.
        layer: the word-level layer to control for, e.g. ``"upos"``.
        name: name of the new layer (default ``f"{layer}-control"``); an existing layer of
            that name is replaced, except ``layer`` itself.
        random_state: seed; the same seed gives the same control layer.
    """
    name = f"{layer}-control" if name is None else name
    if name == layer:
        raise NeuronscopeError(
            f"the control layer cannot replace its own source layer {layer!r}; choose another name"
        )
    mapping = control_mapping(corpus, layer, random_state)
    per_sentence = [
        [
            NO_LABEL if label == NO_LABEL else mapping[word]
            for word, label in zip(words, labels, strict=True)
        ]
        for words, labels in zip(corpus.sentences, corpus.layer(layer), strict=True)
    ]
    return corpus.with_layer(name, per_sentence)
