"""The one train/held-out split: by sentence wherever held-out data is meant.

Words of one sentence share their context (and a contextual model's activations leak it), so
a test word whose sentence mates were trained on is not held out. Every stage that holds data
out for a score (evaluation, selection, explanations, the demo) splits here.
"""

from __future__ import annotations

import numpy as np

from neuronscope.errors import NeuronscopeError

__all__ = ["as_generator", "split_by_sentence", "split_masks"]


def as_generator(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from a seed, ``None`` (fresh entropy) or a generator (used as is)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def split_by_sentence(
    sentence_ids: np.ndarray | None,
    test_size: float,
    random_state: int | np.random.Generator | None = 0,
    *,
    n_rows: int | None = None,
    stratify: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, test)`` row indices, whole sentences on one side.

    ``round(test_size * n_sentences)`` sentences (at least one, never all) are held out, drawn
    by one seeded permutation of the distinct sentence ids.

    Args:
        sentence_ids: sentence id of every row. ``None`` when the rows carry no sentences
            (plain arrays): each row is then its own unit and ``n_rows`` is required.
        test_size: share of sentences held out, in (0, 1).
        random_state: seed, or a generator to draw from (advanced by the draw).
        n_rows: number of rows when ``sentence_ids`` is None.
        stratify: labels of the rows, only without sentences: rows are then held out class
            by class, so every class with at least two rows appears on both sides.

    Raises:
        NeuronscopeError: ``test_size`` outside (0, 1), fewer than two sentences (rows), or
            ``stratify`` given together with sentences.
    """
    if not 0 < test_size < 1:
        raise NeuronscopeError(f"test_size must be in (0, 1), got {test_size}")
    rng = as_generator(random_state)
    if sentence_ids is None:
        if n_rows is None:
            raise NeuronscopeError("split_by_sentence needs n_rows when there are no sentences")
        if n_rows < 2:
            raise NeuronscopeError(f"{n_rows} row(s) cannot be split into training and test rows")
        if stratify is not None:
            return _stratified_rows(np.asarray(stratify), n_rows, test_size, rng)
        keys = np.arange(n_rows)
    else:
        if stratify is not None:
            raise NeuronscopeError("stratify applies to rows without sentences only")
        keys = np.asarray(sentence_ids)
        if n_rows is not None and len(keys) != n_rows:
            raise NeuronscopeError(f"{len(keys)} sentence ids for {n_rows} rows")
    unique = np.unique(keys)
    if len(unique) < 2:
        raise NeuronscopeError(
            "a split by sentence needs at least two sentences; pass explicit masks instead"
        )
    n_test = min(max(int(round(test_size * len(unique))), 1), len(unique) - 1)
    test = np.isin(keys, rng.permutation(unique)[:n_test])
    return np.flatnonzero(~test), np.flatnonzero(test)


def split_masks(
    sentence_ids: np.ndarray | None,
    test_size: float,
    random_state: int | np.random.Generator | None = 0,
    *,
    n_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`split_by_sentence` as two boolean masks over the rows ``(train, test)``."""
    n = n_rows if sentence_ids is None else len(sentence_ids)
    train_idx, test_idx = split_by_sentence(sentence_ids, test_size, random_state, n_rows=n)
    assert n is not None  # split_by_sentence refused a missing n_rows
    test = np.zeros(n, dtype=bool)
    test[test_idx] = True
    return ~test, test


def _stratified_rows(y: np.ndarray, n: int, test_size: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if len(y) != n:
        raise NeuronscopeError(f"{len(y)} stratify labels for {n} rows")
    held: list[np.ndarray] = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) > 1:  # a class of one row is never held out
            take = min(max(int(round(test_size * len(members))), 1), len(members) - 1)
            held.append(members[:take])
    out = np.concatenate(held) if held else np.zeros(0, dtype=np.int64)
    if len(out) == 0 or len(out) == n:  # nothing stratifiable: plain rows
        return split_by_sentence(None, test_size, rng, n_rows=n)
    test = np.zeros(n, dtype=bool)
    test[out] = True
    return np.flatnonzero(~test), np.flatnonzero(test)
