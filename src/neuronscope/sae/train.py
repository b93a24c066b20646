"""Training a sparse autoencoder on one layer of an activation store.

TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") by default:

* **Input normalization**: activations are multiplied by one scalar ``input_scale`` so that
  their mean squared norm over the training rows is ``d_in`` (so the learning rate and the
  loss mean the same for every model); the scale is folded into the saved weights, which
  therefore act on raw activations, and recorded in ``metadata.neuronscope.input_scale``.
* **Initialization**: ``W_dec`` rows random unit vectors, ``W_enc = W_dec.T``, ``b_dec`` the
  mean of the (scaled) training rows, ``b_enc = 0``.
* **Loss**: squared reconstruction error summed over dimensions, averaged over the batch and
  divided by ``d_in``; plus ``aux_coefficient`` x the AuxK loss (the top ``aux_k`` *dead*
  latents reconstruct the residual ``x - x_hat``) so dead latents get gradient again. A
  latent is dead when it has not fired for ``dead_after_rows`` training rows.
* **Decoder**: rows renormalized to unit norm after every step.
* **Learning rate**: Adam; by default ``2e-4 / sqrt(d_sae / 2**14)`` (the paper's scaling).

``activation="relu"`` trains a standard ReLU SAE with the L1 penalty
``l1_coefficient * sum_i f_i |W_dec_i|`` (decoder-norm weighted, so shrinking the decoder
cannot cheat it) instead of TopK.

Metrics (FVE, L0, dead and dense latents) are measured on held-out *sentences* the SAE never
trained on (``test_size`` of the sentences, seeded).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.params import Configurable
from neuronscope.progress import progress_bar
from neuronscope.sae.data import SAEMetrics, evaluate_sae, layer_width, moments, shuffled_batches
from neuronscope.sae.model import SparseAutoencoder
from neuronscope.store.store import ActivationStore

ACTIVATIONS = ("topk", "relu")


class SAETrainer(Configurable):
    """Trains a TopK (or ReLU + L1) SAE on ``component``/``layer`` of a store, streaming.

    Args:
        component: store component, e.g. ``"hidden"``.
        layer: layer of that component (default: its only layer, else required).
        n_latents: latents (``d_sae``); default ``4 * d_in``.
        k: active latents per row for TopK.
        activation: ``"topk"`` or ``"relu"`` (L1-penalized).
        l1_coefficient: L1 weight for ``relu``.
        n_epochs: passes over the training rows.
        batch_size: rows per step.
        lr: Adam learning rate (default: the Gao et al. scaling, see the module doc).
        buffer_rows: mixing-buffer size (bounds memory).
        aux_k: dead latents used by the AuxK loss (default ``min(d_in // 2, d_sae)``); 0 = off.
        aux_coefficient: weight of the AuxK loss.
        dead_after_rows: rows without firing after which a latent counts as dead (default:
            one epoch of training rows, at most 10 million).
        test_size: share of sentences held out for the reported metrics.
        dense_threshold: firing rate above which a latent is reported as dense.
        device: torch device (default: CUDA when available).
        random_state: seed of the split, initialization and shuffling.
        progress: show a Rich progress bar.
    """

    def __init__(self, component: str = "hidden", layer: int | None = None,
                 n_latents: int | None = None, k: int = 32, activation: str = "topk",
                 l1_coefficient: float = 5.0, n_epochs: int = 20, batch_size: int = 1024,
                 lr: float | None = None, buffer_rows: int = 65536, aux_k: int | None = None,
                 aux_coefficient: float = 1 / 32, dead_after_rows: int | None = None,
                 test_size: float = 0.1, dense_threshold: float = 0.1,
                 device: str | None = None, random_state: int | None = 0,
                 progress: bool = False) -> None:
        self.component = component
        self.layer = layer
        self.n_latents = n_latents
        self.k = k
        self.activation = activation
        self.l1_coefficient = l1_coefficient
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.buffer_rows = buffer_rows
        self.aux_k = aux_k
        self.aux_coefficient = aux_coefficient
        self.dead_after_rows = dead_after_rows
        self.test_size = test_size
        self.dense_threshold = dense_threshold
        self.device = device
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ checks
    def _check(self, store: ActivationStore) -> tuple[int, int, int]:
        if self.component not in store.layout.components:
            store.layout.offset(self.component)  # raises, listing the components
        layers = store.layout.components[self.component].layers
        layer = self.layer
        if layer is None:
            if len(layers) != 1:
                raise NeuronscopeError(f"component {self.component!r} has layers "
                                       f"{list(layers)}; choose one with --layer")
            layer = layers[0]
        d_in = layer_width(store, self.component, layer)
        d_sae = self.n_latents if self.n_latents is not None else 4 * d_in
        if self.activation not in ACTIVATIONS:
            raise NeuronscopeError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                                   f"got {self.activation!r}")
        if d_sae < 1:
            raise NeuronscopeError(f"n_latents must be >= 1, got {d_sae}")
        if self.activation == "topk" and not 1 <= self.k <= d_sae:
            raise NeuronscopeError(f"k must be in 1..{d_sae} (the latents), got {self.k}")
        for name in ("n_epochs", "batch_size", "buffer_rows"):
            if int(getattr(self, name)) < 1:
                raise NeuronscopeError(f"{name} must be >= 1, got {getattr(self, name)}")
        return int(layer), d_in, int(d_sae)

    # ------------------------------------------------------------------ training
    def fit(self, store: ActivationStore) -> SAETrainer:
        """Train on the store's training sentences; sets ``sae_``, ``input_scale_``,
        ``metrics_`` (held-out :class:`SAEMetrics`), ``firing_rate_``, ``history_``,
        ``test_mask_``, ``layer_`` and ``seconds_``."""
        from neuronscope.evaluation._common import train_test_masks

        layer, d_in, d_sae = self._check(store)
        t0 = time.perf_counter()
        torch.manual_seed(0 if self.random_state is None else self.random_state)
        rng = np.random.default_rng(self.random_state)
        train, test = train_test_masks(store.n_words, self.test_size, store.sentence_ids(),
                                       self.random_state)
        mean, mean_sq, n_train = moments(store, self.component, layer, train)
        if mean_sq <= 0:
            raise NeuronscopeError(f"L{layer}.{self.component} is all zeros in {store.path}")
        scale = math.sqrt(d_in / mean_sq)
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        sae = self._init_sae(d_in, d_sae, mean * scale).to(device)
        lr = self.lr if self.lr is not None else 2e-4 / math.sqrt(d_sae / 2**14)
        opt = torch.optim.Adam(sae.parameters(), lr=lr)
        dead_after = self.dead_after_rows or min(n_train, 10_000_000)
        aux_k = min(d_in // 2, d_sae) if self.aux_k is None else int(self.aux_k)
        since_fired = torch.zeros(d_sae, dtype=torch.long, device=device)
        steps_per_epoch = -(-n_train // self.batch_size)
        history: list[dict[str, float]] = []
        with _progress(self.progress, self.n_epochs * steps_per_epoch) as advance:
            for epoch in range(self.n_epochs):
                sums, steps = np.zeros(3), 0
                for batch in shuffled_batches(store, self.component, layer, train,
                                              self.batch_size, self.buffer_rows, rng):
                    x = torch.from_numpy(batch).to(device) * scale
                    loss, recon, aux = self._step(sae, opt, x, since_fired, dead_after, aux_k)
                    sums += (loss, recon, aux)
                    steps += 1
                    advance()
                steps = max(steps, 1)
                history.append({"epoch": epoch + 1, "loss": sums[0] / steps,
                                "recon": sums[1] / steps, "aux": sums[2] / steps,
                                "dead_fraction": float((since_fired >= dead_after)
                                                       .float().mean())})
        sae.fold_input_scale(scale)
        metrics, rate = evaluate_sae(sae, store, self.component, layer, test,
                                     self.dense_threshold)
        self.sae_, self.input_scale_, self.layer_ = sae, scale, layer
        self.metrics_: SAEMetrics = metrics
        self.firing_rate_ = rate
        self.history_, self.test_mask_, self.lr_ = history, test, lr
        self.seconds_ = time.perf_counter() - t0
        sae.metadata = self._metadata(store)
        return self

    def _init_sae(self, d_in: int, d_sae: int, mean: np.ndarray) -> SparseAutoencoder:
        sae = SparseAutoencoder(d_in, d_sae, "topk" if self.activation == "topk" else "standard",
                                self.k if self.activation == "topk" else None)
        with torch.no_grad():
            w = torch.randn(d_sae, d_in)
            w /= w.norm(dim=1, keepdim=True)
            if self.activation == "relu":
                w *= 0.1  # small decoder norms: the L1 term is weighted by them
            sae.W_dec.copy_(w)
            sae.W_enc.copy_(w.T)
            sae.b_dec.copy_(torch.as_tensor(mean, dtype=torch.float32))
        return sae

    def _step(self, sae: SparseAutoencoder, opt: torch.optim.Optimizer, x: torch.Tensor,
              since_fired: torch.Tensor, dead_after: int, aux_k: int
              ) -> tuple[float, float, float]:
        pre = sae.pre_activations(x)
        f = sae.activate(pre)
        x_hat = sae.decode(f)
        err = x - x_hat
        recon = (err**2).sum(dim=-1).mean() / sae.d_in
        loss = recon
        aux = torch.zeros((), device=x.device)
        with torch.no_grad():
            fired = (f > 0).any(dim=0)
            since_fired += len(x)
            since_fired[fired] = 0
        if self.activation == "relu":
            l1 = (f * sae.W_dec.norm(dim=1)).sum(-1).mean() / sae.d_in
            loss = loss + self.l1_coefficient * l1
        else:
            dead = since_fired >= dead_after
            n_dead = int(dead.sum())
            if aux_k > 0 and n_dead > 0 and self.aux_coefficient > 0:
                # AuxK: the dead latents' top pre-activations reconstruct what the live ones miss.
                masked = pre.masked_fill(~dead, float("-inf"))
                values, idx = torch.topk(masked, min(aux_k, n_dead), dim=-1)
                f_aux = torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))
                aux = ((err.detach() - f_aux @ sae.W_dec) ** 2).sum(-1).mean() / sae.d_in
                loss = loss + self.aux_coefficient * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.activation == "topk":
            _project_decoder_grad(sae)
        opt.step()
        if self.activation == "topk":
            with torch.no_grad():
                sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))
        return float(loss.detach()), float(recon.detach()), float(aux.detach())

    def _metadata(self, store: ActivationStore) -> dict[str, Any]:
        params = self.get_params()
        params.pop("progress")
        return {
            "model_name": store.meta["model"]["name"],
            "hook_name": f"L{self.layer_}.{self.component}",
            "hook_layer": self.layer_,
            "neuronscope": {
                "component": self.component,
                "layer": self.layer_,
                "model_fingerprint": store.model_fingerprint,
                "store_fingerprint": store.fingerprint,
                "store": str(store.path),
                "aggregation": store.meta["aggregation"],
                "input_scale": self.input_scale_,
                "input_scale_note": "activations were multiplied by input_scale during "
                                    "training (mean squared norm = d_in); the saved weights "
                                    "have it folded in and act on raw activations",
                "training": params | {"lr": self.lr_, "seconds": round(self.seconds_, 1)},
                "held_out_metrics": self.metrics_.to_dict(),
                "history": self.history_,
            },
        }


def _project_decoder_grad(sae: SparseAutoencoder) -> None:
    """Remove the gradient component parallel to each (unit) decoder row (Gao et al.)."""
    grad = sae.W_dec.grad
    if grad is None:
        return
    with torch.no_grad():
        w = sae.W_dec
        grad -= (grad * w).sum(dim=1, keepdim=True) * w


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """The project's progress bar over ``total`` training steps, as an ``advance()``."""
    bar = progress_bar("sae train", "steps", enabled=enabled)
    with bar:
        task = bar.add_task("train", total=total)
        yield lambda: bar.advance(task)
