"""Batched extraction of word-level activations into an activation store.

The corpus is cut into blocks of consecutive sentences whose size depends only on the corpus
and the neuron count. Inside a block, pieces (sentences or windows) are sorted by length and
run in batches; the block's word vectors are then written in corpus order and committed.
Because blocks are deterministic, a resumed extraction recomputes exactly the same batches
and gives the same values as an uninterrupted one.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronscope import __version__
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError, StoreError
from neuronscope.extraction.alignment import AGGREGATIONS, Piece, WindowStats, WordTokenizer
from neuronscope.extraction.components import Component, model_sites, resolve_components
from neuronscope.extraction.hooks import Trace
from neuronscope.extraction.pooling import Aggregator, one_thread, sentence_means
from neuronscope.extraction.writing import BlockWriter
from neuronscope.models.loading import LoadedModel, load_model
from neuronscope.store.dtypes import STORE_DTYPES
from neuronscope.store.layout import DEFAULT_COMPRESSION, check_compression
from neuronscope.store.lock import StoreLock
from neuronscope.store.remote import is_url, mirror_path, normalize_url, publish
from neuronscope.store.store import ActivationStore, StoreWriter, block_bounds, read_meta

SENTENCE_POOLINGS = ("mean", "first-token", "last-token", "none")
DTYPES = STORE_DTYPES


def length_sorted_batches(pieces: Sequence[Piece], batch_size: int) -> Iterator[list[Piece]]:
    """Batches of pieces sorted by length, longest first (padding waste stays small)."""
    order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i].input_ids))
    for start in range(0, len(order), batch_size):
        yield [pieces[i] for i in order[start : start + batch_size]]


def pad_batch(batch: Sequence[Piece], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` tensors for a batch of pieces."""
    width = max(len(p.input_ids) for p in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, piece in enumerate(batch):
        ids[b, : len(piece.input_ids)] = torch.tensor(piece.input_ids)
        mask[b, : len(piece.input_ids)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _forward_target(model: torch.nn.Module, hooked: Sequence[str] = ()) -> torch.nn.Module:
    """The headless base model when there is one: no logits over the vocabulary to compute.

    The whole model runs when a hooked module lives outside the base (e.g. on the LM head),
    else its hooks would never fire.
    """
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    if not isinstance(base, torch.nn.Module):
        return model
    if any(name != prefix and not name.startswith(prefix + ".") for name in hooked):
        return model
    return base


def _settings(loaded: LoadedModel, corpus: Corpus, comps: Sequence[Component], **kw: Any) -> dict:
    return {
        "tool_version": __version__,
        "model": {
            "name": loaded.name,
            "gguf_file": loaded.gguf_file,
            "model_type": loaded.config.model_type,
            "config_hash": loaded.config_hash,
            "fingerprint": loaded.fingerprint,
            "random_init": loaded.random_init,
            "seed": loaded.seed,
            "num_layers": loaded.num_layers,
            "compute_dtype": loaded.compute_dtype,
        },
        "corpus": {
            "name": corpus.name,
            "fingerprint": corpus.fingerprint,
            "n_sentences": corpus.n_sentences,
            "n_words": corpus.n_words,
        },
        "components": {c.name: c.meta() for c in comps},
        **kw,
    }


# Settings that must be equal for a resume to give the same values as one run.
_RESUME_KEYS = ("components", "aggregation", "sentence_pooling", "dtype", "block_words",
                "batch_size", "windows_config")


def extract(
    corpus: Corpus,
    out: str | os.PathLike,
    model: LoadedModel | str | None = None,
    *,
    components: Sequence[str] = ("hidden",),
    layers: str | Sequence[int] | None = None,
    modules: Mapping[str, Sequence[str]] | None = None,
    aggregation: str = "mean",
    sentence_pooling: str = "mean",
    batch_size: int = 32,
    dtype: str = "float32",
    max_length: int | None = None,
    window_stride: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    chunk_words: int = 4096,
    block_bytes: int = 64 * 2**20,
    model_kwargs: Mapping[str, Any] | None = None,
    compression: str = DEFAULT_COMPRESSION,
    sharded: bool = True,
    block_runner: Callable[..., None] | None = None,
) -> ActivationStore:
    """Run a model over a corpus and stream word-level activations into a store.

    Args:
        corpus: sentences (and labels, which are not needed here).
        out: store directory to create (or resume), or a URL such as ``s3://bucket/store``
            (written to a local mirror, then uploaded: see :mod:`neuronscope.store.remote`).
        model: a loaded model, a name or path, or None for the embedded default.
        components: ``hidden``, ``mlp``, ``attn``.
        layers: layer filter such as ``"0-6"`` or ``[3, 4]``.
        modules: extra components ``{name: [module names]}`` capturing module outputs.
        aggregation: how a word's subword vectors become one: first, last, mean, max.
        sentence_pooling: sentence vectors to store: mean (of words), first-token (e.g. CLS),
            last-token, or none.
        batch_size: pieces per forward pass.
        dtype: storage dtype, float32, float16 or bfloat16 (the compute dtype is the model's:
            see ``load_model(dtype=...)``; activations are cast to float32 before aggregation
            and reads return float32).
        max_length: override the model's maximum input length (tokens).
        window_stride: tokens between starts of overlapping windows for long sentences.
        resume: continue an interrupted extraction into ``out``.
        overwrite: replace an existing store at ``out``.
        progress: show a progress bar with words/s and ETA.
        chunk_words: rows per Zarr chunk.
        block_bytes: memory budget of one block of word vectors; bounds peak memory.
        model_kwargs: keyword arguments of ``load_model`` when ``model`` is a name.
        compression: ``none``, ``zstd`` or ``blosc-lz4`` (see docs/store.md).
        sharded: one file per block of ``chunk_words`` rows holding every layer's chunks.
        block_runner: computes and commits the blocks instead of this process, called as
            ``block_runner(loaded, spec, corpus, writer, block_words, progress)`` once the
            store is created or reopened (``neuronscope.distributed.extract_on`` runs them
            on a Dask cluster).

    Returns:
        The finished store, opened for reading.
    """
    if aggregation not in AGGREGATIONS:
        raise NeuronscopeError(f"unknown aggregation {aggregation!r}; valid: {AGGREGATIONS}")
    if sentence_pooling not in SENTENCE_POOLINGS:
        raise NeuronscopeError(
            f"unknown sentence pooling {sentence_pooling!r}; valid: {SENTENCE_POOLINGS}"
        )
    if dtype not in DTYPES:
        raise NeuronscopeError(f"unknown dtype {dtype!r}; valid: {DTYPES}")
    check_compression(compression)
    if batch_size < 1:
        raise NeuronscopeError("batch_size must be at least 1")
    corpus.require_nonempty()
    # A URL (s3://...): extract into its local mirror, then upload (see store.remote).
    url = normalize_url(out) if is_url(out) else None
    out = mirror_path(url) if url else Path(out)
    if url:
        out.parent.mkdir(parents=True, exist_ok=True)
    if resume and overwrite:
        raise NeuronscopeError("choose either resume or overwrite, not both")
    if not resume and out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        # Fail before loading the model: nothing already written is touched.
        raise StoreError(
            f"output store {out} already exists; pass --overwrite to replace it "
            "or --resume to continue an interrupted extraction"
        )
    if out.parent.is_dir():
        with StoreLock(out):  # fail before loading the model if another process writes `out`
            pass
    loaded = (model if isinstance(model, LoadedModel)
              else load_model(model, **dict(model_kwargs or {})))
    comps = resolve_components(loaded, components, layers, modules)
    n_neurons = sum(len(c.layers) * c.neurons for c in comps)
    block_words = int(min(16384, max(256, block_bytes // (4 * n_neurons))))
    limit = max_length or loaded.max_length
    wtok = WordTokenizer(loaded.tokenizer, limit, causal=loaded.is_causal, stride=window_stride)
    settings = _settings(
        loaded, corpus, comps,
        aggregation=aggregation, sentence_pooling=sentence_pooling, dtype=dtype,
        block_words=block_words, batch_size=batch_size,
        windows_config={"max_length": limit, "stride": wtok.stride, "causal": loaded.is_causal,
                        "space_prefix": wtok.space_prefix,
                        "policy": "overlapping windows at word boundaries; each word taken "
                                  "from the window where it has the most context"},
    )
    if resume:
        writer = _reopen(out, settings)
    else:
        settings["windows"] = WindowStats().as_dict()
        writer = StoreWriter.create(out, settings, corpus, overwrite=overwrite,
                                    chunk_words=chunk_words, compression=compression,
                                    sharded=sharded)
    try:
        if block_runner is None:
            _run(corpus, loaded, comps, wtok, writer, block_words, batch_size, aggregation,
                 sentence_pooling, progress)
        else:
            spec = {"components": list(components), "layers": layers, "modules": modules,
                    "max_length": limit, "window_stride": window_stride,
                    "batch_size": batch_size, "aggregation": aggregation,
                    "sentence_pooling": sentence_pooling}
            block_runner(loaded, spec, corpus, writer, block_words, progress)
    finally:
        writer.close()  # the lock; an interrupted store stays resumable
    if url:
        publish(out, url)
    return ActivationStore(out)


def _reopen(out: Path, settings: dict) -> StoreWriter:
    if not out.exists():
        raise StoreError(f"cannot resume: {out} does not exist")
    meta = read_meta(out)
    if meta["complete"]:
        raise StoreError(f"store {out} is already complete; nothing to resume")
    for section, key in (("model", "fingerprint"), ("corpus", "fingerprint")):
        if meta[section][key] != settings[section][key]:
            raise StoreError(
                f"cannot resume {out}: it was started with another {section} "
                f"({meta[section].get('name')!r}, {key} {meta[section][key]}) than the one given "
                f"({settings[section].get('name')!r}, {key} {settings[section][key]})"
            )
    diffs = [k for k in _RESUME_KEYS if meta.get(k) != settings.get(k)]
    if diffs:
        raise StoreError(
            f"cannot resume {out}: settings differ from the interrupted run: "
            + ", ".join(f"{k} was {meta.get(k)!r}, now {settings.get(k)!r}" for k in diffs)
        )
    return StoreWriter.resume(out)


def _progress_bar(enabled: bool, total: int, done: int) -> Any:
    from neuronscope.progress import progress_bar

    progress = progress_bar("extracting", "words", enabled=enabled, rate_field=True)
    task = progress.add_task("extract", total=total, completed=done, rate="")
    return progress, task


class BlockPlan:
    """What the forward passes of every block need, built once per process (and per worker).

    Holds the components, the word tokenizer, the hook sites (early stop) and the module the
    forward pass runs on; :meth:`vectors` computes one block's word (and sentence) vectors.
    """

    def __init__(self, loaded: LoadedModel, comps: Sequence[Component], wtok: WordTokenizer,
                 batch_size: int, aggregation: str, sentence_pooling: str) -> None:
        self.loaded, self.comps, self.wtok = loaded, list(comps), wtok
        self.batch_size, self.aggregation = batch_size, aggregation
        self.sentence_pooling = sentence_pooling
        self.hidden_sites = _early_stop_sites(loaded, comps)
        self.stop = self.hidden_sites is not None
        self.need_hidden = not self.stop and any(c.source == "hidden_states" for c in comps)
        hooked = [m for c in comps if c.source != "hidden_states" for m in c.modules.values()]
        hooked += [m for m in (self.hidden_sites or {}).values() if m not in hooked]
        self.hooked = hooked
        self.target = _forward_target(loaded.model, hooked)
        self.retain_input = any(c.source == "input" for c in comps)
        self.retain_output = bool(self.hidden_sites) or any(c.source == "output" for c in comps)
        self.pad_id = loaded.tokenizer.pad_token_id or 0

    def trace(self) -> Trace:
        """The hooks of one run (enter it around the blocks, under ``inference_mode``)."""
        return Trace(self.loaded.model, self.hooked, retain_output=self.retain_output,
                     retain_input=self.retain_input, stop=self.stop)

    def vectors(self, trace: Trace, sentences: Sequence[Sequence[str]], lo: int,
                offsets: np.ndarray, out: dict[str, np.ndarray] | None = None,
                means_later: bool = False,
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], WindowStats]:
        """Word vectors (and first/last-token sentence vectors) of sentences ``lo..``.

        ``sentences`` are the block's sentences (``lo`` is the first one's corpus index) and
        ``offsets`` their ``len(sentences) + 1`` word offsets in the corpus. The batches
        depend on the block only, so every process computes the same values for it.
        ``out`` (component -> float32 array of at least the block's rows) receives the word
        vectors instead of new arrays: a block's 64 MB, allocated anew, costs its page
        faults again every block. ``means_later``: the caller computes mean sentence vectors
        itself (:meth:`mean_vectors`).
        """
        hi = lo + len(sentences)
        row0, row1 = int(offsets[0]), int(offsets[-1])
        first_rows = np.asarray(offsets[:-1], dtype=np.int64) - row0
        word_ids, empty = self.wtok.encode_words([list(s) for s in sentences])
        pieces: list[Piece] = []
        block_stats = WindowStats(words_without_subwords=empty)
        for k, ids in enumerate(word_ids):
            ps, st = self.wtok.pieces(lo + k, ids)
            pieces.extend(ps)
            block_stats.merge(st)
        buffers = {c.name: (out[c.name][: row1 - row0] if out is not None else
                            np.empty((row1 - row0, len(c.layers) * c.neurons), np.float32))
                   for c in self.comps}
        # NaN stays for sentences without words; mean vectors come from the word vectors.
        token_pooling = self.sentence_pooling in ("first-token", "last-token")
        pooled = {c.name: np.full((hi - lo, len(c.layers) * c.neurons), np.nan, np.float32)
                  for c in self.comps} if token_pooling else {}
        device = self.loaded.device
        for batch in length_sorted_batches(pieces, self.batch_size):
            inputs = pad_batch(batch, self.pad_id, device)
            # With ``stop`` the pass ends after the last requested module (result None).
            result = trace.call(self.target, **inputs, output_hidden_states=self.need_hidden,
                                return_dict=True)
            agg = Aggregator(batch, inputs["input_ids"].shape[1], first_rows, lo,
                              self.aggregation, device)
            rows = agg.rows
            with one_thread(device):
                for c in self.comps:
                    per_layer = _component_tensors(c, result, trace, self.hidden_sites)
                    buffers[c.name][rows] = agg.reduce(per_layer).cpu().numpy()
                    if token_pooling:
                        which = "first" if self.sentence_pooling == "first-token" else "last"
                        sids, vecs = agg.token_rows(per_layer, which)
                        if sids:
                            pooled[c.name][np.asarray(sids) - lo] = vecs.cpu().numpy()
        if self.sentence_pooling == "mean" and not means_later:
            pooled = self.mean_vectors(buffers, offsets)
        return buffers, pooled, block_stats

    @staticmethod
    def mean_vectors(buffers: Mapping[str, np.ndarray],
                     offsets: np.ndarray) -> dict[str, np.ndarray]:
        """Each sentence's mean word vector (NaN without words), from a block's word vectors
        and its sentences' ``len + 1`` word offsets."""
        counts = np.diff(offsets)
        with one_thread(torch.device("cpu")):
            return {name: sentence_means(torch.from_numpy(buf), counts).numpy()
                    for name, buf in buffers.items()}


def resume_stats(meta: Mapping[str, Any]) -> WindowStats:
    """The window statistics recorded by an interrupted run (empty for a new store)."""
    stats = WindowStats()
    for key, value in meta.get("windows", {}).items():
        if key == "windowed_sentence_ids_first_1000":
            stats.windowed_sentence_ids = list(value)
        elif hasattr(stats, key):
            setattr(stats, key, int(value))
    return stats


def _run(corpus: Corpus, loaded: LoadedModel, comps: Sequence[Component], wtok: WordTokenizer,
         writer: StoreWriter, block_words: int, batch_size: int, aggregation: str,
         sentence_pooling: str, show_progress: bool) -> None:
    offsets = corpus.sentence_offsets()
    bounds = block_bounds(corpus.sentence_lengths(), block_words)
    sentences_done = int(writer.meta["progress"]["sentences_done"])
    stats = resume_stats(writer.meta)
    plan = BlockPlan(loaded, comps, wtok, batch_size, aggregation, sentence_pooling)
    # Holding back at most chunk_words rows costs no more memory than a block.
    blocks = BlockWriter(writer, comps, sentence_pooling,
                         carry=int(writer.meta["chunk_words"]) <= block_words)
    started = time.perf_counter()
    done_at_start = int(offsets[sentences_done])
    progress, task = _progress_bar(show_progress, corpus.n_words, done_at_start)
    # On an accelerator, disk writes overlap the next block's forward passes on one
    # background thread, and two sets of word-vector arrays take turns (one filled while the
    # other is written). On the CPU the forward pass keeps every core busy in OpenMP regions
    # that all end together: a writer thread beside it takes its time slices from them and
    # costs about twice its own cycles (MiniLM over 2,000 EWT sentences on 2 cores, buffered
    # writes: 6.68 s with the writer thread, 6.18 s writing between blocks, 5.50 s not
    # writing). With direct writes (store.staged) both ways are within the noise (0.83-0.84
    # of the bare forward behind, 0.82-0.83 between); between keeps one set of arrays, not
    # two. Rows held back for the next block's first file wait at its front.
    overlap = writes_behind(loaded.device)
    means_later = not overlap and sentence_pooling == "mean"
    spare: list[dict[str, np.ndarray]] = []
    pending: Future | None = None
    pending_progress: int | None = None
    with (ThreadPoolExecutor(1) as io, progress, torch.inference_mode(), plan.trace() as trace,
          _young_objects_only()):
        for lo, hi in bounds:
            if hi <= sentences_done:
                continue
            n_rows = int(offsets[hi] - offsets[lo])
            held = 0 if overlap else blocks.held_rows
            out = spare.pop(0) if len(spare) == (2 if overlap else 1) else None
            if out is None or any(len(a) < held + n_rows for a in out.values()):
                # Room to spare: pages never touched take no memory.
                grown = {c.name: np.empty((2 * max(held + n_rows, block_words),
                                           len(c.layers) * c.neurons), np.float32)
                         for c in comps}
                if out is not None and held:
                    for name, rows in grown.items():
                        rows[:held] = out[name][:held]
                out = grown
            spare.append(out)
            buffers, pooled, block_stats = plan.vectors(
                trace, corpus.sentences[lo:hi], lo, offsets[lo:hi + 1],
                {name: rows[held:] for name, rows in out.items()}, means_later)
            stats.merge(block_stats)
            if pending is not None:
                pending.result()  # at most one block in flight: memory stays bounded
            where = ((int(offsets[lo]), int(offsets[hi])), (lo, hi), stats.as_dict(),
                     hi == corpus.n_sentences)
            if not overlap:
                # The sentence means on the other core while this one writes the rows
                # (threads that do not wait for each other, unlike OpenMP's).
                means = (io.submit(plan.mean_vectors, buffers, offsets[lo:hi + 1])
                         if means_later else pooled)
                blocks.write(buffers, means, *where, hold_in=out)
                _show_rate(progress, task, int(offsets[hi]), done_at_start, started)
                continue
            pending = io.submit(blocks.write, buffers, pooled, *where)
            if pending_progress is not None:
                _show_rate(progress, task, pending_progress, done_at_start, started)
            pending_progress = int(offsets[hi])
        if pending is not None:
            pending.result()
        if pending_progress is not None:
            _show_rate(progress, task, pending_progress, done_at_start, started)
    writer.finalize(windows=stats.as_dict(), device=str(loaded.device))


@contextmanager
def _young_objects_only() -> Iterator[None]:
    """Keep Python's cyclic garbage collector to the objects made during the extraction.

    The word lists and pieces of every block are many small objects, and they set off full
    collections, each walking every object of the process (the model's modules, the
    tokenizer, the corpus): 0.17-0.19 s per 2,000 EWT sentences of MiniLM (3 % of the run),
    measured with ``gc.callbacks``. ``gc.freeze`` leaves what exists before out of the
    collections until the extraction ends; garbage made during it is still collected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def writes_behind(device: torch.device) -> bool:
    """Whether blocks are written on a background thread while the next ones run (on an
    accelerator), rather than between them (on the CPU: see ``_run``)."""
    return device.type != "cpu"


def _show_rate(progress: Any, task: Any, done: int, done_at_start: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    rate = (done - done_at_start) / elapsed if elapsed > 0 else 0.0
    progress.update(task, completed=done, rate=f"{rate:,.0f} words/s")


def _early_stop_sites(loaded: LoadedModel, comps: Sequence[Component]) -> dict[int, str] | None:
    """Modules whose outputs are the requested hidden layers, when the pass can stop early.

    The forward pass may end after the last requested module unless the final hidden layer
    is asked for (then ``hidden_states`` of the whole pass are read, as always). Hidden layer
    0 is the embeddings' output and layer ``k`` the output of block ``k - 1`` (the final norm
    for the last), exactly the tensors ``hidden_states`` holds. Returns ``{}`` when no hidden
    layer is requested (hooks alone, stop after the last), ``None`` when the pass must run
    to its end.
    """
    hidden = [c for c in comps if c.source == "hidden_states"]
    if not hidden:
        return {}
    wanted = sorted({layer for c in hidden for layer in c.layers})
    if wanted[-1] >= loaded.num_layers:
        return None
    sites = model_sites(loaded).components.get("hidden")
    if sites is None or any(layer not in sites.sites for layer in wanted):
        return None
    if any(sites.sites[layer][1] != "output" for layer in wanted):
        return None
    return {layer: sites.sites[layer][0] for layer in wanted}


def _component_tensors(c: Component, result: Any, trace: Trace,
                       hidden_sites: dict[int, str] | None) -> list[torch.Tensor]:
    if c.source == "hidden_states":
        if hidden_sites:
            return [trace.outputs[hidden_sites[layer]] for layer in c.layers]
        return [result.hidden_states[layer] for layer in c.layers]
    store = trace.inputs if c.source == "input" else trace.outputs
    return [store[c.modules[layer]] for layer in c.layers]
