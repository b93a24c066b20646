"""Fault injection for the crash tests (test-only; costs one dictionary look-up when unused).

Set ``NEURONSCOPE_FAULT_AT=<checkpoint>:<n>`` and the process kills itself with SIGKILL the
``n``-th time the write path passes ``<checkpoint>`` (e.g. ``write:chunk:3``, the third chunk
file written). The checkpoints are named where :func:`checkpoint` is called: ``create:*`` in
store creation, ``write:*``, ``commit:*`` and ``finalize:*`` while rows are written. Nothing
else reads the variable; never set it outside tests.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "NEURONSCOPE_FAULT_AT"
_passes: Counter[str] = Counter()
_lock = threading.Lock()


def checkpoint(name: str) -> None:
    """Kill this process here if ``NEURONSCOPE_FAULT_AT`` asks for it."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != name:
        return
    with _lock:
        _passes[name] += 1
        hit = _passes[name] == int(count)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget the passes counted so far (a forked test child starts from zero)."""
    _passes.clear()
