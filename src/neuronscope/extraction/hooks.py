"""The one hook primitive: capture, and optionally edit, inputs or outputs of named submodules.

Everything that looks inside a running model (extraction, interventions, attribution) goes
through :class:`Trace`, so hook registration and clean-up live in exactly one place.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import torch
from torch import nn

from neuronscope.errors import UnknownComponentError

#: ``edit(module_name, tensor) -> tensor``; receives the captured tensor, returns its replacement.
EditFn = Callable[[str, torch.Tensor], torch.Tensor]


def resolve_modules(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """Look up submodules by their ``named_modules`` names, with a helpful error on typos."""
    available = dict(model.named_modules())
    found: dict[str, nn.Module] = {}
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=5, cutoff=0.5)
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise UnknownComponentError(f"model has no module named {name!r}{hint}")
        found[name] = available[name]
    return found


class _StopForward(Exception):
    """Raised by a ``Trace(stop=True)`` hook to end the forward pass; its ``Trace`` swallows it."""

    def __init__(self, trace: Trace) -> None:
        super().__init__("forward pass stopped after the last traced module")
        self.trace = trace


def _first_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise TypeError(f"cannot find a tensor in module value of type {type(value).__name__}")


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return tensor
    return type(value)((tensor, *value[1:]))


class Trace:
    """Context manager that hooks named submodules of a model.

    For each module it can keep the module's output and/or first positional input (the input
    of an MLP down-projection holds the FFN neurons; the input of an attention output
    projection holds the concatenated heads) and apply edit functions to either one.
    Hooks are removed on exit, even after an exception, so the model is left as it was.

    Args:
        model: the model to hook.
        modules: names of submodules, as in ``model.named_modules()``.
        retain_output: keep each module's output in ``self.outputs[name]``.
        retain_input: keep each module's first input in ``self.inputs[name]``.
        edit_output: function applied to each module's output before it flows on.
        edit_input: function applied to each module's first input before the module runs.
        detach: keep detached tensors (set False to keep the graph for gradients).
        stop: end the forward pass as soon as every traced module has been captured (after
            its output, or after its input when only inputs are hooked): later layers cannot
            change what was captured, so they are not computed. The model call then returns
            nothing; code after it inside the ``with`` block does not run, and the ``Trace``
            swallows the stop on exit. Read the captured tensors after the block.

    Example:
        >>> with Trace(model, ["encoder.layer.3.output.dense"], retain_input=True) as tr:
        ...     model(**batch)
        >>> ffn = tr.inputs["encoder.layer.3.output.dense"]
    """

    def __init__(
        self,
        model: nn.Module,
        modules: Iterable[str],
        *,
        retain_output: bool = True,
        retain_input: bool = False,
        edit_output: EditFn | None = None,
        edit_input: EditFn | None = None,
        detach: bool = True,
        stop: bool = False,
    ) -> None:
        self.model = model
        self.modules = resolve_modules(model, list(dict.fromkeys(modules)))
        self.retain_output = retain_output
        self.retain_input = retain_input
        self.edit_output = edit_output
        self.edit_input = edit_input
        self.detach = detach
        self.stop = stop
        self._seen: set[str] = set()
        self.outputs: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _keep(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach() if self.detach else tensor

    @property
    def _hooks_output(self) -> bool:
        return self.retain_output or self.edit_output is not None

    def _done(self, name: str) -> None:
        """Note that ``name`` has been handled; stop the pass once every module has been."""
        if self.stop:
            self._seen.add(name)
            if len(self._seen) == len(self.modules):
                raise _StopForward(self)

    def _make_pre_hook(self, name: str) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            result = None
            if args and isinstance(args[0], torch.Tensor):
                x = args[0]
                if self.edit_input is not None:
                    x = self.edit_input(name, x)
                    if x is not args[0]:  # an edit in place needs no new arguments
                        result = (x, *args[1:])
                if self.retain_input:
                    self.inputs[name] = self._keep(x)
            if not self._hooks_output:
                self._done(name)  # the module itself need not run
            return result

        return hook

    def _make_forward_hook(self, name: str) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            result = None
            if self.edit_output is not None:
                edited = self.edit_output(name, _first_tensor(output))
                result = output = _replace_first(output, edited)
            if self.retain_output:
                self.outputs[name] = self._keep(_first_tensor(output))
            self._done(name)
            return result

        return hook

    def __enter__(self) -> Trace:
        self._seen.clear()
        # With ``stop``, a module hooked on its input only must still report that it ran.
        wants_input = self.retain_input or self.edit_input is not None
        try:
            for name, module in self.modules.items():
                if wants_input or (self.stop and not self._hooks_output):
                    self._handles.append(module.register_forward_pre_hook(self._make_pre_hook(name)))
                if self._hooks_output:
                    self._handles.append(module.register_forward_hook(self._make_forward_hook(name)))
        except BaseException:
            self.close()
            raise
        return self

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run one forward pass ``fn(*args, **kwargs)`` inside this open trace.

        Keeps the hooks registered across many passes (no per-pass registration cost). With
        ``stop``, a pass that ended after the last traced module returns ``None``: read the
        captured tensors from :attr:`outputs` / :attr:`inputs`.
        """
        self._seen.clear()
        try:
            return fn(*args, **kwargs)
        except _StopForward as err:
            if err.trace is not self:
                raise  # an enclosing trace's stop
            return None

    def close(self) -> None:
        """Remove every hook this trace registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.close()
        # Swallow only this trace's own stop: an enclosing trace's stop must reach it.
        return isinstance(exc, _StopForward) and exc.trace is self
