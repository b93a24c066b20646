"""Plant neurons with known roles among background activations.

The survey's §7 notes that neuron-interpretation methods lack a benchmark with known
ground-truth neurons. :class:`PlantedBenchmark` builds one: it takes background activations
(a sample of a real store's neurons, or :func:`~neuronscope.benchmark.synthetic_background`)
and a label layer, appends planted neurons whose response to chosen concepts is known, and
shuffles them in among the background columns.

Signal-to-noise ratio. Every planted neuron is ``mu_t + sd_t * (noise + shift)`` where
``noise`` has unit variance and ``mu_t``/``sd_t`` are the mean and standard deviation of a
randomly chosen background ("template") neuron, so planted neurons share the background's
locations and scales. ``noise`` is the template's standardized values, permuted over words:
it keeps the template's distribution (skew, ties, tails) but carries no label information
(group and redundant units mix two such draws).
SNR is the concept's mean shift in units of that noise standard deviation (Cohen's d of the
neuron between the concept's words and words without any of the unit's concepts):

* ``focused``: one neuron, ``noise + snr * [w is c]``; its d is ``snr``.
* ``polysemous``: one neuron, ``noise + snr * ([w is a] + [w is b])``: d is ``snr`` for
  each of the two concepts.
* ``redundant``: ``n_redundant`` noisy copies of one focused neuron,
  ``snr * [w is c] + (e0 + tau * e_j) / sqrt(1 + tau^2)`` with shared ``e0``, private
  ``e_j`` and ``tau = copy_noise``: each copy has d = ``snr``; copies correlate at
  ``1 / (1 + tau^2)`` (0.8 by default).
* ``group``: ``group_size`` neurons with equicorrelated noise
  ``sqrt(1 - s^2) * g + s * e_i`` (shared ``g``, private ``e_i``, ``s = group_noise``) and a
  shift ``snr * s * v_i`` along a zero-sum unit direction ``v`` (half the neurons go up, the
  others down; m = 3 gives ``(1, 1, -2) / sqrt(6)``, permuted, random sign). Because ``v`` is
  orthogonal to the shared noise, the Mahalanobis distance of the joint shift -- the d of
  the best linear read-out of the m neurons -- is exactly ``snr``, while each neuron alone has
  d = ``snr * s * |v_i|`` (at most ``0.082 * snr`` for m = 3 and ``s = 0.1``): the concept is
  decodable from the group jointly and nearly invisible to any one of its neurons.
  :meth:`PlantedData.signal_table` measures both.

Positive shifts are used (except the group's zero-sum direction) because IoU, average
precision and selectivity, by design, only reward neurons that a concept switches *on*.

Several units respond to each concept (one per kind, and by default each SNR level has its own
concepts). Methods that rank by joint, incremental gain (the greedy Gaussian probe, an L1
probe on redundant copies) may legitimately rank a weaker unit low once stronger ones explain
its concept; the benchmark asks whether a method surfaces *every* neuron that encodes a
concept, not a minimal sufficient set.

By default (``shuffle_background=True``) the background rows are permuted against the labels,
so background neurons carry no concept information and the planted neurons are the complete
ground truth. With ``False``, real concept neurons of a store stay aligned with the labels and
compete with the planted ones; the ground truth is then incomplete and precision a lower bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import NO_LABEL, ConceptLabels
from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import Activations, Labels, check_finite, prepare_input
from neuronscope.params import Configurable, jsonable
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

#: The planted roles, in leaderboard order.
KINDS = ("focused", "group", "polysemous", "redundant")


@dataclass(frozen=True)
class PlantedUnit:
    """One planted ground-truth unit: the neurons that jointly play one role.

    Attributes:
        kind: one of :data:`KINDS`.
        snr: designed signal-to-noise ratio (see the module docstring).
        concepts: the concept(s) the unit responds to (two for ``polysemous``).
        ids: column ids of its neurons in :attr:`PlantedData.activations`.
        marginal_snr: designed Cohen's d of each neuron alone (same order as ``ids``).
    """

    kind: str
    snr: float
    concepts: tuple[str, ...]
    ids: tuple[int, ...]
    marginal_snr: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {"kind": self.kind, "snr": self.snr, "concepts": list(self.concepts),
                "ids": list(self.ids), "marginal_snr": list(self.marginal_snr)}


@dataclass
class PlantedData:
    """Background plus planted neurons, the labels and the ground truth.

    Attributes:
        activations: ``(n_words, n_columns)`` float32; background and planted columns mixed.
        labels: the label (str) of every row.
        units: the planted ground truth.
        names: per column, the background neuron it came from (store name, or ``bg{i}``) or
            a description of the planted neuron (never shown to methods, which get arrays).
        concepts: concepts that received planted neurons (polysemous partners included).
        meta: settings, sizes and sampled rows/columns, for provenance.
    """

    activations: np.ndarray
    labels: np.ndarray
    units: list[PlantedUnit]
    names: list[str]
    concepts: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_words(self) -> int:
        """Rows."""
        return int(self.activations.shape[0])

    @property
    def n_columns(self) -> int:
        """Background plus planted columns."""
        return int(self.activations.shape[1])

    @property
    def planted_ids(self) -> np.ndarray:
        """Sorted column ids of every planted neuron."""
        return np.array(sorted(i for u in self.units for i in u.ids), dtype=np.int64)

    @property
    def background_ids(self) -> np.ndarray:
        """Sorted column ids of the background neurons."""
        return np.setdiff1d(np.arange(self.n_columns), self.planted_ids)

    def relevant_ids(self, concept: str) -> set[int]:
        """Ids of every planted neuron that responds to ``concept``."""
        return {i for u in self.units if concept in u.concepts for i in u.ids}

    def truth(self) -> dict[str, list[dict[str, Any]]]:
        """Concept -> its planted units (kind, snr, ids, and the partner of a polysemous one)."""
        out: dict[str, list[dict[str, Any]]] = {c: [] for c in self.concepts}
        for u in self.units:
            for c in u.concepts:
                entry = {"kind": u.kind, "snr": u.snr, "ids": list(u.ids)}
                if len(u.concepts) > 1:
                    entry["with"] = [o for o in u.concepts if o != c]
                out.setdefault(c, []).append(entry)
        return out

    def signal_table(self) -> Any:
        """Measured signal of every planted neuron, alone and with its unit, as a DataFrame.

        Columns: ``unit``, ``kind``, ``snr``, ``concept``, ``id``, ``designed_d`` (marginal),
        ``measured_d`` (Cohen's d of the neuron alone between the concept's words and the
        words without any of the unit's concepts), ``joint_d`` (the Mahalanobis distance of
        the unit's neurons between the same two sets, with the pooled within-set covariance:
        what the best linear read-out of the whole unit achieves).
        """
        import pandas as pd

        rows = []
        for index, unit in enumerate(self.units):
            ids = list(unit.ids)
            neither = ~np.isin(self.labels, list(unit.concepts))
            for concept in unit.concepts:
                on = self.labels == concept
                pos = self.activations[on][:, ids].astype(np.float64)
                neg = self.activations[neither][:, ids].astype(np.float64)
                diff = pos.mean(axis=0) - neg.mean(axis=0)
                cov = np.atleast_2d(_pooled_covariance(pos, neg))
                single = diff / np.sqrt(np.diag(cov))
                joint = float(np.sqrt(diff @ np.linalg.solve(cov, diff)))
                for j, i in enumerate(ids):
                    rows.append((index, unit.kind, unit.snr, concept, i, unit.marginal_snr[j],
                                 float(single[j]), joint))
        return pd.DataFrame(rows, columns=["unit", "kind", "snr", "concept", "id", "designed_d",
                                           "measured_d", "joint_d"])


def _pooled_covariance(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Within-set covariance pooled over two sets of rows."""
    dof = len(pos) + len(neg) - 2
    centered = [pos - pos.mean(axis=0), neg - neg.mean(axis=0)]
    return sum(c.T @ c for c in centered) / dof


