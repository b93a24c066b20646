"""``to_pandas()`` on rankings and neuron statistics: the DataFrames researchers work in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuronscope.methods.ranking import ranking_from_scores
from neuronscope.methods.shortlists import neuron_statistics


def test_ranking_to_pandas_keeps_neuron_names():
    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    ranking = ranking_from_scores("probe", {}, scores, ["NOUN", "VERB"], np.arange(3),
                                  ["L0.hidden.0", "L0.mlp.7", "L1.hidden.2"])
    frame = ranking.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["concept", "rank", "neuron", "id", "score"]
    noun = frame[frame["concept"] == "NOUN"]
    assert noun["neuron"].tolist() == ["L0.mlp.7", "L1.hidden.2", "L0.hidden.0"]
    assert noun["score"].tolist() == [0.9, 0.5, 0.1]
    pd.testing.assert_frame_equal(frame, ranking.to_dataframe())


def test_neuron_statistics_to_pandas(extracted):
    store = extracted("bert", "mean", ("hidden",))
    names = ["L1.hidden.0", "L1.hidden.5"]
    stats = neuron_statistics(store, names)
    frame = stats.to_pandas()
    assert frame.index.tolist() == names and frame.index.name == "neuron"
    column = store.neurons(names)[:, 1]
    assert np.isclose(frame.loc["L1.hidden.5", "mean"], column.mean(), atol=1e-5)
    assert np.isclose(frame.loc["L1.hidden.5", "max"], column.max())
