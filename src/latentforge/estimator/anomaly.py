"""Anomaly detection with an autoencoder: reconstruction error, latent Mahalanobis distance, or both.

Conventions follow PyOD: every score is an **outlier score, higher = more anomalous**
(``decision_function``, ``score_samples`` and ``decision_scores_`` agree), ``predict`` returns
1 for outliers and 0 for inliers, and the threshold is the ``1 - contamination`` quantile of the
training scores. scikit-learn's outlier detectors use the opposite signs (``score_samples``
higher = more normal, ``predict`` → +1 inlier / −1 outlier): use ``-detector.score_samples(X)``
and ``1 - 2 * detector.predict(X)`` to compare with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

from ..errors import InputError, unknown_name_error
from ..evaluate import combine_scores, mahalanobis_scores
from .autoencoder import Autoencoder
from .base import ExtraParamsMixin, extra_params_property, require_fitted

SCORES = ("recon", "mahalanobis", "combined", "expected_recon", "predictive_variance")
UNCERTAINTY_SCORES = ("expected_recon", "predictive_variance")  # Bayesian models (bae) only


class AnomalyDetector(ExtraParamsMixin, BaseEstimator):
    """Fit on (mostly) normal data, then score new rows.

    Parameters
    ----------
    model : str or Autoencoder, default "ae"
        A model name (a new ``Autoencoder`` is built with ``**autoencoder_params``) or an
        ``Autoencoder`` instance (cloned and fitted).
    score : {"recon", "mahalanobis", "combined", "expected_recon", "predictive_variance"}, default "combined"
        ``"recon"``: reconstruction error; ``"mahalanobis"``: distance of the code to the training
        codes (Ledoit-Wolf covariance); ``"combined"``: both standardised on the training data and
        added (Denouden et al. 2018); for Bayesian models (``bae``) ``"expected_recon"`` /
        ``"predictive_variance"`` across posterior samples.
    contamination : float, default 0.1
        Expected share of outliers in the training data; sets ``threshold_``.
    **autoencoder_params
        Passed to the ``Autoencoder``.

    Attributes
    ----------
    autoencoder_ : Autoencoder
        The fitted autoencoder.
    train_codes_, train_errors_ : ndarray
        Codes and reconstruction errors of the training rows (the reference statistics).
    train_maha_ : ndarray
        Mahalanobis scores of the training codes.
    decision_scores_ : ndarray of shape (n_train,)
        Outlier scores of the training rows (PyOD's attribute).
    threshold_ : float
        The ``1 - contamination`` quantile of ``decision_scores_``.
    labels_ : ndarray of shape (n_train,)
        1 for training rows above the threshold, else 0.
    n_features_in_ : int
        Number of input columns seen at fit time (the autoencoder's).
    feature_names_in_ : ndarray of str
        Their names, when X had names (a DataFrame, a CSV or Parquet file).

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge import AnomalyDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> det = AnomalyDetector("ae", latent_dim=2, epochs=2, hidden=(16,), verbose=False).fit(X)
    >>> det.predict(X[:3] + 50.0).tolist()          # far from the training data: outliers
    [1, 1, 1]
    """

    _extra_params = "autoencoder_params"
    autoencoder_params = extra_params_property("autoencoder_params", "Parameters passed to the ``Autoencoder``.")

    def __init__(self, model: str | Autoencoder = "ae", score: str = "combined", contamination: float = 0.1,
                 **autoencoder_params: Any):
        self.model, self.score, self.contamination = model, score, contamination
        self.autoencoder_params = dict(autoencoder_params)

    def _validate(self) -> None:
        if self.score not in SCORES:
            raise unknown_name_error("anomaly score", self.score, SCORES)
        if not 0 < self.contamination < 0.5:
            raise InputError(f"contamination must lie in (0, 0.5), got {self.contamination!r}.")

    def fit(self, X: Any, y: Any = None) -> "AnomalyDetector":
        """Train the autoencoder on X and take reference statistics and the threshold from X.

        X: anything :meth:`Autoencoder.fit` takes, paths included (CSV, Parquet, ``.npy``, image
        folders, built-in dataset names); ``decision_function``, ``score_samples`` and
        ``predict`` take the same.
        """
        self._validate()
        if isinstance(self.model, Autoencoder):
            est = clone(self.model).set_params(**self.autoencoder_params)
        else:
            est = Autoencoder(self.model, **self.autoencoder_params)
        self.autoencoder_ = est.fit(X)
        self._set_reference(est.transform(X), est.score_samples(X), X)
        return self

    @classmethod
    def from_autoencoder(cls, autoencoder: Autoencoder, score: str = "combined",
                         contamination: float = 0.1) -> "AnomalyDetector":
        """A detector around an already fitted model, using the training codes and errors saved with it."""
        require_fitted(autoencoder)
        det = cls(autoencoder, score=score, contamination=contamination)
        det._validate()
        det.autoencoder_ = autoencoder
        if score in UNCERTAINTY_SCORES:
            raise InputError(f"score {score!r} needs the training rows for its threshold: use "
                             f"AnomalyDetector(model, score={score!r}).fit(X) instead.")
        det._set_reference(autoencoder.train_codes_, autoencoder.train_errors_)
        return det

    def _set_reference(self, codes: np.ndarray, errors: np.ndarray, X: Any = None) -> None:
        self.n_features_in_ = self.autoencoder_.n_features_in_
        self.__dict__.pop("feature_names_in_", None)
        if hasattr(self.autoencoder_, "feature_names_in_"):
            self.feature_names_in_ = self.autoencoder_.feature_names_in_
        self.train_codes_, self.train_errors_ = np.asarray(codes, float), np.asarray(errors, float)
        self.train_maha_ = mahalanobis_scores(self.train_codes_, self.train_codes_)
        if self.score in UNCERTAINTY_SCORES:
            self.decision_scores_ = self.autoencoder_.score_samples(X, kind=self.score)
        else:
            self.decision_scores_ = self._combine(self.train_errors_, self.train_maha_)
        self.threshold_ = float(np.quantile(self.decision_scores_, 1 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)

    def _combine(self, errors: np.ndarray, maha: np.ndarray) -> np.ndarray:
        if self.score == "recon":
            return errors
        if self.score == "mahalanobis":
            return maha
        return combine_scores(errors, maha, self.train_errors_, self.train_maha_)

    def decision_function(self, X: Any) -> np.ndarray:
        """Outlier score per row: higher = more anomalous."""
        require_fitted(self)
        est = self.autoencoder_
        if self.score in UNCERTAINTY_SCORES:
            return est.score_samples(X, kind=self.score)
        errors = est.score_samples(X) if self.score != "mahalanobis" else None
        maha = mahalanobis_scores(self.train_codes_, est.transform(X)) if self.score != "recon" else None
        return self._combine(errors, maha)

    score_samples = decision_function

    def predict(self, X: Any) -> np.ndarray:
        """1 for outliers (score above ``threshold_``), 0 for inliers (PyOD's convention)."""
        return (self.decision_function(X) > self.threshold_).astype(int)
