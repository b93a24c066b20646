"""Rows go to disk in whole files: each activation file is written once per extraction."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from neuronscope.extraction import extract
from neuronscope.store import read_meta
from neuronscope.store.integrity import ChunkStore
from neuronscope.store.rawwrite import RawWriter

# Blocks of 256 words (the minimum), files of 100 rows: every block boundary inside a file.
SETTINGS = {"components": ("hidden", "mlp"), "block_bytes": 1, "batch_size": 4,
            "progress": False}


def _writes(monkeypatch) -> Counter:
    """Files written, by key: through Zarr's store or directly (store.rawwrite)."""
    written: Counter = Counter()
    original = ChunkStore.set
    replace = RawWriter._replace

    async def counted(self, key, value):
        written[key] += 1
        await original(self, key, value)

    def counted_replace(self, key, pieces):
        written[key] += 1
        replace(self, key, pieces)

    monkeypatch.setattr(ChunkStore, "set", counted)
    monkeypatch.setattr(RawWriter, "_replace", counted_replace)
    return written


def test_each_activation_file_is_written_once(monkeypatch, tmp_path, big_corpus, tiny_bert):
    written = _writes(monkeypatch)
    store = extract(big_corpus, tmp_path / "held", tiny_bert, chunk_words=100, **SETTINGS)
    activations = {k: n for k, n in written.items() if k.startswith("activations/")
                   and not k.endswith("zarr.json")}
    # 738 rows in files of 100: 8 per component, each written once.
    assert len(activations) == 16 and set(activations.values()) == {1}
    monkeypatch.undo()

    # Files larger than a block: every block is written as it comes, the same values.
    whole = extract(big_corpus, tmp_path / "whole", tiny_bert, chunk_words=1000, **SETTINGS)
    assert np.array_equal(store.matrix(), whole.matrix())
    for comp in ("hidden", "mlp"):
        assert np.array_equal(store.sentence_vectors(comp), whole.sentence_vectors(comp),
                              equal_nan=True)
    assert store.info()["windows"] == whole.info()["windows"]
    assert read_meta(tmp_path / "held")["progress"]["words_done"] == big_corpus.n_words


def test_writing_behind_the_forward_pass_gives_the_same_store(monkeypatch, tmp_path,
                                                              big_corpus, tiny_bert):
    """On an accelerator blocks are written on a background thread while the next ones run;
    on the CPU between them. Both give the same files (their sizes and CRC-32Cs)."""
    from neuronscope.extraction import extractor
    from neuronscope.store.integrity import MANIFEST_FILE

    assert not extractor.writes_behind(tiny_bert.device)
    between = extract(big_corpus, tmp_path / "between", tiny_bert, chunk_words=100, **SETTINGS)
    monkeypatch.setattr(extractor, "writes_behind", lambda device: True)
    behind = extract(big_corpus, tmp_path / "behind", tiny_bert, chunk_words=100, **SETTINGS)
    manifests = [(tmp_path / name / MANIFEST_FILE).read_text() for name in ("between", "behind")]
    assert manifests[0] == manifests[1]
    assert np.array_equal(between.matrix(), behind.matrix())


class _Rows:
    """A store writer that keeps the rows written, at their positions (BlockWriter's side)."""

    def __init__(self, n_rows: int, chunk_words: int) -> None:
        self.rows = np.full((n_rows, 3), np.nan, np.float32)
        self.meta = {"chunk_words": chunk_words, "progress": {"sentences_done": 0}}
        self.words_done = 0
        self.starts: list[int] = []

    def write_rows(self, component, start, block):
        parts = [block] if isinstance(block, np.ndarray) else block
        rows = np.concatenate(parts)
        self.rows[start : start + len(rows)] = rows
        self.starts.append(start)

    def write_sentences(self, component, start, block):
        pass

    def commit(self, words, sentences):
        self.words_done = words


@pytest.mark.parametrize("in_caller", [False, True], ids=["own-area", "caller-array"])
def test_blocks_short_of_a_file_are_held_whole(in_caller):
    """A block that ends short of the next file boundary is held whole, after the rows held
    already, and written with the next one; every row lands once, where it belongs. Rows
    are held in the writer's own area (accelerators) or at the front of the caller's array,
    the next block computed right after them (the CPU)."""
    from neuronscope.extraction.writing import BlockWriter

    class Comp:
        name = "hidden"

    sizes = [250, 30, 20, 300, 5, 256, 97]  # blocks of rows; files of 256 rows
    values = np.arange(sum(sizes) * 3, dtype=np.float32).reshape(-1, 3)
    writer = _Rows(len(values), 256)
    blocks = BlockWriter(writer, [Comp], "none", carry=True)  # type: ignore[arg-type]
    array = np.full((2048, 3), -1, np.float32)  # the caller's one reused array
    at = 0
    for k, size in enumerate(sizes):
        held = blocks.held_rows if in_caller else 0
        buffer = array[held : held + size]
        buffer[:] = values[at : at + size]
        blocks.write({"hidden": buffer}, {}, (at, at + size), (k, k + 1), {},
                     k == len(sizes) - 1, hold_in={"hidden": array} if in_caller else None)
        if not in_caller:
            buffer[:] = -1  # reused: what is held must have been copied
        else:
            array[blocks.held_rows :] = -1  # only the front is kept
        at += size
    assert np.array_equal(writer.rows, values)
    assert all(start % 256 == 0 for start in writer.starts)
