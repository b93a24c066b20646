"""Formulas and atoms of compositional explanations (Mu & Andreas 2020).

An :class:`AtomSet` holds the binary concepts (atoms) of a corpus as sparse word masks; a
:class:`Formula` combines atoms left to right with the operators in :data:`OPS`. The search
over formulas lives in :mod:`neuronscope.explanations.compositional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.errors import NeuronscopeError

__all__ = ["DEFAULT_OPS", "NEGATED_OPS", "OPS", "AtomSet", "Formula"]

#: Binary composition operators: ``F op A`` for a beam formula ``F`` and an atom ``A``.
OPS = ("or", "and", "and_not", "or_not")
#: compexp's operator set (``OPS["all"]`` in ``nli/code/analyze.py``).
DEFAULT_OPS = ("or", "and", "and_not")
NEGATED_OPS = {"and_not", "or_not"}


# ---------------------------------------------------------------------------- formulas
@dataclass(frozen=True)
class Formula:
    """A logical formula over atoms: a leaf (``op == "atom"``), ``not`` or ``and``/``or``.

    ``atom`` is the atom index of a leaf; ``children`` the operands of the others.
    """

    op: str
    atom: int = -1
    children: tuple[Formula, ...] = ()

    @staticmethod
    def leaf(atom: int) -> Formula:
        """The formula made of one atom."""
        return Formula("atom", int(atom))

    def extend(self, op: str, atom: int) -> Formula:
        """``self op atom`` for one of :data:`OPS`."""
        right = Formula.leaf(atom)
        if op in NEGATED_OPS:
            right = Formula("not", children=(right,))
        return Formula("or" if op.startswith("or") else "and", children=(self, right))

    @property
    def n_atoms(self) -> int:
        """Number of atoms (leaves): what ``max_length`` bounds."""
        return 1 if self.op == "atom" else sum(c.n_atoms for c in self.children)

    @property
    def length(self) -> int:
        """Atoms plus NOT operators: compexp's ``len(formula)``, used by the length penalty."""
        if self.op == "atom":
            return 1
        return (1 if self.op == "not" else 0) + sum(c.length for c in self.children)

    def atoms(self) -> set[int]:
        """Indices of the atoms used."""
        if self.op == "atom":
            return {self.atom}
        return set().union(*(c.atoms() for c in self.children))

    def to_str(self, names: Sequence[str]) -> str:
        """Readable text, e.g. ``(upos:NOUN OR upos:PROPN) AND NOT word:the``."""
        if self.op == "atom":
            return names[self.atom]
        if self.op == "not":
            inner = self.children[0]
            text = inner.to_str(names)
            return f"NOT ({text})" if inner.op in ("and", "or") else f"NOT {text}"
        parts = []
        for child in self.children:
            text = child.to_str(names)
            # Same-operator chains read without brackets: A OR B OR C.
            parts.append(f"({text})" if child.op in ("and", "or") and child.op != self.op
                         else text)
        return f" {self.op.upper()} ".join(parts)

    def key(self, names: Sequence[str]) -> str:
        """Canonical text: AND/OR chains flattened and their operands sorted, so formulas
        equal up to operand order and grouping share a key."""
        if self.op == "atom":
            return names[self.atom]
        if self.op == "not":
            return f"NOT({self.children[0].key(names)})"
        operands: list[str] = []
        stack = list(self.children)
        while stack:
            child = stack.pop()
            if child.op == self.op:
                stack.extend(child.children)
            else:
                operands.append(child.key(names))
        return f"{self.op.upper()}(" + ",".join(sorted(operands)) + ")"

    def mask(self, atoms: AtomSet) -> np.ndarray:
        """The formula's boolean mask over words (direct evaluation)."""
        if self.op == "atom":
            return atoms.mask(self.atom)
        if self.op == "not":
            return ~self.children[0].mask(atoms)
        left, right = (c.mask(atoms) for c in self.children)
        return left & right if self.op == "and" else left | right


