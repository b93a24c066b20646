"""A file written through staging buffers has exactly the bytes, size and CRC-32C of its
pieces, with direct I/O where the file system takes it and without it."""

from __future__ import annotations

import errno
import os

import google_crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronscope.store import staged
from neuronscope.store.staged import PAGE, StagedFile, Stages

# Piece sizes around the page and the staging buffer (3 pages): carried partial pages, small
# pieces joining a buffer, pieces filling it to the byte, pieces split over several buffers.
SIZES = st.lists(st.sampled_from([0, 1, 4, 16, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE + 7,
                                  3 * PAGE, 5 * PAGE + 3]), max_size=12)


def _write(path, pieces, *, stages: Stages) -> StagedFile:
    with StagedFile(path, stages) as out:
        for piece in pieces:
            if piece.nbytes <= 16:
                out.write(piece, small=True)
            elif piece.nbytes <= stages.piece_bytes and piece.nbytes % 2:
                # Filled in place, as the chunk writer does.
                room = out.reserve(piece.nbytes)
                room[:] = piece
                out.push(piece.nbytes)
            else:
                out.write(piece)
    return out


@pytest.mark.parametrize("direct", [True, False], ids=["direct-if-taken", "buffered"])
@settings(max_examples=40, deadline=None)
@given(sizes=SIZES, seed=st.integers(0, 2**16))
def test_file_holds_exactly_its_pieces(tmp_path_factory, direct, sizes, seed):
    with pytest.MonkeyPatch.context() as patch:
        if not direct:
            patch.setattr(staged, "_set_direct", lambda fd, on: False)
        _check_pieces(tmp_path_factory, sizes, seed)


def _check_pieces(tmp_path_factory, sizes, seed):
    rng = np.random.default_rng(seed)
    pieces = [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]
    path = tmp_path_factory.mktemp("staged") / "file"
    out = _write(path, pieces, stages=Stages(3 * PAGE))
    expected = b"".join(p.tobytes() for p in pieces)
    assert path.read_bytes() == expected
    assert out.size == len(expected)
    assert out.crc == google_crc32c.value(expected)


def test_refused_direct_write_falls_back_to_buffered(tmp_path, monkeypatch):
    """A file system that takes O_DIRECT at open but refuses the write (EINVAL): written
    buffered, same bytes."""
    real = os.pwrite
    refused = []

    def pwrite(fd, data, offset):
        if not refused:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(staged, "_set_direct", lambda fd, on: on)
    monkeypatch.setattr(os, "pwrite", pwrite)
    data = np.random.default_rng(0).integers(0, 256, 10 * PAGE + 5, dtype=np.uint8)
    out = _write(tmp_path / "file", [data], stages=Stages(3 * PAGE))
    assert refused, "the refused write was not tried"
    assert (tmp_path / "file").read_bytes() == data.tobytes()
    assert out.crc == google_crc32c.value(data.tobytes())


def test_other_write_errors_reach_the_caller(tmp_path, monkeypatch):
    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    data = np.zeros(4 * PAGE, dtype=np.uint8)
    with pytest.raises(OSError, match="No space"):
        _write(tmp_path / "file", [data, data], stages=Stages(3 * PAGE))


def test_a_piece_larger_than_the_buffer_must_come_in_parts(tmp_path):
    with StagedFile(tmp_path / "file", Stages(PAGE)) as out, pytest.raises(ValueError,
                                                                             match="larger"):
        out.reserve(PAGE * 8)
