"""Latent-space health: active units, KL per dimension, effective rank, codebook usage, collapse."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_matrix, positive_int


def _gaussian_codes(mu: Any, logvar: Any) -> tuple[np.ndarray, np.ndarray]:
    m, lv = as_matrix(mu, "mu"), as_matrix(logvar, "logvar")
    if m.shape != lv.shape:
        raise InputError(f"mu and logvar differ in shape: {m.shape} vs {lv.shape}.")
    return m, lv


def unit_activity(mu: np.ndarray) -> np.ndarray:
    """Per-dimension activity ``Var_x(E[z | x])``: the variance over rows of the code means (ddof=0).

    The quantity that :func:`active_units` thresholds.

    Parameters
    ----------
    mu : array-like of shape (n, latent_dim)
        Posterior means (encoder outputs) of n inputs.

    Returns
    -------
    ndarray of shape (latent_dim,)
        The variance of each code dimension over the rows.

    Examples
    --------
    >>> from latentforge.evaluate import unit_activity
    >>> unit_activity([[1.0, 5.0], [-1.0, 5.0]])
    array([1., 0.])
    """
    return as_matrix(mu, "mu").var(axis=0)


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Number of active latent units [1]_: dimensions whose activity exceeds ``threshold``.

    A unit u is active when ``Var_x(E[z_u | x]) > threshold`` (0.01 in the paper), i.e. the
    code moves with the input. Use :func:`unit_activity` for the per-dimension values.

    Parameters
    ----------
    mu : array-like of shape (N, latent_dim)
        Posterior means (encoder outputs) of N inputs.
    threshold : float, default=0.01
        Activity above which a unit counts as active; non-negative.

    Returns
    -------
    int
        The number of active units, between 0 and ``latent_dim``.

    Raises
    ------
    InputError
        When ``threshold`` is negative or ``mu`` is not a finite array.

    References
    ----------
    .. [1] Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance weighted
       autoencoders. ICLR.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import active_units
    >>> mu = np.zeros((100, 4))
    >>> mu[:, :3] = np.random.default_rng(0).standard_normal((100, 3))   # the last unit never moves
    >>> active_units(mu)
    3
    """
    if not threshold >= 0:
        raise InputError(f"threshold must be non-negative, got {threshold!r}.")
    return int((unit_activity(mu) > threshold).sum())


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean over rows of KL(N(mu, exp(logvar)) || N(0, 1)) for each latent dimension (nats).

    ``0.5 * (mu² + exp(logvar) - 1 - logvar)`` averaged over the N rows. A dimension with
    KL ≈ 0 carries no information about the input (it is "passive").

    Parameters
    ----------
    mu : array-like of shape (N, latent_dim)
        Posterior means.
    logvar : array-like of shape (N, latent_dim)
        Posterior log-variances.

    Returns
    -------
    ndarray of shape (latent_dim,)
        The mean KL of each dimension, in nats.

    Raises
    ------
    InputError
        When ``mu`` and ``logvar`` differ in shape.

    Examples
    --------
    >>> from latentforge.evaluate import kl_per_dimension
    >>> kl_per_dimension([[0.0, 2.0]], [[0.0, 0.0]])          # the prior itself costs 0; mu = 2 costs 2
    array([0., 2.])
    """
    m, lv = _gaussian_codes(mu, logvar)
    return np.mean(0.5 * (m ** 2 + np.exp(lv) - 1.0 - lv), axis=0)


def effective_rank(Z: np.ndarray, center: bool = True) -> float:
    """Effective rank [1]_ of the code matrix: ``exp(H(p))``, ``p = s / sum(s)``.

    ``s`` are the singular values of Z (centred over rows by default, so that a common offset
    does not count as a direction) and H the Shannon entropy in nats. It lies in
    ``[1, min(N, d)]``: ≈ r for codes spread evenly over r directions, ≈ d for isotropic codes.
    Codes that are all equal have effective rank 0 by convention.

    Parameters
    ----------
    Z : array-like of shape (N, d)
        Codes, one row per input.
    center : bool, default=True
        Subtract the column means before the singular value decomposition.

    Returns
    -------
    float
        The effective rank, in ``[1, min(N, d)]`` (0 for constant codes).

    References
    ----------
    .. [1] Roy, O. and Vetterli, M. (2007). The effective rank: a measure of effective
       dimensionality. European Signal Processing Conference (EUSIPCO).

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import effective_rank
    >>> Z = np.random.default_rng(0).standard_normal((2000, 5))
    >>> 4.9 < effective_rank(Z) <= 5.0                  # isotropic codes: close to the dimension
    True
    >>> flat = np.c_[Z[:, :2], np.zeros((2000, 3))]       # only two directions are used
    >>> 1.9 < effective_rank(flat) <= 2.0
    True
    """
    a = as_matrix(Z, "Z")
    if center:
        a = a - a.mean(axis=0)
    s = np.linalg.svd(a, compute_uv=False)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def codebook_usage(indices: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Usage of a discrete codebook (VQ-VAE) from the code indices chosen for a data set.

    Perplexity ``exp(H(usage))``, with ``usage`` the empirical frequency of each code, ranges
    from 1 (one code for everything) to ``codebook_size`` (uniform use).

    Parameters
    ----------
    indices : array-like of int
        Chosen code positions, any shape (flattened), each in ``[0, codebook_size)``; floats are
        accepted when they are whole numbers.
    codebook_size : int
        Number of codes in the codebook.

    Returns
    -------
    dict
        ``{"perplexity": exp(H(usage)), "n_dead": codes never used, "usage_fraction": fraction
        of codes used at least once}``.

    Raises
    ------
    InputError
        When ``indices`` is empty, not whole numbers, or out of range.

    Examples
    --------
    >>> from latentforge.evaluate import codebook_usage
    >>> usage = codebook_usage([0, 1, 0, 1], codebook_size=4)     # two codes used evenly, two dead
    >>> round(usage["perplexity"], 3), usage["n_dead"], usage["usage_fraction"]
    (2.0, 2, 0.5)
    """
    size = positive_int(codebook_size, "codebook_size")
    idx = np.asarray(indices)
    if idx.size == 0:
        raise InputError("indices is empty.")
    if idx.dtype.kind == "f":
        if not (np.isfinite(idx).all() and (idx == np.round(idx)).all()):
            raise InputError("indices must be whole numbers (code positions in the codebook).")
        idx = idx.astype(np.int64)
    elif idx.dtype.kind not in "iu":
        raise InputError(f"indices must be integers, got dtype {idx.dtype}.")
    idx = idx.ravel()
    if idx.min() < 0 or idx.max() >= size:
        raise InputError(f"indices must lie in [0, {size - 1}] for codebook_size {size}; found {int(idx.min())}..{int(idx.max())}.")
    counts = np.bincount(idx, minlength=size)
    p = counts[counts > 0] / idx.size
    used = int((counts > 0).sum())
    return {"perplexity": float(np.exp(-(p * np.log(p)).sum())), "n_dead": size - used,
            "usage_fraction": used / size}


