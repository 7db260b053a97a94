"""Generation quality: distances between generated samples and held-out reference data.

Every function flattens each row (images become vectors) and compares two point clouds with
the same number of features. Distances: lower is better, 0 for identical distributions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..sliced import sliced_mmd_riesz, sliced_two_sample_test, sliced_wasserstein
from ..validation import as_matrix, block_rows, positive_int, same_width, sq_distances


def _clouds(samples: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_matrix(samples, "samples"), as_matrix(reference, "reference")
    same_width(a, b, "samples", "reference")
    return a, b


# -- sliced distances (implemented in latentforge.sliced) -----------------------------------
def generation_sw(samples: np.ndarray, reference: np.ndarray, n_projections: int = 2000, seed: int = 0) -> float:
    """SW_2 between generated samples and held-out data (flattened), fixed projection seed.

    The sliced Wasserstein distance of :func:`latentforge.sliced.sliced_wasserstein` with p = 2:
    the root mean over random directions of the squared 1-D Wasserstein distance between the
    projected point clouds. Lower is better, 0 for identical samples.

    Parameters
    ----------
    samples : array-like of shape (n, ...)
        Generated samples, flattened per row.
    reference : array-like of shape (m, ...)
        Held-out data with the same number of features per row.
    n_projections : int, default=2000
        Number of random directions.
    seed : int, default=0
        Seed of the directions, so that scores of different models are comparable.

    Returns
    -------
    float
        The SW_2 distance.

    Raises
    ------
    InputError
        When the widths differ or an array is empty or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import generation_sw
    >>> X = np.random.default_rng(0).standard_normal((100, 1))
    >>> round(generation_sw(X, X), 6)
    0.0
    >>> round(generation_sw(X + 3.0, X), 6)            # in 1-D a shift by 3 costs exactly 3
    3.0
    """
    a, b = _clouds(samples, reference)
    return float(sliced_wasserstein(a, b, p=2, n_projections=n_projections, seed=seed))


def generation_sliced_mmd(
    samples: np.ndarray, reference: np.ndarray, seed: int = 0, n_projections: int = 500, squared: bool = True
) -> float:
    """Energy distance (MMD² of the Riesz kernel ``-|x - y|``) between samples and reference.

    Estimated by slicing and sorting with :func:`latentforge.sliced.sliced_mmd_riesz` (r = 1)
    over ``n_projections`` random directions drawn from ``seed``; rescaled so that its expectation
    over directions is the full-dimensional V-statistic ``2E|X-Y| - E|X-X'| - E|Y-Y'|``.
    Lower is better, 0 for identical samples.

    Parameters
    ----------
    samples : array-like of shape (n, ...)
        Generated samples, flattened per row.
    reference : array-like of shape (m, ...)
        Held-out data with the same number of features per row.
    seed : int, default=0
        Seed of the directions.
    n_projections : int, default=500
        Number of random directions.
    squared : bool, default=True
        Return the energy distance (MMD²); ``False`` returns the MMD (its square root).

    Returns
    -------
    float
        The (squared) MMD estimate.

    Raises
    ------
    InputError
        When the widths differ or an array is empty or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import generation_sliced_mmd
    >>> X = np.random.default_rng(0).standard_normal((100, 3))
    >>> round(generation_sliced_mmd(X, X), 6)
    0.0
    >>> generation_sliced_mmd(X + 2.0, X) > generation_sliced_mmd(X + 0.5, X) > 0
    True
    """
    a, b = _clouds(samples, reference)
    return float(sliced_mmd_riesz(a, b, r=1, n_projections=n_projections, seed=seed, squared=squared))


def generation_two_sample_pvalue(
    samples: np.ndarray, reference: np.ndarray, n_permutations: int = 200, statistic: str = "mmd",
    n_projections: int = 100, seed: int = 0,
) -> float:
    """Permutation p-value of H0 "samples and reference come from the same distribution".

    Uses :func:`latentforge.sliced.sliced_two_sample_test` with the sliced energy distance
    (``statistic="mmd"``) or SW_2 (``"sw"``). The p-value is at least ``1 / (n_permutations + 1)``;
    a small value means the generator is distinguishable from the data at that sample size,
    a large one means the test could not tell them apart (higher = more realistic).

    Parameters
    ----------
    samples : array-like of shape (n, ...)
        Generated samples, flattened per row.
    reference : array-like of shape (m, ...)
        Held-out data with the same number of features per row.
    n_permutations : int, default=200
        Random relabellings of the pooled rows.
    statistic : {"mmd", "sw"}, default="mmd"
        Test statistic: sliced energy distance or SW_2.
    n_projections : int, default=100
        Number of random directions of the statistic.
    seed : int, default=0
        Seed of the directions and the permutations.

    Returns
    -------
    float
        The p-value, in ``[1 / (n_permutations + 1), 1]``.

    Raises
    ------
    InputError
        When the widths differ or an argument is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import generation_two_sample_pvalue
    >>> X = np.random.default_rng(0).standard_normal((50, 2))
    >>> generation_two_sample_pvalue(X + 5.0, X, n_permutations=99)   # the smallest possible p-value
    0.01
    """
    a, b = _clouds(samples, reference)
    result = sliced_two_sample_test(a, b, n_permutations=n_permutations, statistic=statistic,
                                    n_projections=n_projections, seed=seed)
    return float(result.pvalue)


# -- Fréchet distance -------------------------------------------------------------------------
def _sqrt_psd(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_gaussian(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared 2-Wasserstein (Fréchet) distance between N(mu1, cov1) and N(mu2, cov2).

    ``|mu1 - mu2|² + tr(cov1) + tr(cov2) - 2 tr((cov1^½ cov2 cov1^½)^½)``. The trace term is
    computed from the eigenvalues of the symmetric PSD matrix ``cov1^½ cov2 cov1^½`` (equal to
    ``tr((cov1 cov2)^½)``), which avoids the complex round-off of a general matrix square root.

    Parameters
    ----------
    mu1, mu2 : array-like of shape (d,)
        The two means.
    cov1, cov2 : array-like of shape (d, d)
        The two covariance matrices (symmetric positive semi-definite).

    Returns
    -------
    float
        The squared Fréchet distance, clipped at 0.

    Raises
    ------
    InputError
        When the dimensions disagree or a parameter is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import frechet_gaussian
    >>> round(frechet_gaussian([0.0, 0.0], np.eye(2), [1.0, 1.0], np.eye(2)), 6)   # |mu1 - mu2|²
    2.0
    >>> round(frechet_gaussian([0.0], [[1.0]], [0.0], [[4.0]]), 6)   # (sigma1 - sigma2)² in 1-D
    1.0
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64).ravel(), np.asarray(mu2, dtype=np.float64).ravel()
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, dtype=np.float64)), np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    d = len(mu1)
    if len(mu2) != d or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise InputError(f"Gaussian parameters disagree in dimension: means {len(mu1)} and {len(mu2)}, "
                         f"covariances {cov1.shape} and {cov2.shape}.")
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("cov1", cov1), ("cov2", cov2)):
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contains NaN or infinite values.")
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    tr_cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * tr_cross
    return float(max(value, 0.0))


def frechet_distance(X: np.ndarray, Y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples).

    Means and unbiased covariances (``ddof=1``) of X and Y, then :func:`frechet_gaussian`. This
    is the formula behind FID; like FID it is biased upwards at small sample sizes, so compare
    values computed with the same numbers of rows.

    Parameters
    ----------
    X : array-like of shape (n, d)
        First feature set (at least 2 rows).
    Y : array-like of shape (m, d)
        Second feature set, same width (at least 2 rows).

    Returns
    -------
    float
        The squared Fréchet distance between the two fitted Gaussians.

    Raises
    ------
    InputError
        When the widths differ or a set has fewer than 2 rows.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import frechet_distance
    >>> X = np.random.default_rng(0).standard_normal((200, 2))
    >>> round(frechet_distance(X, X + 1.0), 6)      # same covariance, means 1 apart per axis
    2.0
    """
    a, b = as_matrix(X, "X"), as_matrix(Y, "Y")
    same_width(a, b, "X", "Y")
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"a covariance needs at least 2 rows, got {len(a)} and {len(b)}.")
    return frechet_gaussian(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def random_relu_features(X: np.ndarray, n_features: int = 128, seed: int = 0) -> np.ndarray:
    """The fixed feature map of :func:`generation_frechet`: seeded random ReLU features.

    ``phi(x) = max(0, W x / sqrt(D) + c)`` for a flattened row ``x`` of D values, with
    ``W`` (n_features, D) and ``c`` (n_features,) standard normal, drawn from
    ``numpy.random.default_rng(seed)``: ``W`` first, then ``c``. The map depends only on
    (D, n_features, seed), not on the data, so scores computed with the same arguments are
    comparable across models and runs. The nonlinearity makes the Gaussian fit in feature space
    sensitive to more than the first two moments of the inputs.

    Parameters
    ----------
    X : array-like of shape (n, ...)
        Rows to map, flattened to D values each.
    n_features : int, default=128
        Number of random features.
    seed : int, default=0
        Seed of ``W`` and ``c``.

    Returns
    -------
    ndarray of shape (n, n_features)
        The non-negative features of each row.

    Raises
    ------
    InputError
        When ``X`` is empty or not finite, or ``n_features`` is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import random_relu_features
    >>> X = np.random.default_rng(0).standard_normal((10, 4))
    >>> F = random_relu_features(X, n_features=16, seed=0)
    >>> F.shape, bool((F >= 0).all()), bool(np.array_equal(F, random_relu_features(X, 16, seed=0)))
    ((10, 16), True, True)
    """
    a = as_matrix(X, "X")
    n_features = positive_int(n_features, "n_features")
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n_features, a.shape[1]))
    c = rng.standard_normal(n_features)
    return np.maximum(a @ W.T / np.sqrt(a.shape[1]) + c, 0.0)


