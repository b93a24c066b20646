"""Memory budgets of the rankers: ``memory="4GB"`` (CLI ``--memory 4GB``) bounds what a
method holds at once, and a request that cannot fit is refused with a clear error.

A method states its working set as ``fixed + per_unit * units`` bytes (units: neurons of a
column block, rows of a chunk) and asks :func:`units_within` for the most units that fit, at
most what it would use anyway. Without a budget the limit is the memory the system reports
available, or ``NEURONSCOPE_MEMORY_LIMIT`` when set (:mod:`neuronscope.store.memory`).
"""

from __future__ import annotations

import numbers

from neuronscope.errors import NeuronscopeError
from neuronscope.store.memory import memory_budget, parse_bytes

Memory = str | int | float | None


def resolve_budget(memory: Memory) -> int:
    """Bytes a method may hold: ``memory`` (``"4GB"``, ``"512MiB"`` or a number of bytes),
    else the environment's limit or the available memory."""
    if memory is None:
        return memory_budget()
    if isinstance(memory, str):
        try:
            value = parse_bytes(memory)
        except NeuronscopeError as err:
            raise NeuronscopeError(
                f"memory={memory!r}: not a size such as 4GB, 512MiB or a number of bytes"
            ) from err
    elif isinstance(memory, numbers.Real) and not isinstance(memory, bool):
        value = int(memory)
    else:
        raise NeuronscopeError(f"memory must be a size such as '4GB' or bytes, got {memory!r}")
    if value <= 0:
        raise NeuronscopeError(f"memory must be positive, got {memory!r}")
    return value


def units_within(budget: int, fixed: int, per_unit: int, wanted: int, what: str,
                 unit: str) -> int:
    """The most units (at most ``wanted``, at least 1) whose working set
    ``fixed + per_unit * units`` fits in ``budget`` bytes; an error when not even one does."""
    room = budget - fixed
    if room < per_unit:
        need = fixed + per_unit
        raise NeuronscopeError(
            f"{what} needs at least {need / 1e9:.3f} GB ({fixed / 1e9:.3f} GB of fixed state "
            f"plus {per_unit / 1e6:.1f} MB per {unit}), more than the memory budget of "
            f"{budget / 1e9:.3f} GB: raise --memory / memory=, or select fewer words or neurons"
        )
    return int(max(1, min(wanted, room // max(per_unit, 1))))


def require_within(budget: int, nbytes: int, what: str, hint: str) -> None:
    """Refuse a working set of ``nbytes`` over ``budget`` (``hint``: what to change)."""
    if nbytes > budget:
        raise NeuronscopeError(
            f"{what} needs {nbytes / 1e9:.3f} GB, more than the memory budget of "
            f"{budget / 1e9:.3f} GB: {hint}"
        )
