"""Output safety: every --out checked before any work, nothing overwritten without
--overwrite, inputs never replaced, one atomic writer with the umask's permissions."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from neuronscope.io import (
    OutputPathError,
    atomic_path,
    atomic_write_text,
    check_output,
    default_file_mode,
)
from tests.robustness.conftest import assert_user_error


def _digest(folder: Path) -> dict[str, str]:
    """Hash of every file under ``folder`` (to prove nothing changed)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _rank(rb, out, *extra):
    return ["rank", rb.store, rb.corpus, "--labels", "upos", "--method", "probeless",
            "--out", out, *extra]


def test_rank_refuses_existing_file_then_overwrites(cli, rb, tmp_path):
    out = tmp_path / "ranking.json"
    out.write_text("keep me")
    assert_user_error(cli(_rank(rb, out)), "already exists", "--overwrite")
    assert out.read_text() == "keep me"
    result = cli(_rank(rb, out, "--overwrite"))
    assert result.code == 0, result.text
    assert '"neuronscope-ranking"' in out.read_text()


def test_rank_never_overwrites_its_inputs(cli, rb):
    before = _digest(rb.root)
    assert_user_error(cli(_rank(rb, rb.corpus, "--overwrite")), "is an input")
    assert_user_error(cli(_rank(rb, rb.store, "--overwrite")), "is an input")
    assert _digest(rb.root) == before


@pytest.mark.parametrize("case", ["missing-parent", "parent-is-file", "out-is-dir",
                                  "read-only-dir"])
def test_rank_bad_out_paths_fail_before_work(cli, rb, tmp_path, case, monkeypatch):
    if case == "missing-parent":
        out, fragment = tmp_path / "nope" / "r.json", "does not exist"
    elif case == "parent-is-file":
        (tmp_path / "f").write_text("x")
        out, fragment = tmp_path / "f" / "r.json", "is not a folder"
    elif case == "out-is-dir":
        (tmp_path / "d").mkdir()
        out, fragment = tmp_path / "d", "is a folder"
    else:
        if os.geteuid() == 0:
            # root writes anywhere: simulate the refusal the kernel would give a user.
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == tmp_path / "ro"
                                else real(p, m))
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        out, fragment = tmp_path / "ro" / "r.json", "not writable"

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr("neuronscope.methods.build_method", no_work)
    assert_user_error(cli(_rank(rb, out)), fragment)


def test_export_refuses_existing_file(cli, rb, tmp_path):
    out = tmp_path / "acts.hdf5"
    out.write_bytes(b"old")
    assert_user_error(cli(["export", rb.store, "--out", out]), "already exists")
    assert out.read_bytes() == b"old"
    assert cli(["export", rb.store, "--out", out, "--overwrite"]).code == 0
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_evaluate_refuses_existing_results_before_training(cli, rb, tmp_path, monkeypatch):
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "summary.json").write_text("{}")

    def no_work(*args, **kwargs):
        raise AssertionError("probes trained before the output folder was checked")

    monkeypatch.setattr("neuronscope.evaluation.pipeline.run_evaluation", no_work)
    result = cli(["evaluate", rb.store, rb.corpus, rb.ranking, "--labels", "upos",
                  "--out", out])
    assert_user_error(result, "already exists", "--overwrite")
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    result = cli(["evaluate", rb.store, rb.corpus, rb.ranking, "--labels", "upos",
                  "--out", tmp_path / "stranger", "--overwrite"])
    assert_user_error(result, "not written by neuronscope")


def test_report_refuses_existing_folder(cli, rb, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("someone else's")
    assert_user_error(cli(["report", rb.store, rb.corpus, rb.ranking, "--out", out]),
                      "already exists")
    assert_user_error(cli(["report", rb.store, rb.corpus, rb.ranking, "--out", out,
                           "--overwrite"]), "not written by neuronscope")
    assert (out / "index.html").read_text() == "someone else's"


@pytest.mark.parametrize("command", [
    ["cluster", "{store}"],
    ["factorize", "{store}", "{corpus}", "-k", "2"],
    ["explain", "{store}", "{corpus}", "--neuron", "L0.hidden.0"],
])
def test_json_outs_refuse_existing_files(cli, rb, tmp_path, command):
    out = tmp_path / "result.json"
    out.write_text("keep")
    args = [a.format(store=rb.store, corpus=rb.corpus) for a in command]
    assert_user_error(cli([*args, "--out", out]), "already exists")
    assert out.read_text() == "keep"


def test_atomic_write_permissions_follow_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
        assert mode == 0o640 == default_file_mode()
    finally:
        os.umask(old)
    os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "b.txt", "y")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_check_output_refuses_empty_names(name):
    with pytest.raises(OutputPathError):
        check_output(name)


def test_no_writer_bypasses_the_atomic_function():
    """Every file write in the package goes through neuronscope.io (grep, as the brief asks)."""
    src = Path(__file__).resolve().parents[2] / "src" / "neuronscope"
    offenders = []
    for path in src.rglob("*.py"):
        if path.name == "io.py" and path.parent == src:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in (".write_text(", ".write_bytes(", "os.replace(", ".savefig(out",
                       ".to_csv(path"):
            if needle in text:
                offenders.append(f"{path.relative_to(src)}: {needle}")
    # Store folders are swapped into place by renames of whole directories (not files); the
    # mirror of a remote store is written into a fresh temporary folder, swapped in whole.
    allowed = {"store/neurox.py: os.replace(", "store/writer.py: os.replace(",
               "cli/interventions.py: .write_text(", "store/remote.py: .write_text(",
               "store/remote.py: .write_bytes(", "store/remote.py: os.replace("}
    assert set(offenders) <= allowed, offenders
