"""An advisory lock held by the one process that creates, fills or replaces a store.

The lock is a hidden file next to the store, ``.<name>.lock``, locked with ``flock``: it
names the store's path rather than its folder, so that it still guards the name while a new
store is swapped in for an old one. The kernel releases it when the process dies (kill -9
included), so a crashed writer never blocks a resume. Only writers take it: readers of a
complete store need no lock. The file is removed on release; its content is the holder's pid,
for the error message.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from neuronscope.errors import StoreError, StoreLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no locking there
    fcntl = None  # type: ignore[assignment]


def lock_path(store: Path) -> Path:
    """The lock file of the store at ``store``."""
    return store.parent / f".{store.name}.lock"


class StoreLock:
    """Exclusive, non-blocking writer lock on a store path; see the module docstring."""

    def __init__(self, store: str | os.PathLike) -> None:
        self.store = Path(store)
        self.path = lock_path(self.store)
        self._fd: int | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> StoreLock:
        """Take the lock, or raise :class:`StoreLockedError` naming the holder at once."""
        if self._fd is not None or fcntl is None:
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise StoreError(f"cannot lock store {self.store}: cannot create "
                                 f"{self.path}: {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise StoreLockedError(
                    f"store {self.store} is being written by another process (pid {holder}; "
                    f"lock {self.path}): wait for it to finish, or stop it and --resume"
                ) from None
            # A previous holder may have removed the file between our open and our lock:
            # then we locked a file nobody else will see; try again on the current one.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                os.close(fd)
                continue
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._fd = fd
            # Released when the writer holding it is garbage collected after an exception.
            self._finalizer = weakref.finalize(self, _release, fd, str(self.path))
            return self

    def release(self) -> None:
        """Remove the lock file and release the lock (no-op when not held)."""
        if self._finalizer is not None:
            self._finalizer()
        self._fd, self._finalizer = None, None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _release(fd: int, path: str) -> None:
    # Unlink while still holding the lock, so no one can lock this file and believe it current.
    try:
        os.unlink(path)
    except OSError:
        pass
    os.close(fd)
