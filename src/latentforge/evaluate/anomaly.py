"""Anomaly / out-of-distribution scoring and its evaluation.

Sign convention, everywhere in latentforge: **a higher score means more anomalous** (the
reconstruction error of ``Autoencoder.score_samples``, the Mahalanobis distance, their combination).
scikit-learn's detectors use the opposite sign; negate their ``score_samples`` before mixing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_matrix, as_vector, same_rows, same_width
from ._checks import MissingLabelsError


def _outlier_flags(truth: np.ndarray) -> np.ndarray:
    """``is_outlier`` as booleans: booleans, integers or floats that are all 0 or 1 (``0.``/``1.``
    as pandas gives a 0/1 column with gaps filled), or objects holding those; anything else (2,
    0.5, NaN, "yes") is an InputError naming the first such value."""
    if truth.dtype.kind == "O":
        numeric = [isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) for v in truth]
        if all(numeric):
            truth = truth.astype(float)
    if truth.dtype.kind not in "biuf":
        bad = next((v for v in truth.tolist() if not isinstance(v, (bool, int, float))), truth.reshape(-1)[0])
        raise InputError(f"is_outlier must be booleans or 0/1 (1 = outlier), got {bad!r}.")
    ok = (truth == 0) | (truth == 1)
    if not ok.all():
        bad = truth[int((~ok).argmax())]
        raise InputError(f"is_outlier must be booleans or 0/1 (1 = outlier), got {bad.item()!r} at position "
                         f"{int((~ok).argmax())}.")
    return truth.astype(bool)


def _scores_and_truth(scores: Any, is_outlier: Any) -> tuple[np.ndarray, np.ndarray]:
    s = as_vector(scores, "scores")
    if is_outlier is None:
        raise MissingLabelsError("is_outlier is None: this metric needs to know which rows are outliers.")
    truth = np.asarray(is_outlier).reshape(-1)
    same_rows(s, truth, "scores", "is_outlier")
    truth = _outlier_flags(truth)
    if truth.all() or not truth.any():
        raise MissingLabelsError("is_outlier must contain both outliers and inliers.")
    return s, truth


def auroc(scores: np.ndarray, is_outlier: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) for detecting ``is_outlier``.

    The probability that a random outlier scores higher than a random inlier (ties count 1/2):
    1 = perfect, 0.5 = chance, below 0.5 = the score has the wrong sign. Computed with
    scikit-learn's ``roc_auc_score``.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    is_outlier : array-like of shape (n,)
        Booleans or 0/1 (integers or floats: ``0.``/``1.`` count), 1 = outlier; both classes must occur.

    Returns
    -------
    float
        The AUROC, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``is_outlier`` is None or holds a single class.
    InputError
        When the lengths differ or ``is_outlier`` is not boolean / 0-1.

    Examples
    --------
    >>> from latentforge.evaluate import auroc
    >>> auroc([0.1, 0.9], [False, True])
    1.0
    >>> auroc([0.1, 0.9, 0.5, 0.5], [0, 1, 0, 1])      # a tie counts one half
    0.875
    """
    from sklearn.metrics import roc_auc_score

    s, truth = _scores_and_truth(scores, is_outlier)
    return float(roc_auc_score(truth, s))


def auprc(scores: np.ndarray, is_outlier: np.ndarray) -> float:
    """Area under the precision-recall curve with outliers as the positive class (average precision).

    scikit-learn's ``average_precision_score``: Σ_n (R_n - R_{n-1}) P_n over score thresholds.
    Chance level is the outlier fraction, so report it next to that.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Anomaly scores, higher = more anomalous.
    is_outlier : array-like of shape (n,)
        Booleans or 0/1, 1 = outlier; both classes must occur.

    Returns
    -------
    float
        The average precision, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``is_outlier`` is None or holds a single class.
    InputError
        When the lengths differ or ``is_outlier`` is not boolean / 0-1.

    Examples
    --------
    >>> from latentforge.evaluate import auprc
    >>> auprc([0.1, 0.2, 0.9], [0, 0, 1])
    1.0
    >>> auprc([0.9, 0.2, 0.1], [0, 0, 1])            # the outlier ranked last: precision 1/3
    0.333...
    """
    from sklearn.metrics import average_precision_score

    s, truth = _scores_and_truth(scores, is_outlier)
    return float(average_precision_score(truth, s))


