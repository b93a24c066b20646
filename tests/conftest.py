"""Shared fixtures: tiny random BERT and GPT-2 models with locally trained tokenizers.

Everything is built offline in a few hundred milliseconds: the tokenizers are trained with
the ``tokenizers`` library on the text below, the models are random (seeded) and small
(hidden 32, 2 layers, 4 heads, 64 positions) so that windowing of long sentences triggers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
import typer
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.cli.errors import run
from neuronscope.corpus import write_conllu
from neuronscope.corpus.corpus import Corpus
from neuronscope.extraction import extract
from neuronscope.models import wrap_model
from tests.cli_outcome import Outcome

# Tiny models: intra-op threads only add synchronization (and stall badly on a busy machine).
torch.set_num_threads(1)

TRAINING_TEXT = """
The cat sat on the mat. The dog ran in the park, and the children laughed.
A quick brown fox jumps over the lazy dog. She reads books every evening.
Researchers study how neural networks represent language and grammar.
Interpretation of individual neurons is a fascinating problem in linguistics.
We visited Paris in April; the weather was unbelievably wonderful!
Transformers compute contextual representations of every token in a sentence.
The students wrote their examinations carefully, and the teachers graded them.
Did you see the bird? It flew over the river near the old bridge.
My grandmother baked delicious cakes for the celebration yesterday.
Understanding morphology requires knowledge about prefixes and suffixes.
"""

LONG_SENTENCE = (
    "During the extraordinarily long celebration , the enthusiastic researchers and their "
    "wonderful students discussed interpretation , morphology , grammar , linguistics and "
    "representations of individual neurons while the children laughed , the dogs ran in the "
    "park , the grandmother baked delicious cakes , and the teachers carefully graded "
    "examinations near the old bridge over the river until the unbelievably quiet evening ."
).split()

SENTENCES = [
    "The cat sat on the mat .".split(),
    "Researchers study neural networks .".split(),
    "Interpretation of individual neurons is fascinating !".split(),
    LONG_SENTENCE,
    "Did you see the bird ?".split(),
    ["Hello"],
    "The students wrote examinations , and the teachers graded them .".split(),
    "We visited Paris in April ; the weather was wonderful .".split(),
    "Transformers compute contextual representations .".split(),
    "My grandmother baked delicious cakes yesterday .".split(),
]

_PUNCT = set(".,;!?")
_DET = {"the", "a", "their", "my"}
_PRON = {"you", "we", "it", "she", "them"}
_ADP = {"on", "of", "in", "over", "near", "during", "until"}
_VERB = {"sat", "study", "is", "see", "wrote", "graded", "visited", "was", "compute", "baked",
         "discussed", "laughed", "ran", "did"}


def _upos(word: str) -> str:
    low = word.lower()
    if word in _PUNCT:
        return "PUNCT"
    if low in _DET:
        return "DET"
    if low in _PRON:
        return "PRON"
    if low in _ADP:
        return "ADP"
    if low in {"and", "while"}:
        return "CCONJ"
    if low in _VERB:
        return "VERB"
    if low.endswith("ly"):
        return "ADV"
    return "NOUN"


def _training_lines() -> list[str]:
    lines = [line for line in TRAINING_TEXT.strip().splitlines() if line.strip()]
    return lines + [" ".join(s) for s in SENTENCES]


@pytest.fixture(scope="session")
def bert_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A WordPiece tokenizer (vocab ~200) with [CLS] ... [SEP] template, max length 64."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    tok.train_from_iterator(_training_lines(), trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=64,
    )


@pytest.fixture(scope="session")
def gpt2_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (vocab ~330: 256 bytes + merges), max length 64."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=330,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_training_lines(), trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=64,
    )


@pytest.fixture(scope="session")
def tiny_bert(bert_tokenizer):
    """A random 2-layer BERT masked LM (hidden 32, 4 heads, FFN 64, 64 positions)."""
    config = transformers.BertConfig(
        vocab_size=len(bert_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.2,  # larger weights: activations far from zero, easier to compare
        pad_token_id=bert_tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config)
    return wrap_model(model, bert_tokenizer, name="tiny-bert")


def _saved(tmp_path_factory, loaded, name: str) -> Path:
    """``loaded`` saved as a Hugging Face model folder, for loading by path."""
    path = tmp_path_factory.mktemp(name)
    loaded.model.save_pretrained(path)
    loaded.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, tiny_bert) -> Path:
    """``tiny_bert`` saved as a Hugging Face model folder, for loading by path."""
    return _saved(tmp_path_factory, tiny_bert, "tiny-bert-model")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, tiny_bert_dir):
    """``neuronscope demo`` on the tiny BERT, once per session (the demo test, the demo
    report in the browser and the README blocks share it): ``(folder, DemoResult, the text
    it printed)``."""
    from rich.console import Console

    from neuronscope.demo import run_demo

    console = Console(record=True, width=160)
    out = tmp_path_factory.mktemp("demo") / "demo"
    result = run_demo(out, model=str(tiny_bert_dir), console=console, progress=False)
    return out, result, console.export_text()


@pytest.fixture(scope="session")
def tiny_gpt2(gpt2_tokenizer):
    """A random 2-layer GPT-2 LM (n_embd 32, 4 heads, 64 positions)."""
    eos = gpt2_tokenizer.eos_token_id
    config = transformers.GPT2Config(
        vocab_size=len(gpt2_tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        initializer_range=0.2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(config)
    return wrap_model(model, gpt2_tokenizer, name="tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, tiny_gpt2) -> Path:
    """``tiny_gpt2`` saved as a Hugging Face model folder, for loading by path."""
    return _saved(tmp_path_factory, tiny_gpt2, "tiny-gpt2-model")


@pytest.fixture(scope="session")
def small_corpus() -> Corpus:
    """Ten sentences, one of them longer than 64 subwords for both tiny tokenizers."""
    labels = {"upos": [[_upos(w) for w in s] for s in SENTENCES]}
    return Corpus(SENTENCES, labels, name="small")


@pytest.fixture(scope="session")
def big_corpus(small_corpus) -> Corpus:
    """Six copies of the small corpus (738 words, 6 windowed sentences): three extraction
    blocks, for resume, fault and distributed tests."""
    return Corpus(small_corpus.sentences * 6, {"upos": small_corpus.labels["upos"] * 6},
                  name="big")


@pytest.fixture(scope="session")
def small_conllu(tmp_path_factory, small_corpus) -> Path:
    """``small_corpus`` written as a CoNLL-U file."""
    path = tmp_path_factory.mktemp("small-corpus") / "small.conllu"
    write_conllu(small_corpus, path)
    return path


@pytest.fixture(scope="session")
def cli_store(tmp_path_factory, tiny_bert_dir, small_conllu) -> Path:
    """The store ``neuronscope extract`` writes for ``small_conllu`` with ``tiny_bert_dir``
    (hidden and mlp; mean aggregation, the default)."""
    out = tmp_path_factory.mktemp("cli-store") / "small.store"
    result = CliRunner().invoke(app, [
        "extract", str(small_conllu), "--out", str(out), "--model", str(tiny_bert_dir),
        "--components", "hidden,mlp", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def long_sentence_index() -> int:
    """Index of the long sentence in ``small_corpus``."""
    return SENTENCES.index(LONG_SENTENCE)


# ------------------------------------------------------------------------ reference computation
MLP_MODULES = {
    "bert": "bert.encoder.layer.{}.output.dense",
    "gpt2": "transformer.h.{}.mlp.c_proj",
}
ATTN_MODULES = {
    "bert": "bert.encoder.layer.{}.attention.output.dense",
    "gpt2": "transformer.h.{}.attn.c_proj",
}


def reference_tokens(loaded, words: list[str]) -> tuple[list[int], list[int | None]]:
    """Token ids of a whole sentence and the word index of each token (None: special).

    Independent of neuronscope's word-by-word tokenization: BERT uses the tokenizer's own
    ``is_split_into_words`` path; byte-level GPT-2 tokenizes ``" ".join(words)`` and maps
    tokens back to words through character offsets (a token ends inside its word; a leading
    space belongs to the word that follows it).
    """
    tok = loaded.tokenizer
    if loaded.config.model_type == "gpt2":
        joined = " ".join(words)
        enc = tok(joined, return_offsets_mapping=True)
        word_ids = [joined.count(" ", 0, end) for _, end in enc["offset_mapping"]]
        return list(enc["input_ids"]), word_ids
    enc = tok(words, is_split_into_words=True)
    return list(enc["input_ids"]), list(enc.word_ids())


def reference_states(loaded, input_ids: list[int]) -> dict[str, list[np.ndarray]]:
    """Per-token activations of one unpadded input: hidden states and mlp/attn projection inputs.

    Uses plain ``register_forward_pre_hook`` (not neuronscope's Trace).
    """
    model = loaded.model
    family = loaded.config.model_type
    n = loaded.num_layers
    captured: dict[str, list] = {"mlp": [None] * n, "attn": [None] * n}
    handles = []
    modules = dict(model.named_modules())
    for comp, pattern in (("mlp", MLP_MODULES[family]), ("attn", ATTN_MODULES[family])):
        for layer in range(n):

            def hook(module, args, comp=comp, layer=layer):
                captured[comp][layer] = args[0].detach()[0].clone()

            name = pattern.format(layer)
            if name not in modules:  # a bare model (no head): names lack the "bert." prefix
                name = name.split(".", 1)[1]
            handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([input_ids]), output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    result = {"hidden": [h[0].numpy() for h in out.hidden_states]}
    result["mlp"] = [t.numpy() for t in captured["mlp"]]
    result["attn"] = [t.numpy() for t in captured["attn"]]
    return result


def aggregate(tokens: np.ndarray, index: list[int], aggregation: str) -> np.ndarray:
    """One word vector from the rows ``index`` of a (T, D) token matrix."""
    rows = tokens[index]
    if aggregation == "first":
        return rows[0]
    if aggregation == "last":
        return rows[-1]
    if aggregation == "mean":
        return rows.mean(axis=0)
    if aggregation == "max":
        return rows.max(axis=0)
    raise ValueError(aggregation)


def reference_words(loaded, words: list[str], aggregation: str) -> dict[str, list[np.ndarray]]:
    """Word vectors ``{component: [per layer (n_words, D)]}`` of one sentence run alone."""
    ids, word_ids = reference_tokens(loaded, words)
    states = reference_states(loaded, ids)
    out: dict[str, list[np.ndarray]] = {}
    for comp, layers in states.items():
        out[comp] = [
            np.stack(
                [aggregate(t, [i for i, w in enumerate(word_ids) if w == j], aggregation)
                 for j in range(len(words))]
            )
            for t in layers
        ]
    return out


class Reference:
    """Namespace handed to tests through the ``ref`` fixture."""

    tokens = staticmethod(reference_tokens)
    states = staticmethod(reference_states)
    aggregate = staticmethod(aggregate)
    words = staticmethod(reference_words)
    mlp_modules = MLP_MODULES
    attn_modules = ATTN_MODULES


@pytest.fixture(scope="session")
def ref() -> type[Reference]:
    """Reference computations that do not go through neuronscope's extraction code."""
    return Reference


@pytest.fixture(scope="session")
def tiny_models(tiny_bert, tiny_gpt2) -> dict:
    """Both tiny models by family name."""
    return {"bert": tiny_bert, "gpt2": tiny_gpt2}


@pytest.fixture(scope="session")
def extracted(tmp_path_factory, tiny_models, small_corpus):
    """``extracted(model, aggregation, components, **kw)``: a cached store of ``small_corpus``.

    Batches of 4 pieces, so sentences of different lengths are padded together.
    """
    cache: dict = {}

    def get(model: str = "bert", aggregation: str = "mean",
            components: tuple[str, ...] = ("hidden", "mlp", "attn"), **kw):
        key = (model, aggregation, tuple(components), tuple(sorted(kw.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"store-{model}-{aggregation}")
            cache[key] = extract(
                small_corpus, out / "store", tiny_models[model], components=components,
                aggregation=aggregation, progress=False, batch_size=4, **kw,
            )
        return cache[key]

    return get


@pytest.fixture
def cli(capsys):
    """Run ``neuronscope ARGS`` behind the error boundary; returns code, stdout, stderr."""
    command = typer.main.get_command(app)

    def invoke(args: Sequence[str]) -> Outcome:
        capsys.readouterr()
        code = run(command, [str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke
