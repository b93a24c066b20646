"""Concept selectivity of a unit (Na, Choe, Lee & Kim 2019).

"Discovery of Natural Language Concepts in Individual Units of CNNs" (ICLR 2019) measures how
selectively unit ``u`` responds to concept ``c`` by

    selectivity(u, c) = (mu_plus - mu_minus) / (max_s a_u(s) - min_s a_u(s)),

with ``mu_plus`` the unit's mean activation over inputs that contain the concept, ``mu_minus``
its mean over all other inputs, and the maximum and minimum taken over all inputs, so the
score lies in ``[-1, 1]``. (The paper's inputs are sentences built by replicating a concept;
NeuroX's ``selectivity_probe``, which cites the paper, implements the same formula on words:
``(mean(X[y == 1]) - mean(X[y == 0])) / (max(X) - min(X) + 1e-7)``.) Here the inputs are
words and "contains ``c``" means "is labelled ``c``"; a constant neuron gets 0 (no epsilon is
added).

Neurons are ranked by *signed* selectivity, highest first: a strongly positive score means the
neuron fires higher on the concept's words, by a large part of its range. A strongly negative
score means the neuron is *suppressed* by the concept (its activation drops on the concept's
words); such neurons land at the bottom of the concept's ranking (``Ranking.bottom_ids``),
unlike NeuroX, which ranks by the absolute value.

Computation: one streaming pass over row chunks accumulates per-concept sums in float64 (a
one-hot matrix product per chunk into a reused float64 buffer) and per-neuron minima and
maxima, so a store never has to fit in memory; a contiguous column range of an array is
streamed as views. (``statistics.class_moments`` gives the same sums but also sums of squares,
on fresh float64 copies of every chunk; on 204k words x 2,688 neurons it took about four times
as long as this pass.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.methods.base import (
    Activations,
    Labels,
    MethodInput,
    RankingMethod,
    prepare_input,
    require_concepts,
)
from neuronscope.methods.hygiene import apply_hygiene, neuron_health
from neuronscope.methods.iou import label_codes
from neuronscope.methods.ranking import Ranking, ranking_from_scores


def _row_chunks(data: MethodInput) -> Iterator[tuple[int, int, np.ndarray]]:
    """Row chunks of the selected neurons; views (no copy) for a contiguous array selection.

    Views are not checked for NaN/inf here: their minima and maxima reveal any.
    """
    ids = data.ids
    contiguous = len(ids) > 0 and np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids)))
    if not (isinstance(data.source, np.ndarray) and contiguous):
        yield from data.chunks()
        return
    cols = slice(int(ids[0]), int(ids[0]) + len(ids))
    for start in range(0, data.n_words, data.chunk_words):
        stop = min(start + data.chunk_words, data.n_words)
        yield start, stop, np.asarray(data.source[start:stop, cols], dtype=np.float32)


class Selectivity(RankingMethod):
    """Rank neurons per concept by signed selectivity ``(mu_plus - mu_minus) / range``.

    Args:
        concepts: rank only these concepts (default: every label).
        neurons: restrict to these neurons (names or ids; default: all).
        chunk_words: rows per streamed chunk (memory: ``chunk_words * n_neurons * 12`` bytes).

    Fitted attributes: ``scores_`` (``(C, D)`` selectivity), ``mu_plus_``, ``mu_minus_``
    (``(C, D)``), ``minimum_``, ``maximum_`` (per neuron) and ``concepts_``.
    """

    name = "selectivity"

    def __init__(
        self,
        concepts: Sequence[str] | None = None,
        neurons: Sequence[str | int] | None = None,
        *,
        chunk_words: int = 8192,
    ) -> None:
        self.concepts = concepts
        self.neurons = neurons
        self.chunk_words = chunk_words

    def rank(self, activations: Activations, labels: Labels) -> Ranking:
        """Rank neurons per concept by selectivity (positive first)."""
        if self.chunk_words < 1:
            raise NeuronscopeError(f"chunk_words must be >= 1, got {self.chunk_words}")
        data = prepare_input(activations, labels, self.neurons, chunk_words=self.chunk_words)
        concepts = require_concepts(data.y, self.concepts)
        n_c = len(concepts)
        codes = label_codes(data.y, concepts).astype(np.intp)
        counts = np.bincount(codes, minlength=n_c + 1).astype(np.float64)
        sums, lo, hi = self._sums(data, codes, n_c + 1)

        # Every concept occurs and is not every word (require_concepts), so no division by 0.
        mu_plus = sums[:n_c] / counts[:n_c, None]
        mu_minus = (sums.sum(axis=0) - sums[:n_c]) / (data.n_words - counts[:n_c, None])
        spread = hi.astype(np.float64) - lo
        safe = np.where(spread > 0, spread, 1.0)
        scores = np.where(spread > 0, (mu_plus - mu_minus) / safe, 0.0)

        self.scores_ = scores
        self.mu_plus_ = mu_plus
        self.mu_minus_ = mu_minus
        self.minimum_ = lo
        self.maximum_ = hi
        self.concepts_ = concepts
        extra = {"concept_sizes": dict(zip(concepts, counts[:n_c].tolist(), strict=True))}
        ranking = ranking_from_scores(
            self.name, self.get_params(), scores, concepts, data.ids, data.names,
            **data.ranking(self, extra=extra),
        )
        return apply_hygiene(ranking, neuron_health(data))

    @staticmethod
    def _sums(
        data: MethodInput, codes: np.ndarray, n_codes: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-code float64 column sums, and float32 column minima and maxima, in one pass."""
        d = data.n_neurons
        sums = np.zeros((n_codes, d))
        lo = np.full(d, np.inf, np.float32)
        hi = np.full(d, -np.inf, np.float32)
        buf = np.empty((0, d))
        for start, stop, block in _row_chunks(data):
            rows = stop - start
            np.minimum(lo, block.min(axis=0), out=lo)
            np.maximum(hi, block.max(axis=0), out=hi)
            # min/max propagate NaN and reach inf, so finite extremes mean a clean chunk.
            if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
                r, c = np.argwhere(~np.isfinite(block))[0]
                raise NeuronscopeError(
                    f"activations contain NaN or inf (first at row {start + int(r)}, neuron "
                    f"{data.names[int(c)]}); clean the store or choose other neurons"
                )
            if len(buf) < rows:
                buf = np.empty((rows, d))  # reused: fresh pages per chunk cost more than the sums
            wide = buf[:rows]
            np.copyto(wide, block)
            onehot = np.zeros((n_codes, rows))
            onehot[codes[start:stop], np.arange(rows)] = 1.0
            sums += onehot @ wide
        return sums, lo, hi
