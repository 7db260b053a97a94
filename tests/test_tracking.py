"""Optional MLflow tracking (issue 13.6), against a real local MLflow file store in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from latentforge import Autoencoder
from latentforge.errors import InputError

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

FAST = dict(epochs=3, batch_size=32, hidden=(8,), verbose=False, patience=None)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    return uri, MlflowClient(tracking_uri=uri)


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return client.search_runs([exp.experiment_id])


def test_fit_logs_params_epochs_metrics_and_save_logs_the_model(store, tmp_path, mixed_frame):
    uri, client = store
    est = Autoencoder("vae", 2, label="churn", id_columns=("customer_id",), beta=2.0,
                      tracking_uri=f"{uri}#fit-test", **FAST).fit(mixed_frame)
    (run,) = _runs(client, "fit-test")
    assert run.info.run_id == est.tracking_run_id_ and run.info.status == "FINISHED"
    params = run.data.params
    assert params["model"] == "vae" and params["latent_dim"] == "2" and params["beta"] == "2.0"
    assert params["epochs"] == "3" and "tracking_uri" not in params and "regularizers" not in params
    # one point per epoch for every loss term, equal to the history the estimator kept
    for term in ("train_total", "val_total"):
        history = client.get_metric_history(run.info.run_id, term)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]
        logged = [m.value for m in sorted(history, key=lambda m: m.step)]
        np.testing.assert_allclose(logged, [h[term] for h in est.history_])
    assert run.data.metrics["val_reconstruction_mse"] == pytest.approx(est.metrics_["val_reconstruction_mse"])
    assert run.data.metrics["epochs_run"] == 3
    assert client.list_artifacts(run.info.run_id) == []  # the model is logged when saved
    saved = est.save(tmp_path / "model")
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert logged == {f"model/{p.name}" for p in saved.iterdir()} and "model/model.json" in logged
    local = client.download_artifacts(run.info.run_id, "model/model.json", str(tmp_path / "dl"))
    assert json.loads(open(local).read()) == json.loads((saved / "model.json").read_text())


def test_without_a_uri_nothing_is_imported_or_logged(tmp_path, monkeypatch):
    X = np.random.default_rng(0).normal(size=(40, 4))
    est = Autoencoder("ae", 2, **FAST).fit(X)
    assert not hasattr(est, "tracking_run_id_")
    est.save(tmp_path / "m")
    assert "tracking_uri" not in json.loads((tmp_path / "m" / "model.json").read_text())["estimator"]
    assert "tracking_uri" in est.get_params()


def test_a_missing_mlflow_is_one_sentence(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    X = np.random.default_rng(0).normal(size=(40, 4))
    with pytest.raises(InputError, match=r"pip install 'latentforge\[mlflow\]'"):
        Autoencoder("ae", 2, tracking_uri="file:///nowhere", **FAST).fit(X)


def test_a_failed_fit_is_a_failed_run(store):
    uri, client = store
    X = np.random.default_rng(0).normal(size=(40, 4))

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Autoencoder("ae", 2, tracking_uri=f"{uri}#failing", **FAST).fit(X, on_epoch=stop)
    (run,) = _runs(client, "failing")
    assert run.info.status == "FAILED" and "KeyboardInterrupt" in run.data.tags["error"]
    assert len(client.get_metric_history(run.info.run_id, "train_total")) == 1  # logged before the callback


def test_compare_logs_one_nested_run_per_model_and_seed(store, tmp_path, monkeypatch):
    from latentforge.workflows import compare

    # the report's figures are tested in test_compare.py; here a stand-in keeps the test fast
    monkeypatch.setattr(compare, "write_run_report", lambda out, *a, **k: (out / "report.html").write_text("<p>"))
    uri, client = store
    rng = np.random.default_rng(0)
    table = tmp_path / "t.csv"
    pd.DataFrame({**{f"x{i}": rng.normal(size=80) for i in range(4)}, "kind": rng.integers(0, 2, 80)}).to_csv(table)
    config = {"dataset": str(table), "label": "kind", "models": [{"model": "vae"}, {"model": "vae", "name": "vae-b4",
              "beta": 4.0}], "seeds": [0], "shared": {"latent_dim": 2, "epochs": 2, "hidden": [8], "batch_size": 32},
              "two_sample_permutations": 10}
    board = compare.run_compare(config, tmp_path / "cmp", progress=False, tracking_uri=f"{uri}#cmp")
    runs = _runs(client, "cmp")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["mlflow.runName"]: r for r in runs if r.data.tags.get("mlflow.parentRunId")}
    assert set(children) == {"vae-seed0", "vae-b4-seed0"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())
    assert parent.info.status == "FINISHED" and parent.data.params["models"] == "vae,vae-b4"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"leaderboard.csv", "report.html"}
    for name, run in children.items():
        result = json.loads((tmp_path / "cmp" / "runs" / f"{name}.json").read_text())
        assert run.info.status == "FINISHED" and run.data.params["model"] == result["model"]
        assert run.data.params["seed"] == "0"
        history = client.get_metric_history(run.info.run_id, "train_total")
        assert len(history) == len(result["history"]) == 2
        for key, value in result["metrics"].items():
            if isinstance(value, float) and np.isfinite(value):
                assert run.data.metrics[key] == pytest.approx(value), key
        logged = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert {f"model/{p.name}" for p in (tmp_path / "cmp" / "runs" / name / "model").iterdir()} == logged
    assert list(board["model"]) == ["vae", "vae-b4"]
    assert children["vae-b4-seed0"].data.params["beta"] == "4.0"
