"""One parameter base for every configurable class (scikit-learn's convention).

A configurable class takes all its settings as keyword arguments of ``__init__`` and stores
each one, unchanged, under its own name; fitted state gets a trailing underscore and is set
by the working method (``rank``, ``search``, ``explain``...), never by ``__init__``.
:class:`Configurable` then derives everything else from the ``__init__`` signature, so the
recorded parameters cannot drift from the constructor:

* :meth:`~Configurable.get_params` returns every constructor parameter with its value;
* :meth:`~Configurable.set_params` changes some, refusing unknown names with an error that
  names them and lists the valid ones;
* :meth:`~Configurable.clone` builds an unfitted copy with the same parameters;
* ``repr`` shows the class with its parameters.

Data belongs in the working method, not in ``__init__``: this keeps parameters small,
comparable and JSON-ready (see :func:`jsonable`), which is what provenance records.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

from neuronscope.errors import NeuronscopeError

Self = TypeVar("Self", bound="Configurable")

#: value shown by :meth:`Configurable.param_defaults` for a parameter without a default
REQUIRED = inspect.Parameter.empty


class Configurable:
    """Base of configurable classes: parameters are the ``__init__`` keyword arguments."""

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor parameters, in signature order."""
        return list(cls.param_defaults())

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Constructor parameter -> default (:data:`REQUIRED` where there is none)."""
        if cls.__init__ is object.__init__:
            return {}
        signature = inspect.signature(cls.__init__)
        out: dict[str, Any] = {}
        for name, p in signature.parameters.items():
            if name == "self":
                continue
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                # Hidden parameters could not be listed, checked or cloned.
                raise TypeError(f"{cls.__name__}.__init__ must not take *args or **kwargs")
            out[name] = p.default
        return out

    @classmethod
    def check_params(cls, names: Iterable[str]) -> None:
        """Raise a :class:`NeuronscopeError` naming every unknown parameter in ``names``."""
        valid = cls.param_names()
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise NeuronscopeError(
                f"{cls.__name__} has no parameter(s) {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(valid) or 'none'}"
            )

    def get_params(self) -> dict[str, Any]:
        """Every constructor parameter and its current value."""
        out = {}
        for name in self.param_names():
            if not hasattr(self, name):  # a subclass broke the convention: say which
                raise TypeError(
                    f"{type(self).__name__}.__init__ does not store parameter {name!r} "
                    "under its own name"
                )
            out[name] = getattr(self, name)
        return out

    def set_params(self: Self, **params: Any) -> Self:
        """Change parameters (all or nothing: unknown names are an error); returns ``self``."""
        self.check_params(params)
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self: Self) -> Self:
        """A new, unfitted instance with equal parameters.

        Plain values (numbers, strings, containers, arrays) are deep-copied so the copies do
        not share mutable state; configurable values are cloned; anything else (a loaded
        model, a corpus, a store) is shared, as copying it would be costly and pointless.
        """
        return type(self)(**{k: _clone_value(v) for k, v in self.get_params().items()})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={_short_repr(v)}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _clone_value(value: Any) -> Any:
    if isinstance(value, Configurable):
        return value.clone()
    if _is_plain(value):
        return copy.deepcopy(value)
    return value


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, bytes, bool, int, float, complex, np.generic,
                                           np.ndarray)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: tuples and sets become lists, numpy values Python ones,
    configurable objects their ``repr`` and any other object a short description (its
    ``name`` attribute when it has one, else its ``repr``)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str) and not isinstance(value, Configurable):
        return f"<{type(value).__name__} {name}>"
    return repr(value)


__all__ = ["REQUIRED", "Configurable", "jsonable"]
