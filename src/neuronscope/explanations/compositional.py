"""Compositional explanations of neurons (Mu & Andreas 2020), for word-level NLP neurons.

"Compositional Explanations of Neurons" (NeurIPS 2020) binarizes a neuron and searches, by
beam search, for the logical formula over atomic concepts whose mask best matches the neuron's
mask by intersection over union. Here the inputs are the words of a corpus:

* **Neuron mask.** ``M_n = [a_n > T_n]`` with ``T_n = np.quantile(a_n, 1 - alpha)`` and a strict
  ``>``, exactly as :class:`~neuronscope.methods.iou.IoU`. ``alpha = 0.005`` (the top 0.5 %) is
  the value of their vision code (``jayelm/compexp``, ``vision/settings.py``: ``QUANTILE =
  0.005``). Their NLI setting does *not* use a quantile: ``nli/code/settings.py`` has
  ``ALPHA = None`` and ``quantile_features`` then thresholds at ``> 0`` (the ReLU boundary of
  their MLP). ``alpha=None`` reproduces that.
* **Atoms.** Every label (except ``NO_LABEL``) of every word-level label layer of the corpus
  (``upos:NOUN``, ``lemma:be``...), plus lexical atoms: the lowercased word form
  (``form:the``) and its endings of 2-4 characters (``ending:-ing``; only words longer than the
  ending; named apart from a corpus ``suffix`` layer, which marks real morphological
  suffixes). Atoms covering fewer than ``min_count`` words are dropped, as are atoms whose mask
  equals an earlier atom's (``form:the`` and ``lemma:the`` often coincide; the dropped names
  are kept in ``AtomSet.aliases``).
* **Formulas and search.** As in ``nli/code/analyze.py`` (``compute_best_word_iou``): the beam
  starts with the ``beam`` best atoms; each of ``max_length - 1`` rounds extends every beam
  formula ``F`` with every atom ``A`` as ``F OR A``, ``F AND A`` and ``F AND NOT A`` (their
  operator set; ``"or_not"`` adds ``F OR NOT A``), pools the new formulas with the current
  beam and keeps the ``beam`` best. So ``max_length`` bounds the number of atoms. Scores are
  ``IoU * length_penalty ** (len(F) - 1)`` where ``len`` counts atoms *and* NOT operators, as
  compexp's ``formula.py`` ``__len__`` does (``A AND NOT B`` has length 3); their default
  penalty is 1.0 (none). Ties are broken by shorter length, then by the canonical text of the
  formula, so a search is deterministic; formulas equal up to the order of AND/OR operands
  (``A OR B`` and ``B OR A``) count once, a formula whose mask equals that of a better-ranked
  one is dropped (compexp keeps such repeats; they only fill the beam), and extensions that
  leave the mask unchanged are skipped (they cannot score better than their parent).
* **Outputs.** For each neuron the ``top_n`` formulas of the final beam with IoU, coverage
  (share of the neuron mask the formula covers, ``|F & M| / |M|``), precision
  (``|F & M| / |F|``) and example words (matched words in decreasing activation), plus the best
  single atom (compexp's ``best_noncomp``).

Computation. The atoms form one sparse 0/1 matrix ``(n_atoms, n_words)`` shared by every
neuron. For the ``b`` formulas of a beam, ``|F & A|`` for all atoms is one sparse-dense
product ``atoms @ F`` (cost: nonzeros x b, about ``(layers + 4) * n_words * b``), and
``|F & A & M|`` the same product restricted to the few columns of ``M``. Every candidate's IoU
then follows by inclusion-exclusion without forming its mask, e.g. for ``F OR A``:
``|(F|A) & M| = |F&M| + |A&M| - |F&A&M|`` and ``|F|A| = |F| + |A| - |F&A|``. Sparse products
beat bit-packed popcounts here because atoms are sparse: bit-packing costs
``n_atoms * n_words / 8`` byte operations per formula whatever the atoms' sizes, the sparse
product only touches the words each atom covers. Only the kept formulas' masks are built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.explanations.atoms import DEFAULT_OPS, NEGATED_OPS, OPS, AtomSet, Formula
from neuronscope.params import Configurable
from neuronscope.store.store import ActivationStore
from neuronscope.store.view import ActivationView

__all__ = [
    "DEFAULT_OPS",
    "OPS",
    "AtomSet",
    "CompositionalExplainer",
    "Explanation",
    "Formula",
    "ScoredFormula",
    "explain_neurons",
]

# How many candidates beyond the beam width are pre-selected before exact tie-breaking:
# duplicates (A OR B vs B OR A) need spares.
_SPARE = 4
# Most candidates tied at the cut-off score that are sorted by their text.
_MAX_TIED = 4096


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ScoredFormula:
    """One formula with its match to a neuron's mask.

    ``score`` is the IoU after the length penalty (equal to ``iou`` without one);
    ``coverage`` = ``|F & M| / |M|``; ``precision`` = ``|F & M| / |F|``; ``size`` = ``|F|``;
    ``length`` counts atoms and NOTs; ``examples`` are matched words, most active first.
    """

    formula: str
    iou: float
    score: float
    coverage: float
    precision: float
    length: int
    n_atoms: int
    size: int
    examples: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass
class Explanation:
    """The compositional explanation of one neuron.

    ``threshold``: the activation cut-off of the mask; ``mask_size``: words above it;
    ``formulas``: the best formulas, best first (empty when the mask is empty);
    ``best_atom``: the best single atom.
    """

    neuron: str
    neuron_id: int
    threshold: float
    mask_size: int
    n_words: int
    formulas: list[ScoredFormula]
    best_atom: ScoredFormula | None

    @property
    def best(self) -> ScoredFormula | None:
        """The best formula, or ``None`` for an empty mask."""
        return self.formulas[0] if self.formulas else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "neuron": self.neuron, "neuron_id": self.neuron_id, "threshold": self.threshold,
            "mask_size": self.mask_size, "n_words": self.n_words,
            "formulas": [f.to_dict() for f in self.formulas],
            "best_atom": self.best_atom.to_dict() if self.best_atom else None,
        }


@dataclass
class _Entry:
    """A beam formula with its mask and counts."""

    formula: Formula
    key: str
    mask: np.ndarray
    size: int
    inter: int
    iou: float
    score: float


# ---------------------------------------------------------------------------- explainer
class CompositionalExplainer(Configurable):
    """Beam search for logical formulas of concepts that explain neurons (Mu & Andreas 2020).

    Args:
        alpha: share of top activations forming the neuron mask (``None``: activation > 0,
            compexp's NLI setting); see the module docstring.
        max_length: most atoms in a formula.
        beam: beam width (1 is greedy search).
        length_penalty: scores are ``IoU * length_penalty ** (length - 1)`` (in (0, 1]).
        min_count: fewest words an atom must cover.
        ops: composition operators, from :data:`OPS`.
        layers: label layers used as atoms (default: all word-level layers).
        lexical: add word-form and ending atoms.
        suffix_lengths: lengths of the ending atoms.
        max_atoms: keep only this many most frequent atoms (speed on huge corpora).
        top_n: formulas reported per neuron (at most ``beam``).
        n_examples: example words per formula.
        block_neurons: neurons read from a store at once.
    """

    def __init__(
        self,
        alpha: float | None = 0.005,
        max_length: int = 3,
        beam: int = 10,
        length_penalty: float = 1.0,
        min_count: int = 5,
        ops: Sequence[str] = DEFAULT_OPS,
        layers: Sequence[str] | None = None,
        lexical: bool = True,
        suffix_lengths: Sequence[int] = (2, 3, 4),
        max_atoms: int | None = None,
        top_n: int = 5,
        n_examples: int = 5,
        block_neurons: int = 64,
    ) -> None:
        self.alpha = alpha
        self.max_length = max_length
        self.beam = beam
        self.length_penalty = length_penalty
        self.min_count = min_count
        self.ops = tuple(ops)
        self.layers = layers
        self.lexical = lexical
        self.suffix_lengths = tuple(suffix_lengths)
        self.max_atoms = max_atoms
        self.top_n = top_n
        self.n_examples = n_examples
        self.block_neurons = block_neurons

    def _check(self) -> None:
        if self.alpha is not None and not 0 < self.alpha < 1:
            raise NeuronscopeError(f"alpha must be in (0, 1) or None, got {self.alpha}")
        for name in ("max_length", "beam", "top_n", "block_neurons"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise NeuronscopeError(f"{name} must be a positive integer, got {value!r}")
        if self.n_examples < 0:
            raise NeuronscopeError(f"n_examples must be >= 0, got {self.n_examples}")
        if not 0 < self.length_penalty <= 1:
            raise NeuronscopeError(
                f"length_penalty must be in (0, 1], got {self.length_penalty}")
        bad = [o for o in self.ops if o not in OPS]
        if bad or not self.ops:
            raise NeuronscopeError(f"unknown or no ops {bad}; valid: {', '.join(OPS)}")

    def atoms(self, corpus: Corpus) -> AtomSet:
        """The atom set this explainer builds for ``corpus``."""
        return AtomSet.build(corpus, self.layers, self.lexical, self.suffix_lengths,
                             self.min_count, self.max_atoms)

    # ------------------------------------------------------------------ entry point
    def explain(
        self,
        activations: ActivationStore | np.ndarray,
        corpus: Corpus,
        neurons: Sequence[str | int] | None = None,
        atoms: AtomSet | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Explanation]:
        """Explain neurons, one :class:`Explanation` each, in the given order.

        Args:
            activations: a store (checked against ``corpus``) or an ``(n_words, k)`` array.
            corpus: the corpus whose labels and words give the atoms.
            neurons: names or ids (default: every column of an array; required for a store).
            atoms: a prebuilt :meth:`atoms` set (to share between calls).
            progress: called with ``(neurons done, neurons)`` after each neuron.
        """
        self._check()
        words = corpus.words()
        if isinstance(activations, ActivationStore):
            activations.check_corpus(corpus)
            if neurons is None:
                raise NeuronscopeError("name the neurons to explain (e.g. ['L3.mlp.17'])")
        view = ActivationView(activations, neurons)  # unknown neuron: clear error first
        if view.n_words != corpus.n_words:
            raise NeuronscopeError(
                f"{view.n_words} activation rows for {corpus.n_words} corpus words")
        if atoms is None:
            atoms = self.atoms(corpus)
        elif atoms.n_words != corpus.n_words:
            raise NeuronscopeError("the atom set was built for another corpus")

        out: list[Explanation] = []
        for lo in range(0, view.n_neurons, self.block_neurons):
            block_ids = view.ids[lo: lo + self.block_neurons]
            block = view.select(block_ids).matrix()  # checked finite
            for j, column in enumerate(block.T):
                out.append(self._explain_one(column, view.names[lo + j], int(block_ids[j]),
                                             atoms, words))
                if progress is not None:
                    progress(len(out), view.n_neurons)
        return out

    # ------------------------------------------------------------------ one neuron
    def _explain_one(self, a: np.ndarray, name: str, neuron_id: int, atoms: AtomSet,
                     words: list[str]) -> Explanation:
        threshold = 0.0 if self.alpha is None else float(np.quantile(a, 1 - self.alpha))
        mask = a > threshold
        m = int(mask.sum())
        if m == 0:
            return Explanation(name, neuron_id, threshold, 0, len(a), [], None)
        rows_m = np.flatnonzero(mask)
        atoms_m = atoms.columns(rows_m)  # (n_atoms, m): atoms on the mask's words
        am = np.asarray(atoms_m.sum(axis=1)).ravel().astype(np.int64)  # |A & M|
        sizes = atoms.sizes

        # Round 0: single atoms.
        iou1 = am / (sizes + m - am)
        beam = self._select_atoms(iou1, atoms, mask)
        best_atom = beam[0]

        for _ in range(self.max_length - 1):
            beam = self._expand(beam, atoms, atoms_m, am, mask, rows_m, m)

        kept = beam[: self.top_n]
        return Explanation(
            name, neuron_id, threshold, m, len(a),
            [self._scored(e, atoms, a, words, mask) for e in kept],
            self._scored(best_atom, atoms, a, words, mask),
        )

    def _select_atoms(self, iou: np.ndarray, atoms: AtomSet, mask: np.ndarray) -> list[_Entry]:
        # Atoms have distinct masks and names, so the order is (-IoU, name).
        names = np.asarray(atoms.names, dtype=object)
        order = np.lexsort((names, -iou))[: self.beam]
        out = []
        for i in order.tolist():
            f = Formula.leaf(i)
            amask = atoms.mask(i)
            out.append(_Entry(f, f.key(atoms.names), amask, int(atoms.sizes[i]),
                              int((amask & mask).sum()), float(iou[i]), float(iou[i])))
        return out

    def _expand(self, beam: list[_Entry], atoms: AtomSet, atoms_m: sp.csc_matrix,
                am: np.ndarray, mask: np.ndarray, rows_m: np.ndarray, m: int) -> list[_Entry]:
        n = atoms.n_words
        # float32 sums of 0/1 values are exact below 2^24 words.
        dtype = np.float32 if n < 2**24 else np.float64
        f_dense = np.stack([e.mask for e in beam], axis=1).astype(dtype)  # (n, b)
        fa = np.rint(atoms.matrix @ f_dense).T.astype(np.int64)  # |F & A|: (b, n_atoms)
        fam = np.rint(atoms_m @ f_dense[rows_m]).T.astype(np.int64)  # |F & A & M|
        fs = np.asarray([e.size for e in beam], dtype=np.int64)[:, None]
        fm = np.asarray([e.inter for e in beam], dtype=np.int64)[:, None]
        lengths = np.asarray([e.formula.length for e in beam])[:, None]
        a_size, a_m = atoms.sizes[None, :], am[None, :]

        scores, ious, inters, sizes = [], [], [], []
        for op in self.ops:
            if op == "and":
                inter, size = fam, fa
            elif op == "or":
                inter, size = fm + a_m - fam, fs + a_size - fa
            elif op == "and_not":
                inter, size = fm - fam, fs - fa
            else:  # or_not: F | ~A
                inter, size = m - a_m + fam, n - a_size + fa
            union = size + m - inter
            iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
            length = lengths + 1 + (1 if op in NEGATED_OPS else 0)
            score = iou * self.length_penalty ** (length - 1)
            # Unchanged masks cannot beat their parent; reused atoms add nothing.
            invalid = size == fs
            for j, e in enumerate(beam):
                invalid[j, list(e.formula.atoms())] = True
            score = np.where(invalid, -np.inf, score)
            scores.append(score)
            ious.append(iou)
            inters.append(inter)
            sizes.append(size)
        score_all = np.stack(scores)  # (ops, b, n_atoms)
        flat = score_all.ravel()
        n_pick = min(len(flat), self.beam * _SPARE)
        finite = np.isfinite(flat)
        picked = np.flatnonzero(finite)
        if len(picked) > n_pick:
            cut = np.partition(flat[picked], len(picked) - n_pick)[len(picked) - n_pick]
            above = picked[flat[picked] > cut]
            tied = picked[flat[picked] == cut][:_MAX_TIED]
            picked = np.concatenate([above, tied])

        pool: list[tuple[float, int, str, Any]] = [
            (e.score, e.formula.length, e.key, e) for e in beam
        ]
        for idx in picked.tolist():
            o, j, i = np.unravel_index(idx, score_all.shape)
            f = beam[j].formula.extend(self.ops[o], int(i))
            pool.append((float(score_all[o, j, i]), f.length, f.key(atoms.names),
                         (o, j, int(i), f)))
        pool.sort(key=lambda t: (-t[0], t[1], t[2]))

        out: list[_Entry] = []
        seen: set[str] = set()
        seen_masks: set[bytes] = set()
        for score, _, key, item in pool:
            if key in seen:
                continue
            seen.add(key)
            if isinstance(item, _Entry):
                entry = item
            else:
                o, j, i, f = item
                parent = beam[j].mask
                amask = atoms.mask(i)
                new_mask = {"and": parent & amask, "or": parent | amask,
                            "and_not": parent & ~amask, "or_not": parent | ~amask}[self.ops[o]]
                entry = _Entry(f, key, new_mask, int(sizes[o][j, i]), int(inters[o][j, i]),
                               float(ious[o][j, i]), score)
            # A longer formula with the mask of a better-placed one (e.g. A OR B OR C where C
            # lies inside A) only repeats it: keep the first.
            packed = np.packbits(entry.mask).tobytes()
            if packed in seen_masks:
                continue
            seen_masks.add(packed)
            out.append(entry)
            if len(out) == self.beam:
                break
        return out

    def _scored(self, e: _Entry, atoms: AtomSet, a: np.ndarray, words: list[str],
                mask: np.ndarray) -> ScoredFormula:
        examples: list[str] = []
        if self.n_examples:
            # Words the formula and the neuron share, most active first, each word once.
            hits = np.flatnonzero(e.mask & mask)
            seen: set[str] = set()
            for r in hits[np.argsort(-a[hits], kind="stable")].tolist():
                if words[r] not in seen:
                    seen.add(words[r])
                    examples.append(words[r])
                    if len(examples) == self.n_examples:
                        break
        m = int(mask.sum())
        return ScoredFormula(
            formula=e.formula.to_str(atoms.names), iou=e.iou, score=e.score,
            coverage=e.inter / m, precision=e.inter / e.size if e.size else 0.0,
            length=e.formula.length, n_atoms=e.formula.n_atoms, size=e.size,
            examples=examples,
        )


def explain_neurons(
    store: ActivationStore, corpus: Corpus, neurons: Sequence[str | int], **params: Any
) -> list[Explanation]:
    """Shortcut: ``CompositionalExplainer(**params).explain(store, corpus, neurons)``."""
    return CompositionalExplainer(**params).explain(store, corpus, neurons)
