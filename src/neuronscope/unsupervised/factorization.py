"""Non-negative matrix factorization of activations (Olah et al. 2018; Ecco).

"The Building Blocks of Interpretability" (Olah et al., Distill 2018) factorizes a layer's
activations with NMF into a few groups of neurons that fire together; Ecco (Alammar 2021)
applies it to a language model's neurons over the tokens of one text. Here, for a
``words x neurons`` matrix ``X``, ``X+ ~= W H`` with ``k`` factors: ``W`` (words x k) says how
much each factor is active on each word (its word loadings), ``H`` (k x columns) which
neurons make up each factor.

* **local**: the words of one sentence (:func:`factorize_sentence`);
* **global**: a seeded random sample of words of the corpus (:func:`factorize_corpus`).

NMF needs non-negative input, but activations are signed (residual stream values, GELU's
small negatives). Choices (``nonneg``):

* ``"split"`` (default): each neuron becomes two columns, ``[relu(x), relu(-x)]``, so
  strongly negative values are kept as information of their own rather than discarded; a
  factor's signed neuron weight is ``H_pos - H_neg``.
* ``"clip"``: ``relu(x)``, Ecco's choice (fine for post-GELU MLP neurons, loses the
  negative half of signed representations).
* ``"shift"``: subtract each neuron's minimum over the words; keeps one column per neuron,
  but a factor then also models the (arbitrary) offset.

``standardize=True`` divides each neuron by its standard deviation first, so that a few
high-magnitude neurons (common in transformer residual streams) do not dominate the factors.
scikit-learn's ``NMF`` with the deterministic ``"nndsvda"`` initialization is used (Ecco uses
random initialization); ``k`` cannot exceed ``min(n_words, n_neurons)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError
from neuronscope.store.view import as_view
from neuronscope.unsupervised.correlation import Activations, ColumnSource

NONNEG = ("split", "clip", "shift")


@dataclass
class FactorizationResult:
    """NMF factors of a ``words x neurons`` activation matrix.

    Attributes:
        k: number of factors.
        words: the words of the rows (``None`` when unknown).
        rows: row index (store row) of each word.
        word_loadings: ``(n_words, k)`` activity of each factor on each word (``W``).
        neuron_weights: ``(k, n_neurons)`` signed weight of each neuron in each factor
            (``H_pos - H_neg`` for ``"split"``, ``H`` otherwise).
        components: the raw ``H`` (``k x columns``; ``2 * n_neurons`` columns for "split").
        names: neuron names; ``ids`` their global ids.
        reconstruction_error: ``||X+ - W H||_F / ||X+||_F`` (relative).
        nonneg: how signs were handled.
        sentence: the sentence factorized (local), ``None`` for a corpus sample.
    """

    k: int
    words: list[str] | None
    rows: np.ndarray
    word_loadings: np.ndarray
    neuron_weights: np.ndarray
    components: np.ndarray
    names: list[str]
    ids: np.ndarray
    reconstruction_error: float
    nonneg: str
    sentence: int | None = None
    n_iter: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def top_neurons(self, factor: int, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` neurons with the largest ``|weight|`` in a factor, with signed weights."""
        w = self.neuron_weights[factor]
        order = np.argsort(-np.abs(w), kind="stable")[:n]
        return [(self.names[i], float(w[i])) for i in order]

    def top_words(self, factor: int, n: int = 10) -> list[tuple[int, str, float]]:
        """The ``n`` rows where a factor is most active: ``(row, word, loading)``."""
        w = self.word_loadings[:, factor]
        order = np.argsort(-w, kind="stable")[:n]
        words = self.words or [""] * len(self.rows)
        return [(int(self.rows[i]), words[i], float(w[i])) for i in order]

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """JSON-ready: per factor its top neurons and words; loadings for a sentence."""
        factors = []
        for f in range(self.k):
            entry: dict[str, Any] = {
                "factor": f,
                "top_neurons": [{"neuron": n, "weight": w} for n, w in self.top_neurons(f, top)],
                "top_words": [{"row": r, "word": w, "loading": v}
                              for r, w, v in self.top_words(f, top)],
            }
            factors.append(entry)
        out: dict[str, Any] = {
            "format": "neuronscope-nmf",
            "params": dict(self.params),
            "k": self.k,
            "nonneg": self.nonneg,
            "sentence": self.sentence,
            "n_words": len(self.rows),
            "n_neurons": len(self.names),
            "reconstruction_error": self.reconstruction_error,
            "n_iter": self.n_iter,
            "factors": factors,
        }
        if self.sentence is not None:
            out["words"] = self.words
            out["word_loadings"] = np.round(self.word_loadings, 6).tolist()
        return out


def nonnegative(x: np.ndarray, mode: str = "split") -> np.ndarray:
    """The non-negative matrix NMF factorizes (see the module docstring)."""
    if mode == "split":
        return np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=1)
    if mode == "clip":
        return np.maximum(x, 0)
    if mode == "shift":
        return x - x.min(axis=0, keepdims=True)
    raise NeuronscopeError(f"nonneg must be one of {NONNEG}, got {mode!r}")


