"""Generate text that excites a neuron (Poerner, Roth & Schütze 2018).

"Interpretable Textual Neuron Representations for NLP" (BlackboxNLP 2018; code
``NPoe/input-optimization-nlp``, ``SRC/optimize.py``, ``OptimizerGumbel``) carries activation
maximization ("Deep Dream") over to text: an n-gram of ``length`` free positions is
parametrized by logits ``theta`` (``length x vocabulary``); each step draws Gumbel-softmax
samples ``y = softmax((log softmax(theta) + g) / tau)``, feeds ``y @ E`` (``E`` the input
embedding matrix) to the model as input embeddings, and takes an Adam step that raises the
neuron's mean activation over the samples. The temperature ``tau`` is annealed geometrically
from ``temperature[0]`` to ``temperature[1]`` (theirs: from 2.0, times 0.99995 per step, down
to 0.1, over up to 1000 x 200 steps; here the same range is covered in ``steps``). They keep
the logits whose *hard* argmax input scores best; likewise here every ``eval_every`` steps the
argmax sequence and the argmax of each sample are run through the model as real token ids,
and the best distinct sequences by real activation are kept.

Adaptations to transformers: the model's own special tokens (``[CLS]``, ``[SEP]``...) frame
the free positions as in extraction; special tokens are never generated; the neuron is read
at one free position (``position``, default the last one, the natural choice for a causal
model). Activations are captured with :class:`~neuronscope.extraction.hooks.Trace`
(``detach=False``) at the module the interventions package resolves for the neuron name
(``mlp``/``attn``: the down-projection input; ``hidden``: block outputs), so any component a
store holds can be targeted; the forward pass stops right after that module (a second
``Trace`` whose edit raises), since later layers cannot change the value.

Comparison with the corpus. Given the store the neuron's name comes from, the result also
lists the corpus contexts where it fires most (:func:`~neuronscope.methods.inspection.
top_contexts`). Those are word-level values (subwords aggregated as at extraction, inside whole
sentences) while generated values are one token's, in a short n-gram: comparable in scale, not
identical in kind. A store from another model is refused: token ids and neurons would not
correspond (the store's model fingerprint must equal the model's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.extraction.alignment import WordTokenizer
from neuronscope.extraction.hooks import Trace
from neuronscope.models.loading import LoadedModel
from neuronscope.params import Configurable, jsonable
from neuronscope.store.store import ActivationStore


@dataclass(frozen=True)
class GeneratedText:
    """A token sequence (free positions only) and the neuron's real activation on it."""

    ids: list[int]
    tokens: list[str]
    text: str
    activation: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass
class GenerationResult:
    """Generated sequences for one neuron, best first, against the corpus' top contexts.

    ``initial`` is the argmax of the starting logits (the optimization's starting point);
    ``history`` the relaxed objective (mean activation of the Gumbel samples) per step;
    ``corpus_top`` the store's top contexts (``text``, ``word``, ``activation``), empty
    without a store.
    """

    neuron: str
    model: str
    position: int
    length: int
    sequences: list[GeneratedText]
    initial: GeneratedText
    history: list[float]
    corpus_top: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> GeneratedText:
        """The generated sequence with the highest real activation."""
        return self.sequences[0]

    @property
    def gain(self) -> float:
        """Real activation of the best sequence minus that of the starting point."""
        return self.best.activation - self.initial.activation

    @property
    def beats_corpus(self) -> bool | None:
        """Whether the best sequence beats the corpus' top activation (None without store)."""
        if not self.corpus_top:
            return None
        return self.best.activation > self.corpus_top[0]["activation"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "neuron": self.neuron, "model": self.model, "position": self.position,
            "length": self.length, "sequences": [s.to_dict() for s in self.sequences],
            "initial": self.initial.to_dict(), "gain": self.gain,
            "beats_corpus": self.beats_corpus, "corpus_top": self.corpus_top,
            "history": self.history, "params": jsonable(self.params),
        }


@dataclass
class _Target:
    """Where the neuron is read: module, input or output, index within the layer."""

    name: str
    module: str
    where: str
    index: int


def resolve_target(loaded: LoadedModel, neuron: str) -> _Target:
    """Locate a named neuron (``L3.mlp.17``, ``L2.attn.h1.5``, ``L4.hidden.7``) in the model.

    Raises:
        UnknownComponentError: a malformed name, or a component/layer/index the model lacks.
    """
    from neuronscope.interventions.sites import model_sites, parse_neuron

    sites = model_sites(loaded)
    ref = parse_neuron(neuron, sites.components, sites.missing, loaded.name)
    module, where = sites.components[ref.component].sites[ref.layer]
    return _Target(ref.name, module, where, ref.index)


def check_store_model(store: ActivationStore, loaded: LoadedModel) -> None:
    """Refuse a store extracted with another model (its vocabulary and neurons differ)."""
    if store.model_fingerprint != loaded.fingerprint:
        raise FingerprintMismatchError(
            f"store {store.path} was extracted with another model "
            f"({store.meta['model'].get('name')!r}, fingerprint {store.model_fingerprint}) "
            f"than {loaded.name!r} (fingerprint {loaded.fingerprint}): incompatible "
            "vocabularies and neurons"
        )


