"""Exceptions raised by neuronscope.

Every error a user can cause by bad input derives from :class:`NeuronscopeError`, so the CLI
can print it as one clear line instead of a traceback.
"""

from __future__ import annotations


class NeuronscopeError(Exception):
    """Base class of all errors caused by bad input or state."""


class CorpusFormatError(NeuronscopeError, ValueError):
    """A corpus or label file is malformed; the message names the file and line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class EmptyCorpusError(NeuronscopeError, ValueError):
    """A corpus has no sentences or no words."""


class UnknownComponentError(NeuronscopeError, KeyError):
    """A component, layer, module or neuron name does not exist; the message lists valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ModelLoadError(NeuronscopeError, OSError):
    """A model could not be found or loaded."""


class StoreError(NeuronscopeError):
    """An activation store is missing, incomplete, or does not match the given inputs."""


class IncompleteStoreError(StoreError):
    """The store was not finished (an extraction was interrupted); resume it or allow partial."""


class FingerprintMismatchError(StoreError):
    """A store and a corpus (or model) do not belong together."""


class DamagedStoreError(StoreError):
    """A store's files are missing, truncated, corrupt or inconsistent with its metadata."""


class StoreLockedError(StoreError):
    """Another process is writing the store (its advisory writer lock is held)."""


class InvalidOptionError(NeuronscopeError, ValueError):
    """An option or parameter value is out of range or malformed; the message names it."""
