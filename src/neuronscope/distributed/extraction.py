"""Sharded extraction on a Dask cluster: workers run the model and write their own chunks.

The corpus is cut into the same sentence blocks as a single-process extraction
(:func:`~neuronscope.store.store.block_bounds`), and each block is computed by one worker
with exactly the same batches and the client's PyTorch thread count, so every value is
bitwise identical to ``extract``'s. Each
worker loads the model once (a scattered :class:`LoadedModel`, or ``load_model`` by name on
the worker, cached for the worker's life).

Writers never share a chunk: a worker writes the store chunks that lie entirely inside its
block's rows (through a manifest-recording :class:`ChunkStore` of its own) and sends back
the rows of the (at most two) chunks its block shares with a neighbour, plus its sentence
vectors. The client, which holds the store's lock, writes those edge rows, merges the
workers' manifest entries and commits the blocks in corpus order, so the block manifest
and ``progress`` make an interrupted distributed run resumable, by either kind of run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.extraction.alignment import WindowStats, WordTokenizer
from neuronscope.extraction.components import resolve_components
from neuronscope.extraction.extractor import BlockPlan, resume_stats
from neuronscope.models.loading import LoadedModel, load_model
from neuronscope.store.store import ActivationStore, StoreWriter, block_bounds

# Per worker process: models loaded by name, and block plans (tokenizer, hook sites).
_MODELS: dict[Any, LoadedModel] = {}
_PLANS: dict[tuple, BlockPlan] = {}


@dataclass
class BlockResult:
    """What a worker sends back for one block."""

    lo: int
    hi: int
    edges: dict[str, list[tuple[int, np.ndarray]]]  # component -> [(first row, rows)]
    pooled: dict[str, np.ndarray]
    stats: WindowStats
    entries: dict[str, list[int]]  # manifest entries of the chunk files written
    fingerprint: str
    device: str


def chunk_region(row0: int, row1: int, chunk_words: int, n_words: int) -> tuple[int, int]:
    """Rows ``[a, b)`` of ``[row0, row1)`` made of whole chunks (a == b when none)."""
    a = -(-row0 // chunk_words) * chunk_words
    b = row1 if row1 == n_words else row1 // chunk_words * chunk_words
    return (a, b) if a < b else (row0, row0)


def pack_model(loaded: LoadedModel) -> dict[str, Any]:
    """A loaded model as plain parts a worker can rebuild it from (models with hooks that
    Hugging Face installs do not pickle): class, config, weights, tokenizer, identity."""
    import torch

    return {"token": uuid.uuid4().hex, "cls": type(loaded.model), "config": loaded.config,
            "state": {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()},
            "dtype": next(loaded.model.parameters()).dtype if any(
                True for _ in loaded.model.parameters()) else torch.float32,
            "tokenizer": loaded.tokenizer,
            "fields": {"name": loaded.name, "gguf_file": loaded.gguf_file,
                       "random_init": loaded.random_init, "seed": loaded.seed,
                       "compute_dtype": loaded.compute_dtype}}


def _unpack_model(packed: Mapping[str, Any]) -> LoadedModel:
    model = packed["cls"](packed["config"]).to(packed["dtype"])
    model.load_state_dict(packed["state"])
    model.eval()
    return LoadedModel(model, packed["tokenizer"], **packed["fields"])


def _worker_model(model: Mapping[str, Any] | str | None,
                  model_kwargs: Mapping[str, Any]) -> LoadedModel:
    if isinstance(model, Mapping):  # a packed model, rebuilt once per worker
        if model["token"] not in _MODELS:
            _MODELS[model["token"]] = _unpack_model(model)
        return _MODELS[model["token"]]
    key = (model, tuple(sorted((k, repr(v)) for k, v in model_kwargs.items())))
    if key not in _MODELS:
        _MODELS[key] = load_model(model, **model_kwargs)
    return _MODELS[key]


def _extract_block(model: Mapping[str, Any] | str | None, model_kwargs: Mapping[str, Any],
                   spec: Mapping[str, Any], sentences: Sequence[Sequence[str]], lo: int,
                   offsets: np.ndarray, path: str) -> BlockResult:
    """Run on a worker: one block's vectors, its whole chunks written to the store."""
    import torch
    import zarr

    from neuronscope.store.integrity import ChunkStore

    # Matrix products sum in an order that depends on the thread count: the client's count
    # keeps the values bitwise equal to its own single-process extraction.
    if torch.get_num_threads() != spec["torch_threads"]:
        torch.set_num_threads(spec["torch_threads"])
    loaded = _worker_model(model, model_kwargs)
    key = (id(loaded), tuple(sorted((k, repr(v)) for k, v in spec.items())))
    plan = _PLANS.get(key)
    if plan is None:
        comps = resolve_components(loaded, spec["components"], spec["layers"], spec["modules"])
        wtok = WordTokenizer(loaded.tokenizer, spec["max_length"], causal=loaded.is_causal,
                             stride=spec["window_stride"])
        plan = _PLANS[key] = BlockPlan(loaded, comps, wtok, spec["batch_size"],
                                       spec["aggregation"], spec["sentence_pooling"])
    with torch.inference_mode(), plan.trace() as trace:
        buffers, pooled, stats = plan.vectors(trace, sentences, lo, offsets)
    row0, row1 = int(offsets[0]), int(offsets[-1])
    a, b = chunk_region(row0, row1, spec["chunk_words"], spec["n_words"])
    chunks = ChunkStore(Path(path))
    group = zarr.open_group(store=chunks, mode="r+")
    edges: dict[str, list[tuple[int, np.ndarray]]] = {}
    for name, rows in buffers.items():
        if a < b:
            arr = group[f"activations/{name}"]
            assert isinstance(arr, zarr.Array)
            arr[a:b] = rows[a - row0 : b - row0].astype(arr.dtype, copy=False)
        edges[name] = [(start, rows[start - row0 : stop - row0].copy())
                       for start, stop in ((row0, a), (b, row1)) if start < stop]
    return BlockResult(lo, lo + len(sentences), edges, pooled, stats, dict(chunks.entries),
                       loaded.fingerprint, str(loaded.device))


