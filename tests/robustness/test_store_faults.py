"""Crashes, full disks and concurrent writers during store creation and extraction.

A forked child (the tiny model is already loaded: no start-up cost) runs an extraction with
``NEURONSCOPE_FAULT_AT=<checkpoint>:<n>`` and kills itself with SIGKILL there. Afterwards the
store is absent (creation is atomic), resumable, or complete; resuming (or starting again
when absent) must give a store whose every file is bitwise equal to an uninterrupted run's,
and nothing may ever be marked complete that is not.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import IncompleteStoreError, NeuronscopeError, StoreError
from neuronscope.extraction import extract
from neuronscope.store import ActivationStore, StoreWriter, faults, read_meta
from neuronscope.store.integrity import verify
from neuronscope.store.lock import StoreLock, lock_path

# Three blocks of about 256 words, chunks of 100 rows: many chunk and commit writes.
SETTINGS = {"components": ("hidden", "mlp"), "block_bytes": 1, "chunk_words": 100,
            "batch_size": 4, "progress": False}
TIMESTAMPS = ("created", "finished")

# (checkpoint, n): the n-th pass kills the process. Creation writes ~15 files through the
# chunk store before the first activation chunk; an extraction of the corpus below passes
# write:chunk 33 times (each activation file once: the writer carries a block's rows past the
# last whole chunk into the next block's write), write:rows 10, write:sentences 6, commit:* 4
# (the last in finalize).
KILLS = [
    ("create:tmpdir", 1), ("create:array", 1), ("create:array", 2), ("create:words", 1),
    ("create:words", 3), ("create:manifest", 1), ("create:meta", 1), ("create:swapped", 1),
    ("write:chunk", 1), ("write:chunk", 8), ("write:chunk", 14), ("write:chunk", 20),
    ("write:chunk", 27), ("write:chunk", 33), ("write:rows", 1), ("write:rows", 4),
    ("write:rows", 10), ("write:sentences", 2), ("write:sentences", 6),
    ("commit:manifest", 1), ("commit:manifest", 3), ("commit:meta", 2),
    ("finalize:start", 1), ("commit:manifest", 4), ("commit:meta", 4),
]
DEFAULT = {("create:words", 1), ("write:chunk", 20), ("commit:manifest", 1), ("commit:meta", 4)}


@pytest.fixture(scope="module")
def clean(tmp_path_factory, big_corpus, tiny_bert) -> Path:
    out = tmp_path_factory.mktemp("clean") / "store"
    extract(big_corpus, out, tiny_bert, **SETTINGS)
    return out


def in_child(fn: Callable[[], object], *, fault: str | None = None,
             file_size_limit: int | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run ``fn`` in a forked child: (exit code, -9 when killed; message of its error)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        os.close(read)
        try:
            faults.reset()
            if fault:
                os.environ[faults.ENV] = fault
            if file_size_limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
            fn()
        except NeuronscopeError as err:
            os.write(write, str(err).encode())
            code = 2
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read, 65536),
                                                                 b"")))
    reader.start()
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"child stuck for {timeout} s")
        time.sleep(0.02)
    reader.join()
    os.close(read)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


def assert_same_store(store: Path, reference: Path) -> None:
    """Every file bitwise equal; the metadata equal but for its timestamps."""
    def files(root: Path) -> dict[str, Path]:
        return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}

    mine, theirs = files(store), files(reference)
    assert sorted(mine) == sorted(theirs)
    for name, path in mine.items():
        if name != "neuronscope.json":
            assert path.read_bytes() == theirs[name].read_bytes(), name
    meta, ref = read_meta(store), read_meta(reference)
    assert {k: v for k, v in meta.items() if k not in TIMESTAMPS} == {
        k: v for k, v in ref.items() if k not in TIMESTAMPS}


def recover(out: Path, corpus: Corpus, model, clean: Path) -> str:
    """Bring a killed store to completion the way a user would; returns what was found."""
    if not out.exists():
        with pytest.raises(StoreError, match="does not exist"):
            extract(corpus, out, model, resume=True, **SETTINGS)
        extract(corpus, out, model, **SETTINGS)  # creation left nothing to clean by hand
        state = "absent"
    elif read_meta(out)["complete"]:
        assert verify(out) == []  # marked complete: it must be
        state = "complete"
    else:
        with pytest.raises(IncompleteStoreError):
            ActivationStore(out)
        extract(corpus, out, model, resume=True, **SETTINGS)
        state = "resumed"
    assert_same_store(out, clean)
    leftovers = [p.name for p in out.parent.iterdir() if p.name != out.name]
    assert not [n for n in leftovers if ".creating-" in n or ".old-" in n], leftovers
    return state


@pytest.mark.parametrize(("checkpoint", "n"), [
    pytest.param(c, n, marks=() if (c, n) in DEFAULT else pytest.mark.fuzz) for c, n in KILLS])
def test_kill_then_resume_is_bitwise_equal(checkpoint, n, tmp_path, big_corpus, tiny_bert,
                                           clean):
    out = tmp_path / "store"
    code, message = in_child(lambda: extract(big_corpus, out, tiny_bert, **SETTINGS),
                             fault=f"{checkpoint}:{n}")
    assert code == -signal.SIGKILL, (code, message)
    state = recover(out, big_corpus, tiny_bert, clean)
    if checkpoint.startswith("create:") and checkpoint != "create:swapped":
        assert state == "absent"
    elif checkpoint in ("write:rows", "write:sentences", "commit:manifest"):
        assert state == "resumed"


@pytest.mark.parametrize("checkpoint", ["create:moved-old", "create:swapped", "create:words"])
def test_kill_during_overwrite_keeps_a_store(checkpoint, tmp_path, big_corpus, small_corpus,
                                             tiny_bert, clean):
    """Replacing a store: a kill at any step leaves the old store or the new one."""
    out = tmp_path / "store"
    shutil.copytree(clean, out)
    other = Corpus(small_corpus.sentences[:4], {}, name="other")
    code, _ = in_child(lambda: extract(other, out, tiny_bert, overwrite=True, **SETTINGS),
                       fault=f"{checkpoint}:1")
    assert code == -signal.SIGKILL
    if checkpoint == "create:moved-old":
        assert not out.exists()  # killed between the two renames: the next writer restores
        with pytest.raises(StoreError, match="already exists"):
            extract(big_corpus, out, tiny_bert, **SETTINGS)
        assert_same_store(out, clean)
    elif checkpoint == "create:words":
        assert_same_store(out, clean)  # the new store was never in place
    else:
        assert ActivationStore(out, allow_incomplete=True).n_sentences == 4  # the new one
    extract(big_corpus, out, tiny_bert, overwrite=True, **SETTINGS)
    assert_same_store(out, clean)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_file_size_limit_gives_clear_error_and_resumable_store(tmp_path, big_corpus, tiny_bert,
                                                               clean):
    """RLIMIT_FSIZE below one sentence-vector chunk (15 kB; activation chunks are 12.8 kB)."""
    out = tmp_path / "store"
    code, message = in_child(lambda: extract(big_corpus, out, tiny_bert, **SETTINGS),
                             file_size_limit=14_000)
    assert code == 2, message
    assert message.startswith(f"cannot write store {out}: File too large"), message
    assert "--resume" in message and "Traceback" not in message
    assert read_meta(out)["complete"] is False
    extract(big_corpus, out, tiny_bert, resume=True, **SETTINGS)
    assert_same_store(out, clean)


def test_file_size_limit_during_creation_leaves_nothing(tmp_path, big_corpus, tiny_bert):
    out = tmp_path / "sub" / "store"
    code, message = in_child(lambda: extract(big_corpus, out, tiny_bert, **SETTINGS),
                             file_size_limit=1_000)
    assert code == 2, message
    assert message.startswith(f"cannot create store {out}: File too large"), message
    assert "nothing was created" in message
    assert list(out.parent.iterdir()) == []


def test_second_writer_refused_while_the_first_holds_the_lock(tmp_path, big_corpus, tiny_bert,
                                                              clean):
    out = tmp_path / "store"
    shutil.copytree(clean, out)
    with StoreLock(out):  # as a running extraction holds it
        for kwargs in ({"overwrite": True}, {"resume": True}):
            with pytest.raises(StoreError, match=rf"store {out} is being written by another "
                                                 rf"process \(pid {os.getpid()}"):
                extract(big_corpus, out, tiny_bert, **kwargs, **SETTINGS)
        with pytest.raises(StoreError, match="being written"):
            StoreWriter.create(out, {}, big_corpus, overwrite=True)
    assert not lock_path(out).exists()
    assert_same_store(out, clean)  # untouched


def test_lock_dies_with_its_process(tmp_path, big_corpus, tiny_bert, clean):
    """kill -9 of a writer releases its lock: --resume works at once."""
    out = tmp_path / "store"
    code, _ = in_child(lambda: extract(big_corpus, out, tiny_bert, **SETTINGS),
                       fault="commit:meta:1")
    assert code == -signal.SIGKILL and lock_path(out).exists()
    extract(big_corpus, out, tiny_bert, resume=True, **SETTINGS)
    assert_same_store(out, clean)
    assert not lock_path(out).exists()


@pytest.mark.parametrize("trial", [0, pytest.param(1, marks=pytest.mark.fuzz),
                                   pytest.param(2, marks=pytest.mark.fuzz)])
def test_concurrent_overwrites_never_lose_the_store(trial, tmp_path, big_corpus, tiny_bert,
                                                    clean):
    out = tmp_path / "store"
    shutil.copytree(clean, out)
    results: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: results.append(in_child(
        lambda: extract(big_corpus, out, tiny_bert, overwrite=True, **SETTINGS))))
        for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for code, message in results:
        # Each run either replaced the store or was refused because the other held it.
        assert code == 0 or (code == 2 and "being written by another process" in message), (
            code, message)
    assert any(code == 0 for code, _ in results)
    assert verify(out) == []
    assert_same_store(out, clean)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
