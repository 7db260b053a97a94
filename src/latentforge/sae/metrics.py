"""Sparse-autoencoder metrics: plain functions on arrays, and one streaming accumulator.

- fidelity: :func:`fraction_of_variance_unexplained` (FVU = ‖X − X̂‖² / ‖X − mean(X)‖², summed over
  tokens and dimensions; 1 − FVU is the explained variance), the mean squared error;
- sparsity: :func:`l0` (mean number of active latents per token);
- feature health: :func:`feature_density` (the fraction of tokens on which each latent fires),
  dead latents (density 0 over the tokens looked at) and dense ones (density > 0.1), and
  :func:`density_histogram` of log10 density.

:class:`SAEStatistics` gathers the same figures batch by batch over a token budget, in float64,
so a held-out set of any size is measured in bounded memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DENSE_DENSITY = 0.1  # a latent firing on more than 10% of tokens is "dense"


def fraction_of_variance_unexplained(X: Any, X_hat: Any) -> float:
    """FVU of reconstructions ``X_hat`` of ``X`` (both (n, d)).

    Parameters
    ----------
    X, X_hat : array_like of shape (n, d)

    Returns
    -------
    float
        ``Σ ‖x − x̂‖² / Σ ‖x − x̄‖²`` with x̄ the mean row of X: 0 is perfect, 1 is no better than
        predicting the mean.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> fraction_of_variance_unexplained(X, X)
    0.0
    >>> fraction_of_variance_unexplained(X, np.repeat(X.mean(0, keepdims=True), 2, 0))
    1.0
    """
    X, X_hat = np.asarray(X, dtype=np.float64), np.asarray(X_hat, dtype=np.float64)
    return float(((X - X_hat) ** 2).sum() / ((X - X.mean(0)) ** 2).sum())


def l0(codes: Any) -> float:
    """Mean number of non-zero latents per token of ``codes`` (n, F).

    Examples
    --------
    >>> l0([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    1.5
    """
    return float((np.asarray(codes) != 0).sum(1).mean())


def feature_density(codes: Any) -> np.ndarray:
    """(F,) fraction of the tokens (rows of ``codes``) on which each latent is positive.

    Examples
    --------
    >>> feature_density([[0.0, 1.0], [2.0, 3.0]]).tolist()
    [0.5, 1.0]
    """
    return (np.asarray(codes) > 0).mean(0)


def density_histogram(density: Any, bins: int = 20, low: float = -7.0) -> dict[str, Any]:
    """Histogram of log10(density) of the live latents over [``low``, 0], and the dead count.

    Returns
    -------
    dict
        ``edges`` (bins + 1 values of log10 density), ``counts`` (bins), ``dead`` (latents that
        never fired), all as lists for JSON.
    """
    density = np.asarray(density, dtype=np.float64)
    live = density[density > 0]
    counts, edges = np.histogram(np.clip(np.log10(live), low, 0.0), bins=bins, range=(low, 0.0))
    return {"edges": edges.tolist(), "counts": counts.tolist(), "dead": int((density == 0).sum())}


class SAEStatistics:
    """Accumulates FVU, MSE, L0 and feature densities over batches of (x, x̂, codes)."""

    def __init__(self, n_features: int):
        self.n_features = n_features
        self.n = 0
        self.sse = 0.0
        self.l0_sum = 0.0
        self.sum_x: np.ndarray | None = None
        self.sum_sq = 0.0
        self.fired = np.zeros(n_features, dtype=np.int64)

    def update(self, x: np.ndarray, x_hat: np.ndarray, codes: np.ndarray) -> None:
        x, x_hat = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
        active = np.asarray(codes) > 0
        self.n += len(x)
        self.sse += float(((x - x_hat) ** 2).sum())
        self.sum_x = x.sum(0) if self.sum_x is None else self.sum_x + x.sum(0)
        self.sum_sq += float((x ** 2).sum())
        self.l0_sum += float(active.sum())
        self.fired += active.sum(0)

    def result(self) -> dict[str, Any]:
        """The figures over everything seen (ValueError before any token)."""
        if self.n == 0:
            raise ValueError("no tokens were measured.")
        total_var = self.sum_sq - float((self.sum_x ** 2).sum()) / self.n  # Σ‖x − x̄‖²
        density = self.fired / self.n
        fvu = self.sse / total_var if total_var > 0 else float("nan")
        return {
            "tokens": self.n, "fvu": fvu, "explained_variance": 1.0 - fvu,
            "mse": self.sse / (self.n * len(self.sum_x)), "l0": self.l0_sum / self.n,
            "dead_fraction": float((density == 0).mean()), "dense_fraction": float((density > DENSE_DENSITY).mean()),
            "density_histogram": density_histogram(density),
        }


__all__ = ["DENSE_DENSITY", "SAEStatistics", "density_histogram", "feature_density",
           "fraction_of_variance_unexplained", "l0"]
