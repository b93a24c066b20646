"""NeuroX HDF5 / JSON import of damaged and odd files: refused with the file and the problem,
or imported exactly; the output store never appears after a refusal; inputs never change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.store import ActivationStore
from neuronscope.store.neurox import import_neurox
from tests.robustness.conftest import examples

CORPUS = Corpus([["the", "cat", "sat"], ["dogs", "bark"]], name="tiny")


def _arrays(layers: int = 2, neurons: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((layers, len(s), neurons)).astype(np.float32)
            for s in CORPUS.sentences]


def _hdf5(path: Path, arrays: list, dtype=None) -> Path:
    with h5py.File(path, "w") as f:
        for i, a in enumerate(arrays):
            f.create_dataset(str(i), data=a if dtype is None else np.asarray(a).astype(dtype))
        f.create_dataset("sentence_to_index", data=[json.dumps({})])
    return path


def _json(path: Path, arrays: list, encode=json.dumps, encoding="utf-8") -> Path:
    lines = []
    for i, (a, words) in enumerate(zip(arrays, CORPUS.sentences, strict=True)):
        features = [{"token": w, "layers": [{"index": k, "values": a[k, j].tolist()}
                                            for k in range(a.shape[0])]}
                    for j, w in enumerate(words)]
        lines.append(encode({"linex_index": i, "features": features}))
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(path: Path, out: Path, *fragments: str) -> None:
    before = _digest(path)
    with pytest.raises(NeuronscopeError) as info:
        import_neurox(path, CORPUS, out)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()
    assert _digest(path) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_valid_files_import_exactly(tmp_path):
    arrays = _arrays()
    for path in (_hdf5(tmp_path / "a.hdf5", arrays), _json(tmp_path / "a.json", arrays)):
        store = import_neurox(path, CORPUS, tmp_path / f"store-{path.suffix[1:]}")
        got = store.component("hidden")
        want = np.concatenate([a.transpose(1, 0, 2).reshape(a.shape[1], -1) for a in arrays])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case, fragment", [
    ("zero layers", "0 layer(s)"),
    ("zero neurons", "0 neuron(s)"),
    ("strings", "must be numbers"),
    ("complex", "complex activations"),
    ("booleans", "must be numbers"),
])
def test_hdf5_bad_data(tmp_path, case, fragment):
    if case == "zero layers":
        arrays = [np.zeros((0, len(s), 3), np.float32) for s in CORPUS.sentences]
    elif case == "zero neurons":
        arrays = [np.zeros((2, len(s), 0), np.float32) for s in CORPUS.sentences]
    elif case == "strings":
        arrays = [np.full((2, len(s), 3), b"1.5") for s in CORPUS.sentences]
    elif case == "complex":
        arrays = [a.astype(np.complex64) + 1j for a in _arrays()]
    else:
        arrays = [np.ones((2, len(s), 3), bool) for s in CORPUS.sentences]
    _refused(_hdf5(tmp_path / "bad.hdf5", arrays), tmp_path / "out", fragment)


@settings(max_examples=examples(8, 60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.floats(0.05, 0.97))
def test_truncated_hdf5_is_refused(tmp_path_factory, keep):
    tmp = tmp_path_factory.mktemp("trunc")
    good = _hdf5(tmp / "good.hdf5", _arrays(neurons=64))
    data = good.read_bytes()
    bad = tmp / "bad.hdf5"
    bad.write_bytes(data[: max(8, int(len(data) * keep))])
    try:
        store = import_neurox(bad, CORPUS, tmp / "out")
    except NeuronscopeError as err:
        assert str(bad) in str(err)
        assert not (tmp / "out").exists()
        return
    # HDF5 keeps metadata at the start: a cut that spares every dataset imports exactly.
    want = import_neurox(good, CORPUS, tmp / "ref")
    np.testing.assert_array_equal(store.component("hidden"), want.component("hidden"))


def test_latin1_json_is_refused(tmp_path):
    arrays = _arrays()
    path = tmp_path / "latin.json"
    _json(path, arrays)
    text = path.read_text().replace('"the"', '"thé"')
    path.write_bytes(text.encode("latin-1"))
    _refused(path, tmp_path / "out", "not UTF-8")


@pytest.mark.parametrize("values, fragment", [
    (["1.5", "2", "3"], "must be numbers"),
    ([True, False, True], "must be numbers"),
    ([1, "x", 3], "must be numbers"),
    ([[1], [2], [3]], "list of numbers"),
    (5, "list of numbers"),
    ([], "0 neuron(s)"),
    (None, "not flat lists of numbers"),
])
def test_json_bad_values(tmp_path, values, fragment):
    def encode(record):
        for feature in record["features"]:
            for layer in feature["layers"]:
                layer["values"] = values
        return json.dumps(record)

    _refused(_json(tmp_path / "bad.json", _arrays(), encode), tmp_path / "out", fragment)


@pytest.mark.parametrize("line, fragment", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("{not json", "bad JSON"),
    ('{"features": 3}', "'features' list"),
    ('{"linex_index": 7, "features": []}', "out of order"),
])
def test_json_bad_lines(tmp_path, line, fragment):
    path = tmp_path / "bad.json"
    path.write_text(line + "\n", encoding="utf-8")
    _refused(path, tmp_path / "out", fragment)


@settings(max_examples=examples(15, 150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("bytes")
    path = tmp / "noise.json"
    path.write_bytes(data)
    with pytest.raises(NeuronscopeError):
        import_neurox(path, CORPUS, tmp / "out")
    assert path.read_bytes() == data
    assert not (tmp / "out").exists()


def test_import_command_refuses_damaged_file(cli, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"words": s}) + "\n" for s in CORPUS.sentences))
    bad = _hdf5(tmp_path / "bad.hdf5", [a.astype(np.complex64) for a in _arrays()])
    result = cli(["import-neurox", bad, "--corpus", corpus, "--out", tmp_path / "store"])
    assert result.code == 2 and "complex" in result.err and "Traceback" not in result.text
    assert not (tmp_path / "store").exists()
    ok = _hdf5(tmp_path / "ok.hdf5", _arrays())
    result = cli(["import-neurox", ok, "--corpus", corpus, "--out", tmp_path / "store"])
    assert result.code == 0, result.text
    assert ActivationStore(tmp_path / "store").n_words == CORPUS.n_words


def test_error_text_with_brackets_prints_whole(cli, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"words": s}) + "\n" for s in CORPUS.sentences))
    flat = _hdf5(tmp_path / "flat.hdf5", [np.zeros((7, 8), np.float32)] * 2)
    result = cli(["import-neurox", flat, "--corpus", corpus, "--out", tmp_path / "store"])
    assert result.code == 2
    assert "expected [layers, words, neurons], got (7, 8)" in result.err
