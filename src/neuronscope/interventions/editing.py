"""Intervene on named neurons of a running Hugging Face model (survey §3.4, §4.1, §6.1).

>>> with intervene(loaded, ["L3.mlp.1021", "L2.attn.h5.17"], op="zero"):
...     out = loaded.model(**batch)          # or loaded.model.generate(...)

Ops: ``zero``; ``mean`` (per-neuron mean over the store's words, or given as ``value``; word
rows aggregate subwords, so this approximates the token-level mean); ``constant`` (scalar or
one value per neuron); ``scale`` (multiply); ``add`` (a steering vector). Positions:
``"all"``, ``"last"`` (the last position of every forward step, which under KV-cache decoding
is the one new token), or absolute token positions (a forward with more than one token starts
a new sequence at 0, a one-token forward right after continues it, so positions keep their
meaning during cached generation; call :meth:`Intervention.reset` to start over by hand).

Hooks go through :class:`~neuronscope.extraction.hooks.Trace` and are removed on exit, even
after an exception; parameters are never touched. Interventions nest: hooks run in the order
they were entered, so the inner edit sees the outer one's result. Batches are assumed
right-padded (``"last"`` then means the last column) or unpadded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.extraction.alignment import WordTokenizer
from neuronscope.extraction.hooks import Trace
from neuronscope.interventions.sites import (
    ComponentSites,
    as_loaded,
    model_sites,
    parse_neuron,
    store_sites,
)
from neuronscope.methods.ranking import Ranking
from neuronscope.models.loading import LoadedModel
from neuronscope.store.provenance import Provenance
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

OPS = ("zero", "mean", "constant", "scale", "add")

#: Neurons: names, or a ranking slice ``(ranking, concept, k)`` / ``(ranking, k)`` (global order).
NeuronSpec = str | Sequence[str] | tuple[Any, ...]
Positions = str | Sequence[int]


class PromptTooLongError(NeuronscopeError, ValueError):
    """A prompt (plus the tokens to generate) does not fit the model's maximum length."""


# ---------------------------------------------------------------------------- model identity
def check_same_model(fingerprint: str | None, loaded: LoadedModel, what: str) -> None:
    """Refuse a ranking or store whose fingerprint's model part is not this model's.

    ``fingerprint`` is a store fingerprint ``{model}-{corpus}-{aggregation}`` or a bare model
    fingerprint; ``None`` (e.g. a ranking computed from a plain array) is not checked.
    """
    if not fingerprint:
        return
    # A fingerprint of unknown shape is compared whole: it cannot name this model.
    theirs = Provenance.from_fingerprint(fingerprint).model_fingerprint or str(fingerprint)
    ours = loaded.fingerprint
    if theirs != ours:
        raise FingerprintMismatchError(
            f"{what} comes from another model (model fingerprint {theirs}); "
            f"{loaded.name} has fingerprint {ours}"
        )


def resolve_neuron_spec(spec: NeuronSpec | Ranking, loaded: LoadedModel | None = None) -> list[str]:
    """Neuron names from names or a ranking slice; a ranking is checked against the model."""
    if isinstance(spec, Ranking):
        raise NeuronscopeError(
            "give a ranking as (ranking, concept, k) or (ranking, k), or pass ranking.top(k, c)"
        )
    if isinstance(spec, tuple) and spec and isinstance(spec[0], Ranking):
        ranking = spec[0]
        if len(spec) == 3:
            concept, k = spec[1], spec[2]
        elif len(spec) == 2:
            concept, k = None, spec[1]
        else:
            raise NeuronscopeError("a ranking slice is (ranking, concept, k) or (ranking, k)")
        if loaded is not None:
            check_same_model(ranking.store_fingerprint, loaded, "ranking")
        return ranking.top(int(k), concept)
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, np.ndarray):
        spec = spec.tolist()
    if not isinstance(spec, Iterable):
        raise NeuronscopeError(f"neurons must be names or a ranking slice, not {type(spec)}")
    return list(spec)


def neuron_means(store: ActivationStore, names: Sequence[str]) -> np.ndarray:
    """Mean activation of each neuron over the store's words, streamed chunk by chunk
    (through an :class:`~neuronscope.store.view.ActivationView`: NaN/inf are refused)."""
    sums = np.zeros(len(names), dtype=np.float64)
    count = 0
    for _, _, block in ActivationView(store, list(names), chunk_words=store.chunk_words).chunks():
        sums += block.sum(axis=0, dtype=np.float64)
        count += len(block)
    if count == 0:
        raise NeuronscopeError(f"store {store.path} has no rows to average")
    return (sums / count).astype(np.float32)


