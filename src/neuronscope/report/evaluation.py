"""Reading evaluation, ablation and attribution results for the report, tolerantly.

The evaluation (``neuronscope evaluate --out DIR``: ``summary.json`` plus plots) and the
intervention/attribution stages write their own JSON. The report does not depend on their
exact schema: it walks every JSON file of the given folders and picks up

* **curves**: a mapping with ``top``/``random``/``bottom`` entries that each read as a curve
  (accuracy vs number of neurons, or an ablation curve), or records carrying such a
  selection plus an x and a y field;
* **per-neuron effects**: any value stored under a key that is a neuron name shown in the
  report (``{"L3.mlp.17": 0.12}``) or in a record with ``"neuron": "L3.mlp.17"``;
* **scalars** of ``summary.json`` (a short table), and the folders' image files (``.png``,
  ``.svg``, ``.jpg``), embedded as ``data:`` URIs.

Anything else is ignored, and a missing folder or unreadable file only adds a note.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SELECTIONS = ("top", "random", "bottom")
X_KEYS = ("k", "n", "n_neurons", "num_neurons", "neurons", "n_ablated", "size", "count",
          "percent", "percentage", "fraction", "x")
Y_KEYS = ("accuracy", "acc", "score", "value", "f1", "mean", "drop", "effect", "loss", "y")
_IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
                ".jpeg": "image/jpeg"}
MAX_FILES = 60
MAX_JSON_BYTES = 50_000_000
MAX_IMAGE_BYTES = 3_000_000
MAX_IMAGES = 24
#: Curve plots on the index at most (concept pages show their own in full).
MAX_CURVE_GROUPS = 24
MAX_EFFECTS_PER_NEURON = 20


@dataclass
class CurveGroup:
    """Curves that belong in one plot, e.g. top/random/bottom for one concept."""

    title: str
    curves: dict[str, tuple[list[float], list[float]]]
    xlabel: str = "number of neurons"
    ylabel: str = "accuracy"
    concept: str | None = None  # the concept it is about, when known
    hlines: dict[str, float] = field(default_factory=dict)  # reference levels (majority, ...)
    per_class: bool = False  # one class of a multi-class evaluation (shown on its page only)

    @property
    def is_ablation(self) -> bool:
        """Whether the title says it is an ablation curve."""
        return "ablat" in self.title.lower()


@dataclass
class ResultTable:
    """A small table of results (already formatted as text)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    concept: str | None = None


