"""The model's own performance on a corpus, token by token: what ablations are measured by.

* causal LMs: the next-token loss of every token of each sentence's *real text* (the
  CoNLL-U ``# text`` kept in :attr:`Corpus.texts`, else the words detokenized), tokenized as
  the model's tokenizer does it, after the model's BOS token when the tokenizer defines one
  (so the first word is scored too, as plain Hugging Face scoring does); each token belongs
  to the word its first non-space character falls in (character offsets of the fast
  tokenizer). Sentences longer than the model's context are scored in overlapping windows,
  each token once, with at least half a window of left context;
* masked LMs: a seeded fraction of words is replaced by ``[MASK]`` (all their subwords, in
  every window that contains them) and the loss is taken on those masked tokens;
* sequence classifiers: the predicted class of every sentence.

Masked-LM inputs are laid out as extraction does (:class:`WordTokenizer`, overlapping
windows for long sentences, each word scored in the window where it has the most context).
All inputs are built once and batched by length, so re-running the same corpus under many
interventions costs only the forward passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.extraction.alignment import Piece, WordTokenizer
from neuronscope.extraction.extractor import length_sorted_batches, pad_batch
from neuronscope.models.loading import LoadedModel

TASKS = ("causal-lm", "masked-lm", "sequence-classification")

#: Progress callback: called with (steps done, steps in all).
ProgressFn = Callable[[int, int], None]


def model_task(loaded: LoadedModel) -> str:
    """What the model's head predicts: causal-lm, masked-lm or sequence-classification."""
    cls = type(loaded.model).__name__
    if cls.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal-lm"
    if cls.endswith("ForMaskedLM"):
        return "masked-lm"
    if cls.endswith("ForSequenceClassification"):
        return "sequence-classification"
    raise NeuronscopeError(
        f"{loaded.name} ({cls}) has no language-model or sequence-classification head, so its "
        "own performance cannot be measured; load it with head='causal-lm' or 'masked-lm' "
        "(a head missing from the checkpoint would be random)"
    )


@dataclass
class TokenScores:
    """Per scored token: loss, top-1 prediction, gold token and the corpus word it belongs to."""

    nll: np.ndarray
    pred: np.ndarray
    target: np.ndarray
    word: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        """Whether the top-1 prediction is the gold token."""
        return self.pred == self.target


