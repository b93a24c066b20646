"""neuronscope: neuron-level interpretation of deep NLP models.

Corpus and concepts -> batched hook-based extraction -> on-disk word-aligned activation
store -> ranking methods, evaluation, interventions and reports.
"""

__version__ = "0.1.0"
