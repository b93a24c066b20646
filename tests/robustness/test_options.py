"""Every option value, valid or not, ends in a result or a clear one-line error (exit 2),
never a traceback; the hand cases of issue #14 name the option and the problem."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronscope.errors import NeuronscopeError
from neuronscope.extraction.components import parse_layers
from tests.cli_outcome import Outcome
from tests.robustness.conftest import assert_user_error, examples


def _clear(result: Outcome) -> None:
    """Success, or exit 2 with a one-line error (ours or Typer's usage message)."""
    assert "Traceback" not in result.text, result.text
    assert result.code in (0, 2), result.text
    if result.code == 2 and not result.err.startswith("Usage:"):
        lines = [line for line in result.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.err


@pytest.mark.parametrize("spec", ["9-2", "", ",", " , ", "-1", "0-99999999999", "1..3", "a",
                                  "3-", "-", "1-2-3", "9" * 5000])
def test_bad_layer_specs(spec):
    with pytest.raises(NeuronscopeError):
        parse_layers(spec)


@pytest.mark.parametrize("spec", ["9-2", "", ",", "0-99999999999", "1"])
def test_bad_layers_on_commands(cli, rb, tmp_path, spec):
    # Layer 1 exists in the store; "1" is the valid control.
    result = cli(["rank", rb.store, rb.corpus, "--labels", "upos", "--method", "probeless",
                  "--layers", spec, "--out", tmp_path / "r.json"])
    if spec == "1":
        assert result.code == 0, result.text
    else:
        assert_user_error(result, "layer")
    result = cli(["cluster", rb.store, "--layers", spec])
    _clear(result)
    assert result.code == (0 if spec == "1" else 2)


@pytest.mark.parametrize("spec", ["9-2", "", ","])
def test_extract_bad_layers_fail_before_loading_a_model(cli, rb, tmp_path, spec, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("model loaded before the options were checked")

    monkeypatch.setattr("neuronscope.models.load_model", no_model)
    result = cli(["extract", rb.corpus, "--out", tmp_path / "s", "--layers", spec])
    assert_user_error(result, "layer")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_extract_max_length_non_positive(cli, rb, tmp_path, value, monkeypatch):
    monkeypatch.setattr("neuronscope.models.load_model", lambda *a, **k: 1 / 0)
    assert_user_error(cli(["extract", rb.corpus, "--out", tmp_path / "s", "--max-length",
                           value]), "--max-length", value)


@pytest.mark.parametrize("value, fragment", [("100000", "exceeds the model's limit"),
                                             ("1", "leaves no room for words")])
def test_extract_max_length_against_the_model(cli, rb, tmp_path, tiny_bert_dir, value,
                                              fragment):
    result = cli(["extract", rb.corpus, "--out", tmp_path / "s", "--model", tiny_bert_dir,
                  "--max-length", value, "--no-progress"])
    assert_user_error(result, fragment)
    assert not (tmp_path / "s" / "neuronscope.json").exists()


@pytest.mark.parametrize("neuron, fragment", [
    ("L0.hidden." + "1" * 100_000, "bad neuron name"),
    ("L0.hidden.99", ">= 4 neurons"),
    ("L7.hidden.0", "layer"),
    ("L0.nope.0", "nope"),
    ("[/]", "bad neuron name"),
    ("", "bad neuron name"),
])
def test_bad_neuron_names(cli, rb, neuron, fragment):
    assert_user_error(cli(["top-words", rb.store, rb.corpus, "--neuron", neuron]), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["-k", "0"], "-k"), (["-k", "-5"], "-k"), (["--output-format", "xml"], "--output-format"),
])
def test_top_words_counts(cli, rb, args, fragment):
    assert_user_error(cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.0",
                           *args]), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--param", "alpha"], "KEY=VALUE"), (["--top", "0"], "--top"),
    (["--method", "nosuch"], "nosuch"), (["--labels", "nolayer"], "nolayer"),
    (["--output-format", ""], "--output-format"),
])
def test_rank_options(cli, rb, tmp_path, args, fragment):
    base = ["rank", rb.store, rb.corpus, "--out", tmp_path / "r.json"]
    if "--labels" not in args:
        base += ["--labels", "upos"]
    if "--method" not in args:
        base += ["--method", "probeless"]
    assert_user_error(cli([*base, *args]), fragment)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--test-size", "2"], "--test-size"), (["--test-size", "0"], "--test-size"),
    (["--n-random", "0"], "--n-random"), (["--max-epochs", "-1"], "--max-epochs"),
    (["--ks", "ten"], "--ks"), (["--ks", ","], "--ks"),
])
def test_evaluate_options(cli, rb, tmp_path, args, fragment):
    result = cli(["evaluate", rb.store, rb.corpus, rb.ranking, "--labels", "upos",
                  "--out", tmp_path / "ev", *args])
    assert_user_error(result, fragment)
    assert not (tmp_path / "ev").exists()


@settings(max_examples=examples(6, 150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.text(alphabet="0123456789-, x", max_size=12))
def test_generated_layer_specs(cli, rb, tmp_path_factory, spec):
    out = tmp_path_factory.mktemp("layers") / "r.json"
    result = cli(["rank", rb.store, rb.corpus, "--labels", "upos", "--method", "probeless",
                  "--layers", spec, "--out", out])
    _clear(result)
    try:
        layers = parse_layers(spec)
    except NeuronscopeError:
        assert result.code == 2
        return
    # Parsed: the command succeeds exactly when every layer exists in the store (0 and 1).
    assert result.code == (0 if set(layers) <= {0, 1} else 2), (spec, result.text)


@settings(max_examples=examples(6, 150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.text(max_size=30),
                      st.from_regex(r"L[0-9]{1,3}\.[a-z]{1,7}\.(h[0-9]{1,2}\.)?[0-9]{1,4}",
                                    fullmatch=True)))
def test_generated_neuron_names(cli, rb, name):
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", name, "-k", "2"])
    _clear(result)
    valid = {f"L{layer}.hidden.{i}" for layer in (0, 1) for i in range(4)}
    assert (result.code == 0) == (name.strip() in valid), (name, result.text)


@settings(max_examples=examples(6, 150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=10), option=st.sampled_from(
    ["-k", "--output-format", "--format", "--label-file"]))
def test_generated_top_words_options(cli, rb, value, option):
    if value.startswith("-"):
        value = " " + value  # an option-looking value is a usage error by design
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden.0", option, value])
    _clear(result)


@settings(max_examples=examples(6, 150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.lists(st.text(max_size=12), min_size=1, max_size=3))
def test_generated_method_params(cli, rb, tmp_path_factory, params):
    out = tmp_path_factory.mktemp("params") / "r.json"
    args = []
    for p in params:
        args += ["--param", p if not p.startswith("-") else " " + p]
    result = cli(["rank", rb.store, rb.corpus, "--labels", "upos", "--method", "probeless",
                  "--out", out, *args])
    _clear(result)
