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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from neuronscope.extraction.alignment import Piece

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


class Aggregator:
    """Maps the tokens of a batch to word rows and reduces them per word.

    Words come out in batch order; :attr:`rows` holds each one's row in the block.
    """

    def __init__(self, batch: Sequence[Piece], width: int, first_rows: np.ndarray, lo: int,
                 aggregation: str, device: torch.device) -> None:
        # first_rows[s - lo]: the block row of sentence s's first word.
        starts, stops, rows, firsts, lasts = [], [], [], [], []
        for b, piece in enumerate(batch):
            flat = b * width
            base = int(first_rows[piece.sentence - lo])
            for pos, start, stop in piece.spans:
                starts.append(flat + start)
                stops.append(flat + stop)
                rows.append(base + pos)
            if piece.first_piece:
                firsts.append((piece.sentence, flat))
            if piece.last_piece:
                lasts.append((piece.sentence, flat + piece.content_stop - 1))
        self.aggregation, self.device = aggregation, device
        self.rows = np.asarray(rows, dtype=np.int64)
        first, after = np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64)
        n_sub = after - first
        self.first = torch.as_tensor(after - 1 if aggregation == "last" else first,
                                     device=device)
        if aggregation == "mean":
            # Step k adds the k-th subword of every word that has one.
            later = [np.flatnonzero(n_sub > k) for k in range(1, int(n_sub.max(initial=1)))]
            ends = np.cumsum([len(first)] + [len(w) for w in later])
            self.tokens = torch.as_tensor(
                np.concatenate([first] + [first[w] + k for k, w in enumerate(later, 1)]),
                device=device)
            self.steps = [(torch.as_tensor(w, device=device), int(a), int(b))
                          for w, a, b in zip(later, ends[:-1], ends[1:], strict=True)]
            multi = np.flatnonzero(n_sub > 1)
            self.multi = torch.as_tensor(multi, device=device)
            self.counts = torch.as_tensor(n_sub[multi], dtype=torch.float32,
                                          device=device).unsqueeze(1)
        elif aggregation == "max":
            word = np.repeat(np.arange(len(n_sub)), n_sub)
            token = np.arange(int(n_sub.sum())) - np.repeat(np.cumsum(n_sub) - n_sub, n_sub)
            self.tokens = torch.as_tensor(first[word] + token, device=device)
            self.word = torch.as_tensor(word, device=device)
        self.firsts, self.lasts = firsts, lasts

    def reduce(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """Word vectors ``(len(rows), n_layers * width)`` from per-layer (B, T, D)."""
        if self.aggregation == "mean":
            return word_means(layers, self.tokens, len(self.rows), self.steps, self.multi,
                              self.counts)
        # `.to` is a no-op on one device; with a model split over devices (device_map) each
        # layer's output is gathered to the device of the inputs.
        flat = [h.reshape(-1, h.shape[-1]).to(self.device) for h in layers]
        if self.aggregation in ("first", "last"):
            return torch.cat([h.index_select(0, self.first) for h in flat], dim=1).float()
        selected = torch.cat([h.index_select(0, self.tokens) for h in flat], dim=1).float()
        out = torch.zeros((len(self.rows), selected.shape[1]), device=selected.device)
        index = self.word.unsqueeze(1).expand_as(selected)
        return out.scatter_reduce_(0, index, selected, reduce="amax", include_self=False)

    def token_rows(
        self, layers: Sequence[torch.Tensor], which: str
    ) -> tuple[list[int], torch.Tensor]:
        """Sentence ids and vectors at the first (or last) token of each sentence's pieces."""
        pairs = self.firsts if which == "first" else self.lasts
        if not pairs:
            return [], torch.empty(0)
        idx = torch.tensor([t for _, t in pairs], dtype=torch.long, device=self.device)
        vecs = torch.cat([h.reshape(-1, h.shape[-1]).to(idx.device).index_select(0, idx)
                          for h in layers], dim=1)
        return [s for s, _ in pairs], vecs.float()


@contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """Run the pooling of a batch on one CPU thread (nothing changes on an accelerator).

    Pooling is many small, memory-bound operations; on the CPU each is a parallel region
    whose threads must all be scheduled before it ends. When the cores are shared (the
    writer thread, other processes), every region waits for a time slice: profiled on a
    2-core machine at load average 5, pooling took 15 % of the extraction (9 of 60 s),
    against 3 % on a quiet machine; one thread does the same work with no waiting. The
    values are the same (each element is computed by the same operations in the same
    order).
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