def run_blocks(scheduler: Any, loaded: LoadedModel,
               by_name: tuple[str | None, Mapping[str, Any]] | None,
               spec: Mapping[str, Any], corpus: Corpus,
               writer: StoreWriter, block_words: int, show_progress: bool) -> None:
    """Compute the blocks not yet committed on the cluster and commit them in order.

    Called by :func:`extract_on` (through ``extract``'s ``block_runner``), after the
    store was created (or reopened) by ``writer``. ``by_name`` is ``(name, load_model
    kwargs)`` for workers to load the model themselves, None to send them ``loaded``.
    """
    from neuronscope.distributed.cluster import connect
    from neuronscope.distributed.workers import n_workers
    from neuronscope.extraction.extractor import _progress_bar, _show_rate

    offsets = corpus.sentence_offsets()
    done = int(writer.meta["progress"]["sentences_done"])
    todo = [(lo, hi) for lo, hi in block_bounds(corpus.sentence_lengths(), block_words)
            if hi > done]
    stats = resume_stats(writer.meta)
    spec = {**spec, "chunk_words": int(writer.meta["chunk_words"]), "n_words": corpus.n_words}
    path = str(Path(writer.path).absolute())
    device = str(loaded.device)
    with connect(scheduler) as client:
        window = 2 * n_workers(client)  # blocks in flight: bounded memory on the workers
        # One future for the whole packed model: scattering the dict itself would make a
        # future per entry keyed by the entry's name ("cls", "state", ...), the same keys in
        # every run, so a new run's model could be dropped when the last run's is released
        # (seen after an interrupted run: "lost dependencies").
        model: Any = (by_name[0] if by_name is not None
                      else client.scatter([pack_model(loaded)], broadcast=True, hash=False)[0])
        model_kwargs = dict(by_name[1]) if by_name is not None else {}

        def submit(lo: int, hi: int) -> Any:
            return client.submit(_extract_block, model, dict(model_kwargs), spec,
                                 corpus.sentences[lo:hi], lo, offsets[lo:hi + 1], path,
                                 pure=False)

        started = time.perf_counter()
        done_at_start = int(offsets[done])
        progress, task = _progress_bar(show_progress, corpus.n_words, done_at_start)
        pending = deque(submit(lo, hi) for lo, hi in todo[:window])
        with progress:
            for k in range(len(todo)):
                result: BlockResult = pending.popleft().result()
                if k + window < len(todo):
                    pending.append(submit(*todo[k + window]))
                if result.fingerprint != loaded.fingerprint:
                    raise NeuronscopeError(
                        f"a Dask worker loaded model {loaded.name!r} with fingerprint "
                        f"{result.fingerprint}, not {loaded.fingerprint} as here: every worker "
                        "must see the same model files")
                device = result.device
                _commit(writer, result, offsets, spec["sentence_pooling"], stats)
                _show_rate(progress, task, int(offsets[result.hi]), done_at_start, started)
    writer.finalize(windows=stats.as_dict(), device=device)


