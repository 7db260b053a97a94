"""Validation specific to the metrics: labels and ground-truth factors, and the error raised
when they are missing. Generic array checks live in :mod:`latentforge.validation`."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError


class MissingLabelsError(InputError):
    """A label- or factor-dependent metric got no usable labels (``None``, or a single class).

    Callers that evaluate a batch of metrics catch this to record ``"skipped: <message>"``
    instead of failing; it is an :class:`~latentforge.errors.InputError`, so the CLI still
    reports it as bad input when it is not caught.
    """


def labels(y: Any, name: str, n: int | None = None, min_classes: int = 2) -> np.ndarray:
    """``y`` as a 1-D label array with at least ``min_classes`` distinct values.

    Raises :class:`MissingLabelsError` when ``y`` is None or has too few classes, so that a
    label-dependent metric can be skipped on unlabelled data.
    """
    if y is None:
        raise MissingLabelsError(f"{name} is None: this metric needs labels.")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(f"{name} must be one label per row, got shape {np.shape(y)}.")
    if n is not None and len(arr) != n:
        raise InputError(f"{name} has {len(arr)} labels but the codes have {n} rows.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite labels.")
    if len(np.unique(arr)) < min_classes:
        raise MissingLabelsError(f"{name} has fewer than {min_classes} distinct labels, so there is nothing to predict.")
    return arr


_ANNOUNCED: dict[int, weakref.ref] = {}


def _announced(arr: np.ndarray) -> bool:
    """Whether the rows without a label of this very array were already reported (then True);
    otherwise it is remembered (weakly) and False is returned."""
    ref = _ANNOUNCED.get(id(arr))
    if ref is not None and ref() is arr:
        return True
    for key in [k for k, r in _ANNOUNCED.items() if r() is None]:
        del _ANNOUNCED[key]
    _ANNOUNCED[id(arr)] = weakref.ref(arr)
    return False


def drop_unlabelled(Z: np.ndarray, y: Any, name: str) -> tuple[np.ndarray, Any]:
    """``(Z, y)`` without the rows whose label is missing (None, NaN, NaT, pandas NA).

    A label column with gaps is common in real tables; the metric is computed on the labelled
    rows and a warning says how many were left out. ``y`` of another length than ``Z`` is
    returned as it is (for :func:`labels` to report).
    """
    if y is None:
        return Z, y
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != len(Z) or arr.dtype.kind not in "fOUSmM":
        return Z, y
    missing = pd.isna(pd.Series(arr, dtype=object if arr.dtype.kind == "O" else None)).to_numpy()
    if not missing.any():
        return Z, arr
    if not _announced(arr):  # several metrics on one label array (an evaluation run) say it once
        warnings.warn(f"{int(missing.sum())} of {len(arr)} rows have no label; they are left out of the label "
                      f"metrics.", stacklevel=3)
    keep = ~missing
    return Z[keep], arr[keep]


def factor_matrix(factors: Any, n: int, name: str = "factors") -> np.ndarray:
    """Ground-truth factors as an ``(n, K)`` array of integer level codes (0..levels-1 per column).

    Any discrete values are accepted (strings, floats with few levels); each column is re-coded
    to consecutive integers. Raises :class:`MissingLabelsError` when ``factors`` is None.
    """
    if factors is None:
        raise MissingLabelsError(f"{name} is None: disentanglement metrics need ground-truth factors.")
    arr = np.asarray(factors)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"{name} must be an (n, n_factors) array, got shape {np.shape(factors)}.")
    if len(arr) != n:
        raise InputError(f"{name} has {len(arr)} rows but the codes have {n}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values.")
    return np.stack([np.unique(arr[:, j], return_inverse=True)[1].reshape(-1) for j in range(arr.shape[1])], axis=1)
