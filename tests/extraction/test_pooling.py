"""Word and sentence mean pooling are bitwise equal to the operations they replaced.

The references are the former code: ``zeros.index_add_(...) / counts`` for word means and
``np.add.reduceat(...) / counts`` for sentence means. The data mixes signed zeros, subnormals
and values over many orders of magnitude, so any other summation order shows up as a
different bit pattern.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronscope.extraction.pooling import sentence_means, word_means


def _hard_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 7, shape)
    x = x.astype(np.float32)
    pick = rng.random(shape)
    x[pick < 0.05] = -0.0
    x[(pick >= 0.05) & (pick < 0.1)] = 0.0
    x[(pick >= 0.1) & (pick < 0.12)] = np.float32(1e-40) * rng.choice([-1, 1])  # subnormal
    return x


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def _reduceat_means(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The former sentence pooling, verbatim."""
    nonempty = counts > 0
    starts = (np.cumsum(counts) - counts).astype(np.int64)[nonempty]
    means = np.full((len(counts), rows.shape[1]), np.nan, np.float32)
    if len(starts):
        sums = np.add.reduceat(rows, starts, axis=0)
        means[nonempty] = sums / counts[nonempty][:, None]
    return means


@pytest.mark.parametrize("seed", range(6))
def test_sentence_means_bitwise_equal_reduceat(seed):
    rng = np.random.default_rng(seed)
    # Lengths on both sides of NumPy's pairwise thresholds (8, 128, and the split above it).
    counts = np.concatenate([
        rng.integers(0, 12, 40), rng.integers(12, 140, 12), [0, 1, 7, 8, 9, 16, 17, 128, 129,
                                                              130, 136, 137, 300, 521]])
    rng.shuffle(counts)
    rows = _hard_values(rng, (int(counts.sum()), 24))
    got = sentence_means(torch.from_numpy(rows), counts).numpy()
    want = _reduceat_means(rows, counts)
    assert np.array_equal(_bits(got), _bits(want))
    assert np.isnan(got[counts == 0]).all() and np.isfinite(got[counts > 0]).all()


def test_sentence_means_of_zero_segments_keep_numpys_signs():
    """-0.0 sums stay -0.0 where reduceat keeps them (a start from +0.0 would not)."""
    rows = np.array([[-0.0, 0.0], [-0.0, -0.0], [-0.0, 0.0], [-0.0, -0.0]], dtype=np.float32)
    counts = np.array([1, 3])
    got = sentence_means(torch.from_numpy(rows), counts).numpy()
    assert np.array_equal(_bits(got), _bits(_reduceat_means(rows, counts)))
    assert np.signbit(got[0, 0]) and np.signbit(got[1, 0])


def _index_add_means(layers, words_of_tokens, n_words):
    """The former word pooling: zeros, index_add_ in token order, division by the counts."""
    tokens = torch.tensor([t for ts in words_of_tokens for t in ts])
    targets = torch.tensor([w for w, ts in enumerate(words_of_tokens) for _ in ts])
    selected = torch.cat([h.reshape(-1, h.shape[-1]).index_select(0, tokens) for h in layers],
                         dim=1).float()
    out = torch.zeros((n_words, selected.shape[1]))
    out.index_add_(0, targets, selected)
    counts = torch.bincount(targets, minlength=n_words).to(torch.float32).unsqueeze(1)
    return out / counts


@pytest.mark.parametrize("seed", range(4))
def test_word_means_bitwise_equal_index_add(seed):
    rng = np.random.default_rng(seed)
    batch, width, dim = 5, 40, 16
    layers = [torch.from_numpy(_hard_values(rng, (batch, width, dim))) for _ in range(3)]
    # Words of 1..9 subwords laid out in each row of the batch, with gaps (specials, padding).
    words: list[list[int]] = []
    for b in range(batch):
        pos = 1
        while True:
            n = int(rng.choice([1, 1, 1, 2, 3, 5, 9]))
            if pos + n >= width:
                break
            words.append(list(range(b * width + pos, b * width + pos + n)))
            pos += n
    # Every other word gets all-(-0.0) subwords: index_add_ into zeros makes them +0.0.
    for ts in words[::7]:
        for layer in layers:
            layer.view(-1, dim)[ts] = -0.0
    n_sub = np.array([len(ts) for ts in words])
    first = np.array([ts[0] for ts in words])
    later = [np.flatnonzero(n_sub > k) for k in range(1, int(n_sub.max()))]
    tokens = np.concatenate([first] + [first[w] + k for k, w in enumerate(later, 1)])
    ends = np.cumsum([len(first)] + [len(w) for w in later])
    steps = [(torch.as_tensor(w), int(a), int(b))
             for w, a, b in zip(later, ends[:-1], ends[1:], strict=True)]
    multi = np.flatnonzero(n_sub > 1)
    got = word_means(layers, torch.as_tensor(tokens), len(words), steps, torch.as_tensor(multi),
                     torch.as_tensor(n_sub[multi], dtype=torch.float32).unsqueeze(1))
    want = _index_add_means(layers, words, len(words))
    assert n_sub.max() == 9 and (n_sub == 1).sum() > 5
    assert np.array_equal(_bits(got.numpy()), _bits(want.numpy()))
