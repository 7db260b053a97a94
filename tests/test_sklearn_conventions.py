"""scikit-learn's conventions (issue 13.5): ``n_features_in_`` counts the input's columns,
``get_feature_names_out`` names the codes, ``set_output(transform="pandas")`` works, and
scikit-learn's own ``check_estimator`` checks pass on a tiny configuration.

Checks skipped, and why (each is named in ``SKIPPED`` and never run):

- ``check_methods_subset_invariance`` (``Autoencoder``): it compares a one-row call with the
  batched call at ``atol=1e-7``; the networks compute in float32, where a one-row matrix product
  may round differently from a batched one by one unit in the last place (about 1e-7 relative,
  measured up to 4e-7 on the anomaly score). :func:`test_methods_are_row_wise` checks the same
  property at float32 resolution instead.
- ``check_fit_score_takes_y`` and ``check_n_features_in_after_fitting`` for ``AnomalyDetector``: its constructor parameter ``score`` (which
  anomaly score to use) takes the name these checks expect for a ``score(X, y)`` method, so they call
  a string. Renaming a public parameter is out of scope; its ``n_features_in_`` is tested below.
- The legacy input-validation checks are not run for ``AnomalyDetector`` and
  ``SparseAutoencoder`` (``legacy=False``: the API checks only). The detector validates its input
  through the ``Autoencoder``, which passes them all; the SAE takes activations ``(n_tokens, d)``
  (arrays, tensors and activation stores) and keeps its own checks (tests/test_sae.py). Run
  with ``legacy=True``, the detector also fails ``check_pipeline_consistency`` (the same ``score``
  name), ``check_estimators_nan_inf`` (it accepts NaN as missing values, as the autoencoder does)
  and ``check_methods_subset_invariance`` (float32, above).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from latentforge import AnomalyDetector, Autoencoder
from latentforge.errors import InputError
from latentforge.sae import SparseAutoencoder

TINY = dict(epochs=2, batch_size=32, hidden=(8,), verbose=False, threads=1)
SUBSET = "float32 networks: one-row and batched products differ by ~1 ulp, over this check's atol=1e-7"
SCORE_PARAM = "the parameter `score` (which anomaly score) shadows the score(X, y) method these checks call"
SKIPPED = {
    "Autoencoder": {"check_methods_subset_invariance": SUBSET},
    "AnomalyDetector": {"check_fit_score_takes_y": SCORE_PARAM, "check_n_features_in_after_fitting": SCORE_PARAM},
    "SparseAutoencoder": {},
}


def _estimators():
    return [
        (Autoencoder("ae", 2, **TINY), True),
        (AnomalyDetector("ae", latent_dim=2, **TINY), False),
        (SparseAutoencoder("topk", n_features=8, k=2, epochs=1, batch_size=32, verbose=False, threads=1,
                           device="cpu"), False),
    ]


def _name(check):
    from functools import partial

    while not isinstance(check, partial) and hasattr(check, "__wrapped__"):
        check = check.__wrapped__
    inner = check.func if isinstance(check, partial) else check
    return inner.func.__name__ if isinstance(inner, partial) else inner.__name__


def _checks():
    for est, legacy in _estimators():
        name = type(est).__name__
        for estimator, check in estimator_checks_generator(est, legacy=legacy, expected_failed_checks=SKIPPED[name],
                                                           mark="skip"):
            yield pytest.param(estimator, check, id=f"{name}-{_name(check)}")


@pytest.mark.parametrize("estimator,check", list(_checks()))
def test_scikit_learn_check(estimator, check):
    """Each scikit-learn check asserts itself: it raises (AssertionError, ValueError...) when the
    estimator breaks the convention it checks, which fails this test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # latent_dim ≥ features on the checks' tiny tables, etc.
        check(estimator)


def test_every_skipped_check_exists():
    """A name in SKIPPED that scikit-learn does not generate would skip nothing and hide a typo."""
    for est, legacy in _estimators():
        generated = {_name(check) for _, check in estimator_checks_generator(est, legacy=legacy)}
        missing = set(SKIPPED[type(est).__name__]) - generated
        assert not missing, (type(est).__name__, missing)


# -- the conventions themselves ------------------------------------------------------------------
def test_n_features_in_counts_input_columns_not_preprocessed_features(mixed_frame):
    est = Autoencoder("ae", 2, id_columns=("customer_id",), label="churn", **TINY).fit(mixed_frame)
    # 6 input columns (id and label included, as feature_names_in_ lists them) ...
    assert est.n_features_in_ == mixed_frame.shape[1] == len(est.feature_names_in_) == 6
    # ... while the network sees more: one-hot city, a missing-value indicator for income
    assert est.preprocessor_.n_features > 4 and est.features(mixed_frame).shape[1] == est.preprocessor_.n_features
    det = AnomalyDetector("ae", latent_dim=2, id_columns=("customer_id",), label="churn", **TINY).fit(mixed_frame)
    assert det.n_features_in_ == 6 and list(det.feature_names_in_) == list(mixed_frame.columns)