def mahalanobis_scores(Z_train: np.ndarray, Z: np.ndarray, covariance: str = "ledoit_wolf") -> np.ndarray:
    """Mahalanobis distance of each row of Z to the distribution of the (normal) training codes.

    ``sqrt((z - m)ᵀ Σ⁻¹ (z - m))`` with m the mean of ``Z_train`` and Σ its covariance. Higher =
    farther from the training codes = more anomalous.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, d)
        Codes of normal training rows (at least 2).
    Z : array-like of shape (n, d)
        Codes to score.
    covariance : {"ledoit_wolf", "empirical"}, default="ledoit_wolf"
        ``"ledoit_wolf"`` is shrunk towards a scaled identity, so it stays invertible with few
        rows or collapsed dimensions; ``"empirical"`` is the maximum likelihood estimate
        (ddof = 0).

    Returns
    -------
    ndarray of shape (n,)
        The distance of each row of ``Z``.

    Raises
    ------
    InputError
        When the widths differ, ``Z_train`` has fewer than 2 rows, ``covariance`` is unknown, or
        the empirical covariance is singular.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import mahalanobis_scores
    >>> Z_train = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    >>> mahalanobis_scores(Z_train, [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], covariance="empirical").round(3)
    array([0.   , 1.414, 1.414])
    """
    from sklearn.covariance import EmpiricalCovariance, LedoitWolf

    train, query = as_matrix(Z_train, "Z_train"), as_matrix(Z, "Z")
    same_width(train, query, "Z_train", "Z")
    if len(train) < 2:
        raise InputError(f"Z_train needs at least 2 rows to estimate a covariance, got {len(train)}.")
    if covariance == "ledoit_wolf":
        est = LedoitWolf().fit(train)
    elif covariance == "empirical":
        est = EmpiricalCovariance().fit(train)
    else:
        raise InputError(f"covariance must be 'ledoit_wolf' or 'empirical', got {covariance!r}.")
    centred = query - est.location_
    try:
        solved = np.linalg.solve(est.covariance_, centred.T).T
    except np.linalg.LinAlgError:
        raise InputError("the empirical covariance of Z_train is singular; use covariance='ledoit_wolf'.") from None
    return np.sqrt(np.maximum((centred * solved).sum(axis=1), 0.0))


def _standardise(scores: np.ndarray, reference: np.ndarray, name: str) -> np.ndarray:
    std = reference.std()
    if not std > 0:
        raise InputError(f"{name} is constant on the training data, so it cannot be standardised.")
    return (scores - reference.mean()) / std


def combine_scores(
    recon: np.ndarray, maha: np.ndarray, recon_train: np.ndarray, maha_train: np.ndarray,
    weights: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Reconstruction error + latent Mahalanobis distance, each standardised on normal training data.

    ``w_r (recon - mean(recon_train)) / std(recon_train) + w_m (maha - mean(maha_train)) / std(maha_train)``
    [1]_: reconstruction misses outliers that are far from the training codes but still
    reconstructed well; the latent distance catches them. The training statistics come from
    normal rows only, so 0 is a typical inlier and each unit is one training standard deviation.
    Higher = more anomalous.

    Parameters
    ----------
    recon : array-like of shape (n,)
        Reconstruction errors of the rows to score.
    maha : array-like of shape (n,)
        Latent Mahalanobis distances of the same rows (:func:`mahalanobis_scores`).
    recon_train : array-like of shape (n_train,)
        Reconstruction errors of normal training rows; must not be constant.
    maha_train : array-like of shape (n_train,)
        Mahalanobis distances of normal training rows; must not be constant.
    weights : tuple of two floats, default=(1.0, 1.0)
        Weights (w_r, w_m) of the two standardised scores.

    Returns
    -------
    ndarray of shape (n,)
        The combined score of each row.

    Raises
    ------
    InputError
        When ``recon`` and ``maha`` differ in length, a training score is constant, or
        ``weights`` is not two finite numbers.

    References
    ----------
    .. [1] Denouden, T., Salay, R., Czarnecki, K., Abdelzad, V., Phan, B. and Vernekar, S.
       (2018). Improving reconstruction autoencoder out-of-distribution detection with
       Mahalanobis distance. arXiv:1812.02765.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import combine_scores
    >>> train = np.array([1.0, 2.0, 3.0])                  # mean 2, standard deviation 0.816
    >>> combine_scores([2.0, 2.0], [2.0, 4.0], train, train).round(3)
    array([0.   , 2.449])
    """
    r, m = as_vector(recon, "recon"), as_vector(maha, "maha")
    same_rows(r, m, "recon", "maha")
    rt, mt = as_vector(recon_train, "recon_train"), as_vector(maha_train, "maha_train")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (2,) or not np.isfinite(w).all():
        raise InputError(f"weights must be two finite numbers (reconstruction, Mahalanobis), got {weights!r}.")
    return w[0] * _standardise(r, rt, "recon_train") + w[1] * _standardise(m, mt, "maha_train")
