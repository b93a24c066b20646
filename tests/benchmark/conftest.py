"""Shared small planted instances (synthetic background, seeded) for the benchmark tests."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.benchmark import (
    PlantedBenchmark,
    PlantedData,
    synthetic_background,
    synthetic_labels,
)

N_WORDS, N_NEURONS, N_CLASSES = 2000, 120, 8


@pytest.fixture(scope="session")
def background() -> np.ndarray:
    """Label-free synthetic activations (2,000 words x 120 neurons)."""
    return synthetic_background(N_WORDS, N_NEURONS, random_state=0)


@pytest.fixture(scope="session")
def labels() -> np.ndarray:
    """Eight Zipf-distributed classes C0..C7."""
    return synthetic_labels(N_WORDS, N_CLASSES, random_state=0)


@pytest.fixture(scope="session")
def bench_params() -> dict:
    """A small benchmark: every kind at the default SNRs, two concepts per SNR."""
    return {"n_concepts": 2, "random_state": 0}


@pytest.fixture(scope="session")
def planted(background, labels, bench_params) -> PlantedData:
    """The seeded small instance."""
    return PlantedBenchmark(**bench_params).build(background, labels)
