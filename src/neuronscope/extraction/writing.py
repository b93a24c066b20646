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

from collections.abc import Sequence
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

    def write(self, buffers: dict[str, np.ndarray], pooled: dict[str, np.ndarray],
              rows: tuple[int, int], sentences: tuple[int, int], windows: dict[str, Any],
              last: bool) -> None:
        """Write one block (rows ``rows``, sentences ``sentences``), then commit."""
        row0, row1 = rows
        lo, hi = sentences
        start = self.held_from if self.held else row0
        end = row1 if last else row1 - row1 % self.chunk
        for c in self.comps:
            block = buffers[c.name]
            held = self.held.get(c.name)
            if end > start:
                # The file under ``row0`` gets the held rows and this block's first ones at once.
                split = end if held is None else min(end, start + self.chunk)
                head = block[: split - row0]
                # Held rows and new ones as two parts: the writer does not concatenate them.
                self.writer.write_rows(c.name, start, head if held is None else [held, head])
                if end > split:
                    self.writer.write_rows(c.name, split, block[split - row0 : end - row0])
                if end < row1:
                    self.held[c.name] = block[end - row0 :].copy()
                else:
                    self.held.pop(c.name, None)
            else:
                self.held[c.name] = block.copy() if held is None else np.concatenate([held, block])
            if self.sentence_pooling != "none":
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
