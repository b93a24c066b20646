"""Extraction: run a model over a corpus and capture word-level neuron activations."""

from neuronscope.extraction.alignment import AGGREGATIONS, WordTokenizer
from neuronscope.extraction.components import Component, parse_layers, resolve_components
from neuronscope.extraction.extractor import extract
from neuronscope.extraction.hooks import Trace, resolve_modules

__all__ = [
    "AGGREGATIONS",
    "Component",
    "Trace",
    "WordTokenizer",
    "extract",
    "parse_layers",
    "resolve_components",
    "resolve_modules",
]