def posterior_collapse(
    mu: np.ndarray, logvar: np.ndarray, active_threshold: float = 0.01, kl_threshold: float = 0.01,
    min_active: int = 1,
) -> dict[str, Any]:
    """Flag posterior collapse of a Gaussian-posterior encoder, with the reasons.

    The model is flagged ``collapsed`` when the decoder could not be using the latent code:

    - fewer than ``min_active`` active units (:func:`active_units` with ``active_threshold``), or
    - total KL to the prior, summed over dimensions (:func:`kl_per_dimension`), below
      ``kl_threshold`` nats per input.

    Parameters
    ----------
    mu : array-like of shape (N, latent_dim)
        Posterior means.
    logvar : array-like of shape (N, latent_dim)
        Posterior log-variances.
    active_threshold : float, default=0.01
        Activity threshold of :func:`active_units`.
    kl_threshold : float, default=0.01
        Total KL (nats per input) below which the model is flagged; also the per-dimension KL
        below which a dimension counts as passive.
    min_active : int, default=1
        Fewest active units for the model not to be flagged.

    Returns
    -------
    dict
        ``{"collapsed": bool, "reasons": [sentences], "n_active": int, "total_kl": float,
        "n_passive": int}``; ``n_passive`` counts dimensions with KL below ``kl_threshold``
        (selective collapse of single dimensions, which alone does not flag the model).

    Raises
    ------
    InputError
        When ``mu`` and ``logvar`` differ in shape or a threshold is invalid.

    Examples
    --------
    An encoder that outputs the prior for every input has collapsed:

    >>> import numpy as np
    >>> from latentforge.evaluate import posterior_collapse
    >>> result = posterior_collapse(np.zeros((50, 3)), np.zeros((50, 3)))
    >>> result["collapsed"], result["n_active"], result["total_kl"], result["n_passive"]
    (True, 0, 0.0, 3)
    """
    m, lv = _gaussian_codes(mu, logvar)
    min_active = positive_int(min_active, "min_active")
    if not kl_threshold >= 0:
        raise InputError(f"kl_threshold must be non-negative, got {kl_threshold!r}.")
    n_active = active_units(m, active_threshold)
    kl = kl_per_dimension(m, lv)
    total = float(kl.sum())
    reasons = []
    if n_active < min_active:
        reasons.append(f"{n_active} active unit(s) (posterior-mean variance > {active_threshold:g}), "
                       f"fewer than {min_active}.")
    if total < kl_threshold:
        reasons.append(f"total KL to the prior is {total:.3g} nats, below {kl_threshold:g}.")
    return {"collapsed": bool(reasons), "reasons": reasons, "n_active": n_active, "total_kl": total,
            "n_passive": int((kl < kl_threshold).sum())}