def _commit(writer: StoreWriter, result: BlockResult, offsets: np.ndarray,
            sentence_pooling: str, stats: WindowStats) -> None:
    """Write a block's edge rows and sentence vectors, list its chunks, commit it."""
    writer.add_files(result.entries)
    for comp, parts in result.edges.items():
        for start, rows in parts:
            writer.write_rows(comp, start, rows)
        if sentence_pooling != "none":
            writer.write_sentences(comp, result.lo, result.pooled[comp])
    stats.merge(result.stats)
    writer.meta["windows"] = stats.as_dict()
    writer.commit(int(offsets[result.hi]), result.hi)


def extract_on(scheduler: Any, corpus: Corpus, out: str | os.PathLike,
               model: LoadedModel | str | None = None, *,
               model_kwargs: Mapping[str, Any] | None = None, torch_threads: int | None = None,
               **options: Any) -> ActivationStore:
    """:func:`~neuronscope.extraction.extract` with the blocks computed on a Dask cluster.

    Args:
        scheduler: ``"local:N"``, ``"tcp://HOST:PORT"`` or a ``distributed.Client``.
        corpus, out, options: as for ``extract`` (``out`` must be a path every worker can
            write: a shared file system).
        model: a :class:`LoadedModel` (its weights are sent once to every worker) or a name
            that every worker loads with ``load_model(model, **model_kwargs)`` (the client
            loads it too, for the store's metadata, and checks the fingerprints match).
        torch_threads: PyTorch threads per worker (default: this process's count). Sums in
            matrix products are ordered by the thread count, so the default is what makes
            the store bitwise identical to this process's single-process extraction; on
            workers with more cores, a larger count is faster and equal to float rounding.

    Returns:
        The store, bitwise identical to a single-process extraction's (same thread count).
    """
    import torch

    from neuronscope.extraction import extract

    threads = torch.get_num_threads() if torch_threads is None else int(torch_threads)
    if threads < 1:
        raise NeuronscopeError(f"torch_threads must be at least 1, got {torch_threads}")

    by_name = None if isinstance(model, LoadedModel) else (model, dict(model_kwargs or {}))

    def runner(loaded: LoadedModel, spec: Mapping[str, Any], corpus: Corpus,
               writer: StoreWriter, block_words: int, progress: bool) -> None:
        run_blocks(scheduler, loaded, by_name, {**spec, "torch_threads": threads}, corpus,
                   writer, block_words, progress)

    return extract(corpus, Path(out).absolute(), model, model_kwargs=model_kwargs,
                   block_runner=runner, **options)
