"""Generic input validation shared by every package: each check raises one
:class:`~latentforge.errors.InputError` sentence that names the culprit.

A foundation module: it imports only :mod:`latentforge.errors`, NumPy and the standard library,
so metrics (``latentforge.evaluate``) and post-training tools (``latentforge.transform``) can
both use it without importing each other's private modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["as_matrix", "as_vector", "block_rows", "positive_int", "same_rows", "same_width", "sq_distances"]


def as_matrix(a: Any, name: str) -> np.ndarray:
    """``a`` as a finite float64 ``(n, features)`` array; images and tensors are flattened per row."""
    if a is None:
        raise InputError(f"{name} is missing (got None).")
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not a numeric array ({exc}).") from None
    if arr.ndim == 0 or len(arr) == 0:
        raise InputError(f"{name} is empty; it needs at least one row.")
    arr = arr.reshape(len(arr), -1)
    if arr.shape[1] == 0:
        raise InputError(f"{name} has rows with no features (shape {arr.shape}).")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values.")
    return arr


def as_vector(a: Any, name: str) -> np.ndarray:
    """``a`` as a finite float64 1-D array (one value per row)."""
    arr = as_matrix(a, name)
    if arr.shape[1] != 1:
        raise InputError(f"{name} must be one value per row, got shape {np.shape(a)}.")
    return arr[:, 0]


def same_rows(a: np.ndarray, b: Any, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same number of rows."""
    if len(a) != len(b):
        raise InputError(f"{name_a} has {len(a)} rows but {name_b} has {len(b)}.")


def same_width(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise unless two ``(n, features)`` arrays have the same number of features."""
    if a.shape[1] != b.shape[1]:
        raise InputError(f"{name_a} has {a.shape[1]} features per row but {name_b} has {b.shape[1]}.")


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return int(value)


def block_rows(n_columns: int, budget: int = 1 << 22) -> int:
    """Rows per block so that a (rows, n_columns) float64 distance block stays near 32 MiB."""
    return max(1, budget // max(n_columns, 1))


def sq_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(A), len(B)) via the Gram trick (one BLAS product), clamped at 0."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.maximum(d2, 0.0)