# ---------------------------------------------------------------------------- atoms
@dataclass
class AtomSet:
    """Atomic concepts over the words of a corpus: names and a sparse 0/1 matrix.

    ``matrix`` is ``(n_atoms, n_words)`` float32 CSR; ``sizes`` the words per atom;
    ``aliases`` maps a kept atom to the names of atoms dropped for having the same mask.
    """

    names: list[str]
    matrix: sp.csr_matrix
    sizes: np.ndarray
    aliases: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._csc = self.matrix.tocsc()  # column slices (the words of one neuron's mask)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.names)

    @property
    def n_words(self) -> int:
        """Number of words (columns)."""
        return int(self.matrix.shape[1])

    def mask(self, atom: int) -> np.ndarray:
        """Boolean mask of one atom."""
        out = np.zeros(self.n_words, dtype=bool)
        row = self.matrix.indices[self.matrix.indptr[atom]: self.matrix.indptr[atom + 1]]
        out[row] = True
        return out

    def index(self, name: str) -> int:
        """Index of an atom by name (aliases resolve to the atom kept)."""
        if name in self.names:
            return self.names.index(name)
        for kept, dropped in self.aliases.items():
            if name in dropped:
                return self.names.index(kept)
        raise NeuronscopeError(f"no atom named {name!r}")

    def columns(self, rows: np.ndarray) -> sp.csc_matrix:
        """The atoms restricted to some words: ``(n_atoms, len(rows))``."""
        return self._csc[:, rows]

    @classmethod
    def build(
        cls,
        corpus: Corpus,
        layers: Sequence[str] | None = None,
        lexical: bool = True,
        suffix_lengths: Sequence[int] = (2, 3, 4),
        min_count: int = 5,
        max_atoms: int | None = None,
    ) -> AtomSet:
        """Atoms of ``corpus``: labels of ``layers`` (default: every word-level layer) plus,
        with ``lexical``, lowercased word forms (``form:``) and their endings (``ending:-``);
        each covering >= ``min_count`` words. ``max_atoms`` keeps only the most frequent atoms.
        A label layer named like a lexical group pushes the latter to ``lex-form``/
        ``lex-ending``, so names stay unique.

        Raises:
            NeuronscopeError: no atom is left (empty corpus, or ``min_count`` too high).
        """
        if min_count < 1:
            raise NeuronscopeError(f"min_count must be >= 1, got {min_count}")
        if max_atoms is not None and max_atoms < 1:
            raise NeuronscopeError(f"max_atoms must be >= 1, got {max_atoms}")
        groups: list[tuple[str, np.ndarray]] = []
        chosen = list(corpus.layers if layers is None else layers)
        for layer in chosen:
            groups.append((f"{layer}:", corpus.labels_array(layer)))  # unknown: clear error
        if lexical:
            form, ending = (name if name not in chosen else f"lex-{name}"
                            for name in ("form", "ending"))
            lower = [w.lower() for w in corpus.words()]
            groups.append((f"{form}:", np.array(lower, dtype=object)))
            for n in suffix_lengths:
                if n < 1:
                    raise NeuronscopeError(f"suffix lengths must be >= 1, got {n}")
                groups.append((f"{ending}:-", np.array(
                    [w[-n:] if len(w) > n else NO_LABEL for w in lower], dtype=object)))

        names: list[str] = []
        counts: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for prefix, values in groups:
            if len(values) == 0:
                continue
            labels, codes, freq = np.unique(values.astype(str), return_inverse=True,
                                            return_counts=True)
            keep = (freq >= min_count) & (labels != NO_LABEL)
            if not keep.any():
                continue
            new_id = np.full(len(labels), -1, dtype=np.int64)
            new_id[keep] = np.arange(int(keep.sum())) + len(names)
            names.extend(prefix + str(v) for v in labels[keep])
            counts.append(freq[keep])
            ids = new_id[codes]
            on = ids >= 0
            rows.append(ids[on])
            cols.append(np.flatnonzero(on))
        if not names:
            raise NeuronscopeError(
                f"no concept atoms: no label of layers {list(layers or corpus.layers)}"
                f"{' or word form/ending' if lexical else ''} covers at least {min_count} "
                f"word(s) of corpus {corpus.name!r}; lower min_count or add label layers"
            )
        size = np.concatenate(counts)
        matrix = sp.csr_matrix(
            (np.ones(sum(len(r) for r in rows), dtype=np.float32),
             (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(names), corpus.n_words),
        )
        matrix.sort_indices()
        keep_ids, aliases = _unique_masks(matrix, names)
        if max_atoms is not None and len(keep_ids) > max_atoms:
            order = np.lexsort((keep_ids, -size[keep_ids]))  # most frequent, then first
            keep_ids = np.sort(keep_ids[order[:max_atoms]])
        kept = [names[i] for i in keep_ids]
        aliases = {k: v for k, v in aliases.items() if k in set(kept)}
        return cls(kept, matrix[keep_ids], size[keep_ids].astype(np.int64), aliases)


def _unique_masks(matrix: sp.csr_matrix, names: list[str]) -> tuple[np.ndarray, dict]:
    """Indices of the first atom of each distinct mask, and kept name -> dropped names."""
    seen: dict[bytes, int] = {}
    keep: list[int] = []
    aliases: dict[str, list[str]] = {}
    for i in range(matrix.shape[0]):
        key = matrix.indices[matrix.indptr[i]: matrix.indptr[i + 1]].tobytes()
        first = seen.setdefault(key, i)
        if first == i:
            keep.append(i)
        else:
            aliases.setdefault(names[first], []).append(names[i])
    return np.asarray(keep, dtype=np.int64), aliases
