"""Packages whose public names are imported on first use.

Importing a stage's package (``neuronscope.evaluation``) must stay cheap: the CLI imports
every stage's command module at start-up, and the stages pull in torch, matplotlib, pandas
or Captum. Each package lists ``name -> submodule`` once and gets its module-level
``__getattr__`` and ``__dir__`` from :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` of a package that exports names lazily.

    Args:
        package: the package's ``__name__``.
        exports: module -> the public names it defines; a module is relative to the package
            (``"selected"``) or absolute (``"neuronscope.interventions.generation"``).
        namespace: the package's ``globals()``; a name is cached there on first use so that
            later look-ups skip ``__getattr__``.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = where[name]
        full = module if module.startswith("neuronscope.") else f"{package}.{module}"
        value = getattr(importlib.import_module(full), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *where})

    return getattr_, dir_, sorted(where)
