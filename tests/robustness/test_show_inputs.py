"""``neuronscope show FILE``: any file gives tables or a clear one-line error."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness.conftest import assert_user_error, examples

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize("content, fragment", [
    (b"\xff\xfe", "not UTF-8"), (b"{", "not valid JSON"), (b"[" * 100_000, "nested too deeply"),
])
def test_damaged_results(cli, tmp_path, content, fragment):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    assert_user_error(cli(["show", path]), fragment)


@pytest.mark.parametrize("depth", [5, 50, 500, 900])
def test_deep_but_valid_json(cli, tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text("[" * depth + "1" + "]" * depth)
    result = cli(["show", path])
    if depth <= 32:
        assert result.code == 0, result.text[-500:]
    else:
        assert_user_error(result, "levels deep")


@settings(max_examples=examples(10, 150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=JSON)
def test_any_json_shows(cli, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("show") / "r.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = cli(["show", path])
    assert result.code == 0, result.text[-800:]


def test_shown_ranking_keeps_brackets(cli, rb):
    result = cli(["show", rb.ranking])
    assert result.code == 0 and "[/]" in result.out and "[red]" in result.out