# ---------------------------------------------------------------------------- prompts
def check_length(loaded: LoadedModel, n_tokens: int, what: str = "prompt") -> None:
    """Raise :class:`PromptTooLongError` when ``n_tokens`` exceed the model's maximum."""
    if n_tokens > loaded.max_length:
        raise PromptTooLongError(
            f"{what} has {n_tokens} tokens; {loaded.name} takes at most {loaded.max_length}"
        )


def _tokenizer(loaded: LoadedModel) -> Any:
    if loaded.tokenizer is None:
        raise NeuronscopeError("this needs a tokenizer: wrap the model with wrap_model(model, tok)")
    return loaded.tokenizer


def encode_prompt(loaded: LoadedModel, text: str, extra_tokens: int = 0) -> dict[str, torch.Tensor]:
    """Tokenize one prompt (special tokens included) on the model's device, length-checked.

    ``extra_tokens`` (e.g. tokens still to generate) count against the maximum too.
    """
    enc = _tokenizer(loaded)(text, return_tensors="pt")
    n = int(enc["input_ids"].shape[1])
    check_length(loaded, n + extra_tokens,
                 "prompt" if not extra_tokens else f"prompt plus {extra_tokens} new tokens")
    device = loaded.device
    return {"input_ids": enc["input_ids"].to(device),
            "attention_mask": enc["attention_mask"].to(device)}


@dataclass
class EncodedWords:
    """A pre-split sentence as model input: token ids and each word's token span."""

    input_ids: list[int]
    spans: list[tuple[int, int]]  # word j -> tokens [start, stop)

    def token_positions(self, word_positions: Iterable[int], which: str = "all") -> list[int]:
        """Token positions of some words: all their subwords, or the first / last one."""
        out: list[int] = []
        for j in word_positions:
            if not 0 <= j < len(self.spans):
                raise NeuronscopeError(f"word position {j} out of range (0-{len(self.spans) - 1})")
            start, stop = self.spans[j]
            if which == "all":
                out.extend(range(start, stop))
            elif which == "first":
                out.append(start)
            elif which == "last":
                out.append(stop - 1)
            else:
                raise NeuronscopeError(f"which must be all, first or last, not {which!r}")
        return out

    def tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of shape (1, T)."""
        ids = torch.tensor([self.input_ids], device=device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def encode_words(loaded: LoadedModel, words: Sequence[str]) -> EncodedWords:
    """Tokenize words exactly as extraction does (:class:`WordTokenizer`), in one piece."""
    wtok = WordTokenizer(_tokenizer(loaded), loaded.max_length, causal=loaded.is_causal)
    word_ids, _ = wtok.encode_words([list(words)])
    n_tokens = len(wtok.prefix_ids) + len(wtok.suffix_ids) + sum(len(w) for w in word_ids[0])
    check_length(loaded, n_tokens, "sentence")
    pieces, _ = wtok.pieces(0, word_ids[0])
    piece = pieces[0]
    spans = [(0, 0)] * len(words)
    for j, start, stop in piece.spans:
        spans[j] = (start, stop)
    return EncodedWords(list(piece.input_ids), spans)


def token_positions(loaded: LoadedModel, words: Sequence[str], word_positions: Iterable[int],
                    which: str = "all") -> list[int]:
    """Token positions (for ``positions=``) of the given words of a pre-split sentence."""
    return encode_words(loaded, words).token_positions(word_positions, which)


# ---------------------------------------------------------------------------- intervention
# Components whose hooked tensor is the input of an output projection: a temporary that only
# that projection reads, safe to edit in place under inference mode.
_TEMPORARY_INPUTS = frozenset({"mlp", "attn"})

#: Most edited columns of a module written one column at a time by the in-place edit.
LOOP_COLUMNS = 64
#: torch's parallel grain (``at::internal::GRAIN_SIZE``): elementwise and index ops over
#: fewer elements run on the calling thread.
_GRAIN = 32768


@dataclass
class _Site:
    """One hooked module and the neurons edited there."""

    module: str
    where: str  # "input" | "output"
    component: str
    layer: int
    names: list[str]
    index: np.ndarray
    values: np.ndarray | None  # per neuron (or one scalar), None for zero
    next_position: int = 0  # absolute position of the next token (position tracking)
    features: Any = None  # SAE features: edits apply to the latents (neuronscope.sae.sites)
    calls: int = 0
    _cache: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict
    )
    _plans: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def columns(self, device: torch.device, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The edited columns and their values (``0`` for zero), as tensors on ``device``."""
        key = ("columns", device, dtype)
        if key not in self._cache:
            values = np.zeros(len(self.index), np.float32) if self.values is None else (
                np.broadcast_to(np.asarray(self.values, np.float32), (len(self.index),)))
            with torch.inference_mode(False):
                self._cache[key] = (torch.as_tensor(self.index, device=device),
                                    torch.as_tensor(np.array(values), device=device).to(dtype))
        return self._cache[key]

    def in_place_edit(self, op: str, width: int, device: torch.device, dtype: torch.dtype
                      ) -> Any:
        """``edit(target)``: the in-place edit of this site's columns of ``target`` (the
        last dimension ``width``), made once per width, device and dtype.

        One ``index_*`` op writes every column; but on the CPU, when that op would span
        more than torch's parallel grain (it does at 17 columns of a 32 x 62 batch) and the
        columns are few and distinct, they are written one at a time instead: each strided
        column op stays under the grain and runs on the calling thread, where the single op
        waits for torch's other threads, which on a loaded machine cost several times the
        edit itself (bench/interventions.py). Each column's value is the one the ``index_*``
        ops use (rounded to ``dtype``), so both ways give the same numbers.
        """
        key = (width, device, dtype)
        edit = self._plans.get(key)
        if edit is not None:
            return edit
        if int(self.index.max()) >= width:
            self.vectors(op, width, device, dtype)  # raises the named error
        index, values = self.columns(device, dtype)
        if op == "zero":

            def one_op(target: torch.Tensor) -> None:
                target.index_fill_(-1, index, 0.0)

        elif op in ("scale", "add"):
            combine = torch.mul if op == "scale" else torch.add

            def one_op(target: torch.Tensor) -> None:
                target.index_copy_(-1, index, combine(target.index_select(-1, index), values))

        else:  # mean / constant: the value broadcast over every edited position

            def one_op(target: torch.Tensor) -> None:
                target.index_copy_(-1, index, values.expand(*target.shape[:-1], len(values)))

        columns = self.index.tolist()
        if (torch.device(device).type != "cpu" or len(columns) > LOOP_COLUMNS
                or len(set(columns)) < len(columns)):
            edit = one_op  # on an accelerator one op beats a launch per column
        else:
            pairs = list(zip(columns, values.tolist(), strict=True))
            write = {"scale": torch.Tensor.mul_, "add": torch.Tensor.add_}.get(
                op, torch.Tensor.fill_)  # zero (values 0), mean, constant
            most_rows = _GRAIN // len(columns)

            def edit(target: torch.Tensor) -> None:
                if target.numel() // width <= most_rows:
                    one_op(target)
                    return
                for column, value in pairs:
                    write(target[..., column], value)

        self._plans[key] = edit
        return edit

    def vectors(self, op: str, width: int, device: torch.device, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-width ``(mask, operand)``: which neurons to edit and the value / factor / offset.

        Whole-width vectors turn every op into one broadcast elementwise kernel (``where``,
        ``mul`` or ``add``) instead of a copy followed by gather and scatter.
        """
        key = (width, device, dtype)
        if key not in self._cache:
            if int(self.index.max()) >= width:
                raise NeuronscopeError(
                    f"module {self.module} has {width} features; neuron index "
                    f"{int(self.index.max())} does not exist"
                )
            neutral = {"scale": 1.0, "add": 0.0}.get(op, 0.0)
            operand = np.full(width, neutral, dtype=np.float32)
            if self.values is not None:
                operand[self.index] = self.values
            mask = np.zeros(width, dtype=bool)
            mask[self.index] = True
            # Normal tensors even inside inference_mode: gradients may flow later (attribution).
            with torch.inference_mode(False):
                self._cache[key] = (torch.as_tensor(mask, device=device),
                                    torch.as_tensor(operand, device=device).to(dtype))
        return self._cache[key]


class Intervention:
    """Edits chosen neurons while active; a context manager (see the module docstring).

    Args:
        model: a :class:`LoadedModel` or a Hugging Face model.
        neurons: names (``L3.mlp.1021``), or ``(ranking, concept, k)`` / ``(ranking, k)``;
            a ranking whose store fingerprint names another model is refused.
        op: ``zero``, ``mean``, ``constant``, ``scale`` or ``add``.
        value: scalar or one value per neuron (in the order of ``neurons``) for constant,
            scale and add; optional per-neuron means for ``mean``.
        positions: ``"all"``, ``"last"`` or absolute token positions.
        store: activation store for ``mean`` values and for store-defined custom components;
            a store extracted with another model is refused.
    """

    def __init__(
        self,
        model: LoadedModel | nn.Module,
        neurons: NeuronSpec,
        op: str = "zero",
        value: float | Sequence[float] | np.ndarray | None = None,
        positions: Positions = "all",
        store: ActivationStore | None = None,
    ) -> None:
        self.loaded = as_loaded(model)
        self.model = self.loaded.model
        if op not in OPS:
            raise NeuronscopeError(f"unknown op {op!r}; valid: {', '.join(OPS)}")
        self.op = op
        self.names = resolve_neuron_spec(neurons, self.loaded)
        if not self.names:
            raise NeuronscopeError("no neurons to intervene on")
        dupes = sorted(n for n, c in Counter(self.names).items() if c > 1)
        if dupes:
            raise NeuronscopeError(f"neurons given more than once: {', '.join(dupes[:10])}")
        if store is not None:
            check_same_model(store.model_fingerprint, self.loaded, f"store {store.path}")
        self.positions = self._parse_positions(positions)
        values = self._values(value, store)
        self.sites = self._build_sites(values, store)
        self._stack: ExitStack | None = None

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _parse_positions(positions: Positions) -> str | np.ndarray:
        if isinstance(positions, str):
            if positions not in ("all", "last"):
                raise NeuronscopeError(
                    f"positions must be 'all', 'last' or token positions, not {positions!r}"
                )
            return positions
        pos = np.unique(np.asarray(list(positions), dtype=np.int64))
        if len(pos) == 0:
            raise NeuronscopeError("no token positions given")
        if pos[0] < 0:
            raise NeuronscopeError("token positions must be >= 0 (use 'last' for the end)")
        return pos

    def _values(self, value: Any, store: ActivationStore | None) -> np.ndarray | None:
        n = len(self.names)
        if self.op == "zero":
            if value is not None:
                raise NeuronscopeError("op 'zero' takes no value")
            return None
        if self.op == "mean" and value is None:
            if store is None:
                raise NeuronscopeError(
                    "op 'mean' needs a store (per-neuron means) or the means as value"
                )
            return neuron_means(store, self.names)
        if value is None:
            raise NeuronscopeError(f"op {self.op!r} needs a value (scalar or one per neuron)")
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 0:
            arr = np.full(n, float(arr), dtype=np.float32)
        if arr.shape != (n,):
            raise NeuronscopeError(
                f"value has shape {arr.shape}; give a scalar or one value per neuron ({n})"
            )
        if not np.isfinite(arr).all():
            raise NeuronscopeError("value contains NaN or inf")
        return arr

    def _build_sites(self, values: np.ndarray | None, store: ActivationStore | None
                     ) -> list[_Site]:
        resolved = model_sites(self.loaded)
        components: dict[str, ComponentSites] = dict(resolved.components)
        if store is not None:
            for name, comp in store_sites(store.meta["components"]).items():
                components.setdefault(name, comp)
            from neuronscope.sae.sites import feature_sites

            for name, comp in feature_sites(store, components).items():
                components.setdefault(name, comp)
        groups: dict[tuple[str, int], list[int]] = {}
        refs = []
        for i, name in enumerate(self.names):
            ref = parse_neuron(name, components, resolved.missing, self.loaded.name)
            refs.append(ref)
            groups.setdefault((ref.component, ref.layer), []).append(i)
        sites = []
        for (component, layer), members in groups.items():
            module, where = components[component].sites[layer]
            sites.append(_Site(
                module, where, component, layer,
                [refs[i].name for i in members],
                np.asarray([refs[i].index for i in members], dtype=np.int64),
                None if values is None else values[members],
            ))
        for s in sites:
            from neuronscope.sae.sites import feature_editor

            s.features = feature_editor(store, s.component, self.loaded.device)
        modules = [s.module for s in sites]
        if len(set(modules)) != len(modules):
            if any(s.features is not None for s in sites):
                raise NeuronscopeError(
                    "SAE features and other units of the same layer cannot be edited by one "
                    "intervention; nest two interventions instead"
                )
            # Two components on one module would need one hook; merge them.
            merged: dict[tuple[str, str], _Site] = {}
            for s in sites:
                key = (s.module, s.where)
                if key in merged:
                    m = merged[key]
                    m.names += s.names
                    m.index = np.concatenate([m.index, s.index])
                    if m.values is not None and s.values is not None:
                        m.values = np.concatenate([m.values, s.values])
                else:
                    merged[key] = s
            sites = list(merged.values())
        return sites

    # ------------------------------------------------------------------ editing
    def _edit(self, site: _Site, x: torch.Tensor) -> torch.Tensor:
        if site.features is not None:  # edit the SAE latents, keep the reconstruction error
            return site.features.edit(x, lambda f: self._edit_values(site, f))
        return self._edit_values(site, x)

    def _edit_values(self, site: _Site, x: torch.Tensor) -> torch.Tensor:
        site.calls += 1
        if (isinstance(self.positions, str)
                and site.component in _TEMPORARY_INPUTS
                and site.where == "input" and site.features is None
                and torch.is_inference_mode_enabled()
                and x.is_inference()):
            return self._edit_in_place(site, x)
        mask, operand = site.vectors(self.op, int(x.shape[-1]), x.device, x.dtype)
        pos = self.positions
        if isinstance(pos, np.ndarray) or pos == "last":
            if x.dim() < 2:
                return x
            t = int(x.shape[-2])
            if isinstance(pos, np.ndarray):
                start = 0 if t > 1 else site.next_position
                site.next_position = start + t
                rel = pos[(pos >= start) & (pos < start + t)] - start
                if len(rel) == 0:
                    return x
            else:
                rel = np.array([t - 1])
            if len(rel) < t:  # some positions only: a (T, D) mask broadcast over the batch
                rows = torch.zeros((t, 1), dtype=torch.bool, device=x.device)
                rows[torch.as_tensor(rel, device=x.device)] = True
                mask = rows & mask
                if self.op in ("scale", "add"):
                    operand = torch.where(mask, operand, 1.0 if self.op == "scale" else 0.0)
        # Out of place: never write into a tensor the model (or the caller) may still hold.
        if self.op == "scale":
            return x * operand
        if self.op == "add":
            return x + operand
        return torch.where(mask, operand, x)  # zero, mean, constant

    def _edit_in_place(self, site: _Site, x: torch.Tensor) -> torch.Tensor:
        """Write only the chosen columns of ``x`` (at every position, or at the last one),
        in place.

        Only for the inputs of the MLP and attention output projections under inference
        mode: those tensors are temporaries made for the projection alone (nothing else, no
        residual stream and no autograd graph, holds them), so editing the few chosen columns
        costs a fraction of the elementwise pass over the whole tensor that the general path
        needs (bench/interventions.py).
        """
        edit = site.in_place_edit(self.op, int(x.shape[-1]), x.device, x.dtype)
        if self.positions == "last":  # a view of the last position: edits land in x
            if x.dim() < 2:
                return x
            edit(x.select(-2, int(x.shape[-2]) - 1))
        else:
            edit(x)
        return x

    def _editor(self, where: str) -> Any:
        by_module = {s.module: s for s in self.sites if s.where == where}

        def edit(name: str, x: torch.Tensor) -> torch.Tensor:
            site = by_module.get(name)
            return x if site is None else self._edit(site, x)

        return edit

    # ------------------------------------------------------------------ context manager
    def reset(self) -> None:
        """Forget the token-position offset (a new sequence starts at position 0)."""
        for s in self.sites:
            s.next_position = 0

    @property
    def active(self) -> bool:
        """Whether the hooks are in place."""
        return self._stack is not None

    @property
    def calls(self) -> dict[str, int]:
        """Edits per hooked module (one per forward pass) since the last ``__enter__``."""
        return {s.module: s.calls for s in self.sites}

    def __enter__(self) -> Intervention:
        if self._stack is not None:
            raise NeuronscopeError("this intervention is already active")
        self.reset()
        for s in self.sites:
            s.calls = 0
        stack = ExitStack()
        try:
            for where in ("input", "output"):
                modules = [s.module for s in self.sites if s.where == where]
                if not modules:
                    continue
                editor = self._editor(where)
                stack.enter_context(Trace(
                    self.model, modules, retain_output=False,
                    edit_input=editor if where == "input" else None,
                    edit_output=editor if where == "output" else None,
                ))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __repr__(self) -> str:
        pos = self.positions if isinstance(self.positions, str) else self.positions.tolist()
        return (f"Intervention(op={self.op!r}, neurons={len(self.names)}, sites={len(self.sites)}, "
                f"positions={pos!r}, active={self.active})")


def intervene(
    model: LoadedModel | nn.Module,
    neurons: NeuronSpec,
    op: str = "zero",
    value: float | Sequence[float] | np.ndarray | None = None,
    positions: Positions = "all",
    store: ActivationStore | None = None,
) -> Intervention:
    """An :class:`Intervention`, to use as ``with intervene(model, neurons, op=...):``."""
    return Intervention(model, neurons, op=op, value=value, positions=positions, store=store)
