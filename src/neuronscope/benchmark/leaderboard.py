"""Run ranking methods on a planted instance and score them against the ground truth.

Scoring. For each planted unit ``u`` and each concept ``c`` it responds to (a "case"), the
method's ranking for ``c`` is *filtered*: the other planted neurons that respond to ``c`` are
removed from it, since they are correct answers for ``c`` too and must not count as misses of
``u`` (as in filtered link-prediction metrics). Then, with ``hits`` the number of ``u``'s
neurons among the first ``k`` of the filtered list::

    precision@k = hits / k        recall@k = hits / |u|

``k = "planted"`` uses ``k = |u|`` (precision equals recall); fixed ``ks`` are reported too. A
leaderboard cell (method x kind x SNR x k) averages the cases of its units.

Floors. ``random`` ranks each concept's neurons by a seeded random permutation (averaged over
``random_repeats`` permutations). ``chance`` is its analytic expectation: with ``N`` neurons in
the filtered list, the hits of a random top-``k`` follow a hypergeometric law, so
``E[precision@k] = |u| / N`` and ``E[recall@k] = min(k, N) / N``; ``precision_sd`` and
``recall_sd`` of the chance rows are the standard deviations expected of the measured
``random`` cell (independent cases assumed).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from neuronscope import __version__
from neuronscope.benchmark.planting import KINDS, PlantedData
from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_write_text
from neuronscope.methods import METHODS, build_supervised, method_spec
from neuronscope.methods.ranking import Ranking, ranking_from_scores

FORMAT = "neuronscope-benchmark-leaderboard"
#: Fixed cut-offs reported next to k = planted.
DEFAULT_KS = (1, 10)
#: Benchmark overrides of method defaults: none. Every method is scored as a user would run
#: it (the Gaussian probe orders every neuron since its selection stops, so no longer needs a
#: fixed-length search to cover the planted units).
DEFAULT_METHOD_PARAMS: dict[str, dict[str, Any]] = {}
RANDOM, CHANCE = "random", "chance"
PLANTED_K = "planted"
_RESULT_COLUMNS = ["method", "kind", "snr", "k", "precision", "recall", "n_cases",
                   "precision_sd", "recall_sd"]


@dataclass
class Leaderboard:
    """Precision@k and recall@k of every method per kind and SNR, with the floors.

    Attributes:
        results: long table, one row per method x kind x SNR x k (``k`` is ``"planted"`` or
            a number as a string); columns ``method, kind, snr, k, precision, recall,
            n_cases, precision_sd, recall_sd`` (the sds only on ``chance`` rows).
        cases: one row per method x unit x concept x k with its hits.
        timings: wall time of each method's ``rank`` in seconds (``random``: per ranking).
        settings: how the instance was built and scored.
        truth: the planted units (``PlantedUnit.to_dict``).
    """

    results: pd.DataFrame
    cases: pd.DataFrame
    timings: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    truth: list[dict[str, Any]] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        """Ranked methods (without the floors), in leaderboard order."""
        return [m for m in self.summary().index if m not in (RANDOM, CHANCE)]

    def to_pandas(self) -> pd.DataFrame:
        """The same table as :meth:`to_dataframe` (pandas' usual name for it)."""
        return self.to_dataframe()

    def to_dataframe(self) -> pd.DataFrame:
        """The long results table (a copy)."""
        return self.results.copy()

    def summary(self, metric: str = "recall", k: str | int = PLANTED_K) -> pd.DataFrame:
        """Wide table: one row per method (best mean first, floors last), one column per
        ``"kind snr"`` cell, plus ``mean`` over cells and ``seconds``."""
        if metric not in ("precision", "recall"):
            raise NeuronscopeError(f"metric must be precision or recall, got {metric!r}")
        rows = self.results[self.results["k"] == str(k)]
        if rows.empty:
            valid = ", ".join(dict.fromkeys(self.results["k"]))
            raise NeuronscopeError(f"no results at k={k!r}; available: {valid}")
        cells = list(dict.fromkeys(zip(rows["kind"], rows["snr"], strict=True)))
        wide = rows.pivot_table(index="method", columns=["kind", "snr"], values=metric,
                                sort=False)
        wide = wide.reindex(columns=pd.MultiIndex.from_tuples(cells))
        wide.columns = [f"{kind} {snr:g}" for kind, snr in cells]
        wide["mean"] = wide.mean(axis=1)
        wide["seconds"] = [self.timings.get(m, math.nan) for m in wide.index]
        floors = [m for m in (RANDOM, CHANCE) if m in wide.index]
        ranked = wide.drop(index=floors).sort_values("mean", ascending=False, kind="stable")
        return pd.concat([ranked, wide.loc[floors]])

    def rich_table(self, metric: str = "recall", k: str | int = PLANTED_K) -> Table:
        """The :meth:`summary` as a Rich table: one row per kind and SNR, one column per
        method (best mean first, floors last), so that it fits a terminal."""
        wide = self.summary(metric, k)
        what = "k = planted neurons of each unit" if str(k) == PLANTED_K else f"k = {k}"
        table = Table(title=f"Planted-neuron benchmark: {metric}@k ({what})",
                      caption="methods ordered by mean; chance = expected value of random",
                      box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)  # 80 columns
        table.add_column("kind", min_width=len(max(KINDS, key=len)))
        table.add_column("snr", justify="right")
        floors = {RANDOM, CHANCE}
        for method in wide.index:
            table.add_column(str(method), justify="right", min_width=len(str(method)),
                             style="dim" if method in floors else None)
        previous = None
        for cell in wide.columns[:-2]:
            kind, snr = cell.rsplit(" ", 1)
            if previous is not None and kind != previous:
                table.add_section()
            table.add_row(kind if kind != previous else "", snr,
                          *(_fmt(wide.at[m, cell], m in floors) for m in wide.index))
            previous = kind
        table.add_section()
        table.add_row("mean", "", *(_fmt(wide.at[m, "mean"], m in floors) for m in wide.index),
                      style="bold")
        table.add_row("seconds", "", *("" if math.isnan(wide.at[m, "seconds"])
                                        else f"{wide.at[m, 'seconds']:.2f}" for m in wide.index))
        return table

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "format": FORMAT,
            "tool_version": __version__,
            "settings": self.settings,
            "timings": self.timings,
            "truth": self.truth,
            "results": _records(self.results),
            "cases": _records(self.cases),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Leaderboard:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != FORMAT:
            raise NeuronscopeError("not a neuronscope benchmark leaderboard (format key missing)")
        results = pd.DataFrame(data["results"], columns=_RESULT_COLUMNS)
        results["k"] = results["k"].astype(str)
        cases = pd.DataFrame(data["cases"])
        if "k" in cases:
            cases["k"] = cases["k"].astype(str)
        return cls(results, cases, dict(data["timings"]), dict(data.get("settings", {})),
                   list(data.get("truth", [])))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Serialize to JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Leaderboard:
        """Read a leaderboard from a JSON file."""
        path = Path(source)
        if not path.exists():
            raise NeuronscopeError(f"leaderboard file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, KeyError) as err:
            raise NeuronscopeError(f"{path}: not a valid leaderboard file: {err}") from err

    def save(self, directory: str | os.PathLike) -> dict[str, Path]:
        """Write ``leaderboard.json``, ``leaderboard.csv`` (results) and ``cases.csv``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "leaderboard.json", "csv": out / "leaderboard.csv",
                 "cases": out / "cases.csv"}
        self.to_json(paths["json"])
        atomic_write_text(paths["csv"], self.results.to_csv(index=False))
        atomic_write_text(paths["cases"], self.cases.to_csv(index=False))
        return paths

    def __repr__(self) -> str:
        return (f"Leaderboard(methods={self.methods}, units={len(self.truth)}, "
                f"rows={len(self.results)})")


def _fmt(value: float, floor: bool) -> str:
    # Floors are often below 0.01: one more digit keeps them readable.
    return f"{value:.3f}" if floor else f"{value:.2f}"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> None)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in clean.to_dict(orient="records")]


# ---------------------------------------------------------------------- scoring
def _cut_offs(size: int, ks: Sequence[int]) -> list[tuple[str, int]]:
    return [(PLANTED_K, size)] + [(str(k), k) for k in ks]


def score_ranking(
    ranking: Ranking, planted: PlantedData, ks: Sequence[int] = DEFAULT_KS
) -> pd.DataFrame:
    """The cases of one ranking: hits, precision@k and recall@k per unit, concept and k."""
    rows = []
    for index, unit in enumerate(planted.units):
        truth = np.asarray(unit.ids, dtype=np.int64)
        for concept in unit.concepts:
            if concept not in ranking.concepts:
                raise NeuronscopeError(
                    f"ranking of {ranking.method!r} has no concept {concept!r}"
                )
            ordered = ranking.concepts[concept].ids
            other = planted.relevant_ids(concept) - set(unit.ids)
            if other:
                ordered = ordered[~np.isin(ordered, list(other))]
            for label, k in _cut_offs(len(truth), ks):
                hits = int(np.isin(ordered[:k], truth).sum())
                rows.append((ranking.method, index, unit.kind, unit.snr, concept, label, k,
                             hits, hits / k, hits / len(truth)))
    return pd.DataFrame(rows, columns=["method", "unit", "kind", "snr", "concept", "k",
                                       "k_value", "hits", "precision", "recall"])


def chance_cases(planted: PlantedData, ks: Sequence[int] = DEFAULT_KS) -> pd.DataFrame:
    """Expected precision/recall of a random ranking per case, and their variances."""
    rows = []
    for index, unit in enumerate(planted.units):
        g = len(unit.ids)
        for concept in unit.concepts:
            n = planted.n_columns - len(planted.relevant_ids(concept) - set(unit.ids))
            for label, k in _cut_offs(g, ks):
                taken = min(k, n)
                p = g / n
                # Hypergeometric: `taken` draws from n neurons of which g are the unit's.
                var = taken * p * (1 - p) * (n - taken) / (n - 1) if n > 1 else 0.0
                rows.append((CHANCE, index, unit.kind, unit.snr, concept, label, k,
                             taken * p, taken * p / k, taken * p / g, var / k**2, var / g**2))
    return pd.DataFrame(rows, columns=["method", "unit", "kind", "snr", "concept", "k",
                                       "k_value", "hits", "precision", "recall",
                                       "precision_var", "recall_var"])


def random_ranking(planted: PlantedData, rng: np.random.Generator) -> Ranking:
    """A ranking of every column in a random order per concept (the floor)."""
    ids = np.arange(planted.n_columns)
    scores = rng.random((len(planted.concepts), planted.n_columns))
    return ranking_from_scores(RANDOM, {}, scores, planted.concepts, ids,
                               [f"n{i}" for i in ids])


def _aggregate(cases: pd.DataFrame) -> pd.DataFrame:
    keys = ["method", "kind", "snr", "k"]
    grouped = cases.groupby(keys, sort=False)
    out = grouped.agg(precision=("precision", "mean"), recall=("recall", "mean"),
                      n_cases=("precision", "size")).reset_index()
    out["precision_sd"] = math.nan
    out["recall_sd"] = math.nan
    return out[_RESULT_COLUMNS]


def _order(results: pd.DataFrame, methods: Sequence[str], ks: Sequence[int]) -> pd.DataFrame:
    method_rank = {m: i for i, m in enumerate(methods)}
    kind_rank = {k: i for i, k in enumerate(KINDS)}
    k_rank = {label: i for i, (label, _) in enumerate(_cut_offs(0, ks))}
    key = results.apply(lambda r: (method_rank[r["method"]], kind_rank[r["kind"]], r["snr"],
                                   k_rank[r["k"]]), axis=1)
    return results.loc[key.sort_values().index].reset_index(drop=True)


def run_benchmark(
    planted: PlantedData | Sequence[PlantedData],
    methods: Sequence[str] | None = None,
    ks: Sequence[int] | None = None,
    *,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    random_state: int | None = None,
    random_repeats: int = 20,
    log: Callable[[str], None] | None = None,
) -> Leaderboard:
    """Rank planted instance(s) with each method and score the rankings.

    Args:
        planted: an instance from :meth:`PlantedBenchmark.build`, or several (e.g. from
            :meth:`PlantedBenchmark.build_repeats`) whose cases are pooled.
        methods: names from :data:`~neuronscope.methods.METHODS` (default: all).
        ks: fixed cut-offs reported next to ``k = planted`` (default :data:`DEFAULT_KS`).
        method_params: per-method constructor overrides, e.g. ``{"gaussian":
            {"max_neurons": 20}}``, applied over :data:`DEFAULT_METHOD_PARAMS`.
        random_state: seed of random methods and of the random floor (default: the seed
            each instance was built with).
        random_repeats: random permutations averaged for the ``random`` floor.
        log: called with a line of progress per method.

    Methods get the activations as an array and the labels as strings, and rank only the
    planted concepts. ``timings`` hold each method's mean wall time per instance.
    """
    instances = [planted] if isinstance(planted, PlantedData) else list(planted)
    if not instances:
        raise NeuronscopeError("no planted instance to benchmark")
    names = list(METHODS) if methods is None else list(dict.fromkeys(methods))
    if not names:
        raise NeuronscopeError("no methods to benchmark")
    for name in names:
        if name in (RANDOM, CHANCE):
            raise NeuronscopeError(f"{name!r} is always reported; do not list it as a method")
        method_spec(name, "supervised")  # unknown names: an error listing the valid ones
    ks = tuple(DEFAULT_KS if ks is None else ks)
    if any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise NeuronscopeError(f"every k must be a positive integer, got {list(ks)}")
    ks = tuple(sorted({int(k) for k in ks}))
    if not isinstance(random_repeats, int) or random_repeats < 1:
        raise NeuronscopeError(f"random_repeats must be a positive integer, got {random_repeats}")
    params = {m: dict(p) for m, p in DEFAULT_METHOD_PARAMS.items()}
    for name, extra in (method_params or {}).items():
        method_spec(name, "supervised")
        params.setdefault(name, {}).update(extra)
    say = log or (lambda _line: None)

    all_cases: list[pd.DataFrame] = []
    chance_parts: list[pd.DataFrame] = []
    seconds: dict[str, list[float]] = {name: [] for name in [*names, RANDOM]}
    seeds = []
    for number, data in enumerate(instances):
        seed = data.meta.get("params", {}).get("random_state") if random_state is None \
            else random_state
        seeds.append(seed)
        where = f" (instance {number + 1} of {len(instances)})" if len(instances) > 1 else ""
        for name in names:
            method = build_supervised(name, random_state=seed, concepts=data.concepts)
            method.set_params(**params.get(name, {}))
            say(f"ranking with {name}{where} ...")
            start = time.perf_counter()
            ranking = method.rank(data.activations, data.labels)
            seconds[name].append(time.perf_counter() - start)
            say(f"{name}: {seconds[name][-1]:.2f} s")
            all_cases.append(score_ranking(ranking, data, ks).assign(instance=number))
        all_cases.append(_random_cases(data, ks, seed, number, random_repeats, seconds))
        chance_parts.append(chance_cases(data, ks).assign(instance=number))

    chance = pd.concat(chance_parts, ignore_index=True)
    cases = pd.concat(all_cases + [chance.drop(columns=["precision_var", "recall_var"])],
                      ignore_index=True)
    cases = cases[["instance", *[c for c in cases.columns if c != "instance"]]]
    results = _aggregate(cases)
    spread = chance.groupby(["kind", "snr", "k"], sort=False).agg(
        n=("precision", "size"), pv=("precision_var", "sum"), rv=("recall_var", "sum"))
    for (kind, snr, k), row in spread.iterrows():
        at = ((results["method"] == CHANCE) & (results["kind"] == kind)
              & (results["snr"] == snr) & (results["k"] == k))
        # sd of the random cell: a mean over n cases and `random_repeats` permutations.
        results.loc[at, "precision_sd"] = math.sqrt(row["pv"] / random_repeats) / row["n"]
        results.loc[at, "recall_sd"] = math.sqrt(row["rv"] / random_repeats) / row["n"]
    results = _order(results, [*names, RANDOM, CHANCE], ks)

    first = instances[0]
    settings = {
        "benchmark": first.meta.get("params", {}),
        "source": first.meta.get("source"),
        "label_layer": first.meta.get("label_layer"),
        "n_instances": len(instances),
        "n_words": first.n_words,
        "n_columns": first.n_columns,
        "n_planted": len(first.planted_ids),
        "concepts": [data.concepts for data in instances],
        "methods": names,
        "method_params": {m: params.get(m, {}) for m in names},
        "ks": list(ks),
        "random_state": seeds,
        "random_repeats": random_repeats,
    }
    timings = {name: round(float(np.mean(v)), 4) for name, v in seconds.items()}
    truth = [{"instance": number, **u.to_dict()}
             for number, data in enumerate(instances) for u in data.units]
    return Leaderboard(results, cases, timings, settings, truth)


def _random_cases(
    data: PlantedData, ks: Sequence[int], seed: int | None, number: int, repeats: int,
    seconds: dict[str, list[float]],
) -> pd.DataFrame:
    """The random floor's cases on one instance, averaged over ``repeats`` permutations."""
    rng = np.random.default_rng(None if seed is None else [seed, number])
    start = time.perf_counter()
    scored = [score_ranking(random_ranking(data, rng), data, ks) for _ in range(repeats)]
    seconds[RANDOM].append((time.perf_counter() - start) / repeats)
    cases = scored[0].copy()
    for col in ("hits", "precision", "recall"):
        cases[col] = np.mean([r[col].to_numpy() for r in scored], axis=0)
    return cases.assign(instance=number)
