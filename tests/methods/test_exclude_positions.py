"""Special positions left out of every supervised ranker's statistics (issue #13, item 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.corpus.writers import write_conllu
from neuronscope.errors import NeuronscopeError
from neuronscope.methods import METHODS, get_method
from neuronscope.methods.hygiene import (
    exclude_positions,
    rank_excluding,
    ranking_exclusion,
    special_position_mask,
)
from neuronscope.methods.ranking import Ranking
from tests.methods.conftest import labelled_store

FAST = {"probe": {"n_alphas": 3, "max_epochs": 5}, "gaussian": {"max_neurons": 3}}
LENGTH = 6


def massive_first(n: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """n0: -80 on the first word of every sentence and about 0 elsewhere (a causal LM's
    massive activation), n1 focused on A, the rest noise; sentences of LENGTH words."""
    rng = np.random.default_rng(0)
    y = np.asarray(["A", "B", "C"])[rng.integers(0, 3, n)]
    x = rng.standard_normal((n, 6)).astype(np.float32)
    first = np.arange(n) % LENGTH == 0
    x[:, 0] = 0.01 * rng.standard_normal(n)
    x[first, 0] = -80.0
    x[:, 1] += 2.0 * (y == "A")
    return x, y


def test_special_position_mask() -> None:
    sentences = np.asarray([0, 0, 0, 1, 2, 2])
    positions = np.asarray([0, 1, 2, 0, 0, 1])
    assert special_position_mask(sentences, positions, "none").tolist() == [0] * 6
    assert special_position_mask(sentences, positions, "first").tolist() == [1, 0, 0, 1, 1, 0]
    assert special_position_mask(sentences, positions, "last").tolist() == [0, 0, 1, 1, 0, 1]
    assert special_position_mask(sentences, positions, "first-last").tolist() == [
        1, 0, 1, 1, 1, 1]
    with pytest.raises(NeuronscopeError, match="exclude_positions must be one of"):
        special_position_mask(sentences, positions, "bos")


def test_exclusion_needs_positions_and_rows(tmp_path: Path) -> None:
    x, _ = massive_first(60)
    assert exclude_positions(x, "none").n_words == 60
    with pytest.raises(NeuronscopeError, match="needs word positions"):
        exclude_positions(x, "first")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_supervised_ranker_honours_the_exclusion(name: str, tmp_path: Path) -> None:
    x, y = massive_first()
    store, corpus = labelled_store(tmp_path / "s", x, y, sentence_length=LENGTH)
    labels = corpus.concept_labels("tag")
    kept = store.positions() > 0
    plain = rank_excluding(get_method(name, **FAST.get(name, {})), store, labels, "none")
    without = rank_excluding(get_method(name, **FAST.get(name, {})), store, labels, "first")
    # The massive first-word neuron is reported only while the first words are counted.
    assert "L0.hidden.0" in plain.extra["hygiene"]["massive"]["neurons"]
    assert without.extra["hygiene"]["massive"]["count"] == 0
    assert without.extra["exclude_positions"] == {
        "policy": "first", "n_rows": int(kept.sum()), "n_excluded": int((~kept).sum())}
    assert ranking_exclusion(without) == "first" and ranking_exclusion(plain) == "none"
    # The policy survives the JSON round trip (evaluate re-ranks with it).
    path = tmp_path / "r.json"
    without.to_json(path)
    assert ranking_exclusion(Ranking.from_json(path)) == "first"
    if name in ("iou", "ap", "probeless", "selectivity"):  # deterministic: same statistics
        direct = get_method(name).rank(x[kept], y[kept])
        for concept in ("A", "B", "C"):
            np.testing.assert_array_equal(without.concepts[concept].ids,
                                          direct.concepts[concept].ids)
            np.testing.assert_allclose(without.concepts[concept].scores,
                                       direct.concepts[concept].scores, rtol=1e-5)


def test_rank_cli_exclude_positions(tmp_path: Path) -> None:
    from neuronscope.cli import app

    x, y = massive_first(300)
    store, corpus = labelled_store(tmp_path / "s", x, y, sentence_length=LENGTH)
    conllu = tmp_path / "c.conllu"
    write_conllu(corpus, conllu)  # the "tag" layer round-trips through MISC
    runner = CliRunner()
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["rank", str(store.path), str(conllu), "--labels", "tag",
                                 "--method", "probeless", "--exclude-positions", "first",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Ranking.from_json(out).extra["exclude_positions"]["n_excluded"] == 50
    bad = runner.invoke(app, ["rank", str(store.path), str(conllu), "--labels", "tag",
                              "--method", "probeless", "--exclude-positions", "cls",
                              "--out", str(tmp_path / "bad.json")])
    assert isinstance(bad.exception, NeuronscopeError)
    assert "exclude_positions must be one of" in str(bad.exception)
