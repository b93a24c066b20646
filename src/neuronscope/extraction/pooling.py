"""Mean pooling of subwords into words and of words into sentences, in a fixed summation order.

Stores must stay bitwise equal to those written before (issue #16), so both poolings add in
exactly the order of the operations they replace, only with fewer passes over memory:

- word means reproduce ``torch.zeros(...).index_add_(0, word_of_token, tokens) / counts`` on
  the CPU: for each word ``((+0.0 + t0) + t1) + ...`` in token order, then one division;
- sentence means reproduce ``np.add.reduceat(rows, starts, axis=0) / counts`` (NumPy 2.x):
  per column, a segment ``a0 .. am`` sums to ``a0 + pairwise(a1 .. am)``, where ``pairwise``
  is NumPy's pairwise summation (``pairwise_sum`` in ``loops_utils.h.src``): fewer than 8
  values are added one by one onto ``-0.0``, up to 128 go to 8 partial sums combined as a
  tree, more are split in two halves at a multiple of 8. The quotient by the word count
  is that of float64 rounded to float32, which equals the float32 quotient (both are
  correctly rounded: 53 >= 2 * 24 + 2 bits).

``tests/extraction/test_pooling.py`` compares both with the replaced operations on random
data with signed zeros, subnormals and large dynamic range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: NumPy's pairwise summation: below this many values a plain loop, up to BLOCK 8 partial sums.
_UNROLL = 8
_BLOCK = 128


def word_means(layers: Sequence[torch.Tensor], tokens: torch.Tensor, n_words: int,
               steps: Sequence[tuple[torch.Tensor, int, int]], multi: torch.Tensor,
               counts: torch.Tensor) -> torch.Tensor:
    """Mean of each word's subword vectors, ``(n_words, n_layers * width)`` in float32.

    Args:
        layers: per-layer ``(batch, tokens, width)`` activations.
        tokens: flat token indices: each word's first subword (``n_words`` of them), then
            the k-th subwords of the words that have one, for k = 1, 2, ...
        steps: for k = 1, 2, ...: (words with more than k subwords, and where their k-th
            subwords are in ``tokens``: ``start, stop``).
        multi: words with more than one subword; ``counts`` their subword counts
            (float32, shape ``(len(multi), 1)``).
    """
    # One gather per layer for all subwords: few large ops (each op is a parallel region,
    # which costs much more than its arithmetic when threads compete for the cores).
    selected = torch.cat([h.reshape(-1, h.shape[-1]).to(tokens.device).index_select(0, tokens)
                          for h in layers], dim=1).float()
    out = selected[:n_words]
    # index_add_ into zeros adds +0.0 first: -0.0 becomes +0.0, every other value stays.
    out.add_(0.0)
    for words, start, stop in steps:
        # (... + t_{k-1}) + t_k for the words that have a k-th subword (distinct words).
        out.index_copy_(0, words, out.index_select(0, words) + selected[start:stop])
    if len(multi):
        # x / 1 == x: only words of several subwords need the division.
        out.index_copy_(0, multi, out.index_select(0, multi) / counts)
    return out


def _pairwise(x: torch.Tensor) -> torch.Tensor:
    """NumPy's pairwise sum over axis 1 of ``x`` ``(groups, n, width)``, n >= 1."""
    n = x.shape[1]
    if n < _UNROLL:
        # NumPy starts from -0.0, which is the exact identity of addition: start from x0.
        res = x[:, 0].clone()
        for i in range(1, n):
            res += x[:, i]
        return res
    if n <= _BLOCK:
        r = x[:, :_UNROLL].clone()
        whole = n - n % _UNROLL
        for i in range(_UNROLL, whole, _UNROLL):
            r += x[:, i : i + _UNROLL]
        res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + (
            (r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
        for i in range(whole, n):
            res += x[:, i]
        return res
    half = n // 2
    half -= half % _UNROLL
    return _pairwise(x[:, :half]) + _pairwise(x[:, half:])


def sentence_means(rows: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """Mean word vector of each sentence (``counts`` consecutive rows each); NaN when empty.

    Bitwise equal to ``np.add.reduceat(rows, starts, axis=0) / counts`` (see the module
    docstring), computed with torch on the device of ``rows``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    device = rows.device
    out = torch.full((len(counts), rows.shape[1]), float("nan"), dtype=torch.float32,
                     device=device)
    for n in np.unique(counts[counts > 0]).tolist():
        which = np.flatnonzero(counts == n)
        first = starts[which]
        total = rows.index_select(0, torch.as_tensor(first, device=device))
        if n > 1:
            idx = (first[:, None] + np.arange(1, n)).reshape(-1)
            rest = rows.index_select(0, torch.as_tensor(idx, device=device))
            total += _pairwise(rest.view(len(which), n - 1, rows.shape[1]))
            # A tensor divisor: on CUDA a CPU scalar would be a multiplication by 1 / n.
            total /= torch.full((1, 1), float(n), device=device)
        out.index_copy_(0, torch.as_tensor(which, device=device), total)
    return out
