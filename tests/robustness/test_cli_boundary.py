"""The CLI's error boundary: exit codes, one-line messages, log files, --debug, interrupts."""

from __future__ import annotations

import pytest

from neuronscope.cli import errors as cli_errors
from tests.robustness.conftest import assert_user_error


def test_user_error_is_one_line_exit_2(cli, tmp_path):
    result = cli(["info", tmp_path / "missing"])
    assert_user_error(result, "missing", "not a neuronscope activation store")


def test_usage_errors_keep_typer_code(cli):
    result = cli(["rank", "--no-such-option"])
    assert result.code == 2
    assert "No such option" in result.err and "Traceback" not in result.text


def test_unexpected_error_logs_traceback(cli, rb, monkeypatch, tmp_path):
    monkeypatch.setenv("NEURONSCOPE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("NEURONSCOPE_DEBUG", raising=False)

    def boom(*args, **kwargs):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr("neuronscope.store.ActivationStore.info", boom)
    result = cli(["info", rb.store])
    assert result.code == 1
    assert "Traceback" not in result.text
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "ZeroDivisionError" in lines[0] and "planted bug" in lines[0]
    logs = list((tmp_path / "logs").iterdir())
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    assert "Traceback" in logs[0].read_text() and "planted bug" in logs[0].read_text()


def test_debug_shows_traceback(cli, rb, monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr("neuronscope.store.ActivationStore.info", boom)
    try:
        result = cli(["--debug", "info", rb.store])
    finally:
        cli_errors.set_debug(False)
    assert result.code == 1
    assert "Traceback" in result.err and "planted bug" in result.err


def test_interrupt_exits_130(cli, rb, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("neuronscope.store.ActivationStore.info", stop)
    result = cli(["info", rb.store])
    assert result.code == 130 and result.err.strip() == "interrupted"


def test_markup_in_error_message_is_printed_literally(cli, tmp_path):
    bad = tmp_path / "[bold]x[/]" / "[/]"
    result = cli(["info", bad])
    assert_user_error(result, "[bold]x[/]/[/]")


@pytest.mark.parametrize("text, expected", [
    ("a\nb", "a | b"), ("tab\there", "tab here"), ("bell\x07", "bell\\x07"),
    ("lone \ud800", "lone \\ud800"), ("plain", "plain"),
])
def test_one_line(text, expected):
    assert cli_errors.one_line(text) == expected


def test_long_messages_are_clipped(cli, rb):
    result = cli(["top-words", rb.store, rb.corpus, "--neuron", "L0.hidden." + "9" * 100_000])
    assert_user_error(result, "bad neuron name", "more characters")
    assert len(result.err) < 3000
