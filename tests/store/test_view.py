"""ActivationView: selection, chunks vs matrix, row restriction, labels, acceptance policy."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError, UnknownComponentError
from neuronscope.methods.ranking import Ranking, ranking_from_scores
from neuronscope.store import (
    ActivationView,
    Provenance,
    RowSubsetStore,
    align_labels,
    check_ranking_compatible,
    store_from_arrays,
)

N_WORDS = 90  # 15 sentences of 6 words; chunks of 16 rows split sentences


def _corpus(name: str = "c", offset: int = 0) -> Corpus:
    words = [f"w{i + offset}" for i in range(N_WORDS)]
    tags = ["A" if i % 3 else "B" for i in range(N_WORDS)]
    cut = [slice(i, i + 6) for i in range(0, N_WORDS, 6)]
    return Corpus([words[s] for s in cut], {"tag": [tags[s] for s in cut]}, name=name)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"hidden": rng.normal(size=(N_WORDS, 2 * 4)).astype(np.float32),
            "mlp": rng.normal(size=(N_WORDS, 2 * 6)).astype(np.float32)}


def _store(path, corpus, data, model="m", aggregation="mean", layers=(0, 1)):
    return store_from_arrays(path, corpus, {k: (v, list(layers)) for k, v in data.items()},
                             model_name=model, model_fingerprint=f"{model}fp",
                             aggregation=aggregation, chunk_words=16)


@pytest.fixture(scope="module")
def store(tmp_path_factory, data):
    return _store(tmp_path_factory.mktemp("view") / "s", _corpus(), data)


@pytest.fixture(scope="module")
def full(data) -> np.ndarray:
    return np.concatenate([data["hidden"], data["mlp"]], axis=1)


def test_selection_by_ids_names_components_layers(store, full):
    assert ActivationView(store).n_neurons == 20
    by_ids = ActivationView(store, [9, 2])
    assert by_ids.names == ["L0.mlp.1", "L0.hidden.2"]
    np.testing.assert_array_equal(by_ids.matrix(), full[:, [9, 2]])
    by_names = ActivationView(store, ["L1.mlp.5", "L0.hidden.0"])
    np.testing.assert_array_equal(by_names.ids, [19, 0])
    comp = ActivationView(store, components=["mlp"])
    np.testing.assert_array_equal(comp.ids, np.arange(8, 20))
    layer1 = ActivationView(store, layers=[1])
    np.testing.assert_array_equal(layer1.ids, [*range(4, 8), *range(14, 20)])
    both = ActivationView(store, components=["hidden"], layers=[1])
    np.testing.assert_array_equal(both.matrix(), full[:, 4:8])
    with pytest.raises(UnknownComponentError, match="unknown component 'attn'"):
        ActivationView(store, components=["attn"])
    with pytest.raises(NeuronscopeError, match="not both"):
        ActivationView(store, [1], layers=[0])


def test_refine_a_view(store, full):
    view = ActivationView(store, components=["mlp"])
    sub = view.select(["L1.mlp.0", 8])
    np.testing.assert_array_equal(sub.ids, [14, 8])
    np.testing.assert_array_equal(sub.matrix(), full[:, [14, 8]])
    with pytest.raises(NeuronscopeError, match="not in this view"):
        view.select([0])  # a hidden neuron
    np.testing.assert_array_equal(view.column("L0.mlp.3"), full[:, 11])


@pytest.mark.parametrize("make", ["store", "array"])
@pytest.mark.parametrize("neurons", [None, [3, 12, 1, 19]])
def test_chunks_equal_matrix(store, full, make, neurons):
    view = ActivationView(store if make == "store" else full, neurons, chunk_words=7)
    blocks = list(view.chunks())
    assert [b[0] for b in blocks] == list(range(0, N_WORDS, 7))
    np.testing.assert_array_equal(np.concatenate([b[2] for b in blocks]), view.matrix())
    expected = full if neurons is None else full[:, neurons]
    np.testing.assert_array_equal(view.matrix(), expected)


def test_row_restriction_reads_only_those_rows(store, full):
    rows = np.array([0, 1, 5, 17, 18, 40, 89])
    view = ActivationView(store, [2, 15], rows=rows)
    assert isinstance(view.source, RowSubsetStore) and view.n_words == len(rows)
    np.testing.assert_array_equal(view.matrix(), full[np.ix_(rows, [2, 15])])
    chunks = np.concatenate([b for _, _, b in view.chunks(chunk_words=3)])
    np.testing.assert_array_equal(chunks, full[np.ix_(rows, [2, 15])])
    np.testing.assert_array_equal(view.sentence_ids(), rows // 6)
    np.testing.assert_array_equal(view.positions(), rows % 6)
    assert view.words() == [f"w{i}" for i in rows]
    # A restriction of a restriction composes; a mask works like indices.
    mask = np.zeros(len(rows), dtype=bool)
    mask[[1, 4]] = True
    again = view.restrict(mask)
    np.testing.assert_array_equal(again.row_index, rows[[1, 4]])
    np.testing.assert_array_equal(again.matrix(), full[np.ix_(rows[[1, 4]], [2, 15])])
    # Arrays restrict the same way.
    arr = ActivationView(full, [2, 15], rows=rows)
    np.testing.assert_array_equal(arr.matrix(), view.matrix())
    with pytest.raises(NeuronscopeError, match=r"lie in \[0, 90\)"):
        ActivationView(store, rows=np.array([90]))
    with pytest.raises(NeuronscopeError, match="one entry per row"):
        ActivationView(store, rows=np.ones(3, dtype=bool))


def test_finite_check_names_row_and_column(full):
    bad = full.copy()
    bad[33, 4] = np.nan
    with pytest.raises(NeuronscopeError, match="row 33, column 4"):
        list(ActivationView(bad, chunk_words=10).chunks())
    with pytest.raises(NeuronscopeError, match="NaN or inf"):
        ActivationView(bad, [4]).matrix()


def test_labels_aligned_and_checked(store, tmp_path):
    corpus = _corpus()
    labels = corpus.concept_labels("tag")
    view = ActivationView(store)
    np.testing.assert_array_equal(align_labels(labels, view), labels.values)
    # Corpus labels on a restricted view are restricted to its rows.
    rows = np.array([3, 4, 50])
    np.testing.assert_array_equal(view.restrict(rows).labels(labels), labels.values[rows])
    other = _corpus("other", offset=1000).concept_labels("tag")
    with pytest.raises(FingerprintMismatchError, match="layer 'tag' come from another corpus"):
        align_labels(other, view)
    with pytest.raises(NeuronscopeError, match="1-D"):
        align_labels(np.zeros((N_WORDS, 2)), view)
    with pytest.raises(NeuronscopeError, match="89 labels for 90 rows of store"):
        align_labels(["A"] * 89, view)
    # Plain arrays of labels carry no fingerprint: only their length is checked.
    assert len(align_labels(list(labels.values), store)) == N_WORDS


def test_provenance_parts(store):
    p = Provenance.of_store(store)
    assert (p.model_fingerprint, p.aggregation) == ("mfp", "mean")
    q = Provenance.from_fingerprint(store.fingerprint)
    assert q.to_dict() == p.to_dict()
    assert p.same_neurons(Provenance.from_fingerprint(f"mfp-{'0' * 16}-mean")) is True
    assert p.same_neurons(Provenance.from_fingerprint(f"mfp-{'0' * 16}-first")) is False
    assert p.same_neurons(Provenance()) is None


def _ranking(store) -> Ranking:
    view = ActivationView(store)
    scores = np.vstack([np.arange(view.n_neurons), -np.arange(view.n_neurons)]).astype(float)
    return ranking_from_scores("toy", {}, scores, ["A", "B"], view.ids, view.names,
                               store_fingerprint=view.provenance.store_fingerprint)


def test_acceptance_policy(tmp_path, store, data):
    other_corpus = _store(tmp_path / "oc", _corpus("held", offset=500), data)
    other_model = _store(tmp_path / "om", _corpus(), data, model="other")
    other_agg = _store(tmp_path / "oa", _corpus(), data, aggregation="first")
    other_layout = _store(tmp_path / "ol", _corpus(), data, layers=(1, 2))
    view = ActivationView(store)
    assert view.check_ranking(_ranking(store)) == []
    notes = view.check_ranking(_ranking(other_corpus))
    assert len(notes) == 1 and "another corpus" in notes[0]
    with pytest.raises(FingerprintMismatchError, match="another model or aggregation"):
        view.check_ranking(_ranking(other_model))
    with pytest.raises(FingerprintMismatchError, match="another model or aggregation"):
        view.check_ranking(_ranking(other_agg))
    # Same model and aggregation, other layers: the names give it away.
    with pytest.raises(FingerprintMismatchError, match="neuron layout"):
        view.check_ranking(_ranking(other_layout))
    # No fingerprint (a hand-edited ranking): names checked, with a note.
    bare = _ranking(store)
    bare.store_fingerprint = None
    assert "no store fingerprint" in view.check_ranking(bare)[0]
    bare.names[3] = "L0.hidden.0"
    with pytest.raises(FingerprintMismatchError, match="id 3"):
        check_ranking_compatible(bare, view.provenance, view.layout)
    bare.names[99] = "L9.mlp.0"
    with pytest.raises(FingerprintMismatchError, match="20 neurons"):
        view.check_ranking(bare)


def test_two_rankings_compared_under_the_same_policy(tmp_path, store, data):
    from neuronscope.evaluation.agreement import overlap_at_k

    held = _ranking(_store(tmp_path / "oc", _corpus("held", offset=500), data))
    assert overlap_at_k(_ranking(store), held, 3) == 1.0  # other corpus, same neurons
    with pytest.raises(FingerprintMismatchError, match="another model or aggregation"):
        overlap_at_k(_ranking(store), _ranking(_store(tmp_path / "om", _corpus(), data,
                                                      model="other")), 3)
    with pytest.raises(FingerprintMismatchError, match="neuron layout"):
        overlap_at_k(_ranking(store), _ranking(_store(tmp_path / "ol", _corpus(), data,
                                                      layers=(1, 2))), 3)


def test_loading_more_than_the_memory_budget_is_a_clear_error(tmp_path, monkeypatch):
    from neuronscope.store.memory import parse_bytes

    rows = np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32)
    corpus = Corpus([[f"w{i}" for i in range(j, j + 10)] for j in range(0, 200, 10)])
    store = store_from_arrays(tmp_path / "s", corpus, {"hidden": (rows, [0, 1])},
                              model_name="m", aggregation="first")
    monkeypatch.setenv("NEURONSCOPE_MEMORY_LIMIT", "1KB")  # 200 x 6 x 4 bytes = 4.8 KB
    with pytest.raises(NeuronscopeError, match=r"needs 0\.00 GB .* more than the 0\.00 GB"):
        ActivationView(store).matrix()
    monkeypatch.setenv("NEURONSCOPE_MEMORY_LIMIT", "5KB")
    assert ActivationView(store).matrix().shape == (200, 6)
    assert parse_bytes("4GB") == 4 * 10**9 and parse_bytes("512MiB") == 512 * 2**20
    with pytest.raises(NeuronscopeError, match="cannot read"):
        parse_bytes("lots")


def test_large_matrices_are_mapped_without_huge_page_advice(monkeypatch):
    # empty_matrix maps arrays from MAP_BYTES on itself (see its docstring); they behave
    # like numpy's own: writable, C-ordered, the requested shape and dtype.
    from neuronscope.store import memory

    monkeypatch.setattr(memory, "MAP_BYTES", 1024)
    mapped = memory.empty_matrix((300, 7))
    small = memory.empty_matrix((2, 3))
    def owner(array):  # the object at the end of the array's chain of bases
        while isinstance(array, np.ndarray) and array.base is not None:
            array = array.base
        return array.obj if isinstance(array, memoryview) else array

    assert isinstance(owner(mapped), memory.mmap.mmap)
    assert not isinstance(owner(small), memory.mmap.mmap)
    for array, shape in ((mapped, (300, 7)), (small, (2, 3))):
        assert array.shape == shape and array.dtype == np.float32
        assert array.flags.c_contiguous and array.flags.writeable
    mapped[:] = np.arange(2100, dtype=np.float32).reshape(300, 7)
    assert mapped[299, 6] == 2099
