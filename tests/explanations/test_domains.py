"""Domain neurons: planted domain neuron, IDANI shift on stored activations and in a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.explanations.domains import (
    DomainNeurons,
    adaptation_effect,
    adaptation_intervention,
    cohens_d,
    domain_shift,
    shift_activations,
)
from neuronscope.extraction import extract
from neuronscope.extraction.hooks import Trace
from neuronscope.methods.ranking import Ranking

from .conftest import tagged_corpus, write_store


def with_noun_layer(corpus):
    """Add a binary ``noun`` layer (yes/no) derived from ``upos``."""
    return corpus.with_layer("noun", [["yes" if t == "NOUN" else "no" for t in s]
                                      for s in corpus.labels["upos"]])


def two_domains(seed: int = 0, offset: float = 3.0):
    """Domain A and B corpora and activations: neuron 3 is +offset sd higher on B; neuron 0
    carries the ``noun`` label in both domains (and drifts too), the others are noise."""
    corpus_a, corpus_b = (with_noun_layer(tagged_corpus(150, seed=s, name=n))
                          for s, n in ((seed, "A"), (seed + 1, "B")))
    rng = np.random.default_rng(seed)

    def acts(corpus, shift):
        noun = corpus.labels_array("upos") == "NOUN"
        x = rng.standard_normal((corpus.n_words, 6))
        x[:, 0] += 3.0 * noun + shift  # the label neuron also drifts between domains
        x[:, 3] += shift
        return x.astype(np.float32)

    return corpus_a, acts(corpus_a, 0.0), corpus_b, acts(corpus_b, offset)


def test_cohens_d():
    a = np.array([[0.0], [2.0], [4.0]])
    b = np.array([[4.0], [6.0], [8.0]])
    assert cohens_d(a, b)[0] == pytest.approx(2.0)  # mean diff 4, pooled sd 2
    assert cohens_d(np.ones((3, 1)), np.ones((4, 1)))[0] == 0.0
    with pytest.raises(NeuronscopeError, match="at least 2"):
        cohens_d(a[:1], b)


@pytest.mark.parametrize("measure", ["d", "ap"])
def test_planted_domain_neuron_ranks_first(tmp_path, measure):
    corpus_a, xa, corpus_b, xb = two_domains()
    store_a = write_store(tmp_path / "a", corpus_a, xa)
    store_b = write_store(tmp_path / "b", corpus_b, xb)
    ranking = DomainNeurons(measure=measure, domains=("news", "tweets")).rank_pair(store_a,
                                                                                  store_b)
    assert isinstance(ranking, Ranking) and ranking.concept_names == ["news", "tweets"]
    assert ranking.top(1, "tweets") == ["L0.hidden.3"]
    assert ranking.top(1) in (["L0.hidden.3"], ["L0.hidden.0"])
    assert ranking.extra["cohens_d"]["L0.hidden.3"] > 2.5
    assert ranking.extra["ap"]["tweets"]["L0.hidden.3"] > 0.9
    assert ranking.extra["n_words"] == {"news": corpus_a.n_words, "tweets": corpus_b.n_words}
    assert Ranking.from_json(ranking.to_json()).top(1, "tweets") == ["L0.hidden.3"]


def test_stores_of_different_models_are_refused(tmp_path):
    corpus_a, xa, corpus_b, xb = two_domains()
    store_a = write_store(tmp_path / "a", corpus_a, xa)
    store_b = write_store(tmp_path / "b", corpus_b, xb, fingerprint="e" * 16)
    with pytest.raises(FingerprintMismatchError, match="different models"):
        DomainNeurons().rank_pair(store_a, store_b)
    with pytest.raises(FingerprintMismatchError, match="different components"):
        DomainNeurons().rank_pair(store_a, write_store(tmp_path / "c", corpus_b, xb[:, :4]))
    with pytest.raises(NeuronscopeError, match="measure"):
        DomainNeurons(measure="kl").rank_pair(xa, xb)


def test_shift_restores_probe_accuracy(tmp_path):
    corpus_a, xa, corpus_b, xb = two_domains()
    store_a = write_store(tmp_path / "a", corpus_a, xa)
    store_b = write_store(tmp_path / "b", corpus_b, xb)
    result = adaptation_effect(store_a, corpus_a.concept_labels("noun"), store_b,
                               corpus_b.concept_labels("noun"), k=2)
    # The drift of the label neuron fools the probe on B; moving the top-2 domain neurons'
    # means back to A's undoes it.
    assert set(result.shift.names) == {"L0.hidden.0", "L0.hidden.3"}
    assert result.accuracy_source > 0.85
    assert result.accuracy_before < result.accuracy_source - 0.2
    assert result.accuracy_after > result.accuracy_before + 0.2
    assert result.gain == pytest.approx(result.accuracy_after - result.accuracy_before)
    assert result.label_layer == "noun" and result.to_dict()["k"] == 2
    # Stored-activation shift: B's means become A's.
    ranking = DomainNeurons().rank_pair(xa, xb)
    shift = domain_shift(ranking, 2)
    moved = shift_activations(xb, shift, shift.ids)
    assert np.allclose(moved[:, shift.ids].mean(0), xa[:, shift.ids].mean(0), atol=1e-4)
    assert np.array_equal(moved[:, [1, 2, 4, 5]], xb[:, [1, 2, 4, 5]])
    with pytest.raises(FingerprintMismatchError):
        adaptation_effect(store_a, corpus_b.concept_labels("noun"), store_b,
                          corpus_b.concept_labels("noun"))


def test_intervention_adds_the_shift_in_the_model(tiny_bert, small_corpus, tmp_path):
    store_a = extract(small_corpus.subset(range(0, 5)), tmp_path / "a", tiny_bert,
                      components=("mlp",), progress=False)
    store_b = extract(small_corpus.subset(range(5, 10)), tmp_path / "b", tiny_bert,
                      components=("mlp",), progress=False)
    # Layer-1 neurons only, so the edit is the only change at their site.
    layer1 = store_a.layout.select(["mlp"], [1]).tolist()
    ranking = DomainNeurons(neurons=layer1).rank_pair(store_a, store_b)
    shift = domain_shift(ranking, 3, alpha=0.5)
    assert ranking.store_fingerprint == tiny_bert.fingerprint
    assert all(n.startswith("L1.mlp.") for n in shift.names)
    ids = torch.tensor([[tiny_bert.tokenizer.cls_token_id, 10, 11, 12,
                         tiny_bert.tokenizer.sep_token_id]])
    module = "bert.encoder.layer.1.output.dense"

    def capture() -> torch.Tensor:
        with torch.no_grad(), Trace(tiny_bert.model, [module], retain_input=True,
                                    retain_output=False) as trace:
            tiny_bert.model(input_ids=ids)
        return trace.inputs[module][0]

    plain = capture()
    with adaptation_intervention(tiny_bert, shift):
        edited = capture()
    index = [int(n.rsplit(".", 1)[1]) for n in shift.names]
    expected = torch.as_tensor(shift.delta).expand(ids.shape[1], -1)
    assert torch.allclose(edited[:, index] - plain[:, index], expected, atol=1e-5)
    untouched = [i for i in range(plain.shape[1]) if i not in index]
    assert torch.equal(edited[:, untouched], plain[:, untouched])
    shift.model_fingerprint = "0" * 16
    with pytest.raises(FingerprintMismatchError, match="another model"):
        adaptation_intervention(tiny_bert, shift)
