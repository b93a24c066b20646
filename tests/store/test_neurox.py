"""NeuroX HDF5 / JSON exchange: exact export, round trips, alignment errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import CorpusFormatError, FingerprintMismatchError, StoreError
from neuronscope.store import ActivationStore, store_from_arrays
from neuronscope.store.neurox import export_neurox_hdf5, import_neurox, neurox_sentence_key

SENTENCES = [
    ["the", "cat", "sat"],
    ["dogs", "bark"],
    ["the", "cat", "sat"],  # duplicate text on purpose
    ["a"],
    ["birds", "fly", "over", "the", "hill"],
    ["the", "cat", "sat"],
]


def make_store(
    path: Path,
    corpus: Corpus,
    layers: tuple[int, ...] = (0, 1, 2),
    neurons: int = 4,
    dtype: str = "float32",
    seed: int = 0,
    chunk_words: int = 4,
) -> tuple[ActivationStore, np.ndarray]:
    """Write a ``hidden`` store of random values directly; returns it and its rows."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((corpus.n_words, len(layers) * neurons)).astype(dtype)
    store = store_from_arrays(path, corpus, {"hidden": (rows, layers)}, model_name="random",
                              aggregation="first", dtype=dtype, chunk_words=chunk_words)
    return store, rows.astype(np.float32)


