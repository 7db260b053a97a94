"""The scikit-learn-style estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from latentforge import Autoencoder
from latentforge.errors import InputError

from conftest import FAST


@pytest.fixture(scope="module")
def small_digits():
    from latentforge.data import load_builtin

    ds = load_builtin("digits")
    return ds.X[:300], ds.y[:300]


def test_params_protocol_and_clone_keep_model_hyperparameters():
    est = Autoencoder("vae", 3, epochs=2, beta=4.0)
    params = est.get_params()
    assert params["beta"] == 4.0 and params["model"] == "vae" and params["latent_dim"] == 3
    copy = clone(est)
    assert copy.get_params() == params and copy is not est
    est.set_params(beta=2.0, epochs=5)
    assert est.get_params()["beta"] == 2.0
    assert est.epochs == 5


def test_pipeline_with_a_classifier(small_digits):
    X, y = small_digits
    flat = X.reshape(len(X), -1)
    pipe = Pipeline([("ae", Autoencoder("ae", 8, **FAST)), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(flat, y)
    assert pipe.score(flat, y) > 0.3  # far above chance (0.1) even after 3 epochs


@pytest.mark.parametrize("model", ["ae", "vae", "swae"])
def test_images_end_to_end(small_digits, model):
    X, y = small_digits
    est = Autoencoder(model, 4, **FAST).fit(X, y)
    Z = est.transform(X)
    assert Z.shape == (300, 4) and np.isfinite(Z).all()
    rec = est.reconstruct(X[:5])
    assert rec.shape == (5, 1, 8, 8) and rec.min() >= 0 and rec.max() <= 1
    np.testing.assert_allclose(est.inverse_transform(Z[:5]), rec, atol=1e-6)
    samples = est.sample(7, seed=0)
    assert samples.shape == (7, 1, 8, 8)
    np.testing.assert_array_equal(samples, est.sample(7, seed=0))
    np.testing.assert_allclose(est.score_samples(X[:5]), ((rec - X[:5]) ** 2).reshape(5, -1).mean(1), rtol=1e-5)
    assert est.sampler_kind_ == ("gmm" if model == "ae" else "prior")


def test_tables_end_to_end(mixed_frame):
    est = Autoencoder("swae", 2, id_columns=("customer_id",), label="churn", **FAST).fit(mixed_frame)
    Z = est.transform(mixed_frame)
    assert Z.shape == (120, 2)
    rec = est.reconstruct(mixed_frame)
    assert list(rec.columns) == ["age", "income", "city", "member"]
    assert set(rec["city"]) <= {"paris", "lyon", "nice", "<other>"}
    gen = est.sample(4)
    assert isinstance(gen, pd.DataFrame) and len(gen) == 4
    assert list(est.feature_names_in_) == list(mixed_frame.columns)


def test_score_samples_flags_outliers(small_digits):
    X, _ = small_digits
    est = Autoencoder("ae", 8, epochs=20, batch_size=32, verbose=False).fit(X)
    noise = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    # higher = more anomalous: uniform noise reconstructs far worse than held-in digits
    assert est.score_samples(noise).mean() > 2 * est.score_samples(X).mean()


def test_same_seed_same_model(small_digits):
    X, _ = small_digits
    a = Autoencoder("swae", 4, **FAST, seed=1).fit(X).transform(X)
    b = Autoencoder("swae", 4, **FAST, seed=1).fit(X).transform(X)
    c = Autoencoder("swae", 4, **FAST, seed=2).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_errors_and_warnings(small_digits, mixed_frame):
    X, _ = small_digits
    with pytest.raises(NotFittedError):
        Autoencoder().transform(X)
    with pytest.raises(InputError, match="did you mean 'vae'"):
        Autoencoder("vea", **FAST).fit(X)
    with pytest.raises(InputError, match="did you mean 'beta'"):
        Autoencoder("vae", betta=3, **FAST).fit(X)
    with pytest.raises(InputError, match="at least 2 rows"):
        Autoencoder("ae", 2, **FAST).fit(mixed_frame.head(1))
    with pytest.warns(UserWarning, match="latent_dim=70 is not smaller"):
        Autoencoder("ae", 70, **FAST).fit(X[:40])
    est = Autoencoder("ae", 2, **FAST).fit(X[:40])
    with pytest.raises(InputError, match="fitted on images"):
        est.transform(mixed_frame)
    with pytest.raises(InputError, match=r"codes must be shaped \(n, 2\)"):
        est.inverse_transform(np.zeros((3, 5)))


def test_progress_goes_to_stderr_and_stdout_stays_clean(small_digits, capsys):
    X, _ = small_digits
    Autoencoder("ae", 2, epochs=2, hidden=(16,), verbose=True).fit(X[:64])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "2/2" in captured.err and "reconstruction=" in captured.err


def test_samplers_by_name_and_log_likelihood(small_digits, tmp_path):
    X, _ = small_digits
    est = Autoencoder("vae", 3, **FAST).fit(X)
    assert est.sample_codes(5, seed=0).shape == (5, 3)
    for name in ("prior", "gmm", "dpmm"):
        assert est.sample(4, seed=0, sampler=name).shape == (4, 1, 8, 8)
    with pytest.raises(InputError, match="quantised"):
        est.sample(4, sampler="empirical")
    ll = est.log_likelihood(X[:20], n_samples=20)
    assert ll.shape == (20,) and (ll < 0).all()
    est.save(tmp_path / "m")
    loaded = Autoencoder.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.sample(3, seed=1, sampler="dpmm"), est.sample(3, seed=1, sampler="dpmm"))
    np.testing.assert_array_equal(loaded.log_likelihood(X[:5], 10), est.log_likelihood(X[:5], 10))
    ae = Autoencoder("ae", 3, **FAST).fit(X)
    with pytest.raises(InputError, match="has no prior"):
        ae.sample(2, sampler="prior")
    with pytest.raises(InputError, match="not a latent-variable model"):
        ae.log_likelihood(X[:3])


# -- paths in the API (issue 15.4): every method reads what the CLI reads -----------------------
@pytest.fixture(scope="module")
def table_files(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 90
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "a": rng.normal(size=n), "b": rng.normal(size=n),
                          "city": rng.choice(["x", "y", "z"], n), "y": rng.integers(0, 2, n)})
    root = tmp_path_factory.mktemp("paths")
    frame.to_csv(root / "t.csv", index=False)
    frame.to_parquet(root / "t.parquet", index=False)
    return root, frame


TABLE = dict(id_columns=("id",), label="y", **FAST)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_every_method_takes_a_path_like_the_same_frame(table_files, suffix):
    root, frame = table_files
    path = root / f"t.{suffix}"
    est = Autoencoder("vae", 2, **TABLE).fit(frame)
    for as_text in (str(path), path):
        np.testing.assert_array_equal(est.transform(as_text), est.transform(frame))
    np.testing.assert_array_equal(est.score_samples(path), est.score_samples(frame))
    np.testing.assert_array_equal(est.features(path), est.features(frame))
    pd.testing.assert_frame_equal(est.reconstruct(path), est.reconstruct(frame))
    np.testing.assert_array_equal(est.log_likelihood(path, n_samples=4), est.log_likelihood(frame, n_samples=4))
    np.testing.assert_array_equal(est.fit_transform(path), Autoencoder("vae", 2, **TABLE).fit(path).transform(path))
    from latentforge import AnomalyDetector

    det = AnomalyDetector.from_autoencoder(est)
    np.testing.assert_array_equal(det.decision_function(path), det.decision_function(frame))
    np.testing.assert_array_equal(det.predict(path), det.predict(frame))


def test_fitting_a_csv_or_a_parquet_path_gives_the_same_model(table_files):
    root, frame = table_files
    a = Autoencoder("ae", 2, **TABLE).fit(root / "t.csv")
    b = Autoencoder("ae", 2, **TABLE).fit(str(root / "t.parquet"))
    np.testing.assert_array_equal(a.transform(frame), b.transform(frame))
    assert a.n_features_in_ == 5 and list(a.feature_names_in_) == list(frame.columns)
    from latentforge import AnomalyDetector

    da = AnomalyDetector("ae", latent_dim=2, **TABLE).fit(root / "t.csv")
    db = AnomalyDetector("ae", latent_dim=2, **TABLE).fit(root / "t.parquet")
    np.testing.assert_array_equal(da.decision_scores_, db.decision_scores_)
    assert da.n_features_in_ == 5


def test_built_in_names_and_npz_archives_load_as_on_the_command_line(tmp_path):
    from latentforge.data import load_builtin

    wine = load_builtin("wine")
    by_name = Autoencoder("ae", 2, **FAST).fit("wine")
    np.testing.assert_array_equal(by_name.transform("wine"), by_name.transform(wine.X))
    np.testing.assert_array_equal(by_name.transform(wine.X), Autoencoder("ae", 2, **FAST).fit(wine).transform(wine.X))
    X = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=X)
    est = Autoencoder("ae", 2, **FAST).fit(X)
    np.testing.assert_array_equal(est.transform(tmp_path / "x.npz"), est.transform(X))


@pytest.mark.parametrize("method", ["fit", "transform", "score_samples", "reconstruct", "features"])
def test_a_missing_path_is_one_sentence_naming_it(tmp_path, method):
    est = Autoencoder("ae", 2, **FAST)
    if method != "fit":
        est.fit(np.random.default_rng(0).normal(size=(30, 3)))
    for missing in (tmp_path / "absent.csv", tmp_path / "absent.npz", tmp_path / "no" / "dir"):
        with pytest.raises(InputError, match=f"file not found: {missing}"):
            getattr(est, method)(missing)
