"""Shared options: every verb takes --out and --no-progress, every model verb --device, and
--no-progress silences the loading bars of other libraries."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.progress import QUIET_ENV, third_party_progress_silenced

runner = CliRunner()

#: `show` renders a saved result: it is the reader of --out files, not a writer of one, and
#: `methods` only lists the registry (instantly).
NOT_ANALYSIS = {"show"}
NO_PROGRESS_NEEDED = {"show", "methods"}
#: Every verb that runs a model (loads one to extract, intervene, generate or check a loss).
MODEL_VERBS = {"extract", "rank", "ablate", "attribute", "steer", "generate", "benchmark",
               "demo", "compare-units", "sae train", "sae attach"}


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a sub-app (typer may bring its own click)
            found.update(_commands(cmd, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = cmd
    return found


COMMANDS = _commands(typer.main.get_command(app))  # type: ignore[arg-type]


def _option_names(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def test_the_walk_finds_every_stage():
    assert {"extract", "rank", "evaluate", "cluster", "sae train", "explain"} <= set(COMMANDS)
    assert len(COMMANDS) >= 28


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_lists_shared_options(name):
    result = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    params = _option_names(COMMANDS[name])
    if name not in NOT_ANALYSIS:
        assert "--out" in params and "--out" in result.output
    if name not in NO_PROGRESS_NEEDED:
        assert "--no-progress" in params and "--no-progress" in result.output
    if name in MODEL_VERBS:
        assert "--device" in params and "--device" in result.output


@pytest.fixture
def restore_progress_bars(monkeypatch):
    """--no-progress changes process-wide switches: put them back after the test."""
    for key in QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    yield
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    enable_progress_bars()
    for key in QUIET_ENV:
        os.environ.pop(key, None)


def test_no_progress_silences_third_party_bars(cli_store, restore_progress_bars):
    import huggingface_hub.utils
    import transformers.utils.logging  # noqa: F401  (imported: switched through its API)

    huggingface_hub.utils.enable_progress_bars()
    transformers.utils.logging.enable_progress_bar()
    assert not third_party_progress_silenced()
    result = runner.invoke(app, ["info", str(cli_store), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert third_party_progress_silenced()
    assert not transformers.utils.logging.is_progress_bar_enabled()
    assert huggingface_hub.utils.are_progress_bars_disabled()
    assert os.environ["TQDM_DISABLE"] == "1"
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_progress_keeps_third_party_bars(cli_store, restore_progress_bars):
    import transformers.utils.logging

    transformers.utils.logging.enable_progress_bar()
    result = runner.invoke(app, ["info", str(cli_store)])
    assert result.exit_code == 0, result.output
    assert transformers.utils.logging.is_progress_bar_enabled()
    assert "TQDM_DISABLE" not in os.environ


def test_no_progress_silences_the_gguf_tensor_bar(restore_progress_bars, capsys):
    """The GGUF loader of transformers draws a plain tqdm over the tensors."""
    gguf = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    original = gguf.tqdm
    try:
        from neuronscope.progress import silence_third_party_progress

        silence_third_party_progress()
        list(gguf.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
        assert "de-quantizing" not in capsys.readouterr().err
    finally:
        gguf.tqdm = original
    assert "transformers.modeling_gguf_pytorch_utils" in sys.modules