def per_sentence(rows: np.ndarray, corpus: Corpus, n_layers: int) -> list[np.ndarray]:
    """Store rows as NeuroX's ``[layers, words, neurons]`` per sentence."""
    offsets = corpus.sentence_offsets()
    out = []
    for i in range(corpus.n_sentences):
        block = rows[offsets[i] : offsets[i + 1]]
        shape = (len(block), n_layers, rows.shape[1] // n_layers)
        out.append(block.reshape(shape).transpose(1, 0, 2))
    return out


def write_neurox_json(path: Path, sentences: list[np.ndarray], words: list[list[str]]) -> None:
    """A JSON-lines file laid out as NeuroX's ``JSONActivationsWriter`` writes it."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (acts, ws) in enumerate(zip(sentences, words, strict=True)):
            features = [
                {
                    "token": w,
                    "layers": [
                        {"index": layer, "values": [round(float(x), 8) for x in acts[layer, j]]}
                        for layer in range(acts.shape[0])
                    ],
                }
                for j, w in enumerate(ws)
            ]
            f.write(json.dumps({"linex_index": i, "features": features}) + "\n")


@pytest.fixture
def corpus() -> Corpus:
    return Corpus(SENTENCES, name="tiny")


@pytest.fixture
def store(tmp_path: Path, corpus: Corpus) -> tuple[ActivationStore, np.ndarray]:
    return make_store(tmp_path / "store", corpus)


# ---------------------------------------------------------------------------- export
def test_export_matches_store_exactly(tmp_path, corpus, store):
    st, rows = store
    # A small block budget forces several blocks of sentences.
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5", block_bytes=4 * 12 * 5)
    expected = per_sentence(rows, corpus, 3)
    with h5py.File(out, "r") as f:
        numbered = sorted(k for k in f.keys() if k.isdigit())
        assert numbered == sorted(str(i) for i in range(len(SENTENCES)))
        for i, want in enumerate(expected):
            got = f[str(i)][()]
            assert got.shape == (3, len(SENTENCES[i]), 4)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
        assert f["sentence_to_index"].shape == (1,)  # one JSON string, as NeuroX writes
        mapping = json.loads(f["sentence_to_index"][0])
        assert sorted(mapping.values(), key=int) == numbered
        assert f.attrs["neuronscope_layers"] == "[0, 1, 2]"
    assert not list(tmp_path.glob(".acts.hdf5.*"))  # temp file renamed away


def test_export_duplicate_texts_follow_neurox(tmp_path, store):
    st, _ = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    with h5py.File(out, "r") as f:
        mapping = json.loads(f["sentence_to_index"][0])
    # NeuroX keeps the first text plain and renames repeats; every sentence stays reachable,
    # and the mapping's order is the sentence order (NeuroX's loader walks it in order).
    assert mapping == {
        "the cat sat": "0",
        "dogs bark": "1",
        "the cat sat (Occurrence 2)": "2",
        "a": "3",
        "birds fly over the hill": "4",
        "the cat sat (Occurrence 3)": "5",
    }
    assert list(mapping.values()) == [str(i) for i in range(len(SENTENCES))]


def test_sentence_key_collision_with_literal_occurrence_text():
    taken = {"x": "0", "x (Occurrence 2)": "1"}
    assert neurox_sentence_key("x", taken) == "x (Occurrence 3)"


def test_export_float16(tmp_path, corpus):
    st, rows = make_store(tmp_path / "s16", corpus, dtype="float16")
    out = export_neurox_hdf5(st, tmp_path / "acts16.hdf5")
    with h5py.File(out, "r") as f:
        assert f["4"].dtype == np.float16
        np.testing.assert_array_equal(f["4"][()], per_sentence(rows, corpus, 3)[4])


def test_export_loads_like_neurox(tmp_path, corpus, store):
    # Mirror of NeuroX's load_activations for hdf5: walk the mapping, swap axes, flatten.
    st, rows = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    with h5py.File(out, "r") as f:
        mapping = json.loads(f.get("sentence_to_index")[0])
        acts = []
        for _, value in mapping.items():
            a = np.asarray(f[value])
            acts.append(np.swapaxes(a, 0, 1).reshape(a.shape[1], a.shape[0] * a.shape[2]))
    np.testing.assert_array_equal(np.concatenate(acts), rows)


# ---------------------------------------------------------------------------- import
def test_hdf5_round_trip(tmp_path, corpus, store):
    st, rows = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    back = import_neurox(out, corpus, tmp_path / "back", model_name="bert-neurox")
    assert back.complete
    assert back.components == ["hidden"]
    assert back.layout.components["hidden"].layers == (0, 1, 2)
    assert back.layout.components["hidden"].neurons == 4
    np.testing.assert_array_equal(back.matrix(), rows)
    assert back.meta["model"]["name"] == "bert-neurox"
    assert back.meta["aggregation"] == "first"  # carried by our export's attributes
    back.check_corpus(corpus)
    assert back.words() == corpus.words()
    # Sentence vectors are the mean of the word vectors.
    lo, hi = corpus.sentence_offsets()[4:6]
    np.testing.assert_allclose(
        back.sentence_vectors("hidden")[4], rows[lo:hi].mean(axis=0), rtol=1e-6
    )
    # Re-exporting the import gives the same file content.
    again = export_neurox_hdf5(back, tmp_path / "again.hdf5")
    with h5py.File(out, "r") as a, h5py.File(again, "r") as b:
        for i in range(len(SENTENCES)):
            np.testing.assert_array_equal(a[str(i)][()], b[str(i)][()])


def test_import_fingerprint_component_and_dtype(tmp_path, corpus, store):
    st, rows = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    # The fingerprint depends on the file name and shapes only, not on import options.
    a = import_neurox(out, corpus, tmp_path / "a", block_bytes=1)
    b = import_neurox(out, corpus, tmp_path / "b", component="resid", dtype="float16")
    assert a.model_fingerprint == b.model_fingerprint
    assert b.components == ["resid"]
    np.testing.assert_array_equal(b.matrix(), rows.astype(np.float16).astype(np.float32))
    renamed = tmp_path / "other.hdf5"
    renamed.write_bytes(out.read_bytes())
    c = import_neurox(renamed, corpus, tmp_path / "c")
    assert c.model_fingerprint != a.model_fingerprint


def test_import_many_blocks(tmp_path):
    # > 256 words so that the import writes several blocks and commits between them.
    rng = np.random.default_rng(1)
    sentences = [[f"w{j}" for j in range(rng.integers(1, 40))] for _ in range(60)]
    corpus = Corpus(sentences, name="big")
    st, rows = make_store(tmp_path / "s", corpus, layers=(0, 1), neurons=3, chunk_words=64)
    out = export_neurox_hdf5(st, tmp_path / "big.hdf5", block_bytes=500)
    back = import_neurox(out, corpus, tmp_path / "back", block_bytes=1)
    np.testing.assert_array_equal(back.matrix(), rows)


def test_json_import(tmp_path, corpus):
    rng = np.random.default_rng(3)
    acts = [rng.standard_normal((2, len(s), 5)).astype(np.float32) for s in SENTENCES]
    # NeuroX's tokens are detokenized subwords, not the corpus words: only counts matter.
    tokens = [[w.upper() + "##" for w in s] for s in SENTENCES]
    path = tmp_path / "acts.json"
    write_neurox_json(path, acts, tokens)
    st = import_neurox(path, corpus, tmp_path / "fromjson", layers=[1, 2])
    assert st.layout.components["hidden"].layers == (1, 2)
    assert st.layout.components["hidden"].neurons == 5
    assert st.meta["components"]["hidden"]["source"] == "neurox-json"
    want = np.concatenate([a.transpose(1, 0, 2).reshape(a.shape[1], -1) for a in acts])
    # JSON keeps 8 decimals.
    np.testing.assert_allclose(st.matrix(), want, atol=1e-7)
    np.testing.assert_allclose(st.layer("hidden", 2), np.concatenate(
        [a[1] for a in acts]), atol=1e-7)


def test_json_defaults_layers_and_rejects_bad_lines(tmp_path, corpus):
    acts = [np.ones((2, len(s), 3), np.float32) for s in SENTENCES]
    path = tmp_path / "acts.json"
    write_neurox_json(path, acts, SENTENCES)
    st = import_neurox(path, corpus, tmp_path / "ok")
    assert st.layout.components["hidden"].layers == (0, 1)

    lines = path.read_text().splitlines()
    bad = tmp_path / "bad.json"
    bad.write_text("\n".join(lines[:2] + ["{not json"] + lines[3:]) + "\n")
    with pytest.raises(CorpusFormatError, match=r"bad\.json:3: bad JSON"):
        import_neurox(bad, corpus, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()

    swapped = tmp_path / "swapped.json"
    swapped.write_text("\n".join([lines[1], lines[0]] + lines[2:]) + "\n")
    with pytest.raises(CorpusFormatError, match="out of order"):
        import_neurox(swapped, corpus, tmp_path / "swapped")


# ---------------------------------------------------------------------------- alignment
def test_word_count_mismatch_names_sentence(tmp_path, corpus, store):
    st, _ = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    other = [list(s) for s in SENTENCES]
    other[4] = other[4][:-1]
    with pytest.raises(FingerprintMismatchError) as err:
        import_neurox(out, Corpus(other, name="other"), tmp_path / "x")
    msg = str(err.value)
    assert "acts.hdf5" in msg and "sentence 4" in msg and "5 words" in msg and "4 in" in msg
    assert not (tmp_path / "x").exists()  # nothing written

    acts = [np.zeros((1, len(s), 2), np.float32) for s in SENTENCES]
    path = tmp_path / "acts.json"
    write_neurox_json(path, acts, SENTENCES)
    with pytest.raises(FingerprintMismatchError, match=r"acts\.json: sentence 4 has 5 words"):
        import_neurox(path, Corpus(other, name="other"), tmp_path / "y")
    assert not (tmp_path / "y").exists()
    assert not list(tmp_path.glob(".y.import-*"))  # temporary store removed


def test_sentence_count_mismatch(tmp_path, corpus, store):
    st, _ = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    with pytest.raises(FingerprintMismatchError, match="6 sentences.*has 5"):
        import_neurox(out, Corpus(SENTENCES[:5]), tmp_path / "x")
    acts = [np.zeros((1, len(s), 2), np.float32) for s in SENTENCES]
    path = tmp_path / "acts.json"
    write_neurox_json(path, acts[:5], SENTENCES[:5])
    with pytest.raises(FingerprintMismatchError, match="5 sentences.*has 6"):
        import_neurox(path, corpus, tmp_path / "y")
    with pytest.raises(FingerprintMismatchError, match="more sentences"):
        import_neurox(path, Corpus(SENTENCES[:4]), tmp_path / "z")


def test_existing_output_refused_without_overwrite(tmp_path, corpus, store):
    st, rows = store
    out = export_neurox_hdf5(st, tmp_path / "acts.hdf5")
    target = tmp_path / "imported"
    import_neurox(out, corpus, target)
    with pytest.raises(StoreError, match="already exists"):
        import_neurox(out, corpus, target)
    # Overwrite replaces it, and a failed overwrite leaves the old store intact.
    with pytest.raises(FingerprintMismatchError):
        import_neurox(out, Corpus(SENTENCES[:5]), target, overwrite=True)
    np.testing.assert_array_equal(ActivationStore(target).matrix(), rows)
    again = import_neurox(out, corpus, target, overwrite=True, model_name="second")
    assert again.meta["model"]["name"] == "second"
    # A folder that is not a store is never deleted.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(StoreError, match="not a neuronscope store"):
        import_neurox(out, corpus, foreign, overwrite=True)
    assert (foreign / "keep.txt").exists()


def test_export_overwrites_atomically(tmp_path, store):
    st, _ = store
    target = tmp_path / "acts.hdf5"
    target.write_text("old")
    export_neurox_hdf5(st, target)
    assert h5py.is_hdf5(target)


def test_not_a_neurox_file(tmp_path, corpus):
    with pytest.raises(StoreError, match="does not exist"):
        import_neurox(tmp_path / "missing.hdf5", corpus, tmp_path / "x")
    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("other", data=np.zeros(3))
    with pytest.raises(CorpusFormatError, match="no sentence datasets"):
        import_neurox(path, corpus, tmp_path / "x")


# ---------------------------------------------------------------------------- integration
def _tiny_bert(words: list[str]):
    """A random 2-layer BERT and a WordPiece tokenizer that knows every word whole."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    tok.train_from_iterator([" ".join(words)] * 5, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        pad_token="[PAD]", mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    return transformers.BertModel(config).eval(), fast


def test_export_of_extracted_store_equals_hidden_states(tmp_path):
    torch = pytest.importorskip("torch")
    sentences = [["the", "cat", "sat"], ["dogs", "bark", "at", "the", "cat"], ["birds", "fly"]]
    model, tokenizer = _tiny_bert([w for s in sentences for w in s])
    from neuronscope.extraction import extract
    from neuronscope.models import wrap_model

    corpus = Corpus(sentences, name="bert-tiny")
    st = extract(corpus, tmp_path / "store", wrap_model(model, tokenizer), aggregation="first",
                 progress=False, batch_size=2)
    out = export_neurox_hdf5(st, tmp_path / "bert.hdf5")
    with h5py.File(out, "r") as f, torch.no_grad():
        for i, words in enumerate(sentences):
            ids = tokenizer(words, is_split_into_words=True, return_tensors="pt")
            # Every word is one token: tokens 1..n (after [CLS]) are the words.
            assert ids["input_ids"].shape[1] == len(words) + 2
            hidden = model(**ids, output_hidden_states=True).hidden_states
            want = torch.stack([h[0, 1 : 1 + len(words)] for h in hidden]).numpy()
            got = f[str(i)][()]
            assert got.shape == (3, len(words), 32)  # embeddings + 2 blocks, like NeuroX
            # Batched with padding vs alone: same values up to float rounding.
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    back = import_neurox(out, corpus, tmp_path / "back", model_name="tiny-bert")
    np.testing.assert_array_equal(back.matrix(), st.matrix())
    assert back.meta["model"]["num_layers"] == 2
