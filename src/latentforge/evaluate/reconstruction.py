"""Reconstruction quality: array errors (MSE, BCE) and per-column errors for tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import as_matrix


def _pair(X: Any, X_reconstructed: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_matrix(X, "X"), as_matrix(X_reconstructed, "X_reconstructed")
    if a.shape != b.shape:
        raise InputError(f"X and X_reconstructed differ in shape: {a.shape} vs {b.shape}.")
    return a, b


def reconstruction_mse(X: np.ndarray, X_reconstructed: np.ndarray) -> float:
    """Mean squared error over all entries (images in [0, 1]; tables in preprocessed features).

    Lower is better. Arrays of any shape are flattened per row; both must have the same shape.

    Parameters
    ----------
    X : array-like of shape (n, ...)
        Original rows.
    X_reconstructed : array-like of the same shape as ``X``
        Reconstructed rows.

    Returns
    -------
    float
        ``mean((X - X_reconstructed)²)`` over all entries.

    Raises
    ------
    InputError
        When the shapes differ or an array is empty or not finite.

    Examples
    --------
    >>> from latentforge.evaluate import reconstruction_mse
    >>> reconstruction_mse([[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]])
    0.25
    """
    a, b = _pair(X, X_reconstructed)
    return float(np.mean((a - b) ** 2))


def reconstruction_bce(X: np.ndarray, X_reconstructed: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (nats per entry) of targets ``X`` in [0, 1] under probabilities ``X_reconstructed``.

    ``-mean(x log p + (1 - x) log(1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]`` so that a
    confident wrong pixel costs ``-log(eps)`` instead of infinity. Lower is better; for binary
    targets it is the Bernoulli negative log-likelihood per entry.

    Parameters
    ----------
    X : array-like of shape (n, ...)
        Targets in [0, 1] (e.g. pixel intensities).
    X_reconstructed : array-like of the same shape as ``X``
        Predicted probabilities in [0, 1] (apply a sigmoid to logits first).
    eps : float, default=1e-7
        Clipping of the probabilities, in (0, 0.5).

    Returns
    -------
    float
        The mean cross-entropy in nats per entry.

    Raises
    ------
    InputError
        When the shapes differ, a value lies outside [0, 1], or ``eps`` is outside (0, 0.5).

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import reconstruction_bce
    >>> v = reconstruction_bce([[1.0, 0.0]], [[0.5, 0.5]])      # a coin flip costs log 2 per entry
    >>> bool(np.isclose(v, np.log(2)))
    True
    """
    a, b = _pair(X, X_reconstructed)
    if a.min() < 0 or a.max() > 1:
        raise InputError("X must lie in [0, 1] for binary cross-entropy (scale images to [0, 1]).")
    if b.min() < 0 or b.max() > 1:
        raise InputError("X_reconstructed must be probabilities in [0, 1] (apply a sigmoid to logits first).")
    if not 0 < eps < 0.5:
        raise InputError(f"eps must lie in (0, 0.5), got {eps!r}.")
    p = np.clip(b, eps, 1 - eps)
    return float(-np.mean(a * np.log(p) + (1 - a) * np.log1p(-p)))


def _columns(frame: pd.DataFrame, columns: Sequence[str], name: str, role: str) -> list[str]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{role} column {missing[0]!r} is not in {name}.")
    return list(columns)


