"""Writing extracted blocks to the store in whole chunks of rows, committing behind them.

Blocks end at sentence boundaries, files (shards of ``chunk_words`` rows) at multiples of
``chunk_words``: writing each block as it comes writes the file under every block boundary
twice, the second time after reading it back (Zarr rewrites a partly covered file whole).
That doubled the writer's CPU time, which the forward pass pays for on a small machine.
So rows are written up to the last multiple of ``chunk_words`` a block reaches and the rest
is carried into the next block's first write: every file is written once.

A commit still follows every block, but records only the blocks whose rows are all on disk
(their sentence vectors are written with the block): a resumed run recomputes from the last
recorded block, as before, and may rewrite rows that were already on disk with equal values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from neuronscope.extraction.components import Component
from neuronscope.store.store import StoreWriter


class BlockWriter:
    """Writes consecutive blocks of rows and sentence vectors; commits what is complete.

    Args:
        writer: the open store writer.
        comps: the components (one activation array each).
        sentence_pooling: ``none`` writes no sentence vectors.
        carry: hold back rows past the last multiple of the store's ``chunk_words`` until
            the next block (memory: at most ``chunk_words`` rows per component); without
            it every block is written and committed whole.
    """

    def __init__(self, writer: StoreWriter, comps: Sequence[Component], sentence_pooling: str,
                 carry: bool) -> None:
        self.writer, self.comps = writer, list(comps)
        self.sentence_pooling = sentence_pooling
        self.chunk = int(writer.meta["chunk_words"]) if carry else 1
        self.held: dict[str, np.ndarray] = {}
        self.held_from = 0  # first row of ``held``
        # (words_done, sentences_done, window stats) of written blocks not yet committed.
        self.blocks: list[tuple[int, int, dict[str, Any]]] = []
        # Where held rows are kept, reused block after block: a new array of up to
        # ``chunk_words`` rows every block is fresh memory, slow to touch (issue #16).
        self._areas: dict[str, np.ndarray] = {}

    @property
    def held_rows(self) -> int:
        """How many rows are held back for the next block's first file."""
        return max((len(rows) for rows in self.held.values()), default=0)

    def _hold(self, name: str, rows: np.ndarray, after_held: bool,
              area: np.ndarray | None) -> None:
        """Hold ``rows`` of component ``name``: instead of the rows held now, or after them;
        in ``area`` (the caller's) or in an area of this writer's."""
        kept = len(self.held[name]) if after_held else 0
        n = kept + len(rows)
        if area is None:
            area = self._areas.get(name)
            if area is None or len(area) < n:
                grown = np.empty((max(n, self.chunk), rows.shape[1]), rows.dtype)
                if kept:
                    grown[:kept] = self.held[name]
                area = self._areas[name] = grown
        if not _same_rows(area[kept:n], rows):
            area[kept:n] = rows  # overlapping ranges are copied correctly (NumPy buffers)
        self.held[name] = area[:n]

    def write(self, buffers: dict[str, np.ndarray],
              pooled: Mapping[str, np.ndarray] | Future[dict[str, np.ndarray]],
              rows: tuple[int, int], sentences: tuple[int, int], windows: dict[str, Any],
              last: bool, hold_in: dict[str, np.ndarray] | None = None) -> None:
        """Write one block (rows ``rows``, sentences ``sentences``), then commit.

        ``hold_in`` (component -> the caller's array): rows held back go to its front, where
        the caller computes the next block right after them (with rows held now at the
        front, ``buffers`` must follow them in the same array). ``pooled`` (the sentence
        vectors) may be a future: the rows are written first.
        """
        row0, row1 = rows
        lo, hi = sentences
        start = self.held_from if self.held else row0
        end = row1 if last else row1 - row1 % self.chunk
        for c in self.comps:
            block = buffers[c.name]
            held = self.held.get(c.name)
            area = None if hold_in is None else hold_in[c.name]
            if end > start:
                # The file under ``row0`` gets the held rows and this block's first ones at once.
                split = end if held is None else min(end, start + self.chunk)
                head = block[: split - row0]
                # Held rows and new ones as two parts: the writer does not concatenate them.
                self.writer.write_rows(c.name, start, head if held is None else [held, head])
                if end > split:
                    self.writer.write_rows(c.name, split, block[split - row0 : end - row0])
                if end < row1:
                    self._hold(c.name, block[end - row0 :], False, area)
                else:
                    self.held.pop(c.name, None)
            else:
                self._hold(c.name, block, held is not None, area)
        if self.sentence_pooling != "none":
            if isinstance(pooled, Future):
                pooled = pooled.result()  # computed on another thread meanwhile
            for c in self.comps:
                self.writer.write_sentences(c.name, lo, pooled[c.name])
        self.held_from = max(start, end)
        self.blocks.append((row1, hi, windows))
        done = [b for b in self.blocks if b[0] <= end]
        if done:
            self.blocks = self.blocks[len(done):]
            words, sents, stats = done[-1]
            self.writer.meta["windows"] = stats
            self.writer.commit(words, sents)
        else:
            # One commit per block all the same: the manifest lists the files written so far.
            self.writer.commit(self.writer.words_done,
                               int(self.writer.meta["progress"]["sentences_done"]))


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two row blocks are the same memory (holding them is then a no-op)."""
    return (a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])
