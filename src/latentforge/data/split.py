"""Seeded train/validation/test splits, stratified when labels allow it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .datasets import Dataset


def strata(y: np.ndarray) -> np.ndarray:
    """Labels to stratify on: ``y`` itself, or, when some labels are missing (None, NaN, NaT),
    texts where a missing label is a stratum of its own, so a label column with gaps still splits
    (its rows are kept, for training)."""
    missing = pd.isna(pd.Series(np.asarray(y, dtype=object).reshape(-1))).to_numpy()
    if not missing.any():
        return np.asarray(y)
    out = np.array([str(v) for v in np.asarray(y, dtype=object).reshape(-1)], dtype=object)
    out[missing] = "<missing>"
    return out


def _can_stratify(y: np.ndarray | None, n_take: int) -> bool:
    if y is None:
        return False
    _, counts = np.unique(y, return_counts=True)
    return counts.min() >= 2 and n_take >= len(counts)


def split_indices(
    n: int, y: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out) with ``fraction`` of n held out; stratified on y when possible."""
    index = np.arange(n)
    n_take = int(np.ceil(fraction * n))
    if fraction <= 0 or n_take == 0 or n - n_take < 1:
        return index, index[:0]
    y = None if y is None else strata(y)
    strat = y if _can_stratify(y, n_take) and _can_stratify(y, n - n_take) else None
    rest, held = train_test_split(index, test_size=fraction, stratify=strat, random_state=seed)
    return np.asarray(rest), np.asarray(held)


def split_dataset(
    data: Dataset, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0
) -> tuple[Dataset, Dataset, Dataset]:
    """(train, validation, test). The test split is taken first, so it matches
    ``train_test_split(test_size=test_fraction, stratify=y, random_state=seed)`` on the whole data."""
    rest, test = split_indices(len(data), data.y, test_fraction, seed)
    y_rest = None if data.y is None else data.y[rest]
    train, val = split_indices(len(rest), y_rest, val_fraction, seed)
    return data.subset(rest[train]), data.subset(rest[val]), data.subset(test)
