"""Chunk shapes, shards and codecs of a store's activation arrays, chosen from its layout.

An activation array ``activations/<component>`` is ``(n_words, n_layers * neurons)``:

- **chunks** are ``(chunk_words, neurons)``: one layer of ``chunk_words`` consecutive words
  (default 4,096). Reading one layer touches only that layer's chunks; reading rows
  ``a:b`` touches ``b - a`` rows' worth of chunks; a chunk is the unit of decoding and of
  the CRC-32C check;
- **shards** (Zarr v3 sharding, the default) group the chunks of the same rows into one file
  of ``(chunk_words, k * neurons)``: ``k`` layers side by side, as many as fit in
  ``SHARD_BYTES`` (all of them for models up to about 1B parameters), at least one. The
  number of files is then ``ceil(n_words / chunk_words) * ceil(n_layers / k)`` per
  component, whatever the number of neurons: 458,752 MLP neurons of an 8B model over 200k
  words make 49 x 16 = 784 files in float16, not one per column block. Inside a shard every
  chunk carries its own CRC-32C (Zarr's ``crc32c`` codec), so a one-layer read checks what
  it reads without reading the whole shard;
- shards hold whole rows of chunks, so writers that split the words at multiples of
  ``chunk_words`` never share a file (the distributed extraction relies on it); the
  manifest lists each shard file with its size and CRC-32C like any other file;
- **compression** (``none``, ``zstd``, ``blosc-lz4``): see :data:`COMPRESSIONS` and
  docs/store.md for the measured size and speed; dense float activations barely compress,
  so the default is ``none``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec, ZstdCodec

from neuronscope.errors import NeuronscopeError

#: Compression choices (Zarr v3 codecs).
COMPRESSIONS = ("none", "zstd", "blosc-lz4")
DEFAULT_COMPRESSION = "none"
#: Largest shard file written by default: a write of a partial shard rewrites all of it.
SHARD_BYTES = 256 * 2**20


def check_compression(name: str) -> str:
    """``name`` if it is a compression choice, else a clear error."""
    if name not in COMPRESSIONS:
        raise NeuronscopeError(f"unknown compression {name!r}; valid: {', '.join(COMPRESSIONS)}")
    return name


def compressors(name: str, itemsize: int) -> list[Any]:
    """The bytes-to-bytes codecs of a compression choice (before any CRC)."""
    check_compression(name)
    if name == "zstd":
        return [ZstdCodec(level=1)]  # level 1: the fast end; higher levels gain little here
    if name == "blosc-lz4":
        return [BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle,
                           typesize=itemsize)]
    return []


def activation_array_kwargs(n_rows: int, n_layers: int, neurons: int, dtype: np.dtype,
                            chunk_words: int, compression: str, sharded: bool,
                            ) -> dict[str, Any]:
    """``create_array`` arguments (chunks, shards, compressors) of one activation array."""
    rows = min(chunk_words, max(n_rows, 1))
    codecs = compressors(compression, dtype.itemsize)
    if not sharded:
        return {"chunks": (rows, neurons), "compressors": codecs or None}
    chunk_bytes = rows * neurons * dtype.itemsize
    per_shard = max(1, min(n_layers, SHARD_BYTES // max(chunk_bytes, 1)))
    return {"chunks": (rows, neurons), "shards": (rows, per_shard * neurons),
            "compressors": [*codecs, Crc32cCodec()]}