def factorize_matrix(
    x: np.ndarray,
    k: int,
    names: Sequence[str] | None = None,
    nonneg: str = "split",
    standardize: bool = False,
    max_iter: int = 500,
    random_state: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """NMF of a ``(n_words, n_neurons)`` matrix: ``(W, neuron_weights, H, error, n_iter)``."""
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    if nonneg not in NONNEG:
        raise NeuronscopeError(f"nonneg must be one of {NONNEG}, got {nonneg!r}")
    x = np.asarray(x, dtype=np.float64)
    n_words, n_neurons = x.shape
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise NeuronscopeError(f"k must be a positive integer, got {k!r}")
    if k > min(n_words, n_neurons):
        raise NeuronscopeError(
            f"k={k} factors is more than the matrix can have: a {n_words} words x {n_neurons} "
            f"neurons matrix has rank at most {min(n_words, n_neurons)}; choose k <= "
            f"{min(n_words, n_neurons)}"
        )
    if standardize:
        sd = x.std(axis=0)
        x = x / np.where(sd > 0, sd, 1.0)
    xp = nonnegative(x, nonneg)
    norm = float(np.linalg.norm(xp))
    if norm == 0:
        raise NeuronscopeError("all activations are zero after the non-negativity step; "
                               "nothing to factorize (try nonneg='split' or 'shift')")
    model = NMF(n_components=int(k), init="nndsvda", max_iter=max_iter,
                random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        w = model.fit_transform(xp)
    h = model.components_
    error = float(np.linalg.norm(xp - w @ h) / norm)
    weights = h[:, :n_neurons] - h[:, n_neurons:] if nonneg == "split" else h
    return w, weights, h, error, int(model.n_iter_)


def _result(source: ColumnSource, rows: np.ndarray, k: int, words: list[str] | None,
            sentence: int | None, nonneg: str, standardize: bool, max_iter: int,
            random_state: int | None) -> FactorizationResult:
    x = source.take(rows)
    w, weights, h, error, n_iter = factorize_matrix(
        x, k, source.names, nonneg, standardize, max_iter, random_state
    )
    return FactorizationResult(
        k=int(k), words=words, rows=rows, word_loadings=w, neuron_weights=weights,
        components=h, names=source.names, ids=source.ids, reconstruction_error=error,
        nonneg=nonneg, sentence=sentence, n_iter=n_iter,
        params={"k": int(k), "nonneg": nonneg, "standardize": standardize,
                "max_iter": max_iter, "random_state": random_state},
    )


def factorize_sentence(
    activations: Activations,
    sentence: int,
    k: int = 8,
    neurons: Sequence[str | int] | None = None,
    nonneg: str = "split",
    standardize: bool = False,
    words: Sequence[str] | None = None,
    sentence_ids: np.ndarray | None = None,
    max_iter: int = 500,
    random_state: int | None = 0,
) -> FactorizationResult:
    """Local NMF: the words of one sentence x the chosen neurons, into ``k`` factors.

    Args:
        activations: a store (its sentence table locates the rows), or an array with
            ``sentence_ids`` (one sentence index per row).
        sentence: index of the sentence.
        words: the sentence's words (default: read from the store).
    """
    view = as_view(activations, neurons)
    store_sids = view.sentence_ids()
    if store_sids is not None and view.store is not None:
        sids = store_sids
        n_sentences = view.store.n_sentences
    else:
        if sentence_ids is None:
            raise NeuronscopeError("factorizing a sentence of a plain array needs sentence_ids")
        sids = np.asarray(sentence_ids)
        n_sentences = int(sids.max()) + 1 if len(sids) else 0
    if not 0 <= sentence < n_sentences:
        raise NeuronscopeError(f"sentence {sentence} out of range (0..{n_sentences - 1})")
    rows = np.nonzero(sids == sentence)[0]
    if len(rows) == 0:
        raise NeuronscopeError(f"sentence {sentence} has no rows (not written yet?)")
    view_words = view.words() if words is None else None
    if view_words is not None:
        words = [view_words[i] for i in rows]
    if words is not None and len(words) != len(rows):
        raise NeuronscopeError(f"{len(words)} words given for a sentence of {len(rows)} words")
    source = ColumnSource.of(view)
    return _result(source, rows, k, None if words is None else list(words), int(sentence),
                   nonneg, standardize, max_iter, random_state)


def factorize_corpus(
    activations: Activations,
    k: int = 8,
    sample_words: int = 20000,
    neurons: Sequence[str | int] | None = None,
    nonneg: str = "split",
    standardize: bool = False,
    max_iter: int = 500,
    random_state: int | None = 0,
) -> FactorizationResult:
    """Global NMF over a seeded random sample of ``sample_words`` words of the corpus."""
    source = ColumnSource.of(activations, neurons)
    if sample_words < 1:
        raise NeuronscopeError(f"sample_words must be positive, got {sample_words}")
    rng = np.random.default_rng(random_state)
    n = source.n_rows
    rows = (np.arange(n) if sample_words >= n
            else np.sort(rng.choice(n, size=sample_words, replace=False)))
    all_words = source.parts[0].words() if len(source.parts) == 1 else None
    words = None if all_words is None else [all_words[i] for i in rows]
    return _result(source, rows, k, words, None, nonneg, standardize, max_iter, random_state)
