"""The ``cluster``, ``select``, ``factorize``, ``compare`` and ``group`` commands on tiny stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus import write_conllu
from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError
from neuronscope.methods.ranking import Ranking

from .conftest import make_corpus, write_store

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two stores of one labelled corpus (A: 2 layers x 6, B: shares A's L1.hidden.0) and a
    store of another corpus; the corpus as CoNLL-U."""
    tmp = tmp_path_factory.mktemp("cli")
    base = make_corpus(n_sentences=60, length=7)
    n = base.n_words
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    a = rng.standard_normal((n, 12))
    a[:, 0] = 2.0 * y - 1 + 0.2 * rng.standard_normal(n)
    a[:, 1] = a[:, 0]  # a duplicate, to be clustered away
    b = rng.standard_normal((n, 5))
    b[:, 3] = a[:, 6]
    upos = np.array(["NOUN", "VERB"])[y]
    offsets = base.sentence_offsets()
    corpus = Corpus(base.sentences,
                    {"upos": [upos[offsets[i]:offsets[i + 1]].tolist()
                              for i in range(base.n_sentences)]}, name="tiny")
    conllu = tmp / "tiny.conllu"
    write_conllu(corpus, conllu)
    store_a = write_store(tmp / "A", corpus, {"hidden": a.astype(np.float32)}, layers=(0, 1))
    store_b = write_store(tmp / "B", corpus, {"hidden": b.astype(np.float32)}, layers=(0,))
    other = make_corpus(n_sentences=10, seed=3)
    store_c = write_store(tmp / "C", other, {"hidden": np.ones((other.n_words, 2),
                                                               dtype=np.float32)}, layers=(0,))
    return {"a": store_a.path, "b": store_b.path, "c": store_c.path, "conllu": conllu,
            "tmp": tmp}


def test_cluster(files):
    out = files["tmp"] / "clusters.json"
    result = runner.invoke(app, ["cluster", str(files["a"]), "--threshold", "0.9",
                                 "--matrix-out", str(files["tmp"] / "corr.npy"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "redundancy" in result.output and "L0.hidden" in result.output
    data = json.loads(out.read_text())
    assert data["n_neurons"] == 12 and data["n_clusters"] == 11
    assert sorted(data["clusters"][0]["members"]) == ["L0.hidden.0", "L0.hidden.1"]
    assert data["layers"]["labels"] == ["L0.hidden", "L1.hidden"]
    assert (files["tmp"] / "corr.json").exists()
    only = runner.invoke(app, ["cluster", str(files["a"]), "--layers", "1"])
    assert only.exit_code == 0, only.output
    assert "L0.hidden" not in only.output


def test_select(files):
    out = files["tmp"] / "selection.json"
    ranking = files["tmp"] / "selection-ranking.json"
    result = runner.invoke(app, ["select", str(files["a"]), str(files["conllu"]),
                                 "--labels", "upos", "--keep", "0.95", "--max-epochs", "40",
                                 "--ranking-out", str(ranking), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "speed-up" in result.output
    data = json.loads(out.read_text())
    assert data["full_accuracy"] > 0.9 and data["reached"]
    assert data["selected"][0] in ("L0.hidden.0", "L0.hidden.1")
    assert Ranking.from_json(ranking).label_layer == "upos"


def test_factorize(files):
    out = files["tmp"] / "nmf.json"
    result = runner.invoke(app, ["factorize", str(files["a"]), str(files["conllu"]),
                                 "--sentence", "2", "-k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "factor loadings" in result.output
    data = json.loads(out.read_text())
    assert data["sentence"] == 2 and data["k"] == 3 and len(data["words"]) == 7
    glob = runner.invoke(app, ["factorize", str(files["a"]), str(files["conllu"]), "-k", "2",
                               "--sample-words", "100"])
    assert glob.exit_code == 0, glob.output
    assert "global NMF over 100" in glob.output
    too_many = runner.invoke(app, ["factorize", str(files["a"]), str(files["conllu"]),
                                   "--sentence", "2", "-k", "8"])
    assert isinstance(too_many.exception, NeuronscopeError)
    assert "rank at most 7" in str(too_many.exception)


def test_compare(files):
    out = files["tmp"] / "compare.json"
    rankings = files["tmp"] / "rankings"
    result = runner.invoke(app, ["compare", str(files["a"]), str(files["b"]), "--top", "2",
                                 "--rankings-dir", str(rankings), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "SVCCA" in result.output
    data = json.loads(out.read_text())
    assert data["models"][0]["top"]["maxcorr"][0]["neuron"] == "L1.hidden.0"
    assert data["models"][1]["top"]["maxcorr"][0]["neuron"] == "L0.hidden.3"
    assert Ranking.from_json(rankings / "A.maxcorr.json").top(1) == ["L1.hidden.0"]
    mismatch = runner.invoke(app, ["compare", str(files["a"]), str(files["c"])])
    assert isinstance(mismatch.exception, FingerprintMismatchError)


def test_group(files):
    # PCA keeps the test fast (UMAP's numba compilation takes 30-60 s); the duplicated
    # neurons 0 and 1 (same profile) must land in the same group.
    out = files["tmp"] / "groups.json"
    result = runner.invoke(app, ["group", str(files["a"]), "--n-groups", "3", "--embedding",
                                 "pca", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert sum(g["size"] for g in data["groups"]) == 12
    together = [g for g in data["groups"] if "L0.hidden.0" in g["members"]]
    assert "L0.hidden.1" in together[0]["members"]
    bad = runner.invoke(app, ["group", str(files["a"]), "--embedding", "tsne"])
    assert bad.exit_code != 0
