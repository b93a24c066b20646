"""Ranking JSON: malformed files and dictionaries are refused with the field named; valid ones
load exactly. Generated mutations of a valid ranking plus the hand cases of issue #14."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.methods.ranking_schema import RankingFormatError
from tests.robustness.conftest import assert_user_error, examples


def _valid() -> dict:
    scores = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    ranking = ranking_from_scores("probe", {"alpha": 0.1}, scores, ["NOUN", "[/]"],
                                  np.array([0, 1, 2]), ["L0.h.0", "L0.h.1", "L0.h.2"],
                                  store_fingerprint="abc", label_layer="upos")
    return ranking.to_dict()


VALID = _valid()
# Paths into the dictionary that mutations target.
PATHS = [
    ("format",), ("method",), ("params",), ("names",), ("names", "0"), ("concepts",),
    ("concepts", "NOUN"), ("concepts", "NOUN", "ids"), ("concepts", "NOUN", "scores"),
    ("concepts", "NOUN", "ids", 0), ("concepts", "NOUN", "scores", 1), ("global",),
    ("global", "ids"), ("global", "scores"), ("global", "ids", 2), ("store_fingerprint",),
    ("label_layer",), ("extra",),
]
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(),
                 st.text(max_size=20), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _set(data: dict, path: tuple, value) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _delete(data: dict, path: tuple) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


def _check(data) -> None:
    """Either a clear RankingFormatError or a ranking that round-trips exactly."""
    try:
        ranking = Ranking.from_dict(data)
    except RankingFormatError as err:
        assert str(err) and "\n" not in str(err)
        return
    again = Ranking.from_dict(json.loads(json.dumps(ranking.to_dict())))
    for concept in ranking.concept_names:
        before, after = ranking.scores(concept), again.scores(concept)
        assert list(before) == list(after)
        # NaN round-trips as NaN (assert_array_equal counts NaN == NaN; `==` on dicts not).
        np.testing.assert_array_equal(list(before.values()), list(after.values()))
        assert [ranking.names[int(i)] for i in ranking.concepts[concept].ids] == \
            list(ranking.scores(concept))


@settings(max_examples=examples(25, 300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=JUNK, delete=st.booleans())
def test_mutated_rankings_fail_clearly_or_load_exactly(path, value, delete):
    data = copy.deepcopy(VALID)
    before = copy.deepcopy(data)
    if delete:
        _delete(data, path)
    else:
        _set(data, path, value)
    mutated = copy.deepcopy(data)
    _check(data)
    assert data == mutated  # the input is never changed
    assert before == VALID


@settings(max_examples=examples(10, 100), deadline=None)
@given(payload=st.recursive(JUNK, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                            max_leaves=10))
def test_arbitrary_json_values_are_refused_clearly(payload):
    with pytest.raises(RankingFormatError):
        Ranking.from_dict(payload)


HAND_CASES = {
    "length mismatch": lambda d: d["concepts"]["NOUN"]["scores"].pop(),
    "string id": lambda d: d["concepts"]["NOUN"]["ids"].__setitem__(0, "0"),
    "bool score": lambda d: d["global"]["scores"].__setitem__(0, True),
    "float id": lambda d: d["global"]["ids"].__setitem__(0, 1.0),
    "negative id": lambda d: d["global"]["ids"].__setitem__(0, -1),
    "id without name": lambda d: d["names"].pop("1"),
    "huge name key": lambda d: d["names"].__setitem__("9" * 100, "x"),
    "names a list": lambda d: d.__setitem__("names", ["a"]),
    "concept not an object": lambda d: d["concepts"].__setitem__("NOUN", [1, 2]),
    "no format": lambda d: d.pop("format"),
    "wrong format": lambda d: d.__setitem__("format", "neurox"),
    "params a string": lambda d: d.__setitem__("params", "alpha=1"),
    "method a number": lambda d: d.__setitem__("method", 3),
}


@pytest.mark.parametrize("case", sorted(HAND_CASES))
def test_hand_edited_rankings(case):
    data = copy.deepcopy(VALID)
    HAND_CASES[case](data)
    with pytest.raises(RankingFormatError):
        Ranking.from_dict(data)


def test_file_named_like_json_text_is_a_path(tmp_path):
    path = tmp_path / "{r}.json"
    path.write_text(json.dumps(VALID), encoding="utf-8")
    assert Ranking.from_json(str(path)).concept_names == ["NOUN", "[/]"]
    assert Ranking.from_json(path).method == "probe"
    # A string that starts with "{" and names an existing file in the working dir.
    assert Ranking.from_json(json.dumps(VALID)).method == "probe"


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"", "not valid JSON"),
    (b"null", "expected a JSON object"),
    (json.dumps({"format": "neuronscope-ranking"}).encode(), "'method' is missing"),
])
def test_damaged_ranking_files(tmp_path, content, fragment):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(RankingFormatError, match=fragment):
        Ranking.from_json(path)


def test_missing_and_folder_paths(tmp_path):
    with pytest.raises(NeuronscopeError, match="not found"):
        Ranking.from_json(tmp_path / "nope.json")
    with pytest.raises(NeuronscopeError, match="is a folder"):
        Ranking.from_json(tmp_path)


@pytest.mark.parametrize("case", ["length mismatch", "string id", "id without name"])
def test_evaluate_and_report_refuse_bad_rankings(cli, rb, tmp_path, case):
    data = json.loads(Path(rb.ranking).read_text())
    concept = next(iter(data["concepts"]))
    if case == "length mismatch":
        data["concepts"][concept]["scores"].pop()
    elif case == "string id":
        data["concepts"][concept]["ids"][0] = "x"
    else:
        data["names"].pop(str(data["concepts"][concept]["ids"][0]))
    bad = tmp_path / "bad [red].json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    result = cli(["evaluate", rb.store, rb.corpus, bad, "--labels", "upos",
                  "--out", tmp_path / "ev"])
    assert_user_error(result, "bad [red].json", f"concepts.{concept}")
    result = cli(["report", rb.store, rb.corpus, bad, "--out", tmp_path / "site"])
    assert_user_error(result, f"concepts.{concept}")


def test_duplicate_ids_are_refused():
    data = copy.deepcopy(VALID)
    ids = data["concepts"]["NOUN"]["ids"]
    ids[1] = ids[0]
    with pytest.raises(RankingFormatError, match="more than once"):
        Ranking.from_dict(data)
