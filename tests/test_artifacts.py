"""Artifacts: round trips, atomic writes, and clear errors for damaged or foreign directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from latentforge import Autoencoder
from latentforge.artifacts import FORMAT_VERSION, load_artifact
from latentforge.errors import ArtifactError

from conftest import FAST


@pytest.fixture(scope="module")
def fitted_table_model(tmp_path_factory):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80), "c": rng.choice(["x", "y"], 80)})
    est = Autoencoder("ae", 2, **FAST).fit(frame)
    path = tmp_path_factory.mktemp("art") / "model"
    est.save(path)
    return est, frame, path


def test_directory_layout_and_no_pickle(fitted_table_model):
    est, frame, path = fitted_table_model
    assert sorted(p.name for p in path.iterdir()) == ["history.csv", "metrics.json", "model.json", "weights.safetensors"]
    config = json.loads((path / "model.json").read_text())
    assert config["format_version"] == FORMAT_VERSION and config["model"]["name"] == "ae"
    assert sorted(config["preprocessing"]["columns"][2]["categories"]) == ["x", "y"]
    tensors = load_file(path / "weights.safetensors")  # plain safetensors, readable without latentforge
    assert any(k.startswith("model.") for k in tensors) and tensors["codes.train"].shape == (72, 2)
    assert b"pickle" not in (path / "weights.safetensors").read_bytes()[:2000]


def test_round_trip_gives_identical_outputs(fitted_table_model):
    est, frame, path = fitted_table_model
    loaded = Autoencoder.load(path)
    np.testing.assert_array_equal(loaded.transform(frame), est.transform(frame))
    np.testing.assert_array_equal(loaded.score_samples(frame), est.score_samples(frame))
    assert loaded.sample(5, seed=1).equals(est.sample(5, seed=1))
    assert len(loaded.history_) == len(est.history_)
    assert loaded.get_params()["latent_dim"] == 2


def test_truncated_or_corrupted_weights(fitted_table_model, tmp_path):
    _, _, path = fitted_table_model
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    data = (bad / "weights.safetensors").read_bytes()
    (bad / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupted or truncated"):
        Autoencoder.load(bad)
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    (bad / "weights.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ArtifactError, match="corrupted or truncated"):
        Autoencoder.load(bad)


def test_newer_format_and_missing_keys(fitted_table_model, tmp_path):
    _, _, path = fitted_table_model
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    config = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**config, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactError, match="newer than this latentforge reads"):
        load_artifact(bad)
    del config["preprocessing"]
    (bad / "model.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="lacks the key.*preprocessing"):
        load_artifact(bad)
    (bad / "model.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(bad)
    with pytest.raises(ArtifactError, match="no model directory"):
        load_artifact(tmp_path / "absent")


def test_failed_save_leaves_nothing_that_loads(fitted_table_model, tmp_path, monkeypatch):
    est, frame, path = fitted_table_model
    import latentforge.artifacts as artifacts

    calls = {"n": 0}
    real = artifacts._fsync_write

    def dies_on_second_file(p, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # an interruption half-way through the write
        real(p, data)

    monkeypatch.setattr(artifacts, "_fsync_write", dies_on_second_file)
    target = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        est.save(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind either
    # an existing model is not damaged by a failed overwrite
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        est.save(path)
    np.testing.assert_array_equal(Autoencoder.load(path).transform(frame), est.transform(frame))
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_refuses_to_overwrite_a_foreign_directory(fitted_table_model, tmp_path):
    est, _, _ = fitted_table_model
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(ArtifactError, match="not a latentforge output"):
        est.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def _leaf_settings(config: dict) -> list[str]:
    """Every setting name of model.json's setting sections, with the section it sits in."""
    out = []
    for section in ("model", "train", "estimator"):
        for key, value in config[section].items():
            if isinstance(value, dict):  # architecture, hyper-parameters
                out += [k for k in value if k != "extra"]
            else:
                out.append(key)
    return out


def test_model_json_stores_each_setting_once(fitted_table_model):
    _, _, path = fitted_table_model
    config = json.loads((path / "model.json").read_text())
    assert config["format_version"] == 2 and config["kind"] == "model"
    names = _leaf_settings(config)
    repeated = sorted({n for n in names if names.count(n) > 1} - {"name"})
    assert not repeated, f"settings stored more than once: {repeated}"
    # training options live in 'train' only, the network in 'model' only
    assert "epochs" in config["train"] and "epochs" not in config["estimator"]
    assert "hidden" in config["model"]["architecture"] and "hidden" not in config["estimator"]
    assert config["fitted"]["sampler"] in ("prior", "gmm", "dpmm", "empirical")


def test_a_version_1_artifact_still_loads():
    """tests/fixtures/artifact_v1 was saved by latentforge 0.1 (format version 1), with the embeddings and
    scores that release computed for five rows; the current loader must reproduce them."""
    import pandas as pd
    from pathlib import Path

    root = Path(__file__).parent / "fixtures" / "artifact_v1"
    raw = json.loads((root / "model" / "model.json").read_text())
    assert raw["format_version"] == 1 and "kind" not in raw  # really the old layout
    est = Autoencoder.load(root / "model")
    rows = pd.read_csv(root / "rows.csv")
    expected = json.loads((root / "expected_v1_outputs.json").read_text())
    np.testing.assert_allclose(est.transform(rows), np.array(expected["transform"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.score_samples(rows), np.array(expected["score_samples"]), rtol=1e-5, atol=1e-7)
    params = est.get_params()
    for key, value in raw["estimator"].items():   # the version-1 parameters come back unchanged
        if key == "device":                       # load() puts the model on the device it is asked for
            continue
        assert params[key] == (tuple(value) if isinstance(value, list) and key != "id_columns" else value) \
            or list(params[key]) == value, key
    assert est.sampler_kind_ == raw["sampler"] == "gmm"
    assert est.sample(3, seed=0).shape == (3, 3)


def test_saving_a_loaded_version_1_model_writes_version_2(tmp_path):
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).parent / "fixtures" / "artifact_v1"
    est = Autoencoder.load(root / "model")
    est.save(tmp_path / "v2")
    again = Autoencoder.load(tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "model.json").read_text())["format_version"] == 2
    rows = pd.read_csv(root / "rows.csv")
    np.testing.assert_array_equal(again.transform(rows), est.transform(rows))
    runtime = {"verbose", "device"}  # how a process runs, not part of the model: not saved
    strip = lambda p: {k: v for k, v in p.items() if k not in runtime}  # noqa: E731
    assert strip(again.get_params()) == strip({**est.get_params(), **again.hyperparameters})
