"""Where reductions run: here by default, on a cluster inside ``neuronscope.distributed.use``.

Stages that stream sufficient statistics (class moments, the correlation Gram matrix) ask
:func:`active_backend` for an object that computes them elsewhere; ``neuronscope.distributed``
installs one for the duration of a ``connect``/``use`` block. This module imports nothing
from the package, so the stages do not depend on ``neuronscope.distributed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_BACKEND: ContextVar[Any] = ContextVar("neuronscope_backend", default=None)


def active_backend() -> Any:
    """The backend of the innermost ``neuronscope.distributed.use`` block, or None."""
    return _BACKEND.get()


@contextmanager
def backend(obj: Any) -> Iterator[Any]:
    """Install ``obj`` (with ``class_moments`` and ``block_pass`` methods) inside the block."""
    token = _BACKEND.set(obj)
    try:
        yield obj
    finally:
        _BACKEND.reset(token)