def _token_words(text: str, spans: Sequence[tuple[int, int]],
                 offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Word (position in the sentence) of each token: the word holding its first non-space
    character, else the next word (a lone space token belongs to the word it precedes)."""
    starts = np.asarray([a for a, _ in spans], dtype=np.int64)
    stops = np.asarray([b for _, b in spans], dtype=np.int64)
    owner = []
    for a, b in offsets:
        piece = text[a:b]
        c = a + len(piece) - len(piece.lstrip()) if piece.strip() else a
        # the last word starting at or before c; past its end (a gap), the word that follows
        j = int(np.searchsorted(starts, c, side="right")) - 1
        if j < 0:
            j = 0
        elif c >= stops[j] and j + 1 < len(spans):
            j += 1
        owner.append(j)
    return owner


@dataclass
class _Batch:
    inputs: dict[str, torch.Tensor]
    rows: torch.Tensor  # flat (batch * width) index of the logit row predicting each target
    targets: torch.Tensor


def _window_words(piece: Piece, lengths: Sequence[int], n_pre: int) -> list[tuple[int, int, int]]:
    """Every word inside a piece (owned or context only) as (word, start, stop) tokens."""
    if not piece.spans:
        return []
    j0, s0, _ = min(piece.spans, key=lambda s: s[1])
    a, before = j0, s0 - n_pre
    while before > 0:  # walk back over context-only words left of the first owned word
        a -= 1
        before -= lengths[a]
    out, pos, j = [], n_pre, a
    while pos < piece.content_stop:
        out.append((j, pos, pos + lengths[j]))
        pos += lengths[j]
        j += 1
    return out


_NO_SPACE_BEFORE = re.compile(r"^([.,;:!?%)\]}]+|\.\.\.|n't|'[a-zA-Z]{1,2})$", re.IGNORECASE)
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}


def detokenize(words: Sequence[str]) -> str:
    """Words joined as text: no space before closing punctuation and clitics (``n't``, ``'s``)
    nor after opening brackets. Used when the corpus has no sentence text."""
    out: list[str] = []
    for i, w in enumerate(words):
        if i and not _NO_SPACE_BEFORE.match(w) and words[i - 1] not in _NO_SPACE_AFTER:
            out.append(" ")
        out.append(w)
    return "".join(out)


def align_words(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Character span of every word in ``text``, found left to right.

    A word is accepted where it occurs after only whitespace; a word the text spells
    differently (e.g. a multiword token's part, "del" = "de" + "el") takes the characters
    up to the next word found (searched anywhere ahead), and further unmatched words on that
    stretch get empty spans.
    """
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for w in words:
        at = text.find(w, cursor) if w else -1
        resync = bool(spans) and spans[-1] is None
        if at >= 0 and (resync or not text[cursor:at].strip()):
            spans.append((at, at + len(w)))
            cursor = at + len(w)
        else:
            spans.append(None)
    out: list[tuple[int, int]] = []
    prev_end = 0
    for i, span in enumerate(spans):
        if span is not None:
            out.append(span)
            prev_end = span[1]
            continue
        nxt = next((sp[0] for sp in spans[i + 1 :] if sp is not None), len(text))
        if i and spans[i - 1] is None:
            out.append((nxt, nxt))  # the stretch went to the first unmatched word
            continue
        gap = text[prev_end:nxt]
        start = prev_end + len(gap) - len(gap.lstrip())
        out.append((start, prev_end + len(gap.rstrip())))
    return out


def sentence_text(corpus: Corpus, index: int) -> tuple[str, list[tuple[int, int]]]:
    """A sentence's text (``corpus.texts`` or detokenized words) and its words' spans."""
    words = corpus.sentences[index]
    text = corpus.texts[index] if corpus.texts is not None else None
    if not text:
        text = detokenize(words)
    return text, align_words(text, words)


class LMScorer:
    """Per-token losses of a language model on a corpus, ready to re-run under interventions.

    Args:
        loaded: a causal or masked language model.
        corpus: the sentences.
        batch_size: pieces per forward pass.
        mask_fraction: masked LMs only: fraction of words masked (seeded, same every run).
        seed: seed of the masking.
        sentences: indices of the sentences to use (default: all).
    """

    def __init__(self, loaded: LoadedModel, corpus: Corpus, *, batch_size: int = 32,
                 mask_fraction: float = 0.15, seed: int = 0,
                 sentences: Sequence[int] | None = None) -> None:
        self.loaded = loaded
        self.task = model_task(loaded)
        if self.task == "sequence-classification":
            raise NeuronscopeError("LMScorer needs a language model; use ClassificationScorer")
        if batch_size < 1:
            raise NeuronscopeError("batch_size must be at least 1")
        if not 0 < mask_fraction <= 1:
            raise NeuronscopeError(f"mask_fraction must be in (0, 1], got {mask_fraction}")
        corpus.require_nonempty()
        tok = loaded.tokenizer
        if self.task == "masked-lm" and tok.mask_token_id is None:
            raise NeuronscopeError(f"tokenizer of {loaded.name} has no mask token")
        chosen = list(range(corpus.n_sentences)) if sentences is None else list(sentences)
        self.texts: list[str] = []  # causal LMs: the text scored, per chosen sentence
        if self.task == "causal-lm":
            pieces, targets = self._text_pieces(corpus, chosen)
        else:
            pieces, targets = self._word_pieces(corpus, chosen, mask_fraction, seed)
        if not pieces:
            raise NeuronscopeError("no token to score in this corpus (sentences too short?)")
        self._batches: list[_Batch] = []
        words: list[int] = []
        pad = tok.pad_token_id or 0
        device = loaded.device
        index = {id(p): i for i, p in enumerate(pieces)}
        for batch in length_sorted_batches(pieces, batch_size):
            inputs = pad_batch(batch, pad, device)
            width = inputs["input_ids"].shape[1]
            rows, golds = [], []
            for b, piece in enumerate(batch):
                for pos, token, word in targets[index[id(piece)]]:
                    rows.append(b * width + pos)
                    golds.append(token)
                    words.append(word)
            self._batches.append(_Batch(
                inputs, torch.tensor(rows, device=device), torch.tensor(golds, device=device)
            ))
        self.word = np.asarray(words, dtype=np.int64)
        self._baseline: TokenScores | None = None

    def _text_pieces(self, corpus: Corpus, chosen: Sequence[int]
                     ) -> tuple[list[Piece], dict[int, list[tuple[int, int, int]]]]:
        """Causal LMs: windows of each sentence's tokenized text, BOS first when defined."""
        tok = self.loaded.tokenizer
        if not getattr(tok, "is_fast", False):
            raise NeuronscopeError(
                f"scoring {self.loaded.name} on text needs a fast tokenizer (character offsets)"
            )
        bos = getattr(tok, "bos_token_id", None)
        prefix = [] if bos is None else [int(bos)]
        width = self.loaded.max_length - len(prefix)
        if width < 2:
            raise NeuronscopeError(f"{self.loaded.name} takes too few tokens to score text")
        stride = max(1, width // 2)
        offsets = corpus.sentence_offsets()
        pieces: list[Piece] = []
        targets: dict[int, list[tuple[int, int, int]]] = {}  # piece -> (position, token, word)
        for s in chosen:
            text, spans = sentence_text(corpus, s)
            self.texts.append(text)
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, owner = list(enc["input_ids"]), _token_words(text, spans, enc["offset_mapping"])
            start, scored = 0, 0  # window start; tokens before ``scored`` are done
            while scored < len(ids):
                stop = min(start + width, len(ids))
                window = prefix + ids[start:stop]
                found = []
                for t in range(max(scored, start), stop):
                    pos = t - start + len(prefix)  # position of token t inside the window
                    if pos >= 1:  # the logits at pos - 1 predict it
                        found.append((pos - 1, ids[t], int(offsets[s]) + owner[t]))
                scored = stop
                if found:
                    targets[len(pieces)] = found
                    pieces.append(Piece(s, window))
                start = min(start + stride, max(0, len(ids) - width))
        return pieces, targets

    def _word_pieces(self, corpus: Corpus, chosen: Sequence[int], mask_fraction: float,
                     seed: int) -> tuple[list[Piece], dict[int, list[tuple[int, int, int]]]]:
        """Masked LMs: the corpus words as extraction lays them out, some of them masked."""
        wtok = WordTokenizer(self.loaded.tokenizer, self.loaded.max_length, causal=False)
        offsets = corpus.sentence_offsets()
        word_ids, _ = wtok.encode_words([corpus.sentences[s] for s in chosen])
        masked = self._choose_masks(corpus, chosen, mask_fraction, seed)
        pieces: list[Piece] = []
        targets: dict[int, list[tuple[int, int, int]]] = {}
        for s, ids in zip(chosen, word_ids, strict=True):
            lengths = [min(len(w), wtok.capacity) for w in ids]
            for piece in wtok.pieces(s, ids)[0]:
                found = self._targets(piece, lengths, len(wtok.prefix_ids), int(offsets[s]),
                                      masked)
                if found:
                    targets[len(pieces)] = found
                    pieces.append(piece)
        return pieces, targets

    def _choose_masks(self, corpus: Corpus, chosen: Sequence[int], fraction: float,
                      seed: int) -> set[int]:
        if self.task != "masked-lm":
            return set()
        offsets = corpus.sentence_offsets()
        flat = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in chosen])
        rng = np.random.default_rng(seed)
        pick = flat[rng.random(len(flat)) < fraction]
        if len(pick) == 0:
            pick = rng.choice(flat, 1)
        return set(pick.tolist())

    def _targets(self, piece: Piece, lengths: Sequence[int], n_pre: int, offset: int,
                 masked: set[int]) -> list[tuple[int, int, int]]:
        found = []
        mask_id = self.loaded.tokenizer.mask_token_id
        owned = {j for j, _, _ in piece.spans}
        ids = list(piece.input_ids)
        for j, start, stop in _window_words(piece, lengths, n_pre):
            if offset + j not in masked:
                continue
            for t in range(start, stop):
                if j in owned:
                    found.append((t, ids[t], offset + j))
                ids[t] = mask_id  # masked in every window, so no window leaks the word
        piece.input_ids = ids
        return found

    @property
    def n_tokens(self) -> int:
        """Number of scored tokens."""
        return len(self.word)

    @property
    def n_batches(self) -> int:
        """Forward passes per run."""
        return len(self._batches)

    def run(self, progress: ProgressFn | None = None) -> TokenScores:
        """Score every target token with the model as it is now (interventions included).

        ``progress`` is called with (batches done, batches in all) after each batch.
        """
        nll, pred, gold = [], [], []
        model = self.loaded.model
        with torch.inference_mode():
            for b, batch in enumerate(self._batches):
                if progress is not None:
                    progress(b, len(self._batches))
                logits = model(**batch.inputs).logits
                rows = logits.reshape(-1, logits.shape[-1]).index_select(0, batch.rows).float()
                logp = torch.log_softmax(rows, dim=-1)
                nll.append((-logp.gather(1, batch.targets[:, None])[:, 0]).cpu())
                pred.append(rows.argmax(dim=-1).cpu())
                gold.append(batch.targets.cpu())
        if progress is not None:
            progress(len(self._batches), len(self._batches))
        return TokenScores(torch.cat(nll).double().numpy(), torch.cat(pred).numpy(),
                           torch.cat(gold).numpy(), self.word)

    @property
    def baseline(self) -> TokenScores:
        """Scores without intervention (computed once; call outside any intervention)."""
        if self._baseline is None:
            self._baseline = self.run()
        return self._baseline


