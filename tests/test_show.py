"""``neuronscope show`` renders saved results: rankings and any other verb's JSON."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.methods.ranking import ranking_from_scores

runner = CliRunner()


def test_show_ranking(tmp_path):
    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    ranking = ranking_from_scores("probe", {"alpha": 0.01}, scores, ["NOUN", "[/]odd"],
                                  np.arange(3), ["a", "b", "c"])
    path = tmp_path / "r.json"
    ranking.to_json(path)
    result = runner.invoke(app, ["show", str(path), "--top", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "b (0.9), c (0.5)" in result.output
    assert "[/]odd" in result.output  # labels are data, never markup


def test_show_generic_result(tmp_path):
    data = {"format": "neuronscope-groups", "params": {"n_groups": 2, "seed": 0},
            "groups": [{"size": 2, "members": ["L0.hidden.[1]", "x"]}, {"size": 1}],
            "accuracy": 0.93125}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["show", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("neuronscope-groups", "0.93125", "n_groups", "L0.hidden.[1]", "size"):
        assert text in result.output


def test_show_refuses_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }')
    result = runner.invoke(app, ["show", str(bad)])
    assert result.exit_code != 0
    assert "bad.json:2: not valid JSON" in str(result.exception) + result.output
