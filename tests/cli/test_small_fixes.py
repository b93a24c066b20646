"""Small CLI fixes of issue #17: random-init stores in `info`, the component of an imported
NeuroX file, label layers of `concepts` rows, punctuation in `factorize` tables."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.cli.explanations import best_labels_text
from neuronscope.store import ActivationStore

runner = CliRunner()
WIDE = {"COLUMNS": "300"}


def test_info_says_when_a_store_comes_from_a_random_init_model(tmp_path, small_conllu,
                                                                tiny_bert_dir, cli_store):
    out = tmp_path / "random.store"
    made = runner.invoke(app, ["extract", str(small_conllu), "--out", str(out), "--model",
                               str(tiny_bert_dir), "--random-init", "--no-progress"])
    assert made.exit_code == 0, made.output
    shown = runner.invoke(app, ["info", str(out)], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert "random-init model" in shown.output and "YES: untrained weights" in shown.output
    assert "randomly initialized model" in shown.output
    as_json = json.loads(runner.invoke(app, ["info", str(out), "--json"]).output)
    assert as_json["random_init"] is True and as_json["random_init_seed"] == 0
    trained = runner.invoke(app, ["info", str(cli_store)], env=WIDE)
    assert "no (trained weights)" in trained.output
    assert "randomly initialized" not in trained.output


def test_import_neurox_keeps_an_mlp_files_component(cli_store, small_conllu, tmp_path):
    h5 = tmp_path / "mlp.hdf5"
    exported = runner.invoke(app, ["export", str(cli_store), "--component", "mlp", "--out",
                                   str(h5)])
    assert exported.exit_code == 0, exported.output
    back = tmp_path / "back.store"
    imported = runner.invoke(app, ["import-neurox", str(h5), "--corpus", str(small_conllu),
                                   "--out", str(back), "--no-progress"])
    assert imported.exit_code == 0, imported.output
    st = ActivationStore(back)
    assert list(st.layout.components) == ["mlp"]
    np.testing.assert_array_equal(st.component("mlp"), ActivationStore(cli_store).component("mlp"))
    assert st.layout.names([0])[0].endswith(".mlp.0")
    renamed = tmp_path / "renamed.store"
    forced = runner.invoke(app, ["import-neurox", str(h5), "--corpus", str(small_conllu),
                                 "--out", str(renamed), "--component", "ffn"])
    assert forced.exit_code == 0, forced.output
    assert list(ActivationStore(renamed).layout.components) == ["ffn"]


def test_concepts_rows_show_the_best_few_label_layers():
    best = {"upos": ("NOUN", 0.9), "form": ("cat", 1.0), "ending": ("at", 1.0),
            "Number": ("Sing", 0.95), "Person": ("3", 0.4), "Tense": ("Past", 0.2),
            "Mood": ("Ind", 0.3), "Case": ("Nom", 0.1)}
    text = best_labels_text(best, limit=3)
    assert text == "Number:Sing 95%, upos:NOUN 90%, Person:3 40% (+3 more layers)"
    assert "form" not in text and "ending" not in text
    assert best_labels_text({"upos": ("DET", 1.0)}) == "upos:DET 100%"


def test_factorize_prints_punctuation_words_as_they_are(cli_store, small_conllu):
    result = runner.invoke(app, ["factorize", str(cli_store), str(small_conllu), "-k", "3",
                                 "--components", "hidden", "--top", "8", "--no-progress"],
                           env=WIDE)
    assert result.exit_code == 0, result.output
    assert "word 1" in result.output and "word 8" in result.output
    # One word per cell: a "," word never merges with the separator into ",, ,".
    assert ",," not in result.output