def table_reconstruction_errors(
    original: pd.DataFrame,
    reconstructed: pd.DataFrame,
    numeric_columns: Sequence[str],
    categorical_columns: Sequence[str],
) -> dict[str, Any]:
    """Per-column reconstruction errors of a table, in the original units.

    Rows are matched by position (both frames must have the same number of rows).

    - numeric column: RMSE between the original and reconstructed values, on the original scale,
      over the rows where the original value is present (missing originals are skipped);
    - categorical column: accuracy, i.e. the fraction of rows (with a present original value)
      whose reconstructed category equals the original. Values are compared as strings
      (``str(v)``), the way the tabular preprocessor names categories, so ``True`` and ``"True"``
      match.

    Parameters
    ----------
    original : pandas.DataFrame
        The table as given, in its original units.
    reconstructed : pandas.DataFrame
        The reconstructed table, with the same number of rows and the compared columns.
    numeric_columns : sequence of str
        Columns compared by RMSE.
    categorical_columns : sequence of str
        Columns compared by accuracy; disjoint from ``numeric_columns``.

    Returns
    -------
    dict
        ``{"numeric_rmse": {column: rmse}, "categorical_accuracy": {column: accuracy},
        "mean_numeric_rmse": ..., "mean_normalized_rmse": ..., "mean_categorical_accuracy": ...}``.
        ``mean_normalized_rmse`` averages RMSE / (standard deviation of the original column),
        which is comparable across columns with different units (1.0 = no better than
        predicting the mean). A summary over an empty group, or over columns with no present
        values, is NaN.

    Raises
    ------
    InputError
        When an argument is not a DataFrame, the row counts differ, a column is missing, listed
        twice, or a reconstructed numeric column is not numeric / finite where the original has
        values.

    Examples
    --------
    >>> import pandas as pd
    >>> from latentforge.evaluate import table_reconstruction_errors
    >>> original = pd.DataFrame({"age": [20.0, 30.0], "city": ["a", "b"]})
    >>> reconstructed = pd.DataFrame({"age": [23.0, 27.0], "city": ["a", "a"]})
    >>> errors = table_reconstruction_errors(original, reconstructed, ["age"], ["city"])
    >>> errors["numeric_rmse"], errors["categorical_accuracy"]
    ({'age': 3.0}, {'city': 0.5})
    """
    if not isinstance(original, pd.DataFrame) or not isinstance(reconstructed, pd.DataFrame):
        raise InputError("original and reconstructed must both be pandas DataFrames.")
    if len(original) != len(reconstructed):
        raise InputError(f"original has {len(original)} rows but reconstructed has {len(reconstructed)}.")
    if isinstance(numeric_columns, str) or isinstance(categorical_columns, str):
        raise InputError("numeric_columns and categorical_columns must be lists of column names, not a string.")
    numeric = _columns(original, numeric_columns, "original", "numeric")
    categorical = _columns(original, categorical_columns, "original", "categorical")
    _columns(reconstructed, numeric + categorical, "reconstructed", "requested")
    overlap = set(numeric) & set(categorical)
    if overlap:
        raise InputError(f"column {sorted(overlap)[0]!r} is listed as both numeric and categorical.")
    if not numeric and not categorical:
        raise InputError("no columns to compare: numeric_columns and categorical_columns are both empty.")

    rmse: dict[str, float] = {}
    normalized: list[float] = []
    for col in numeric:
        x = pd.to_numeric(original[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        try:
            r = pd.to_numeric(reconstructed[col]).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            raise InputError(f"reconstructed column {col!r} is not numeric.") from None
        present = np.isfinite(x)
        if not np.isfinite(r[present]).all():
            raise InputError(f"reconstructed column {col!r} has NaN or infinite values where the original has values.")
        if not present.any():
            rmse[col] = float("nan")
            continue
        rmse[col] = float(np.sqrt(np.mean((x[present] - r[present]) ** 2)))
        std = x[present].std()
        if std > 0:
            normalized.append(rmse[col] / std)

    accuracy: dict[str, float] = {}
    for col in categorical:
        present = original[col].notna().to_numpy()
        a = original[col].to_numpy(dtype=object)[present]
        b = reconstructed[col].to_numpy(dtype=object)[present]
        matches = [str(u) == str(v) for u, v in zip(a, b)]
        accuracy[col] = float(np.mean(matches)) if matches else float("nan")

    def _mean(values: list[float]) -> float:
        finite = [v for v in values if np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    return {
        "numeric_rmse": rmse,
        "categorical_accuracy": accuracy,
        "mean_numeric_rmse": _mean(list(rmse.values())),
        "mean_normalized_rmse": _mean(normalized),
        "mean_categorical_accuracy": _mean(list(accuracy.values())),
    }
