"""Damaged stores are refused by every command that reads them, naming what is damaged.

Each case copies the store ``neuronscope extract`` wrote, damages one thing (a chunk deleted,
truncated or bit-flipped; the metadata corrupt or inconsistent; the manifest gone) and runs
the commands. None may print a result computed from fill values (NaN, empty words, sentence
0): each must fail with :class:`DamagedStoreError` (or exit 2 with its message).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.errors import DamagedStoreError
from neuronscope.store import ActivationStore
from neuronscope.store.integrity import verify

runner = CliRunner()


def _delete(key: str) -> Callable[[Path], str]:
    def damage(store: Path) -> str:
        (store / key).unlink()
        return key
    return damage


def _truncate(key: str) -> Callable[[Path], str]:
    def damage(store: Path) -> str:
        with open(store / key, "r+b") as f:
            f.truncate(7)
        return key
    return damage


def _flip_all_activation_chunks(store: Path) -> str:
    """One bit of every activation chunk: any read of activations meets a damaged chunk.

    A file is a shard holding one chunk per layer (each with its own CRC-32C): a bit every
    4 KiB reaches every chunk of it."""
    for path in sorted((store / "activations").rglob("c/*/*")):
        data = bytearray(path.read_bytes())
        for at in range(len(data) // 3, len(data), 4096):
            data[at] ^= 0x10
        path.write_bytes(bytes(data))
    return "fails its checksum"


def _edit_meta(edit: Callable[[dict], object], expected: str) -> Callable[[Path], str]:
    def damage(store: Path) -> str:
        meta = json.loads((store / "neuronscope.json").read_text())
        edit(meta)
        (store / "neuronscope.json").write_text(json.dumps(meta))
        return expected
    return damage


def _garble_meta(store: Path) -> str:
    (store / "neuronscope.json").write_text('{"format": "neuronscope-activation-store", ')
    return "corrupt metadata"


DAMAGES = {
    "activation chunk deleted": _delete("activations/hidden/c/0/0"),  # a shard: all layers
    "activation chunk truncated": _truncate("activations/mlp/c/0/0"),
    "words chunk deleted": _delete("words/word/c/0"),
    "sentence-id chunk deleted": _delete("words/sentence_id/c/0"),
    "position chunk truncated": _truncate("words/position/c/0"),
    "array metadata deleted": _delete("activations/hidden/zarr.json"),
    "manifest deleted": _delete("manifest.json"),
    "metadata corrupt": _garble_meta,
    "metadata key missing": _edit_meta(lambda m: m["corpus"].pop("n_words"), "corpus.n_words"),
    "metadata wrong neuron count": _edit_meta(
        lambda m: m["components"]["mlp"].update(neurons=48), "activations/mlp has shape"),
    "metadata wrong type": _edit_meta(
        lambda m: m["progress"].update(words_done="all"), "progress.words_done"),
    "activation bits flipped": _flip_all_activation_chunks,
}
# Run by default; the others with the fuzz suite (`make fuzz`, NEURONSCOPE_FUZZ=1).
DEFAULT = {"activation chunk deleted", "words chunk deleted", "metadata wrong neuron count",
           "activation bits flipped"}


@pytest.fixture(scope="module")
def ranking_json(cli_store, small_conllu, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ranking") / "r.json"
    result = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--labels", "upos",
                                 "--method", "probeless", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _commands(store: Path, corpus: Path, ranking: Path, out: Path) -> dict[str, list[str]]:
    s, c = str(store), str(corpus)
    return {
        "info": ["info", s],
        "rank": ["rank", s, c, "--labels", "upos", "--method", "probeless",
                 "--out", str(out / "r.json")],
        "top-words": ["top-words", s, c, "--neuron", "L1.mlp.3", "-k", "3"],
        "export": ["export", s, "--out", str(out / "x.hdf5")],
        "evaluate": ["evaluate", s, c, str(ranking), "--labels", "upos", "--ks", "2",
                     "--n-random", "1", "--ablation-steps", "2", "--max-epochs", "1",
                     "--out", str(out / "eval")],
        "report": ["report", s, c, str(ranking), "--out", str(out / "report")],
    }


def _refused(result, expected: str) -> str:
    """The message of a refusal; fails the test on success or on any other error."""
    if isinstance(result.exception, DamagedStoreError):
        message = str(result.exception)
    else:  # an error boundary that prints the message and exits 2
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        message = result.output
    assert "damaged" in message and expected in message, message
    return message


@pytest.mark.parametrize("damage", [
    pytest.param(name, marks=() if name in DEFAULT else pytest.mark.fuzz) for name in DAMAGES])
def test_damaged_store_refused_by_every_command(damage, cli_store, small_conllu, ranking_json,
                                               tmp_path):
    store = tmp_path / "damaged.store"
    shutil.copytree(cli_store, store)
    expected = DAMAGES[damage](store)
    problems = verify(store)
    assert problems and any(expected in p for p in problems), problems
    result = runner.invoke(app, ["verify", str(store)])
    assert result.exit_code == 2 and "DAMAGED" in result.output and expected in result.output
    for name, args in _commands(store, small_conllu, ranking_json, tmp_path).items():
        result = runner.invoke(app, args)
        if name == "info" and damage == "activation bits flipped":
            # A bit flip changes no size: only reading the chunk (or verify) can see it.
            assert result.exit_code == 0, result.output
            continue
        _refused(result, expected)
    assert not (tmp_path / "x.hdf5").exists() and not (tmp_path / "r.json").exists()


def test_intact_store_verifies_and_reads(cli_store):
    assert verify(cli_store) == []
    result = runner.invoke(app, ["verify", str(cli_store)])
    assert result.exit_code == 0 and result.output.startswith("OK"), result.output
    st = ActivationStore(cli_store)
    assert np.isfinite(st.matrix()).all()