class NeuronTextGenerator(Configurable):
    """Gumbel-softmax input optimization of a token sequence for one neuron.

    Args:
        length: free token positions to generate.
        steps: optimization steps.
        learning_rate: Adam step size on the logits (theirs: Keras' default 0.001 over far
            more steps).
        samples: Gumbel-softmax samples per step (their batch size; theirs 64).
        temperature: ``(start, end)`` of the geometric annealing schedule.
        position: free position (0-based, negative from the end) whose activation counts.
        eval_every: steps between real (argmax) evaluations.
        n_sequences: distinct sequences reported.
        init_scale: standard deviation of the random initial logits (theirs: Keras'
            uniform +-0.05 embedding initializer).
        n_corpus: store contexts listed for comparison.
        random_state: seed of the initial logits and the Gumbel noise.
    """

    def __init__(
        self,
        length: int = 5,
        steps: int = 200,
        learning_rate: float = 0.5,
        samples: int = 8,
        temperature: tuple[float, float] = (2.0, 0.1),
        position: int = -1,
        eval_every: int = 10,
        n_sequences: int = 5,
        init_scale: float = 0.1,
        n_corpus: int = 5,
        random_state: int | None = 0,
    ) -> None:
        self.length = length
        self.steps = steps
        self.learning_rate = learning_rate
        self.samples = samples
        self.temperature = tuple(temperature)
        self.position = position
        self.eval_every = eval_every
        self.n_sequences = n_sequences
        self.init_scale = init_scale
        self.n_corpus = n_corpus
        self.random_state = random_state

    def _check(self) -> None:
        for name in ("length", "steps", "samples", "eval_every", "n_sequences"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise NeuronscopeError(f"{name} must be a positive integer, got {value!r}")
        if len(self.temperature) != 2 or min(self.temperature) <= 0:
            raise NeuronscopeError(f"temperature must be (start, end) > 0, got "
                                   f"{self.temperature}")
        if not -self.length <= self.position < self.length:
            raise NeuronscopeError(
                f"position {self.position} outside the {self.length} generated tokens")
        if self.learning_rate <= 0 or self.init_scale < 0:
            raise NeuronscopeError("learning_rate must be > 0 and init_scale >= 0")

    # ------------------------------------------------------------------ entry point
    def generate(self, loaded: LoadedModel, neuron: str,
                 store: ActivationStore | None = None,
                 progress: Callable[[int, int], None] | None = None) -> GenerationResult:
        """Optimize a token sequence for ``neuron`` of ``loaded``; compare with ``store``.

        ``progress`` is called with ``(steps done, steps)`` after each optimization step.

        Raises:
            UnknownComponentError: unknown neuron (for the model, or for the store).
            FingerprintMismatchError: ``store`` comes from another model.
            NeuronscopeError: a tokenizer larger than the embedding matrix, or too long an
                input for the model.
        """
        self._check()
        if loaded.tokenizer is None:
            raise NeuronscopeError("generation needs the model's tokenizer (use wrap_model)")
        target = resolve_target(loaded, neuron)
        if store is not None:
            check_store_model(store, loaded)
            store.layout.ids([target.name])  # the store must hold this neuron
        model = loaded.model
        embedding = _embeddings(model).weight.detach()
        tok = loaded.tokenizer
        if len(tok) > embedding.shape[0]:
            raise NeuronscopeError(
                f"incompatible vocabularies: the tokenizer has {len(tok)} tokens but the "
                f"model embeds {embedding.shape[0]}")
        wtok = WordTokenizer(tok, loaded.max_length, causal=loaded.is_causal)
        prefix, suffix = list(wtok.prefix_ids), list(wtok.suffix_ids)
        total = len(prefix) + self.length + len(suffix)
        if total > loaded.max_length:
            raise NeuronscopeError(
                f"{self.length} tokens plus {total - self.length} special tokens exceed the "
                f"model's maximum of {loaded.max_length}")
        position = len(prefix) + self.position % self.length
        device = embedding.device
        allowed = torch.ones(embedding.shape[0], dtype=torch.bool, device=device)
        allowed[len(tok):] = False  # padded embedding rows hold no token
        allowed[[i for i in tok.all_special_ids if i < embedding.shape[0]]] = False

        run = _Runner(loaded, target, prefix, suffix, position)
        gen = torch.Generator()
        if self.random_state is None:
            gen.seed()
        else:
            gen.manual_seed(int(self.random_state))
        theta0 = torch.randn((self.length, embedding.shape[0]), generator=gen) * self.init_scale
        theta = theta0.to(device).masked_fill(~allowed, float("-inf")).requires_grad_(True)
        optimizer = torch.optim.Adam([theta], lr=self.learning_rate)
        emb = embedding

        seen: dict[tuple[int, ...], float] = {}
        initial_ids = theta.detach().argmax(dim=-1)
        initial = run.hard(initial_ids[None])[0]
        seen[tuple(initial_ids.tolist())] = initial
        history: list[float] = []
        t0, t1 = self.temperature
        for step in range(self.steps):
            frac = step / max(self.steps - 1, 1)
            tau = t0 * (t1 / t0) ** frac
            uniform = torch.rand((self.samples, *theta.shape), generator=gen).to(device)
            exponential = -torch.log(uniform.clamp(1e-10, 1.0))
            gumbel = -torch.log(exponential.clamp_min(1e-10))
            logp = torch.log_softmax(theta, dim=-1)
            y = torch.softmax((logp + gumbel) / tau, dim=-1)  # (samples, length, vocab)
            soft = run.soft(y @ emb)
            loss = -soft.mean()
            (grad,) = torch.autograd.grad(loss, [theta])  # model parameters get no .grad
            theta.grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            optimizer.step()
            history.append(-float(loss.detach()))
            if (step + 1) % self.eval_every == 0 or step == self.steps - 1:
                cands = torch.cat([theta.detach().argmax(-1)[None], y.detach().argmax(-1)])
                cands = torch.unique(cands, dim=0)
                todo = [c for c in cands if tuple(c.tolist()) not in seen]
                if todo:
                    values = run.hard(torch.stack(todo))
                    for c, v in zip(todo, values, strict=True):
                        seen[tuple(c.tolist())] = v
            if progress is not None:
                progress(step + 1, self.steps)

        ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[: self.n_sequences]
        corpus_top: list[dict[str, Any]] = []
        if store is not None and self.n_corpus:
            from neuronscope.methods.inspection import top_contexts

            corpus_top = [{"text": c.text, "word": c.word, "activation": c.activation,
                           "sentence_id": c.sentence_id}
                          for c in top_contexts(store, target.name, k=self.n_corpus)]
        return GenerationResult(
            neuron=target.name, model=loaded.name, position=self.position % self.length,
            length=self.length,
            sequences=[self._text(tok, list(ids), value) for ids, value in ranked],
            initial=self._text(tok, initial_ids.tolist(), initial),
            history=history, corpus_top=corpus_top, params=self.get_params(),
        )

    @staticmethod
    def _text(tok: Any, ids: Sequence[int], value: float) -> GeneratedText:
        ids = [int(i) for i in ids]
        return GeneratedText(ids, list(tok.convert_ids_to_tokens(ids)),
                             tok.decode(ids), float(value))


class _Runner:
    """Runs the model on soft (embedding) or hard (token id) inputs and reads the neuron."""

    def __init__(self, loaded: LoadedModel, target: _Target, prefix: list[int],
                 suffix: list[int], position: int) -> None:
        self.model = loaded.model
        self.target = target
        self.position = position
        device = loaded.device
        self.prefix = torch.tensor(prefix, dtype=torch.long, device=device)
        self.suffix = torch.tensor(suffix, dtype=torch.long, device=device)
        emb = _embeddings(self.model)
        self.prefix_emb = emb(self.prefix).detach()
        self.suffix_emb = emb(self.suffix).detach()

    def _run(self, detach: bool, **inputs: torch.Tensor) -> torch.Tensor:
        """Run the model until the neuron's module has been captured, then stop: the later
        layers (and any head) cannot change the value, so they are not computed."""
        where = self.target.where
        with Trace(self.model, [self.target.module], retain_output=where == "output",
                   retain_input=where == "input", detach=detach, stop=True) as trace:
            self.model(**inputs)
        found = trace.inputs if where == "input" else trace.outputs
        return found[self.target.module][:, self.position, self.target.index]

    def soft(self, embeds: torch.Tensor) -> torch.Tensor:
        """Activations ``(samples,)`` for free-position input embeddings, with gradients."""
        n = embeds.shape[0]
        full = torch.cat([self.prefix_emb.expand(n, -1, -1), embeds,
                          self.suffix_emb.expand(n, -1, -1)], dim=1)
        mask = torch.ones(full.shape[:2], dtype=torch.long, device=full.device)
        with torch.enable_grad():
            return self._run(False, inputs_embeds=full, attention_mask=mask)

    @torch.no_grad()
    def hard(self, ids: torch.Tensor) -> list[float]:
        """Real activations for free-position token ids ``(n, length)``."""
        n = ids.shape[0]
        full = torch.cat([self.prefix.expand(n, -1), ids.to(self.prefix.device),
                          self.suffix.expand(n, -1)], dim=1)
        values = self._run(True, input_ids=full, attention_mask=torch.ones_like(full))
        return [float(v) for v in values.float().cpu()]


def _embeddings(model: torch.nn.Module) -> torch.nn.Embedding:
    """The input embedding module of a Hugging Face model (typed for the checker)."""
    module: torch.nn.Embedding = model.get_input_embeddings()  # type: ignore[operator]
    return module


def generate_for_neuron(loaded: LoadedModel, neuron: str, store: ActivationStore | None = None,
                        **params: Any) -> GenerationResult:
    """Shortcut: ``NeuronTextGenerator(**params).generate(loaded, neuron, store)``."""
    return NeuronTextGenerator(**params).generate(loaded, neuron, store)