def generation_frechet(samples: np.ndarray, reference: np.ndarray, n_features: int = 128, seed: int = 0) -> float:
    """Fréchet distance between generated samples and reference data in a fixed feature space.

    Both sets are flattened and mapped by :func:`random_relu_features` (``n_features`` seeded
    random ReLU features; no trained network, so no download and no dependence on the model being
    evaluated), then compared with :func:`frechet_distance`. Lower is better. Values are only
    comparable for the same input dimension, ``n_features``, ``seed`` and sample sizes.

    Parameters
    ----------
    samples : array-like of shape (n, ...)
        Generated samples, flattened per row.
    reference : array-like of shape (m, ...)
        Held-out data with the same number of features per row.
    n_features : int, default=128
        Number of random ReLU features.
    seed : int, default=0
        Seed of the feature map.

    Returns
    -------
    float
        The squared Fréchet distance in feature space.

    Raises
    ------
    InputError
        When the widths differ or a set has fewer than 2 rows.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import generation_frechet
    >>> X = np.random.default_rng(0).standard_normal((200, 3))
    >>> round(generation_frechet(X, X, n_features=32), 6)
    0.0
    >>> generation_frechet(X + 1.0, X, n_features=32) > generation_frechet(X + 0.1, X, n_features=32)
    True
    """
    a, b = _clouds(samples, reference)
    return frechet_distance(random_relu_features(a, n_features, seed), random_relu_features(b, n_features, seed))


