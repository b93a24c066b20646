"""``neuronscope evaluate`` and ``neuronscope report`` accept and refuse the same rankings.

Rankings are computed by ``neuronscope rank`` on real tiny-BERT stores that differ from the
evaluated store in one respect each, then handed to both commands on the same store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.corpus.writers import write_conllu
from neuronscope.errors import FingerprintMismatchError

runner = CliRunner()


def _extract(conllu: Path, out: Path, model: Path, *extra: str) -> Path:
    result = runner.invoke(app, ["extract", str(conllu), "--out", str(out), "--model",
                                 str(model), "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return out


def _rank(store: Path, conllu: Path, out: Path) -> Path:
    result = runner.invoke(app, ["rank", str(store), str(conllu), "--labels", "upos",
                                 "--method", "probeless", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def rankings(tmp_path_factory, cli_store, small_conllu, small_corpus, tiny_bert_dir,
             tiny_gpt2_dir) -> dict[str, Path]:
    """One ranking per kind of pair with ``cli_store`` (tiny BERT, hidden+mlp, mean)."""
    tmp = tmp_path_factory.mktemp("acceptance")
    other_conllu = tmp / "other.conllu"
    write_conllu(small_corpus.subset(range(2, 10)), other_conllu)  # another corpus
    stores = {
        "same store": cli_store,
        "same model, other corpus": _extract(other_conllu, tmp / "oc", tiny_bert_dir,
                                             "--components", "hidden,mlp"),
        "other model": _extract(small_conllu, tmp / "om", tiny_gpt2_dir,
                                "--components", "hidden,mlp"),
        "other aggregation": _extract(small_conllu, tmp / "oa", tiny_bert_dir,
                                      "--components", "hidden,mlp", "--aggregation", "first"),
        "other layout (mlp only)": _extract(small_conllu, tmp / "ol", tiny_bert_dir,
                                            "--components", "mlp"),
    }
    conllus = {name: other_conllu if "other corpus" in name else small_conllu
               for name in stores}
    return {name: _rank(store, conllus[name], tmp / f"{i}.json")
            for i, (name, store) in enumerate(stores.items())}


ACCEPTED = {"same store": True, "same model, other corpus": True,
            "other model": False, "other aggregation": False,
            "other layout (mlp only)": False}


@pytest.mark.parametrize("pair", list(ACCEPTED))
def test_evaluate_and_report_agree(pair, rankings, cli_store, small_conllu, tmp_path):
    ranking = rankings[pair]
    evaluate = runner.invoke(app, [
        "evaluate", str(cli_store), str(small_conllu), str(ranking), "--labels", "upos",
        "--out", str(tmp_path / "eval"), "--ks", "3", "--n-random", "1",
        "--ablation-steps", "2", "--max-epochs", "1",
    ])
    report = runner.invoke(app, [
        "report", str(cli_store), str(small_conllu), str(ranking), "--out",
        str(tmp_path / "report"), "--top-k", "2", "--max-neurons", "2", "--max-concepts", "2",
    ])
    if ACCEPTED[pair]:
        assert evaluate.exit_code == 0, evaluate.output
        assert report.exit_code == 0, report.output
        assert (tmp_path / "eval" / "summary.json").exists()
        assert (tmp_path / "report" / "index.html").exists()
        if "other corpus" in pair:  # accepted, and both say so
            assert "another corpus" in evaluate.output
            assert "another corpus" in report.output
    else:
        for result in (evaluate, report):
            assert isinstance(result.exception, FingerprintMismatchError), result.output
        assert str(evaluate.exception) == str(report.exception)
        expected = "neuron layout" if "layout" in pair else "another model or aggregation"
        assert expected in str(evaluate.exception)
        assert not (tmp_path / "eval" / "summary.json").exists()
        assert not (tmp_path / "report").exists()
