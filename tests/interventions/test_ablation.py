"""Model-level ablation: token scoring, top/random/bottom effects, ablation-based rankings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.interventions import (
    ClassFlipRanking,
    ErasureRanking,
    LMScorer,
    ablation_effect,
    intervene,
)
from neuronscope.interventions.ablation_ranking import candidate_names
from neuronscope.interventions.sites import model_sites
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.models import wrap_model

from .conftest import PLANTED

CANDIDATES = [f"L1.mlp.{i}" for i in range(0, 24)] + ["L0.mlp.5", "L0.mlp.17"]


def _ranking(loaded, scores: dict[str, float], concept: str = "DET", fingerprint=None):
    """A one-concept ranking over the given neurons (ids from the model's own layout)."""
    layout = model_sites(loaded).layout()
    names = list(scores)
    return ranking_from_scores("manual", {}, np.array([list(scores.values())]), [concept],
                               layout.ids(names), names, store_fingerprint=fingerprint)


# ----------------------------------------------------------------------------- scoring
def test_causal_scores_are_next_token_losses(tiny_gpt2, small_corpus):
    scorer = LMScorer(tiny_gpt2, small_corpus, batch_size=3)
    base = scorer.baseline
    words = small_corpus.sentences[0]
    tok = tiny_gpt2.tokenizer
    # The sentence's text after BOS, as plain Hugging Face scoring sees it.
    ids = [tok.bos_token_id, *tok(scorer.texts[0], add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logp = torch.log_softmax(tiny_gpt2.model(input_ids=torch.tensor([ids])).logits[0], -1)
    want = [(-logp[t - 1, ids[t]]).item() for t in range(1, len(ids))]
    mine = base.word < len(words)  # sentence 0 comes first in the flat word order
    assert np.allclose(np.sort(base.nll[mine]), np.sort(want), atol=1e-5)
    assert sorted(base.target[mine].tolist()) == sorted(ids[1:])
    # Every word of every sentence is scored, its first token included (BOS precedes it).
    assert set(base.word.tolist()) == set(range(small_corpus.n_words))


def test_masked_scores_mask_a_seeded_fraction(tiny_bert, small_corpus):
    scorer = LMScorer(tiny_bert, small_corpus, mask_fraction=0.15, seed=3)
    again = LMScorer(tiny_bert, small_corpus, mask_fraction=0.15, seed=3)
    assert np.array_equal(scorer.word, again.word)
    masked_words = set(scorer.word.tolist())
    assert 0.05 < len(masked_words) / small_corpus.n_words < 0.3
    mask_id = tiny_bert.tokenizer.mask_token_id
    for batch in scorer._batches:  # every scored token is masked in the input
        assert torch.all(batch.inputs["input_ids"].reshape(-1)[batch.rows] == mask_id)
    assert not np.array_equal(scorer.word, LMScorer(tiny_bert, small_corpus, seed=4).word)


# ----------------------------------------------------------------------------- ablation_effect
def test_ablating_the_planted_neuron_hurts_its_concept(planted_det, small_corpus):
    scores = {PLANTED: 1.0, **{n: 0.5 - i / 100 for i, n in enumerate(CANDIDATES[6:20])}}
    ranking = _ranking(planted_det, scores)
    result = ablation_effect(planted_det, small_corpus, ranking, "DET", k=1, label_layer="upos",
                             repeats=4, seed=1)
    table = result.table.set_index("condition")
    assert list(table.index) == ["none", "top", "random", "bottom"]
    assert table.loc["none", "delta_concept"] == 0
    assert table.loc["top", "delta_concept"] > 2.0  # DET words lose their boost
    assert table.loc["top", "delta_other"] < 0  # other words were pushed down by it
    assert table.loc["top", "selectivity"] > 10 * abs(table.loc["random", "selectivity"])
    assert abs(table.loc["bottom", "delta_concept"]) < 0.1
    assert len(result.neurons["random"]) == 4 and result.neurons["top"] == [[PLANTED]]
    assert table.loc["random", "delta_concept_std"] >= 0
    # The top row is the loss of DET tokens under a manual ablation of the planted neuron.
    scorer = LMScorer(planted_det, small_corpus)
    det = small_corpus.labels_array("upos")[scorer.word] == "DET"
    with intervene(planted_det, [PLANTED]):
        manual = scorer.run().nll[det].mean()
    assert table.loc["top", "loss_concept"] == pytest.approx(manual)
    assert int(table.loc["top", "tokens_concept"]) == int(det.sum())


def test_masked_lm_ablation_with_mean_values(tiny_bert, small_corpus, extracted):
    store = extracted("bert", "mean", ("hidden", "mlp"))
    ranking = _ranking(tiny_bert, {f"L1.mlp.{i}": 1 - i / 64 for i in range(64)}, "NOUN",
                       store.fingerprint)
    result = ablation_effect(tiny_bert, small_corpus, ranking, "NOUN", k=8, label_layer="upos",
                             op="mean", store=store, repeats=2, mask_fraction=0.3)
    assert result.task == "masked-lm"
    table = result.table.set_index("condition")
    assert np.isfinite(table.loc["top", ["loss_concept", "loss_other"]].astype(float)).all()
    assert table.loc["top", "delta_concept"] != 0
    assert 0 <= table.loc["none", "acc_concept"] <= 1
    assert "MLM" not in str(result) and "masked-lm" in str(result)


def test_classifier_ablation_reports_accuracy_and_flips(bert_tokenizer, small_corpus):
    config = transformers.BertConfig(
        vocab_size=len(bert_tokenizer), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
        initializer_range=0.5, num_labels=2, id2label={0: "statement", 1: "question"},
        label2id={"statement": 0, "question": 1}, pad_token_id=bert_tokenizer.pad_token_id,
    )
    torch.manual_seed(3)
    clf = wrap_model(transformers.BertForSequenceClassification(config), bert_tokenizer, "clf")
    kinds = ["question" if s[-1] == "?" else "statement" for s in small_corpus.sentences]
    corpus = small_corpus.with_sentence_layer("type", kinds)
    names = [f"L1.mlp.{i}" for i in range(64)]
    ranking = _ranking(clf, {n: 1 - i / 100 for i, n in enumerate(names)}, "NOUN")
    result = ablation_effect(clf, corpus, ranking, "NOUN", k=40, class_layer="type",
                             conditions=("top", "random"), repeats=2)
    table = result.table
    assert set(table["class"]) == {"statement", "question", "all"}

    def predict(neurons=None):
        preds = []
        for words in corpus.sentences:
            enc = bert_tokenizer(" ".join(words), return_tensors="pt", truncation=True,
                                 max_length=64)
            with torch.no_grad():
                if neurons:
                    with intervene(clf, neurons):
                        preds.append(int(clf.model(**enc).logits.argmax()))
                else:
                    preds.append(int(clf.model(**enc).logits.argmax()))
        return np.array(preds)

    gold = np.array([config.label2id[k] for k in kinds])
    base, top = predict(), predict(ranking.top(40, "NOUN"))
    row = table[(table.condition == "none") & (table["class"] == "all")].iloc[0]
    assert row.accuracy == pytest.approx((base == gold).mean()) and row.flip_rate == 0
    row = table[(table.condition == "top") & (table["class"] == "all")].iloc[0]
    assert row.flip_rate == pytest.approx((top != base).mean())
    assert row.delta_accuracy == pytest.approx((top == gold).mean() - (base == gold).mean())
    with pytest.raises(NeuronscopeError, match="not classes of the model"):
        ablation_effect(clf, corpus.with_sentence_layer("type", ["x"] * corpus.n_sentences),
                        ranking, "NOUN", k=2, class_layer="type")


def test_ablation_errors(tiny_gpt2, small_corpus, extracted):
    ranking = _ranking(tiny_gpt2, {"L0.mlp.1": 1.0, "L0.mlp.2": 0.5})
    with pytest.raises(NeuronscopeError, match="k must be in 1-2"):
        ablation_effect(tiny_gpt2, small_corpus, ranking, "DET", k=3, label_layer="upos")
    with pytest.raises(NeuronscopeError, match="no label layer 'xpos'"):
        ablation_effect(tiny_gpt2, small_corpus, ranking, "DET", k=1, label_layer="xpos")
    with pytest.raises(NeuronscopeError, match="does not occur"):
        ablation_effect(tiny_gpt2, small_corpus, _ranking(tiny_gpt2, {"L0.mlp.1": 1.0}, "XYZ"),
                        "XYZ", k=1, label_layer="upos")
    with pytest.raises(NeuronscopeError, match="needs the activation store"):
        ablation_effect(tiny_gpt2, small_corpus, ranking, "DET", k=1, label_layer="upos",
                        op="mean")
    foreign = _ranking(tiny_gpt2, {"L0.mlp.1": 1.0}, fingerprint="feedfacefeedface-c-mean")
    with pytest.raises(FingerprintMismatchError, match="another model"):
        ablation_effect(tiny_gpt2, small_corpus, foreign, "DET", k=1, label_layer="upos")
    with pytest.raises(NeuronscopeError, match="no language-model"):
        ablation_effect(wrap_model(tiny_gpt2.model.transformer, tiny_gpt2.tokenizer),
                        small_corpus, ranking, "DET", k=1, label_layer="upos")


# ----------------------------------------------------------------------------- rankings
def test_erasure_ranking_finds_the_planted_neuron(planted_all, small_corpus):
    method = ErasureRanking(candidates=CANDIDATES, batch_size=8)
    ranking = method.rank(planted_all, small_corpus, small_corpus.concept_labels("upos"))
    assert ranking.top(1) == [PLANTED]
    scores = ranking.scores()
    assert scores[PLANTED] > 0.3 and max(v for n, v in scores.items() if n != PLANTED) < 0.05
    assert ranking.top(1, "NOUN") == [PLANTED]
    assert ranking.store_fingerprint.startswith(planted_all.fingerprint + "-")
    assert ranking.extra["model"] == "planted-all-3" and ranking.method == "erasure"
    assert ranking.params == method.get_params()
    # Unsupervised: no labels needed; the round trip through JSON keeps the order.
    plain = ErasureRanking(candidates=CANDIDATES).rank(planted_all, small_corpus)
    assert plain.top(3) == ranking.top(3) and plain.concept_names == []
    assert Ranking.from_json(plain.to_json()).top(3) == plain.top(3)


def test_class_flip_ranking_is_concept_specific(planted_det, small_corpus):
    labels = small_corpus.concept_labels("upos")
    ranking = ClassFlipRanking(candidates=CANDIDATES,
                               concepts=["DET", "NOUN"]).rank(planted_det, small_corpus, labels)
    assert ranking.top(1, "DET") == [PLANTED]
    assert ranking.scores("DET")[PLANTED] > 2.0
    assert ranking.scores("NOUN")[PLANTED] < 0  # it hurts nouns less than the rest
    lost = ClassFlipRanking(candidates=CANDIDATES,
                            criterion="accuracy").rank(planted_det, small_corpus, labels)
    assert lost.top(1, "DET") == [PLANTED] and lost.scores("DET")[PLANTED] > 0.5
    # The planted neuron makes the model predict determiners everywhere, so ablating it flips
    # nearly every prediction: "flip" sees no difference between DET and other words.
    flips = ClassFlipRanking(candidates=CANDIDATES[:8],
                             criterion="flip").rank(planted_det, small_corpus, labels)
    assert all(-1 <= v <= 1 for v in flips.scores("DET").values())
    # The ranking plugs into the ablation evaluation (same model fingerprint).
    effect = ablation_effect(planted_det, small_corpus, ranking, "DET", k=1,
                             conditions=("top",))
    assert effect.row("top")["selectivity"] > 2.0


def test_ablation_ranking_options(tiny_bert, small_corpus, extracted):
    store = extracted("bert", "mean", ("hidden", "mlp"))
    labels = small_corpus.concept_labels("upos")
    assert candidate_names("L1.mlp", tiny_bert) == [f"L1.mlp.{i}" for i in range(64)]
    assert len(candidate_names("attn", tiny_bert)) == 64 and \
        candidate_names("attn", tiny_bert)[9] == "L0.attn.h1.1"
    grouped = ErasureRanking(candidates="L0.mlp", group_size=16, op="mean", max_sentences=6,
                             mask_fraction=0.5).rank(tiny_bert, small_corpus, labels,
                                                     activations=store)
    scores = grouped.scores()
    assert len(scores) == 64 and len(set(np.round(list(scores.values()), 12))) <= 4
    assert grouped.store_fingerprint == store.fingerprint
    assert grouped.names[store.layout.id("L0.mlp.3")] == "L0.mlp.3"
    with pytest.raises(NeuronscopeError, match="no component 'ffn'"):
        ErasureRanking(candidates="L0.ffn").rank(tiny_bert, small_corpus, labels)
    with pytest.raises(NeuronscopeError, match="supervised"):
        ClassFlipRanking(candidates=["L0.mlp.1"]).rank(tiny_bert, small_corpus, None)
    with pytest.raises(FingerprintMismatchError, match="another corpus"):
        ErasureRanking(candidates=["L0.mlp.1"]).rank(tiny_bert, small_corpus.subset([0, 1]),
                                                     labels)
    with pytest.raises(FingerprintMismatchError, match="another model"):
        ErasureRanking(candidates=["L0.mlp.1"]).rank(tiny_bert, small_corpus, labels,
                                                     activations=extracted("gpt2", "mean"))


def test_ablation_controls_layer_matched_and_notes(planted_det, small_corpus):
    scores = {PLANTED: 1.0, **{n: 0.5 - i / 100 for i, n in enumerate(CANDIDATES[6:])}}
    ranking = _ranking(planted_det, scores)
    ticks = []
    result = ablation_effect(planted_det, small_corpus, ranking, "DET", k=2, label_layer="upos",
                             repeats=5, seed=0, progress=lambda d, n: ticks.append((d, n)))
    top = set(result.neurons["top"][0])
    assert len(result.neurons["random"]) == 5
    for names in result.neurons["random"]:  # same layers as the top-2 (both L1), never them
        assert all(n.startswith("L1.mlp.") for n in names) and not top & set(names)
    table = result.table.set_index("condition")
    assert table.loc["random", "sets"] == 5 and table.loc["random", "selectivity_std"] > 0
    assert any("above the random band" in n and "NOT" not in n for n in result.notes)
    done, total = ticks[-1]  # 8 runs: none, top, 5 random, bottom
    assert done == total and total % 8 == 0 and all(n == total for _, n in ticks)
    data = result.to_dict()
    assert data["schema"] == "neuronscope.ablation/1" and data["notes"] == result.notes
    json.dumps(data, allow_nan=False)  # NaN written as null: strict JSON
    # Ablating the determiner neuron for NOUN hurts the other (DET) tokens more: said so.
    noun = ablation_effect(planted_det, small_corpus, _ranking(planted_det, scores, "NOUN"),
                           "NOUN", k=1, label_layer="upos", conditions=("top",))
    assert any("hurts other tokens more than 'NOUN' tokens" in n for n in noun.notes)