def zero_sum_direction(m: int, rng: np.random.Generator) -> np.ndarray:
    """A unit vector of ``m`` entries summing to 0: ``ceil(m/2)`` equal positive entries and
    ``floor(m/2)`` equal negative ones, randomly permuted and signed."""
    n_pos, n_neg = (m + 1) // 2, m // 2
    v = np.concatenate([np.full(n_pos, 1.0 / n_pos), np.full(n_neg, -1.0 / n_neg)])
    v = rng.permutation(v) * rng.choice([-1.0, 1.0])
    return v / np.linalg.norm(v)


class PlantedBenchmark(Configurable):
    """Builds planted-neuron benchmark instances with known ground truth.

    For every kind and SNR, one unit is planted for each of ``n_concepts`` concepts (a
    polysemous unit pairs its concept with the next one of the same SNR), so a leaderboard
    cell averages over ``n_concepts`` units. Each SNR gets its own concepts when enough labels
    qualify (``separate_snrs``); units of different kinds share concepts.

    Args:
        kinds: roles to plant, from :data:`KINDS`.
        snrs: signal-to-noise ratios (> 0; see the module docstring for the definition).
        n_concepts: how many concepts receive planted units (chosen at random among labels
            with at least ``min_concept_words`` words) unless ``concepts`` names them.
        concepts: plant for these concepts instead of random ones.
        group_size: neurons per ``group`` unit (>= 2).
        n_redundant: copies per ``redundant`` unit (>= 2).
        max_words: sample at most this many rows (words) of the background and labels.
        max_background: sample at most this many background neurons (columns).
        min_concept_words: fewest words (and fewest non-concept words) a planted concept needs.
        group_noise: private noise share ``s`` of group neurons, in (0, 1): smaller makes each
            neuron alone less informative (marginal d = ``snr * s * |v_i|``).
        copy_noise: private noise ``tau`` of redundant copies (> 0).
        shuffle_background: permute background rows against the labels so that only planted
            neurons carry concept information (complete ground truth).
        separate_snrs: give each SNR its own ``n_concepts`` concepts, so that strong units do
            not make weak units of the same concept redundant for methods that rank by joint
            (greedy) gain; ``None``: separate when enough labels qualify, else share. Ignored
            (shared) when ``concepts`` are given.
        random_state: seeds every random choice (rows, columns, concepts, noise, positions).
    """

    def __init__(
        self,
        kinds: Sequence[str] = KINDS,
        snrs: Sequence[float] = (0.5, 1.0, 2.0),
        n_concepts: int = 3,
        concepts: Sequence[str] | None = None,
        group_size: int = 3,
        n_redundant: int = 3,
        max_words: int | None = None,
        max_background: int | None = None,
        min_concept_words: int = 20,
        group_noise: float = 0.1,
        copy_noise: float = 0.5,
        shuffle_background: bool = True,
        separate_snrs: bool | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.kinds = tuple(kinds)
        self.snrs = tuple(float(s) for s in snrs)
        self.n_concepts = n_concepts
        self.concepts = None if concepts is None else [str(c) for c in concepts]
        self.group_size = group_size
        self.n_redundant = n_redundant
        self.max_words = max_words
        self.max_background = max_background
        self.min_concept_words = min_concept_words
        self.group_noise = group_noise
        self.copy_noise = copy_noise
        self.shuffle_background = shuffle_background
        self.separate_snrs = separate_snrs
        self.random_state = random_state
        self._check()

    def _check(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise NeuronscopeError(f"unknown or no kinds {unknown}; valid: {', '.join(KINDS)}")
        if len(set(self.kinds)) != len(self.kinds):
            raise NeuronscopeError(f"kinds repeat: {list(self.kinds)}")
        if not self.snrs or any(not np.isfinite(s) or s <= 0 for s in self.snrs):
            raise NeuronscopeError(f"every snr must be a finite number > 0, got {list(self.snrs)}")
        if len(set(self.snrs)) != len(self.snrs):
            raise NeuronscopeError(f"snrs repeat: {list(self.snrs)}")
        if self.concepts is not None:
            if not self.concepts or len(set(self.concepts)) != len(self.concepts):
                raise NeuronscopeError(f"concepts must be distinct and not empty: {self.concepts}")
        positive = {
            "n_concepts": self.n_concepts, "min_concept_words": self.min_concept_words,
            "max_words": self.max_words, "max_background": self.max_background,
        }
        for name, value in positive.items():
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise NeuronscopeError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.group_size, (int, np.integer)) or self.group_size < 2:
            raise NeuronscopeError(f"group_size must be an integer >= 2, got {self.group_size!r}")
        if not isinstance(self.n_redundant, (int, np.integer)) or self.n_redundant < 2:
            raise NeuronscopeError(f"n_redundant must be an integer >= 2, got {self.n_redundant!r}")
        if not 0 < self.group_noise < 1:
            raise NeuronscopeError(f"group_noise must be in (0, 1), got {self.group_noise}")
        if not self.copy_noise > 0:
            raise NeuronscopeError(f"copy_noise must be > 0, got {self.copy_noise}")

    # ------------------------------------------------------------------ building
    def build_repeats(
        self, background: Activations, labels: Labels, repeats: int
    ) -> list[PlantedData]:
        """``repeats`` independent instances, seeded ``random_state``, ``random_state + 1``...
        (fresh rows, columns, concepts and noise each), to pool in one leaderboard."""
        if not isinstance(repeats, (int, np.integer)) or repeats < 1:
            raise NeuronscopeError(f"repeats must be a positive integer, got {repeats!r}")
        out = []
        for r in range(int(repeats)):
            params = self.get_params()
            if self.random_state is not None:
                params["random_state"] = self.random_state + r
            out.append(PlantedBenchmark(**params).build(background, labels))
        return out

    def build(self, background: Activations, labels: Labels) -> PlantedData:
        """Sample the background, plant the units, shuffle columns; returns the instance.

        ``background`` is an :class:`~neuronscope.store.ActivationStore` or an array
        ``(n_words, n_neurons)``; ``labels`` a corpus label layer (checked against the store)
        or one label per row. Labels are compared as strings.
        """
        self._check()
        checked = prepare_input(background, labels)  # lengths, fingerprints, shapes
        # Independent streams: e.g. changing max_background does not change the sampled rows.
        rng_rows, rng_cols, rng_concepts, rng_plant, rng_order = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.random_state).spawn(5)
        )
        n_rows_all = checked.n_words
        rows = np.arange(n_rows_all)
        if self.max_words is not None and self.max_words < n_rows_all:
            rows = np.sort(rng_rows.choice(n_rows_all, self.max_words, replace=False))
        n_bg_all = checked.n_neurons
        if n_bg_all == 0:
            raise NeuronscopeError("the background has no neurons")
        cols = np.arange(n_bg_all)
        if self.max_background is not None and self.max_background < n_bg_all:
            cols = np.sort(rng_cols.choice(n_bg_all, self.max_background, replace=False))
        x_bg = _read_background(background, rows, cols)
        bg_names = (background.layout.names(cols) if isinstance(background, ActivationStore)
                    else [f"bg{i}" for i in cols])
        y = np.array([str(v) for v in checked.y[rows].tolist()], dtype=object)
        if self.shuffle_background:
            x_bg = x_bg[rng_order.permutation(len(rows))]

        groups, separate = self._choose_concepts(y, rng_concepts)
        planter = _Planter(x_bg, y, rng_plant)
        columns: list[np.ndarray] = []
        specs: list[tuple[str, float, tuple[str, ...], list[int], tuple[float, ...]]] = []
        for kind in self.kinds:
            for level, snr in enumerate(self.snrs):
                concepts, partners = groups[level]
                for slot, concept in enumerate(concepts):
                    if kind == "polysemous":
                        unit_concepts: tuple[str, ...] = (concept, partners[slot])
                    else:
                        unit_concepts = (concept,)
                    values, marginal = self._plant(planter, kind, snr, unit_concepts)
                    specs.append((kind, snr, unit_concepts,
                                  list(range(len(columns), len(columns) + len(values))),
                                  marginal))
                    columns.extend(values)

        n_bg, n_planted = x_bg.shape[1], len(columns)
        # position[j] is where original column j (background first, then planted) lands.
        position = rng_order.permutation(n_bg + n_planted)
        out = np.empty((len(rows), n_bg + n_planted), dtype=np.float32)
        out[:, position[:n_bg]] = x_bg
        names = [""] * (n_bg + n_planted)
        for j, name in enumerate(bg_names):
            names[position[j]] = name
        units = []
        for kind, snr, unit_concepts, local, marginal in specs:
            ids = tuple(int(position[n_bg + j]) for j in local)
            for j, i in zip(local, ids, strict=True):
                out[:, i] = columns[j]
                names[i] = f"planted.{kind}.{'+'.join(unit_concepts)}.snr{snr:g}.{j - local[0]}"
            units.append(PlantedUnit(kind, snr, unit_concepts, ids, marginal))

        meta = {
            "params": jsonable(self.get_params()),
            "source": (str(background.path) if isinstance(background, ActivationStore)
                       else "array"),
            "label_layer": labels.layer if isinstance(labels, ConceptLabels) else None,
            "n_words": len(rows), "n_words_available": n_rows_all,
            "n_background": n_bg, "n_background_available": n_bg_all,
            "n_planted": n_planted, "rows": rows.tolist(), "background_columns": cols.tolist(),
            "separate_snrs": separate,
            "concepts_by_snr": {f"{snr:g}": list(groups[i][0]) for i, snr in enumerate(self.snrs)},
        }
        ranked = list(dict.fromkeys(c for u in units for c in u.concepts))
        meta["concept_words"] = {c: int(np.sum(y == c)) for c in ranked}
        return PlantedData(out, y, units, names, ranked, meta)

    def _choose_concepts(
        self, y: np.ndarray, rng: np.random.Generator
    ) -> tuple[list[tuple[list[str], list[str]]], bool]:
        """Per SNR, the planted concepts and each one's polysemous partner; and whether SNRs
        got disjoint concept sets."""
        counts = Counter(y.tolist())
        n = len(y)
        low = self.min_concept_words

        def enough(c: str) -> bool:
            return low <= counts.get(c, 0) <= n - low

        if len(counts) < 2:
            raise NeuronscopeError(f"labels have a single class ({next(iter(counts), 'none')});"
                                   " the benchmark needs at least two")
        eligible = sorted(c for c in counts if c != NO_LABEL and enough(c))
        n_levels = len(self.snrs)
        if self.concepts is not None:
            for c in self.concepts:
                if not enough(c):
                    raise NeuronscopeError(
                        f"concept {c!r} has {counts.get(c, 0)} of {n} sampled words; planting "
                        f"needs at least {low} words with it and {low} without it "
                        "(lower min_concept_words, raise max_words or choose another concept)"
                    )
            sets, separate = [list(self.concepts)] * n_levels, False
        else:
            if len(eligible) < self.n_concepts:
                raise NeuronscopeError(
                    f"only {len(eligible)} label(s) have at least {low} of the {n} sampled "
                    f"words ({', '.join(eligible) or 'none'}); {self.n_concepts} concepts were "
                    "asked for: lower n_concepts or min_concept_words, or raise max_words"
                )
            needed = self.n_concepts * n_levels
            separate = (len(eligible) >= needed if self.separate_snrs is None
                        else bool(self.separate_snrs))
            if separate and len(eligible) < needed:
                raise NeuronscopeError(
                    f"separate_snrs needs {needed} labels with at least {low} of the {n} "
                    f"sampled words ({self.n_concepts} per SNR); only {len(eligible)} qualify"
                )
            picked = [str(c) for c in rng.permutation(eligible)]
            sets = ([picked[i * self.n_concepts:(i + 1) * self.n_concepts]
                     for i in range(n_levels)] if separate
                    else [picked[: self.n_concepts]] * n_levels)
            sets = list(sets)
        groups = []
        for concepts in sets:
            partners: list[str] = []
            if "polysemous" in self.kinds:
                if len(concepts) >= 2:
                    partners = [concepts[(i + 1) % len(concepts)] for i in range(len(concepts))]
                else:
                    others = [c for c in eligible if c != concepts[0]]
                    if not others:
                        raise NeuronscopeError(
                            "a polysemous neuron needs a second concept with at least "
                            f"{low} words; none is left"
                        )
                    partners = [str(rng.choice(others))]
            groups.append((concepts, partners))
        return groups, separate

    def _plant(
        self, planter: _Planter, kind: str, snr: float, concepts: tuple[str, ...]
    ) -> tuple[list[np.ndarray], tuple[float, ...]]:
        """The columns of one unit (background units) and each neuron's designed d."""
        on = planter.indicator(concepts[0])
        if kind == "focused":
            return [planter.neuron(planter.noise() + snr * on)], (snr,)
        if kind == "polysemous":
            both = on + planter.indicator(concepts[1])
            return [planter.neuron(planter.noise() + snr * both)], (snr,)
        if kind == "redundant":
            tau = float(self.copy_noise)
            shared = planter.noise()
            copies = [planter.neuron(snr * on + (shared + tau * planter.noise())
                                     / np.sqrt(1 + tau * tau))
                      for _ in range(self.n_redundant)]
            return copies, (snr,) * self.n_redundant
        # group: the shift lies along v, orthogonal to the shared noise direction.
        s = float(self.group_noise)
        v = zero_sum_direction(int(self.group_size), planter.rng)
        shared = planter.noise()
        cols = [planter.neuron(np.sqrt(1 - s * s) * shared + s * planter.noise()
                               + snr * s * vi * on) for vi in v]
        return cols, tuple(float(snr * s * abs(vi)) for vi in v)


