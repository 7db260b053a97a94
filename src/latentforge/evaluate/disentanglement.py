"""Disentanglement of codes against known generative factors: MIG, DCI and InfoMEC.

Inputs: codes ``Z`` (N, D) and ground-truth ``factors`` (N, K) of discrete levels (e.g. the
``shapes`` dataset's ``ds.factors``). Every score is in [0, 1], higher is better. Factors that
are constant over the rows carry no information and are left out; ``factors=None`` raises
:class:`~latentforge.evaluate.MissingLabelsError`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_matrix, positive_int
from ._checks import MissingLabelsError, factor_matrix


def _codes_and_factors(Z: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Codes as floats and the informative (non-constant) factor columns as level codes."""
    Z = as_matrix(Z, "Z")
    F = factor_matrix(factors, len(Z))
    F = F[:, F.max(axis=0) > 0]
    if F.shape[1] == 0:
        raise MissingLabelsError("every factor is constant over these rows, so there is nothing to disentangle.")
    return Z, F


def _entropy(levels: np.ndarray) -> float:
    """Shannon entropy (nats) of the empirical distribution of integer levels."""
    p = np.bincount(levels) / len(levels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def discretize(Z: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Each code column cut into ``n_bins`` equal-width bins over its range (0..n_bins-1).

    The discretisation of disentanglement_lib's MIG; a constant column maps to bin 0.

    Parameters
    ----------
    Z : array-like of shape (N, D)
        Codes.
    n_bins : int, default=20
        Bins per column.

    Returns
    -------
    ndarray of int64, shape (N, D)
        The bin of each entry, in ``0..n_bins-1``.

    Raises
    ------
    InputError
        When ``Z`` is not a finite array or ``n_bins`` is not a positive integer.

    Examples
    --------
    >>> from latentforge.evaluate import discretize
    >>> discretize([[0.0, 7.0], [0.5, 7.0], [1.0, 7.0]], n_bins=2)    # the maximum joins the last bin
    array([[0, 0],
           [1, 0],
           [1, 0]])
    """
    Z = as_matrix(Z, "Z")
    n_bins = positive_int(n_bins, "n_bins")
    lo, hi = Z.min(axis=0), Z.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.floor((Z - lo) / width * n_bins), 0, n_bins - 1).astype(np.int64)


def _mutual_info_matrix(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) between every column of A and every column of B (both discrete)."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(A[:, i], B[:, j]) for j in range(B.shape[1])] for i in range(A.shape[1])])


def mig(Z: np.ndarray, factors: np.ndarray, n_bins: int = 20) -> float:
    """Mutual information gap (MIG) [1]_, as in disentanglement_lib.

    Codes are discretised into ``n_bins`` equal-width bins per dimension; for each factor v_k,
    ``(I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k)`` where z_(1), z_(2) are the two code dimensions
    with the largest plug-in mutual information with v_k; MIG is the mean over factors.
    1 = each factor captured by exactly one code dimension, 0 = none or shared equally.

    Parameters
    ----------
    Z : array-like of shape (N, D)
        Codes, one row per input.
    factors : array-like of shape (N, K)
        Ground-truth factor levels (any discrete values; each column is re-coded to integers).
    n_bins : int, default=20
        Equal-width bins per code dimension (:func:`discretize`).

    Returns
    -------
    float
        MIG, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``factors`` is None or every factor is constant over the rows.
    InputError
        When the shapes disagree or an argument is invalid.

    References
    ----------
    .. [1] Chen, R. T. Q., Li, X., Grosse, R. and Duvenaud, D. (2018). Isolating sources of
       disentanglement in variational autoencoders. NeurIPS.

    Examples
    --------
    Codes that copy one factor each (and a third, constant dimension) are perfectly disentangled:

    >>> import numpy as np
    >>> from latentforge.evaluate import mig
    >>> factors = np.array([(i, j) for i in range(4) for j in range(4)] * 4)   # 2 factors, 4 levels each
    >>> Z = np.c_[factors, np.zeros(len(factors))]
    >>> round(mig(Z, factors), 6)
    1.0
    >>> round(mig(Z[:, [0, 0]], factors), 6)      # one factor missing, the other copied twice
    0.0
    """
    Z, F = _codes_and_factors(Z, factors)
    if Z.shape[1] < 2:
        raise InputError("MIG needs at least 2 code dimensions to form a gap, Z has 1.")
    mi = _mutual_info_matrix(discretize(Z, n_bins), F)            # (D, K)
    top = -np.sort(-mi, axis=0)
    entropy = np.array([_entropy(F[:, k]) for k in range(F.shape[1])])
    return float(np.mean((top[0] - top[1]) / entropy))


def _one_minus_entropy(P: np.ndarray) -> np.ndarray:
    """1 - H(row) / log(n_columns) for each row of non-negative weights (0 for an all-zero row)."""
    n = P.shape[1]
    if n == 1:
        return np.ones(len(P))
    totals = P.sum(axis=1, keepdims=True)
    p = np.divide(P, totals, out=np.zeros_like(P), where=totals > 0)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    score = 1.0 + (p * logs).sum(axis=1) / np.log(n)
    return np.where(totals[:, 0] > 0, score, 0.0)


def dci(
    Z: np.ndarray, factors: np.ndarray, model: str = "gbt", n_estimators: int = 30, test_fraction: float = 0.25,
    seed: int = 0,
) -> dict[str, float]:
    """Disentanglement, completeness and informativeness (DCI) [1]_.

    One classifier per factor predicts the factor level from all codes on a seeded random
    ``1 - test_fraction`` share of the rows; its feature importances form the column of the
    importance matrix R (D codes × K factors):

    - ``model="gbt"`` (default): ``GradientBoostingClassifier(n_estimators=30, max_depth=3)``,
      importances = impurity-based ``feature_importances_`` (disentanglement_lib uses the same
      model with 100 trees; 30 keeps it fast, pass ``n_estimators=100`` to match it);
    - ``model="linear"``: multinomial logistic regression on standardised codes, importances =
      mean absolute coefficient over classes (fast, but blind to non-monotone codes).

    disentanglement = Σ_i ρ_i (1 - H_K(R_i·)), with ρ_i = Σ_k R_ik / Σ R (each code's share of
    the importance); completeness = Σ_k ρ_k (1 - H_D(R_·k)); entropies with base K and D.
    informativeness = mean test accuracy of the classifiers over factors.

    Parameters
    ----------
    Z : array-like of shape (N, D)
        Codes, one row per input.
    factors : array-like of shape (N, K)
        Ground-truth factor levels (any discrete values; each column is re-coded to integers).
    model : {"gbt", "linear"}, default="gbt"
        Classifier per factor (see above).
    n_estimators : int, default=30
        Trees of the gradient-boosting model.
    test_fraction : float, default=0.25
        Share of the rows held out for informativeness, in (0, 1).
    seed : int, default=0
        Seed of the split and of the trees.

    Returns
    -------
    dict
        ``{"disentanglement": float, "completeness": float, "informativeness": float}``, each in
        [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``factors`` is None or every factor is constant over the rows.
    InputError
        When the shapes disagree or an argument is invalid.

    References
    ----------
    .. [1] Eastwood, C. and Williams, C. K. I. (2018). A framework for the quantitative
       evaluation of disentangled representations. ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import dci
    >>> factors = np.array([(i, j) for i in range(4) for j in range(4)] * 4)   # 2 factors, 4 levels each
    >>> scores = dci(factors.astype(float), factors)          # each code copies one factor
    >>> {name: round(value, 3) for name, value in scores.items()}
    {'disentanglement': 1.0, 'completeness': 1.0, 'informativeness': 1.0}
    """
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Z, F = _codes_and_factors(Z, factors)
    if model not in ("gbt", "linear"):
        raise InputError(f"model must be 'gbt' or 'linear', got {model!r}.")
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie in (0, 1), got {test_fraction!r}.")
    n_estimators = positive_int(n_estimators, "n_estimators")
    order = np.random.default_rng(seed).permutation(len(Z))
    n_test = int(round(test_fraction * len(Z)))
    if n_test < 1 or n_test >= len(Z) - 1:
        raise InputError(f"{len(Z)} rows are too few to split into training and test rows for DCI.")
    test, train = order[:n_test], order[n_test:]
    if model == "linear":
        Z = StandardScaler().fit(Z[train]).transform(Z)

    R = np.zeros((Z.shape[1], F.shape[1]))
    accuracy = []
    for k in range(F.shape[1]):
        y = F[:, k]
        if len(np.unique(y[train])) < 2:
            # the factor does not vary on the training rows: no model, predict the only level
            accuracy.append(float(np.mean(y[test] == y[train][0])))
            continue
        if model == "gbt":
            clf = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=3, random_state=seed)
            clf.fit(Z[train], y[train])
            R[:, k] = clf.feature_importances_
        else:
            clf = LogisticRegression(max_iter=1000).fit(Z[train], y[train])
            R[:, k] = np.abs(clf.coef_).mean(axis=0)
        accuracy.append(float(clf.score(Z[test], y[test])))

    total = R.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": float(np.mean(accuracy))}
    code_weight, factor_weight = R.sum(axis=1) / total, R.sum(axis=0) / total
    return {
        "disentanglement": float(code_weight @ _one_minus_entropy(R)),
        "completeness": float(factor_weight @ _one_minus_entropy(R.T)),
        "informativeness": float(np.mean(accuracy)),
    }


def _is_discrete(discrete_latents: bool | None, original: Any) -> bool:
    """The caller's choice, else whether the codes were given as integers (e.g. quantised latents)."""
    if discrete_latents is not None:
        return bool(discrete_latents)
    return np.asarray(original).dtype.kind in "iub"


def _normalised_range_score(ratios: np.ndarray, n: int) -> float:
    """(mean(max / sum) - 1/n) / (1 - 1/n): 1 when all mass sits on one entry, 0 when spread evenly."""
    if n == 1:
        return 1.0
    return float((np.mean(ratios) - 1.0 / n) / (1.0 - 1.0 / n))


def infomec(
    Z: np.ndarray, factors: np.ndarray, discrete_latents: bool | None = None, n_neighbors: int = 10, seed: int = 0,
) -> dict[str, float]:
    """InfoMEC [1]_: InfoM (modularity), InfoE (explicitness), InfoC (compactness).

    NMI[k, j] = I(v_k; z_j) / H(v_k) between factor v_k and latent z_j: the plug-in estimate for
    discrete latents (integer dtype, or ``discrete_latents=True``), otherwise the k-NN (KSG)
    estimator of ``sklearn.feature_selection.mutual_info_classif`` on standardised latents with
    ``n_neighbors`` and ``random_state=seed``, as in the official implementation. Latents whose
    range is below 1/20 of the largest range (discrete: constant latents) are inactive and pruned.

    - InfoM: mean over active latents of max_k NMI / Σ_k NMI, rescaled from [1/K, 1] to [0, 1];
      an active latent with no information about any factor counts as 0;
    - InfoC: mean over factors of max_j NMI / Σ_j NMI, rescaled from [1/D_active, 1] to [0, 1];
    - InfoE: mean over factors of ``1 - CE / H(v_k)``, where CE is the in-sample cross-entropy
      of a (nearly unregularised, C = 1e4) multinomial logistic regression from all standardised
      latents (one-hot for discrete latents) to the factor, and H(v_k) that of the best constant
      prediction; clipped to [0, 1].

    Parameters
    ----------
    Z : array-like of shape (N, D)
        Codes, one row per input.
    factors : array-like of shape (N, K)
        Ground-truth factor levels (any discrete values; each column is re-coded to integers).
    discrete_latents : bool, optional
        Treat the codes as discrete; default: whether ``Z`` has an integer or boolean dtype.
    n_neighbors : int, default=10
        Neighbours of the k-NN mutual information estimator (continuous latents).
    seed : int, default=0
        Seed of the k-NN estimator's jitter.

    Returns
    -------
    dict
        ``{"modularity": float, "explicitness": float, "compactness": float, "n_active": int}``;
        the three scores in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``factors`` is None or every factor is constant over the rows.
    InputError
        When the shapes disagree or an argument is invalid.

    References
    ----------
    .. [1] Hsu, K., Dorrell, W., Whittington, J. C. R., Wu, J. and Finn, C. (2023).
       Disentanglement via latent quantization. NeurIPS.

    Examples
    --------
    Integer codes that copy one factor each are modular and compact:

    >>> import numpy as np
    >>> from latentforge.evaluate import infomec
    >>> factors = np.array([(i, j) for i in range(4) for j in range(4)] * 4)   # 2 factors, 4 levels each
    >>> scores = infomec(factors, factors)
    >>> round(scores["modularity"], 6), round(scores["compactness"], 6), scores["n_active"]
    (1.0, 1.0, 2)
    >>> scores["explicitness"] > 0.95
    True
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    original = Z
    Z, F = _codes_and_factors(Z, factors)
    n_neighbors = positive_int(n_neighbors, "n_neighbors")
    discrete = _is_discrete(discrete_latents, original)
    entropy = np.array([_entropy(F[:, k]) for k in range(F.shape[1])])
    ranges = Z.max(axis=0) - Z.min(axis=0)
    active = ranges > 0 if discrete else ranges > ranges.max() / 20
    if not active.any():
        raise InputError("every dimension of Z is constant, so no latent carries information.")

    if discrete:
        codes = np.stack([np.unique(Z[:, j], return_inverse=True)[1].reshape(-1) for j in range(Z.shape[1])], axis=1)
        mi = _mutual_info_matrix(F, codes)
        features = OneHotEncoder().fit_transform(codes).toarray()
    else:
        features = StandardScaler().fit_transform(Z)
        mi = np.stack([mutual_info_classif(features, F[:, k], discrete_features=False, n_neighbors=n_neighbors,
                                           random_state=seed) for k in range(F.shape[1])])
    nmi = mi[:, active] / entropy[:, None]                               # (K, D_active)
    n_factors, n_active = nmi.shape

    def ratios(M: np.ndarray, n: int) -> np.ndarray:
        totals = M.sum(axis=0)
        # an uninformative entry is spread evenly by convention: it contributes 0 after rescaling
        return np.where(totals > 0, M.max(axis=0) / np.where(totals > 0, totals, 1.0), 1.0 / n)

    modularity = _normalised_range_score(ratios(nmi, n_factors), n_factors)
    compactness = _normalised_range_score(ratios(nmi.T, n_active), n_active)

    explicit = []
    with warnings.catch_warnings():
        # perfectly separable factors make the unregularised fit run to max_iter; the loss is
        # already near 0 by then, which is the answer we need
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(n_factors):
            clf = LogisticRegression(C=1e4, max_iter=200).fit(features, F[:, k])
            ce = log_loss(F[:, k], clf.predict_proba(features), labels=clf.classes_)
            explicit.append(float(np.clip(1.0 - ce / entropy[k], 0.0, 1.0)))
    return {"modularity": modularity, "explicitness": float(np.mean(explicit)), "compactness": compactness,
            "n_active": int(n_active)}