def test_arrays_have_no_feature_names_and_a_wrong_width_is_one_sentence(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 5))
    est = Autoencoder("ae", 2, **TINY).fit(X)
    assert est.n_features_in_ == 5 and not hasattr(est, "feature_names_in_")
    with pytest.raises(InputError, match="X has 4 features, but Autoencoder is expecting 5 features as input"):
        est.transform(X[:, :4])
    again = Autoencoder.load(est.save(tmp_path / "m"))
    assert again.n_features_in_ == 5 and not hasattr(again, "feature_names_in_")


def test_images_count_pixels(digits):
    est = Autoencoder("ae", 2, **TINY).fit(digits.X[:64])
    assert est.n_features_in_ == 64


def test_feature_names_out_and_pandas_output(mixed_frame):
    est = Autoencoder("ae", 3, id_columns=("customer_id",), label="churn", **TINY).fit(mixed_frame)
    names = est.get_feature_names_out()
    assert isinstance(names, np.ndarray) and names.dtype == object and list(names) == ["z0", "z1", "z2"]
    assert list(est.get_feature_names_out(list(mixed_frame.columns))) == ["z0", "z1", "z2"]
    with pytest.raises(InputError, match="input_features"):
        est.get_feature_names_out(["a", "b"])
    plain = est.transform(mixed_frame)
    frame = est.set_output(transform="pandas").transform(mixed_frame)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["z0", "z1", "z2"]
    assert frame.index.equals(mixed_frame.index)
    np.testing.assert_array_equal(frame.to_numpy(), plain)
    assert isinstance(est.set_output(transform="default").transform(mixed_frame), np.ndarray)


def test_pandas_output_in_a_pipeline_and_for_the_sae():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = pd.DataFrame(np.random.default_rng(1).normal(size=(60, 4)), columns=list("abcd"))
    pipe = make_pipeline(StandardScaler(), Autoencoder("ae", 2, **TINY)).set_output(transform="pandas")
    out = pipe.fit_transform(X)
    assert list(out.columns) == ["z0", "z1"] and list(pipe.get_feature_names_out()) == ["z0", "z1"]
    A = np.random.default_rng(2).standard_normal((256, 6)).astype(np.float32)
    sae = SparseAutoencoder("topk", n_features=12, k=2, batch_size=64, verbose=False, device="cpu").fit(A)
    assert list(sae.get_feature_names_out()) == [f"f{i}" for i in range(12)] and sae.n_features_in_ == 6
    codes = sae.set_output(transform="pandas").transform(A)
    assert isinstance(codes, pd.DataFrame) and codes.shape == (256, 12) and codes.columns[0] == "f0"


def test_methods_are_row_wise():
    """The property of check_methods_subset_invariance, at float32 resolution."""
    X = 3 * np.random.default_rng(0).uniform(size=(20, 3))
    det = AnomalyDetector("ae", latent_dim=2, **TINY).fit(X)
    for method in (det.autoencoder_.transform, det.autoencoder_.score_samples, det.decision_function):
        whole = method(X)
        rows = np.concatenate([method(X[i:i + 1]) for i in range(len(X))])
        np.testing.assert_allclose(rows, whole, rtol=1e-5, atol=1e-6, err_msg=method.__name__)


@pytest.mark.parametrize("bad,match", [
    (lambda X: X[:, 0], "Reshape your data"),
    (lambda X: X[:, :0], "0 feature"),
    (lambda X: X.astype(complex), "Complex data"),
    (lambda X: __import__("scipy.sparse", fromlist=["x"]).csr_matrix(X), "sparse input"),
])
def test_bad_arrays_are_one_sentence(bad, match):
    X = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(InputError, match=match):
        Autoencoder("ae", 2, **TINY).fit(bad(X))


def test_object_arrays_of_numbers_are_numbers():
    X = np.random.default_rng(0).normal(size=(30, 3))
    a = Autoencoder("ae", 2, **TINY).fit(X.astype(object)).transform(X)
    np.testing.assert_array_equal(a, Autoencoder("ae", 2, **TINY).fit(X).transform(X))
    bad = X.astype(object)
    bad[0, 0] = "x"
    with pytest.raises(TypeError, match="must hold numbers"):
        Autoencoder("ae", 2, **TINY).fit(bad)
