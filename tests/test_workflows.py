"""latentforge.workflows: the one evaluation of a fitted estimator, and the comparison's settings
and data handling (loaded once, typed config)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from latentforge import Autoencoder
from latentforge.data import Dataset, load_builtin, make_shapes, split_dataset
from latentforge.errors import InputError
from latentforge.evaluate import (
    generation_sw,
    knn_accuracy,
    linear_probe_accuracy,
    linear_probe_cv_accuracy,
    retrieval_map_at_k,
)
from latentforge.workflows import CompareConfig, evaluate_estimator, load_compare_config, run_compare

FAST = dict(latent_dim=3, epochs=2, hidden=(16,), verbose=False)


@pytest.fixture(scope="module")
def wine():
    train, _, test = split_dataset(load_builtin("wine"), 0.2, 0.0, seed=0)
    return Autoencoder("vae", **FAST).fit(train), train, test


def test_with_a_training_split_downstream_metrics_go_train_to_test(wine):
    est, train, test = wine
    metrics, details = evaluate_estimator(est, test, train, two_sample_permutations=10)
    Z_train, Z_test = est.transform(train.X), est.transform(test.X)
    features = est.features(test.X)
    # independent references: the metric functions called by hand, and the MSE from its definition
    assert metrics["recon_mse"] == pytest.approx(np.mean((est.features(est.reconstruct(test.X)) - features) ** 2), rel=1e-5)
    assert metrics["probe_acc"] == linear_probe_accuracy(Z_train, train.y, Z_test, test.y)
    assert metrics["knn_acc"] == knn_accuracy(Z_train, train.y, Z_test, test.y)
    assert metrics["gen_sw"] == pytest.approx(generation_sw(est.features(est.sample(len(test), seed=0)), features))
    assert "probe_cv_acc" not in metrics and "mean_numeric_rmse" in metrics and metrics["kl_total"] > 0
    np.testing.assert_allclose(details["Z_test"], Z_test)
    # tables keep every test row (up to 1,000) for the report's scatter, with the reference features
    assert details["reconstructions"].shape == details["test_features"].shape == features.shape
    assert set(details["bars"]) == {"KL per dimension (nats)", "activity (variance of the mean)"}
    assert any(k.startswith("RMSE ") for k in details["column_errors"])


def test_skipped_groups_carry_their_reasons(wine):
    est, train, test = wine
    metrics, _ = evaluate_estimator(est, test, train, two_sample_permutations=10)
    assert metrics["skipped"] == {"disentanglement": "the dataset has no ground-truth factors",
                                  "anomaly": "no one_class setting names the normal label"}
    unlabelled = Dataset("wine", test.X)
    metrics, _ = evaluate_estimator(est, unlabelled, Dataset("wine", train.X), two_sample_permutations=10)
    assert "needs labels" in metrics["skipped"]["downstream"] and "probe_acc" not in metrics
    assert "recon_mse" in metrics and "gen_sw" in metrics  # what needs no labels still ran


def test_without_a_training_split_the_probe_is_cross_validated(wine):
    est, train, test = wine
    metrics, _ = evaluate_estimator(est, test, two_sample_permutations=10, seed=3)
    Z_test = est.transform(test.X)
    assert metrics["probe_cv_acc"] == linear_probe_cv_accuracy(Z_test, test.y, seed=3)
    assert metrics["retrieval_map10"] == retrieval_map_at_k(Z_test, test.y, Z_test, test.y, k=10, exclude_self=True)
    assert "probe_acc" not in metrics and "knn_acc" not in metrics
    assert "training split" in metrics["skipped"]["k-NN accuracy"]
    with_train, _ = evaluate_estimator(est, test, train, two_sample_permutations=10)
    assert metrics["recon_mse"] == with_train["recon_mse"]  # the same test-split figures either way


def test_factors_one_class_and_codebooks_where_they_apply():
    train, _, test = split_dataset(make_shapes(n_samples=240, size=12), 0.25, 0.0, seed=0)
    normal = train.subset(np.flatnonzero(train.y == 0))
    est = Autoencoder("vq_vae", **{**FAST, "latent_dim": 4}, codebook_size=8, n_groups=2).fit(normal)
    metrics, details = evaluate_estimator(est, test, normal, one_class={"normal_label": 0},
                                          two_sample_permutations=10)
    assert {"mig", "dci_disentanglement", "anomaly_auroc", "codebook_perplexity"} <= set(metrics)
    assert "disentanglement" not in metrics["skipped"] and "anomaly" not in metrics["skipped"]
    assert 0 <= metrics["anomaly_auroc"] <= 1 and details["roc"]["fpr"][-1] == 1.0
    assert details["reconstructions"].shape == (10, 144)  # ten images for the grid
    assert "codebook_perplexity" not in evaluate_estimator(Autoencoder("ae", **FAST).fit(normal), test, normal,
                                                           two_sample_permutations=10)[0]


def test_the_dataset_is_loaded_once_per_comparison(tmp_path, monkeypatch):
    import latentforge.workflows.compare as compare

    calls = []
    real = compare.load_dataset

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(compare, "load_dataset", counting)
    config = {"dataset": "digits", "seeds": [0], "two_sample_permutations": 10,
              "shared": {"latent_dim": 2, "epochs": 1, "hidden": [8]}, "models": [{"model": "ae"}, {"model": "swae"}]}
    board = run_compare(config, tmp_path / "run", progress=False)
    assert len(calls) == 1 and (board["runs_ok"] == 1).all()
    # the report drew the image grids from that one load (reconstructions with the test images on top)
    assert "Reconstructions" in (tmp_path / "run" / "report.html").read_text()


def test_config_from_a_file_and_back_from_compare_json(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: wine\nseeds: [0, 2]\nshared: {latent_dim: 2}\n"
                                     "models:\n  - model: ae\n  - {model: vae, name: b4, beta: 4.0}\n")
    config = load_compare_config(tmp_path / "c.yaml")
    assert isinstance(config, CompareConfig) and config.seeds == [0, 2] and config.models[1]["beta"] == 4.0
    assert CompareConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert load_compare_config(config.to_dict()) == config
    with pytest.raises(InputError, match="put it at the top level"):
        CompareConfig(shared={"label": "target"})
    with pytest.raises(InputError, match="test_fraction must be a float, got 'a lot'"):
        CompareConfig.from_dict({"test_fraction": "a lot"})
    assert CompareConfig.from_dict({"test_fraction": "0.25", "seeds": ["1"]}).test_fraction == 0.25  # numbers as text
    with pytest.raises(InputError, match="not found"):
        load_compare_config(tmp_path / "missing.yaml")


def test_a_folder_that_is_not_a_comparison_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "mine" / "precious.csv")
    with pytest.raises(InputError, match="choose another path"):
        run_compare({"dataset": "wine", "models": [{"model": "ae"}]}, tmp_path / "mine", progress=False)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["precious.csv"]