class _Planter:
    """Draws unit-variance, label-free noise from background templates and rescales outputs."""

    def __init__(self, x_bg: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        self.x = x_bg
        self.y = y
        self.rng = rng
        self.mean = x_bg.mean(axis=0, dtype=np.float64)
        self.std = x_bg.std(axis=0, dtype=np.float64)
        scale = np.maximum(np.abs(self.mean), 1.0)
        # Nearly constant neurons would give degenerate (all-tied) noise.
        self.templates = np.flatnonzero(self.std > 1e-6 * scale)
        if len(self.templates) == 0:
            raise NeuronscopeError("every background neuron is constant on the sampled words")

    def indicator(self, concept: str) -> np.ndarray:
        """1.0 on the concept's words, else 0.0."""
        return (self.y == concept).astype(np.float64)

    def _template(self) -> int:
        return int(self.rng.choice(self.templates))

    def noise(self) -> np.ndarray:
        """A template's standardized values permuted over words: its shape, no label signal."""
        t = self._template()
        z = (self.x[:, t] - self.mean[t]) / self.std[t]
        return z[self.rng.permutation(len(z))]

    def neuron(self, standardized: np.ndarray) -> np.ndarray:
        """Map standardized values to a (fresh) template neuron's location and scale."""
        t = self._template()
        return (self.mean[t] + self.std[t] * standardized).astype(np.float32)


def _read_background(background: Activations, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The sampled rows and columns as float32, checked finite."""
    if isinstance(background, np.ndarray):
        x = np.asarray(background[np.ix_(rows, cols)], dtype=np.float32)
        check_finite(x, 0)
        return x
    out = np.empty((len(rows), len(cols)), dtype=np.float32)
    # Stream row chunks so that peak memory is one chunk of the sampled columns.
    view = (background.select(cols.tolist()) if isinstance(background, ActivationView)
            else ActivationView(background, cols.tolist()))
    for start, stop, block in view.chunks():
        lo, hi = np.searchsorted(rows, [start, stop])
        if hi > lo:
            check_finite(block, start)  # reports the store row
            out[lo:hi] = block[rows[lo:hi] - start]
    return out
