"""A memory check before activations are loaded whole, so that a request that cannot fit
ends in a clear error instead of the system killing the process.

The budget is the memory the system reports available (``psutil``), or the value of the
environment variable ``NEURONSCOPE_MEMORY_LIMIT`` (``4GB``, ``512MB``, or bytes) when set.
Only stores are checked: an array handed in is already in memory.
"""

from __future__ import annotations

import mmap
import os
import re

import numpy as np

from neuronscope.errors import NeuronscopeError

ENV = "NEURONSCOPE_MEMORY_LIMIT"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """``"4GB"`` -> 4_000_000_000; ``"512MiB"``, ``"1e9"`` and plain integers work too."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise NeuronscopeError(f"{ENV}: cannot read {text!r} as a size such as 4GB or 512MiB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def memory_budget() -> int:
    """Bytes that may be allocated now: ``NEURONSCOPE_MEMORY_LIMIT`` or the available memory."""
    limit = os.environ.get(ENV)
    if limit:
        return parse_bytes(limit)
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(nbytes: int, what: str) -> None:
    """Raise a clear error when ``nbytes`` would not fit in the memory budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise NeuronscopeError(
            f"{what} needs {nbytes / 1e9:.2f} GB in memory, more than the "
            f"{budget / 1e9:.2f} GB available ({ENV} or the system's free memory): choose "
            "fewer neurons (--components/--layers) or a method that streams the store "
            "(`neuronscope methods` lists how each reads its data)"
        )


#: Arrays from this size on are mapped by :func:`empty_matrix` itself.
MAP_BYTES = 1 << 26


def empty_matrix(shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """A new uninitialized array for a large matrix, backed by plain 4 KB pages.

    numpy asks Linux for transparent huge pages on large arrays (``madvise``); where the
    kernel compacts memory to serve such a fault (``/sys/kernel/mm/transparent_hugepage/
    defrag`` = ``madvise``, the default), touching a fresh 2.2 GB array for the first time
    took 4.6-7.3 s on our 2-core VM. An anonymous map of our own is not advised, and
    ``MAP_POPULATE`` maps its pages in one call instead of one fault per page: 0.9-2.9 s in
    the same runs (1.6-4.4 s faulted page by page). The map is freed with the array. Small
    arrays come from numpy as usual.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MAP_BYTES or not hasattr(mmap, "MAP_PRIVATE"):
        return np.empty(shape, dtype=dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    buffer = mmap.mmap(-1, nbytes, flags=flags)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)
