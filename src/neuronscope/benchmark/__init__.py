"""The planted-neuron benchmark: neurons with known roles hidden among real or synthetic ones.

``PlantedBenchmark(...).build(background, labels)`` plants focused, group, polysemous and
redundant neurons at several signal-to-noise ratios; ``run_benchmark(planted)`` ranks them
with every method of :data:`neuronscope.methods.METHODS` and returns a :class:`Leaderboard`
of precision@k and recall@k per method, kind and SNR, next to a random floor.
"""

from neuronscope.benchmark.leaderboard import (
    DEFAULT_KS,
    DEFAULT_METHOD_PARAMS,
    Leaderboard,
    chance_cases,
    random_ranking,
    run_benchmark,
    score_ranking,
)
from neuronscope.benchmark.planting import (
    KINDS,
    PlantedBenchmark,
    PlantedData,
    PlantedUnit,
    zero_sum_direction,
)
from neuronscope.benchmark.synthetic import synthetic_background, synthetic_labels

__all__ = [
    "DEFAULT_KS",
    "DEFAULT_METHOD_PARAMS",
    "KINDS",
    "Leaderboard",
    "PlantedBenchmark",
    "PlantedData",
    "PlantedUnit",
    "chance_cases",
    "random_ranking",
    "run_benchmark",
    "score_ranking",
    "synthetic_background",
    "synthetic_labels",
    "zero_sum_direction",
]
