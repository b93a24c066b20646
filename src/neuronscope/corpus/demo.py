"""The demo corpus: English sentences with gold labels, shipped as ``neuronscope/data/demo.conllu``.

The file is generated at build time from a small hand-written grammar by
``scripts/build_demo_corpus.py`` (see its docstring for how each label is defined); the package
only reads it. Word layers: ``upos``, ``xpos``, ``lemma`` and :data:`DEMO_FEATURES`, plus a
``suffix`` layer (:data:`DEMO_SUFFIXES`) that :func:`load_demo_corpus` adds; sentence layers:
``tense`` (``past``/``present``) and ``type`` (``statement``/``question``).
"""

from __future__ import annotations

from importlib import resources

from neuronscope.corpus.annotators import AffixAnnotator
from neuronscope.corpus.corpus import Corpus
from neuronscope.corpus.readers import read_conllu

__all__ = [
    "DEMO_FEATURES",
    "DEMO_SUFFIXES",
    "demo_suffix_annotator",
    "load_demo_corpus",
]

#: Feature layers of the demo corpus (besides upos, xpos and lemma).
DEMO_FEATURES = ("Degree", "Number", "Tense", "VerbForm")

#: Suffixes of the ``suffix`` layer that :func:`load_demo_corpus` adds.
DEMO_SUFFIXES = ("ing", "ed", "ly", "s", "er", "est", "tion", "ness", "ful", "ment")


def demo_suffix_annotator() -> AffixAnnotator:
    """The annotator that adds the demo corpus' ``suffix`` layer (e.g. ``-ing``, ``-ly``)."""
    return AffixAnnotator("suffix", suffixes=DEMO_SUFFIXES, min_stem=3)


def load_demo_corpus() -> Corpus:
    """Read the shipped demo corpus (``neuronscope/data/demo.conllu``) and add ``suffix``.

    Word layers: ``upos``, ``xpos``, ``lemma``, ``Degree``, ``Number``, ``Tense``,
    ``VerbForm``, ``suffix``; sentence layers: ``tense`` and ``type``.
    """
    resource = resources.files("neuronscope") / "data" / "demo.conllu"
    with resources.as_file(resource) as path:
        corpus = read_conllu(path, name="demo")
    return demo_suffix_annotator().annotate(corpus)
