"""`rank --sentence-labels` and `rank --multi-label` from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.methods import Ranking

runner = CliRunner()


def _corpus_with_levels(small_corpus, path):
    """The store's corpus as JSONL with a sentence layer (topic) and a set-valued layer."""
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in zip(small_corpus.sentences, small_corpus.labels["upos"],
                               strict=True):
            sets = [t + ("|CONTENT" if t in ("NOUN", "VERB") else "") for t in tags]
            f.write(json.dumps({"words": words, "upos": tags, "tags": sets,
                                "topic": "long" if len(words) > 6 else "short"}) + "\n")
    return path


def test_rank_sentence_labels_layer_and_file(cli_store, small_corpus, tmp_path):
    corpus = _corpus_with_levels(small_corpus, tmp_path / "c.jsonl")
    out = tmp_path / "sent.json"
    result = runner.invoke(app, ["rank", str(cli_store), str(corpus), "--sentence-labels",
                                 "topic", "--method", "probeless", "--out", str(out),
                                 "--no-progress", "--components", "mlp"])
    assert result.exit_code == 0, result.output
    ranking = Ranking.from_json(out)
    assert ranking.label_layer == "topic" and ranking.concept_names == ["long", "short"]
    assert all(".mlp." in n for n in ranking.top(5, "long"))  # the store's neuron names
    assert ranking.extra["level"] == "sentence"
    labels = tmp_path / "topic.txt"
    labels.write_text("\n".join("long" if len(s) > 6 else "short"
                                for s in small_corpus.sentences) + "\n")
    from_file = tmp_path / "file.json"
    result = runner.invoke(app, ["rank", str(cli_store), str(corpus), "--sentence-labels",
                                 str(labels), "--method", "probeless", "--out",
                                 str(from_file), "--no-progress", "--components", "mlp"])
    assert result.exit_code == 0, result.output
    assert Ranking.from_json(from_file).top(5, "long") == ranking.top(5, "long")
    labels.write_text("long\nshort\n")
    bad = runner.invoke(app, ["rank", str(cli_store), str(corpus), "--sentence-labels",
                              str(labels), "--out", str(tmp_path / "x.json")])
    assert bad.exit_code != 0 and "2 labels for the corpus' 10 sentences" in str(bad.exception)


def test_rank_multi_label_layer(cli_store, small_corpus, tmp_path):
    corpus = _corpus_with_levels(small_corpus, tmp_path / "c.jsonl")
    out = tmp_path / "multi.json"
    result = runner.invoke(app, ["rank", str(cli_store), str(corpus), "--labels", "tags",
                                 "--multi-label", "|", "--method", "probeless", "--out",
                                 str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    ranking = Ranking.from_json(out)
    # One concept per label of the sets: no "NOUN|CONTENT" pseudo-class.
    assert "CONTENT" in ranking.concept_names and "NOUN" in ranking.concept_names
    assert not any("|" in c for c in ranking.concept_names)
    assert ranking.top(1, "CONTENT")[0].startswith("L")
    rows = ranking.extra["multi_label"]["rows"]
    nouns_verbs = sum(t in ("NOUN", "VERB") for s in small_corpus.labels["upos"] for t in s)
    assert rows["CONTENT"] == nouns_verbs


def test_rank_needs_one_kind_of_labels(cli_store, small_conllu, tmp_path):
    neither = runner.invoke(app, ["rank", str(cli_store), str(small_conllu), "--out",
                                  str(tmp_path / "r.json")])
    assert neither.exit_code != 0 and "--sentence-labels" in str(neither.exception)
    missing = runner.invoke(app, ["rank", str(cli_store), str(small_conllu),
                                  "--sentence-labels", "topic", "--out",
                                  str(tmp_path / "r.json")])
    assert missing.exit_code != 0 and "neither a sentence label layer" in str(missing.exception)