# -- improved precision / recall ----------------------------------------------------------------
def _knn_radii_sq(A: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of A to its k-th nearest other row."""
    out = np.empty(len(A))
    step = block_rows(len(A))
    for start in range(0, len(A), step):
        d2 = sq_distances(A[start:start + step], A)
        # the k+1-th smallest includes the point itself at distance 0
        out[start:start + step] = np.partition(d2, k, axis=1)[:, k]
    return out


def _covered(queries: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray) -> np.ndarray:
    """Whether each query lies in at least one ball (centre, radius) of the manifold estimate."""
    scale = 1e-9 * max(1.0, float(np.max((centres * centres).sum(1))))  # Gram-trick round-off
    out = np.empty(len(queries), dtype=bool)
    step = block_rows(len(centres))
    for start in range(0, len(queries), step):
        d2 = sq_distances(queries[start:start + step], centres)
        out[start:start + step] = (d2 <= radii_sq[None, :] + scale).any(axis=1)
    return out


def precision_recall_knn(real: np.ndarray, generated: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall [1]_ with k-NN balls.

    The support of each set is estimated by the union of balls centred on its points with radius
    the distance to the point's k-th nearest neighbour within the same set. Precision = fraction
    of generated points inside the real support (fidelity); recall = fraction of real points
    inside the generated support (coverage). Both in [0, 1], higher is better. Computed in the
    space the arrays are in (flattened rows): pass codes or fixed features
    (:func:`random_relu_features`) for images. Cost O(n·m) distances, computed in blocks.

    Parameters
    ----------
    real : array-like of shape (n, ...)
        Real (held-out) rows, flattened.
    generated : array-like of shape (m, ...)
        Generated rows, same number of features.
    k : int, default=3
        Neighbour defining each ball's radius; each set needs more than k rows.

    Returns
    -------
    dict
        ``{"precision": float, "recall": float}``.

    Raises
    ------
    InputError
        When the widths differ or a set has k rows or fewer.

    References
    ----------
    .. [1] Kynkäänniemi, T., Karras, T., Laine, S., Lehtinen, J. and Aila, T. (2019). Improved
       precision and recall metric for assessing generative models. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import precision_recall_knn
    >>> real = np.random.default_rng(0).standard_normal((100, 2))
    >>> precision_recall_knn(real, real)
    {'precision': 1.0, 'recall': 1.0}
    >>> precision_recall_knn(real, real + 100.0)      # far from the data: neither fidelity nor coverage
    {'precision': 0.0, 'recall': 0.0}
    """
    a, b = as_matrix(real, "real"), as_matrix(generated, "generated")
    same_width(a, b, "real", "generated")
    k = positive_int(k, "k")
    if min(len(a), len(b)) <= k:
        raise InputError(f"k = {k} needs more than k rows in each set, got {len(a)} real and {len(b)} generated.")
    precision = _covered(b, a, _knn_radii_sq(a, k)).mean()
    recall = _covered(a, b, _knn_radii_sq(b, k)).mean()
    return {"precision": float(precision), "recall": float(recall)}
