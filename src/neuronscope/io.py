"""Safe file output: ONE atomic-write function and ONE check of output paths.

Every file neuronscope writes goes through :func:`atomic_path` (or its helpers
:func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`atomic_write_json`): the data is
written to a temporary file in the target's folder, flushed and fsynced, given the permissions
a plain ``open(path, "w")`` would give (``0o666`` minus the umask), then renamed over the
target. Readers therefore see the old file or the new one, never half of one, and a crash
leaves no temporary file behind.

:func:`check_output` is called by commands BEFORE any work, so that a missing parent, a
read-only folder, a file where a folder is expected (or the reverse), the input file itself or
an existing file without ``overwrite`` fail in a second with a clear message instead of after
an hour of computation.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from neuronscope.errors import NeuronscopeError

__all__ = [
    "OutputPathError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output",
    "default_file_mode",
]

PathLike = str | os.PathLike


class OutputPathError(NeuronscopeError):
    """An output path cannot or must not be written (missing parent, exists, read-only...)."""


def default_file_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    # os.umask can only be read by setting it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces ``path`` when the block succeeds.

    Use it for writers that need a file name (h5py, matplotlib, pandas)::

        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")

    The temporary file is fsynced, given :func:`default_file_mode` and renamed over ``path``
    when the block ends normally; on any exception (KeyboardInterrupt included) it is removed
    and ``path`` is left as it was.
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # the writer may have closed (or replaced) the file
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp makes it owner-only
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform/file system allows it.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 with ``\\n`` line ends to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, data: Any, *, indent: int | None = 2,
                      default: Any = None) -> None:
    """Write ``data`` as JSON (UTF-8) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=indent, default=default))


def check_output(
    path: PathLike,
    *,
    kind: Literal["file", "dir"] = "file",
    overwrite: bool = False,
    inputs: Iterable[PathLike | None] = (),
    option: str = "--out",
    marker: str | None = None,
) -> Path:
    """Check an output path before any work is done; return it as a :class:`Path`.

    Args:
        path: the file or folder to be written.
        kind: ``"file"``: ``path`` must not be a folder; an existing file needs ``overwrite``.
            ``"dir"``: ``path`` must not be a file; an existing non-empty folder needs
            ``overwrite`` (and, with ``marker``, must contain that file: a folder this tool
            did not write is never replaced).
        overwrite: allow replacing what exists.
        inputs: files or folders this command reads; ``path`` must not be one of them and,
            for a folder, must not contain one of them.
        option: the option's name, used in messages.
        marker: for ``kind="dir"``, a file that proves the folder was written by neuronscope.

    Raises:
        OutputPathError: the parent is missing, not a folder or not writable; the path has the
            wrong kind; it is an input; it exists and ``overwrite`` is false.
    """
    out = Path(path)
    if str(path) == "" or out.name in ("", ".", ".."):
        raise OutputPathError(f"{option} {str(path)!r}: give a file or folder name")
    resolved = out.resolve()
    for src in inputs:
        if src is None:
            continue
        src_path = Path(src).resolve()
        if resolved == src_path or (kind == "dir" and src_path.is_relative_to(resolved)):
            raise OutputPathError(f"{option} {out} is an input of this command; "
                                  "choose another output path")
    parent = _existing_parent(out)
    if not parent.is_dir():
        raise OutputPathError(f"{option} {out}: {parent} is not a folder")
    if parent != out.parent.resolve() and kind == "file":
        # A missing parent folder is created for folders (stores, reports), not for files:
        # a typo in a file's folder should not scatter new folders around.
        raise OutputPathError(f"{option} {out}: folder {out.parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {out}: folder {parent} is not writable")
    if kind == "file":
        if out.is_dir():
            raise OutputPathError(f"{option} {out} is a folder; give a file name")
        if out.exists() or out.is_symlink():
            if not overwrite:
                raise OutputPathError(f"{option} {out} already exists; pass --overwrite to "
                                      "replace it")
            if not os.access(out, os.W_OK) and not os.access(parent, os.W_OK):
                raise OutputPathError(f"{option} {out} is not writable")
    else:
        if out.exists() and not out.is_dir():
            raise OutputPathError(f"{option} {out} is a file; give a folder name")
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:
                raise OutputPathError(f"{option} {out} already exists and is not empty; pass "
                                      "--overwrite to replace its files")
            if marker is not None and not (out / marker).exists():
                raise OutputPathError(f"refusing to overwrite {out}: it was not written by "
                                      f"neuronscope (no {marker} in it)")
            if not os.access(out, os.W_OK | os.X_OK):
                raise OutputPathError(f"{option} {out}: folder is not writable")
    return out


def _existing_parent(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (resolved)."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.resolve()