class ClassificationScorer:
    """Sentence predictions of a sequence classifier, with gold labels where they map.

    Args:
        loaded: a model with a sequence-classification head.
        corpus: sentences; ``label_layer`` names a sentence-level label layer.
        label_layer: gold labels (mapped to class ids through ``config.label2id``).
        batch_size: sentences per forward pass (longer ones are truncated).
    """

    def __init__(self, loaded: LoadedModel, corpus: Corpus, label_layer: str | None = None,
                 batch_size: int = 32) -> None:
        if model_task(loaded) != "sequence-classification":
            raise NeuronscopeError(f"{loaded.name} has no sequence-classification head")
        self.loaded = loaded
        cfg = loaded.config
        self.id2label = {int(k): str(v) for k, v in (cfg.id2label or {}).items()}
        self.gold: np.ndarray | None = None
        if label_layer is not None:
            if label_layer not in corpus.sentence_labels:
                raise NeuronscopeError(
                    f"corpus {corpus.name!r} has no sentence label layer {label_layer!r}; "
                    f"sentence layers: {', '.join(corpus.sentence_labels) or '(none)'}"
                )
            label2id = {str(v): k for k, v in self.id2label.items()}
            values = corpus.sentence_labels[label_layer]
            unknown = sorted(set(values) - set(label2id))
            if unknown:
                raise NeuronscopeError(
                    f"labels {unknown[:10]} of layer {label_layer!r} are not classes of the "
                    f"model ({', '.join(label2id)})"
                )
            self.gold = np.asarray([label2id[v] for v in values], dtype=np.int64)
        tok = loaded.tokenizer
        texts = [" ".join(s) for s in corpus.sentences]
        self._batches = []
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start : start + batch_size], padding=True, truncation=True,
                      max_length=loaded.max_length, return_tensors="pt")
            self._batches.append({k: v.to(loaded.device) for k, v in enc.items()
                                  if k in ("input_ids", "attention_mask", "token_type_ids")})
        self._baseline: np.ndarray | None = None

    def run(self) -> np.ndarray:
        """Predicted class id of every sentence."""
        out = []
        with torch.inference_mode():
            for inputs in self._batches:
                out.append(self.loaded.model(**inputs).logits.argmax(-1).cpu())
        return torch.cat(out).numpy()

    @property
    def baseline(self) -> np.ndarray:
        """Predictions without intervention (computed once)."""
        if self._baseline is None:
            self._baseline = self.run()
        return self._baseline
