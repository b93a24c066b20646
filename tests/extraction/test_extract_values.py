"""Extracted values equal the models' own activations, computed independently per sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuronscope.corpus.corpus import Corpus
from neuronscope.extraction import WordTokenizer, extract

FAMILIES = ["bert", "gpt2"]
AGGS = ["first", "last", "mean", "max"]
TOL = 1e-5


def _rows(corpus: Corpus, sentence: int) -> slice:
    offsets = corpus.sentence_offsets()
    return slice(int(offsets[sentence]), int(offsets[sentence + 1]))


def _short_sentences(corpus: Corpus, long_index: int) -> list[int]:
    return [i for i in range(corpus.n_sentences) if i != long_index]


@pytest.mark.parametrize("aggregation", AGGS)
@pytest.mark.parametrize("family", FAMILIES)
def test_values_equal_unpadded_reference(family, aggregation, extracted, tiny_models,
                                         small_corpus, long_sentence_index, ref):
    """hidden == hidden_states, mlp/attn == inputs of the down/output projections (per word)."""
    loaded = tiny_models[family]
    store = extracted(family, aggregation)
    assert store.meta["aggregation"] == aggregation
    n = loaded.num_layers
    assert store.layout.components["hidden"].layers == tuple(range(n + 1))
    assert store.layout.components["mlp"].layers == tuple(range(n))
    for s in _short_sentences(small_corpus, long_sentence_index):
        words = small_corpus.sentences[s]
        want = ref.words(loaded, words, aggregation)
        rows = _rows(small_corpus, s)
        for comp in ("hidden", "mlp", "attn"):
            for layer, expected in zip(store.layout.components[comp].layers, want[comp],
                                       strict=True):
                got = store.layer(comp, layer, rows)
                assert got.shape == expected.shape
                err = float(np.abs(got - expected).max())
                assert err <= TOL, f"{family} {aggregation} {comp} L{layer} sentence {s}: {err}"


@pytest.mark.parametrize("family", FAMILIES)
def test_aggregations_differ_as_expected(family, extracted, tiny_models, small_corpus):
    """first/last/mean/max really differ on multi-subword words and agree on one-subword words."""
    loaded = tiny_models[family]
    wt = WordTokenizer(loaded.tokenizer, 10_000, causal=loaded.is_causal)
    encoded, _ = wt.encode_words(small_corpus.sentences)
    n_sub = np.array([len(w) for s in encoded for w in s])
    multi, single = n_sub > 1, n_sub == 1
    assert multi.sum() > 10 and single.sum() > 10
    vals = {a: extracted(family, a).component("hidden") for a in AGGS}
    for a in AGGS[1:]:
        np.testing.assert_allclose(vals[a][single], vals["first"][single], atol=1e-6)
    assert np.abs(vals["first"][multi] - vals["last"][multi]).max() > 1e-2
    assert np.all(vals["max"] >= vals["mean"] - 1e-6)
    assert np.all(vals["max"] >= vals["first"] - 1e-6)
    assert np.all(vals["max"] >= vals["last"] - 1e-6)
    assert np.abs(vals["max"][multi] - vals["mean"][multi]).max() > 1e-2


@pytest.mark.parametrize("family", FAMILIES)
def test_projection_inputs_match_plain_hooks_on_named_modules(family, extracted, tiny_models,
                                                               small_corpus, ref):
    """The mlp/attn components hook exactly the documented modules, layer by layer."""
    loaded = tiny_models[family]
    store = extracted(family, "first")
    meta = store.meta["components"]
    n = loaded.num_layers
    assert meta["mlp"]["modules"] == {str(i): ref.mlp_modules[family].format(i) for i in range(n)}
    assert meta["attn"]["modules"] == {str(i): ref.attn_modules[family].format(i)
                                       for i in range(n)}
    assert meta["mlp"]["source"] == meta["attn"]["source"] == "input"
    assert meta["hidden"]["source"] == "hidden_states"
    width = {"bert": 64, "gpt2": 128}[family]  # BERT intermediate 64; GPT-2 uses 4 * n_embd
    assert store.info()["components"]["mlp"] == {"layers": [0, 1], "neurons": width}
    assert store.info()["components"]["attn"] == {"layers": [0, 1], "neurons": 32, "head_dim": 8}
    assert store.info()["components"]["hidden"] == {"layers": [0, 1, 2], "neurons": 32}


def _manual_heads(loaded, input_ids: list[int]) -> np.ndarray:
    """Per-head attention outputs of block 0, computed from the weights: (T, heads, head_dim)."""
    model = loaded.model
    x = torch.tensor([input_ids])
    with torch.no_grad():
        if loaded.config.model_type == "bert":
            h = model.bert.embeddings(input_ids=x)[0]
            att = model.bert.encoder.layer[0].attention.self
            q, k, v = att.query(h), att.key(h), att.value(h)
            mask = torch.zeros(len(input_ids), len(input_ids))
        else:
            block = model.transformer.h[0]
            pos = torch.arange(len(input_ids))
            h = model.transformer.wte(x)[0] + model.transformer.wpe(pos)
            q, k, v = block.attn.c_attn(block.ln_1(h)).split(32, dim=-1)
            mask = torch.full((len(input_ids), len(input_ids)), -math.inf).triu(1)
        q, k, v = (t.reshape(len(input_ids), 4, 8).transpose(0, 1) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8) + mask, dim=-1)
        return (weights @ v).transpose(0, 1).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_neuron_names_map_to_heads(family, extracted, tiny_models, small_corpus, ref):
    """``L0.attn.h{head}.{dim}`` is dimension ``dim`` of head ``head``, computed by hand."""
    loaded = tiny_models[family]
    store = extracted(family, "last")
    s = 2
    words = small_corpus.sentences[s]
    ids, owners = ref.tokens(loaded, words)
    heads = _manual_heads(loaded, ids)
    last = [max(i for i, w in enumerate(owners) if w == j) for j in range(len(words))]
    rows = _rows(small_corpus, s)
    names = [f"L0.attn.h{h}.{d}" for h in (3, 0, 2) for d in (7, 0, 5)]
    got = store.neurons(names, rows)
    for col, name in enumerate(names):
        h, d = int(name.split(".")[2][1:]), int(name.split(".")[3])
        np.testing.assert_allclose(got[:, col], heads[last, h, d], atol=1e-5)
        assert store.layout.id(name) == store.layout.offset("attn") + 8 * h + d
    # The flat spelling addresses the same neuron.
    np.testing.assert_array_equal(store.neurons(["L0.attn.29"], rows)[:, 0],
                                  store.neurons(["L0.attn.h3.5"], rows)[:, 0])


@pytest.mark.parametrize("family", FAMILIES)
def test_long_sentence_is_windowed_and_matches_its_windows(family, extracted, tiny_models,
                                                           small_corpus, long_sentence_index, ref):
    loaded = tiny_models[family]
    store = extracted(family, "mean")
    info = store.info()
    assert info["n_words"] == small_corpus.n_words == store.n_words
    assert info["windows"]["sentences_windowed"] >= 1
    assert long_sentence_index in info["windows"]["windowed_sentence_ids_first_1000"]
    assert info["windows"]["words_truncated"] == 0
    matrix = store.matrix()
    assert matrix.shape == (small_corpus.n_words, store.n_neurons)
    assert np.isfinite(matrix).all()
    assert np.isfinite(store.sentence_vectors("hidden")).all()

    # Recompute every word of the long sentence from a forward pass of the window it came from.
    wt = WordTokenizer(loaded.tokenizer, 64, causal=loaded.is_causal)
    (word_ids,), _ = wt.encode_words([small_corpus.sentences[long_sentence_index]])
    pieces, _ = wt.pieces(long_sentence_index, word_ids)
    assert len(pieces) > 1
    rows = _rows(small_corpus, long_sentence_index)
    got = {c: [store.layer(c, layer, rows) for layer in store.layout.components[c].layers]
           for c in ("hidden", "mlp", "attn")}
    full_ids, owners = ref.tokens(loaded, small_corpus.sentences[long_sentence_index])
    seen = set()
    for piece in pieces:
        states = ref.states(loaded, piece.input_ids)
        for word, start, stop in piece.spans:
            # The window holds the same subwords the whole-sentence tokenization gives the word.
            own = [t for t, w in zip(full_ids, owners, strict=True) if w == word]
            assert piece.input_ids[start:stop] == own
            seen.add(word)
            for comp, layers in states.items():
                for k, tokens in enumerate(layers):
                    expected = tokens[start:stop].mean(axis=0)
                    assert np.abs(got[comp][k][word] - expected).max() <= TOL
    assert seen == set(range(len(small_corpus.sentences[long_sentence_index])))


@pytest.mark.parametrize("family", FAMILIES)
def test_short_sentences_unaffected_by_long_one(family, extracted, tiny_models, small_corpus,
                                                long_sentence_index, tmp_path):
    """Dropping the long sentence (different batches and padding) leaves the others unchanged."""
    keep = _short_sentences(small_corpus, long_sentence_index)
    subset = small_corpus.subset(keep)
    alone = extract(subset, tmp_path / "s", tiny_models[family], components=("hidden", "mlp"),
                    progress=False, batch_size=3)
    assert alone.info()["windows"]["sentences_windowed"] == 0
    full = extracted(family, "mean")
    rows = np.concatenate([np.arange(_rows(small_corpus, s).start, _rows(small_corpus, s).stop)
                           for s in keep])
    for comp in ("hidden", "mlp"):
        np.testing.assert_allclose(alone.component(comp), full.component(comp)[rows], atol=TOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_size_does_not_change_values(family, tiny_models, small_corpus, tmp_path):
    one = extract(small_corpus, tmp_path / "b1", tiny_models[family], progress=False,
                  batch_size=1)
    many = extract(small_corpus, tmp_path / "b64", tiny_models[family], progress=False,
                   batch_size=64)
    np.testing.assert_allclose(one.matrix(), many.matrix(), atol=TOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_token_sentence_pooling(family, tiny_models, small_corpus, long_sentence_index, ref,
                                tmp_path):
    """first-token == first input token of the sentence; last-token == its last content token."""
    loaded = tiny_models[family]
    first = extract(small_corpus, tmp_path / "f", loaded, progress=False, batch_size=4,
                    sentence_pooling="first-token").sentence_vectors("hidden")
    last = extract(small_corpus, tmp_path / "l", loaded, progress=False, batch_size=4,
                   sentence_pooling="last-token").sentence_vectors("hidden")
    assert first.shape == last.shape == (small_corpus.n_sentences, 3 * 32)
    wt = WordTokenizer(loaded.tokenizer, 64, causal=loaded.is_causal)
    for s, words in enumerate(small_corpus.sentences):
        (word_ids,), _ = wt.encode_words([words])
        pieces, _ = wt.pieces(s, word_ids)
        head = ref.states(loaded, pieces[0].input_ids)["hidden"]
        tail = ref.states(loaded, pieces[-1].input_ids)["hidden"]
        stop = pieces[-1].content_stop
        np.testing.assert_allclose(first[s], np.concatenate([h[0] for h in head]), atol=TOL)
        np.testing.assert_allclose(last[s], np.concatenate([h[stop - 1] for h in tail]),
                                   atol=TOL)
        if s != long_sentence_index:
            ids, _ = ref.tokens(loaded, words)
            assert pieces[0].input_ids == ids


def test_mean_sentence_pooling_equals_mean_of_word_rows(extracted, small_corpus):
    store = extracted("bert", "max")
    words = store.component("mlp")
    sent = store.sentence_vectors("mlp")
    assert sent.shape == (small_corpus.n_sentences, 2 * 64)
    for s in range(small_corpus.n_sentences):
        np.testing.assert_allclose(sent[s], words[_rows(small_corpus, s)].mean(axis=0),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_sentences_are_kept_without_rows(family, tiny_models, tmp_path):
    """A sentence with no words gets no row and a NaN sentence vector; others are unaffected."""
    corpus = Corpus([["the", "cat"], [], ["sat", "down"], []], name="gaps")
    for pooling in ("mean", "first-token", "last-token"):
        store = extract(corpus, tmp_path / pooling, tiny_models[family], progress=False,
                        sentence_pooling=pooling)
        assert store.n_words == 4
        assert store.sentence_ids().tolist() == [0, 0, 2, 2]
        vecs = store.sentence_vectors("hidden")
        assert np.isnan(vecs[[1, 3]]).all()
        assert np.isfinite(vecs[[0, 2]]).all()
        assert np.isfinite(store.matrix()).all()
    ref_store = extract(Corpus([["the", "cat"], ["sat", "down"]]), tmp_path / "ref",
                        tiny_models[family], progress=False)
    np.testing.assert_allclose(store.matrix(), ref_store.matrix(), atol=TOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_custom_module_outputs(family, tiny_models, small_corpus, tmp_path):
    """Outputs of named modules: block outputs equal hidden_states[1:]."""
    loaded = tiny_models[family]
    if family == "bert":
        names = ["bert.encoder.layer.0.output", "bert.encoder.layer.1.output"]
    else:
        names = ["transformer.h.0", "transformer.h.1"]
    # "first": one token per word, so LayerNorm can be applied to stored rows below.
    store = extract(small_corpus, tmp_path / "c", loaded, components=("hidden",),
                    modules={"blocks": names}, aggregation="first", progress=False, batch_size=4)
    info = store.info()["components"]
    assert info["blocks"] == {"layers": [0, 1], "neurons": 32}
    assert store.meta["components"]["blocks"]["source"] == "output"
    np.testing.assert_allclose(store.layer("blocks", 0), store.layer("hidden", 1), atol=TOL)
    if family == "bert":
        np.testing.assert_allclose(store.layer("blocks", 1), store.layer("hidden", 2), atol=TOL)
    else:
        # GPT-2's last hidden state is after the final LayerNorm, the block output before it.
        ln_f = loaded.model.transformer.ln_f
        with torch.no_grad():
            normed = ln_f(torch.from_numpy(store.layer("blocks", 1))).numpy()
        np.testing.assert_allclose(normed, store.layer("hidden", 2), atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_custom_module_on_the_lm_head(family, tiny_models, small_corpus, ref, tmp_path):
    """A module outside the base model (the LM head) is captured too: the whole model runs."""
    loaded = tiny_models[family]
    name = "cls.predictions.transform" if family == "bert" else "lm_head"
    store = extract(small_corpus, tmp_path / "h", loaded, components=(),
                    modules={"head": [name]}, aggregation="first", progress=False)
    width = 32 if family == "bert" else len(loaded.tokenizer)
    assert store.info()["components"] == {"head": {"layers": [0], "neurons": width}}
    words = small_corpus.sentences[0]
    ids, owners = ref.tokens(loaded, words)
    modules = dict(loaded.model.named_modules())
    seen = {}
    handle = modules[name].register_forward_hook(lambda m, a, out: seen.update(out=out))
    try:
        with torch.no_grad():
            loaded.model(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    firsts = [owners.index(j) for j in range(len(words))]
    np.testing.assert_allclose(store.layer("head", 0, _rows(small_corpus, 0)),
                               seen["out"][0, firsts].numpy(), atol=1e-4)


def test_layer_filter(tiny_bert, small_corpus, extracted, tmp_path):
    store = extract(small_corpus, tmp_path / "f", tiny_bert, components=("hidden", "mlp"),
                    layers="1-2", progress=False, batch_size=4)
    comps = store.info()["components"]
    assert comps == {"hidden": {"layers": [1, 2], "neurons": 32},
                     "mlp": {"layers": [1], "neurons": 64}}
    full = extracted("bert", "mean")
    np.testing.assert_allclose(store.layer("hidden", 2), full.layer("hidden", 2), atol=TOL)
    np.testing.assert_allclose(store.layer("mlp", 1), full.layer("mlp", 1), atol=TOL)
    only2 = extract(small_corpus, tmp_path / "g", tiny_bert, components=("hidden", "mlp"),
                    layers=[2], progress=False)
    assert only2.components == ["hidden"]  # mlp has no layer 2 and is dropped


def test_progress_bar_run(tiny_bert, small_corpus, extracted, tmp_path, capsys):
    store = extract(small_corpus, tmp_path / "p", tiny_bert, progress=True, batch_size=4,
                    components=("hidden", "mlp", "attn"))
    assert store.complete
    np.testing.assert_array_equal(store.matrix(), extracted("bert", "mean").matrix())