@dataclass
class EvaluationResults:
    """What the report found in the evaluation folders (everything optional)."""

    folders: list[str] = field(default_factory=list)
    curves: list[CurveGroup] = field(default_factory=list)
    scalars: list[tuple[str, str]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (file name, data URI)
    tables: list[ResultTable] = field(default_factory=list)
    effects: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing usable was found."""
        return not (self.curves or self.scalars or self.images or self.effects or self.tables)


# ---------------------------------------------------------------------------- curves
def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _first_key(d: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    lower = {str(k).lower(): k for k in d}
    for key in keys:
        if key in lower:
            return lower[key]
    return None


def as_curve(
    value: Any, parent: Mapping[str, Any] | None = None
) -> tuple[list[float], list[float], str, str] | None:
    """Read ``value`` as a curve ``(xs, ys, xlabel, ylabel)``, or None.

    Accepted: a list of records with an x and a y field (``[{"k": 10, "accuracy": .9}]``);
    a mapping of two parallel lists (``{"k": [...], "accuracy": [...]}``); a mapping of
    numbers keyed by numbers (``{"10": .9, "50": .95}``); a list of numbers, whose x values
    come from a sibling list in ``parent`` (``{"k": [...], "top": [...]}``).
    """
    if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
        xk, yk = _first_key(value[0], X_KEYS), _first_key(value[0], Y_KEYS)
        if xk is None or yk is None:
            return None
        raw = [(_number(r.get(xk)), _number(r.get(yk))) for r in value]
        pts = [(x, y) for x, y in raw if x is not None and y is not None]
        if not pts:
            return None
        pts.sort()
        return [p[0] for p in pts], [p[1] for p in pts], str(xk), str(yk)
    if isinstance(value, Mapping) and value:
        xk, yk = _first_key(value, X_KEYS), _first_key(value, Y_KEYS)
        if xk is not None and yk is not None and isinstance(value[xk], list):
            xs = [_number(v) for v in value[xk]]
            ys = [_number(v) for v in value[yk]] if isinstance(value[yk], list) else []
            if xs and len(xs) == len(ys) and None not in xs and None not in ys:
                return xs, ys, str(xk), str(yk)  # type: ignore[return-value]
        try:
            keyed = sorted((float(k), _number(v)) for k, v in value.items())
        except (TypeError, ValueError):
            return None
        pts = [(x, y) for x, y in keyed if y is not None]
        if pts and len(pts) == len(keyed):
            return [p[0] for p in pts], [p[1] for p in pts], "number of neurons", "value"
        return None
    if isinstance(value, list) and value and parent is not None:
        ys = [_number(v) for v in value]
        xk = _first_key(parent, X_KEYS)
        if xk is not None and None not in ys and isinstance(parent[xk], list):
            xs = [_number(v) for v in parent[xk]]
            if len(xs) == len(ys) and None not in xs:
                return xs, ys, str(xk), "value"  # type: ignore[return-value]
    return None


def _title(path: Sequence[str]) -> str:
    return " / ".join(p for p in path if p) or "results"


def _find_curves(obj: Any, path: list[str], out: list[CurveGroup]) -> None:
    if isinstance(obj, Mapping):
        found: dict[str, tuple[list[float], list[float]]] = {}
        labels = ("number of neurons", "accuracy")
        for key, value in obj.items():
            if str(key).lower() in SELECTIONS:
                curve = as_curve(value, obj)
                if curve is not None:
                    found[str(key)] = (curve[0], curve[1])
                    labels = (curve[2], curve[3])
        if found:
            out.append(CurveGroup(_title(path), found, *labels))
        for key, value in obj.items():
            if str(key).lower() not in SELECTIONS or not found:
                _find_curves(value, [*path, str(key)], out)
    elif isinstance(obj, list) and obj:
        if all(isinstance(r, Mapping) for r in obj) and _records_to_curves(obj, path, out):
            return
        for i, value in enumerate(obj[:1000]):
            _find_curves(value, [*path, str(i)] if len(obj) > 1 else path, out)


def _records_to_curves(records: list[Mapping[str, Any]], path: list[str],
                       out: list[CurveGroup]) -> bool:
    """Records like ``{"concept": "NOUN", "selection": "top", "k": 10, "accuracy": .9}``."""
    first = records[0]
    sel_key = next((k for k, v in first.items() if str(v).lower() in SELECTIONS), None)
    xk, yk = _first_key(first, X_KEYS), _first_key(first, Y_KEYS)
    if sel_key is None or xk is None or yk is None:
        return False
    groups: dict[tuple, dict[str, list[tuple[float, float]]]] = {}
    for r in records:
        sel = str(r.get(sel_key, "")).lower()
        x, y = _number(r.get(xk)), _number(r.get(yk))
        if sel not in SELECTIONS or x is None or y is None:
            continue
        ident = tuple((str(k), str(v)) for k, v in r.items()
                      if k not in (sel_key, xk, yk) and isinstance(v, str))
        groups.setdefault(ident, {}).setdefault(sel, []).append((x, y))
    for ident, sels in groups.items():
        title = _title([*path, *(f"{k}={v}" for k, v in ident)])
        curves = {s: ([p[0] for p in sorted(pts)], [p[1] for p in sorted(pts)])
                  for s, pts in sels.items()}
        out.append(CurveGroup(title, curves, str(xk), str(yk)))
    return bool(groups)


# ---------------------------------------------------------------------------- effects
def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        items = [f"{k}: {_short(v)}" for k, v in list(value.items())[:8]
                 if not isinstance(v, (Mapping, list))]
        return ", ".join(items) or "…"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value[:6]) + (", …]" if len(value) > 6 else "]")
    return str(value)


def _find_effects(obj: Any, path: list[str], names: set[str],
                  out: dict[str, list[tuple[str, str]]]) -> None:
    if isinstance(obj, Mapping):
        who = obj.get("neuron")
        if isinstance(who, str) and who in names:
            rest = {k: v for k, v in obj.items() if k != "neuron"}
            out.setdefault(who, []).append((_title(path), _short(rest)))
        for key, value in obj.items():
            if key in names:
                out.setdefault(str(key), []).append((_title(path), _short(value)))
            else:
                _find_effects(value, [*path, str(key)], names, out)
    elif isinstance(obj, list):
        for i, value in enumerate(obj[:100_000]):
            _find_effects(value, [*path, str(i)] if len(obj) > 1 else path, names, out)


def _scalars(obj: Any, path: list[str], out: list[tuple[str, str]], depth: int = 0) -> None:
    if len(out) >= 60:
        return
    if isinstance(obj, Mapping) and depth < 3:
        for key, value in obj.items():
            _scalars(value, [*path, str(key)], out, depth + 1)
    elif isinstance(obj, (str, int, float, bool)) and path:
        out.append((".".join(path), _short(obj)))


# ---------------------------------------------------------------------------- known formats
def _floats(values: Any) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out = [_number(v) for v in values]
    return None if None in out else out  # type: ignore[return-value]


def _cell(value: Any) -> str:
    return _short(value) if value is not None else "—"


def _evaluation_summary(data: Mapping[str, Any], rel: str, result: EvaluationResults) -> None:
    """``summary.json`` of ``neuronscope evaluate`` (format ``neuronscope-evaluation``)."""
    ranking = data.get("ranking") or {}
    method = str(ranking.get("method", "?"))
    concept = data.get("concept")
    what = f"{method} · {concept or 'all ' + str(data.get('labels', 'labels'))}"
    sel = data.get("selection") or {}
    table = sel.get("table") or []
    ks = _floats([r.get("k") for r in table])
    if ks:
        curves = {name: _floats([r.get(key) for r in table])
                  for name, key in (("top", "top"), ("random", "random_mean"),
                                    ("bottom", "bottom"))}
        n = sel.get("n_neurons")
        hlines = {f"all {n} neurons" if n else "all neurons": sel.get("full_accuracy"),
                  "majority class": sel.get("majority_accuracy")}
        result.curves.append(CurveGroup(
            f"{what}: probes on the top / random / bottom k neurons",
            {n: (ks, ys) for n, ys in curves.items() if ys},
            "number of neurons k", "probe accuracy (held-out)", concept,
            {k: x for k, v in hlines.items() if (x := _number(v)) is not None},
        ))
    abl = data.get("ablation") or {}
    steps = _floats(abl.get("steps"))
    if steps:
        mode = abl.get("mode", "zero")
        xlabel = f"neurons ablated ({'set to 0' if mode == 'zero' else 'set to mean'})"
        # The drop in gain over the majority class, never raw accuracy: a probe emptied of
        # its neurons falls back to the majority class and its accuracy looks fine.
        drop = abl.get("drop_in_gain") or {}
        curves = {"top": _floats(drop.get("top")), "random": _floats(drop.get("random_mean")),
                  "bottom": _floats(drop.get("bottom"))}
        if any(curves.values()):
            result.curves.append(CurveGroup(
                f"{what}: ablation in a trained probe (drop in gain)",
                {n: (steps, ys) for n, ys in curves.items() if ys},
                xlabel, "drop in gain over the majority class", concept,
                {"down to the majority class": 1.0},
            ))
        # Per class: each concept page gets the drop of its own words' gain over chance.
        per_class = abl.get("per_class_drop") or {}
        for label in (per_class.get("top") or {}):
            curves = {o: _floats((per_class.get(o) or {}).get(label))
                      for o in ("top", "random", "bottom")}
            if any(curves.values()):
                result.curves.append(CurveGroup(
                    f"{method} · {label}: ablation in a trained probe (words labelled {label}, "
                    "drop in gain)",
                    {n: (steps, ys) for n, ys in curves.items() if ys},
                    xlabel, f"drop in {label}'s gain (recall - false positive rate)",
                    str(label), per_class=True))
    control = data.get("control") or []
    if control:
        rows = [[_cell(c.get("k")), _cell(c.get("task_accuracy")),
                 _cell(c.get("control_accuracy")),
                 _cell(c.get("gain_selectivity", c.get("selectivity")))]
                for c in control if isinstance(c, Mapping)]
        result.tables.append(ResultTable(
            f"{what}: control-task selectivity of the top k ({rel}; gains over each task's "
            "majority class)",
            ["k", "task accuracy", "control accuracy", "gain selectivity"], rows, concept))
    for key in ("full_accuracy", "majority_accuracy", "n_neurons", "n_test"):
        if key in sel:
            result.scalars.append((f"{what}: {key}", _cell(sel[key])))
    for warning in data.get("warnings") or []:
        result.notes.append(f"{rel}: {warning}")


def _intervention_ablation(data: Mapping[str, Any], rel: str, names: set[str],
                           result: EvaluationResults) -> None:
    """``neuronscope ablate --out``: a concept's top-k set (and controls) ablated in the model."""
    concept, k, op = data.get("concept"), data.get("k"), data.get("op")
    records = [r for r in data.get("table") or [] if isinstance(r, Mapping)]
    headers = list(dict.fromkeys(key for r in records for key in r))[:12]
    rows = [[_cell(r.get(h)) for h in headers] for r in records]
    result.tables.append(ResultTable(
        f"model ablation of the top {k} neurons of {concept} (op={op}, {data.get('task')}; "
        f"{rel})", headers, rows, str(concept) if concept is not None else None))
    top = next((r for r in records if r.get("condition") == "top"), None)
    sets = (data.get("neurons") or {}).get("top") or []
    members = {n for group in sets for n in (group if isinstance(group, list) else [group])}
    if top is None:
        return
    effect = ", ".join(f"{key}: {_short(v)}" for key, v in top.items()
                       if key not in ("condition", "k") and _number(v) is not None)
    for name in members & names:
        result.effects.setdefault(name, []).append(
            (f"{rel}: ablating the top {k} of {concept} with it (op={op})", effect))


def _knowledge_neurons(data: Mapping[str, Any], rel: str, names: set[str],
                       result: EvaluationResults) -> None:
    """Knowledge neurons of a fact (Dai et al. 2021): which neurons, in how many prompts."""
    target = data.get("target")
    counts = data.get("counts") or {}
    n_prompts = len(data.get("prompts") or [])
    refined = set(data.get("neurons") or [])
    for name in names & set(counts):
        kind = "knowledge neuron" if name in refined else "coarse attribution"
        result.effects.setdefault(name, []).append(
            (f"{rel}: {kind} of target {target!r}",
             f"in {counts[name]} of {n_prompts} prompts' attribution sets"))
    effects = [r for r in data.get("effects") or [] if isinstance(r, Mapping)]
    if effects:
        headers = list(dict.fromkeys(key for r in effects for key in r))[:10]
        result.tables.append(ResultTable(
            f"knowledge neurons of {target!r}: {', '.join(sorted(refined)) or 'none'} ({rel})",
            headers, [[_cell(r.get(h)) for h in headers] for r in effects]))


def _read_known(data: Any, rel: str, names: set[str], result: EvaluationResults) -> bool:
    """Read ``data`` if it is a format this module knows; return whether it was."""
    if not isinstance(data, Mapping):
        return False
    if data.get("format") == "neuronscope-evaluation":
        _evaluation_summary(data, rel, result)
        return True
    if {"concept", "k", "op", "table", "neurons"} <= set(data):
        _intervention_ablation(data, rel, names, result)
        return True
    if {"target", "neurons", "prompts", "counts"} <= set(data):
        _knowledge_neurons(data, rel, names, result)
        return True
    return False


# ---------------------------------------------------------------------------- reading
def _json_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*.json") if p.is_file())
    # summary.json first: its scalars and curves are the headline results.
    return sorted(files, key=lambda p: (p.name != "summary.json", str(p)))[:MAX_FILES]


def read_evaluation(
    folders: str | os.PathLike | Iterable[str | os.PathLike] | None,
    neuron_names: Iterable[str] = (),
) -> EvaluationResults:
    """Collect curves, scalars, images and per-neuron effects from result folders.

    Args:
        folders: one folder, several, or None.
        neuron_names: neurons to collect effects for (the report's cards).
    """
    result = EvaluationResults()
    if folders is None:
        return result
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    names = set(neuron_names)
    for folder in map(Path, folders):
        result.folders.append(str(folder))
        if not folder.is_dir():
            result.notes.append(f"evaluation folder {folder} not found; skipped")
            continue
        for path in _json_files(folder):
            rel = str(path.relative_to(folder))
            if path.stat().st_size > MAX_JSON_BYTES:
                result.notes.append(f"{rel}: larger than {MAX_JSON_BYTES} bytes; skipped")
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                result.notes.append(f"{rel}: not readable JSON ({err}); skipped")
                continue
            if _read_known(data, rel, names, result):
                continue
            stem = [] if path.name == "summary.json" else [path.stem]
            _find_curves(data, stem, result.curves)
            _find_effects(data, [rel], names, result.effects)
            if path.name == "summary.json" and path.parent == folder:
                _scalars(data, [], result.scalars)
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_TYPES)
        # Figures are often written twice (PNG and SVG): embed one of each.
        stems = {p.with_suffix("") for p in images if p.suffix.lower() != ".svg"}
        images = [p for p in images if p.suffix.lower() != ".svg" or p.with_suffix("") not in stems]
        for path in images:
            if len(result.images) >= MAX_IMAGES:
                result.notes.append(f"more than {MAX_IMAGES} images; the rest are not shown")
                break
            if path.stat().st_size > MAX_IMAGE_BYTES:
                result.notes.append(f"{path.name}: image over {MAX_IMAGE_BYTES} bytes; skipped")
                continue
            data_uri = (f"data:{_IMAGE_TYPES[path.suffix.lower()]};base64,"
                        + base64.b64encode(path.read_bytes()).decode("ascii"))
            result.images.append((str(path.relative_to(folder)), data_uri))
    for name, entries in result.effects.items():
        result.effects[name] = entries[:MAX_EFFECTS_PER_NEURON]
    return result
