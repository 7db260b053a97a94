"""What the API accepts as model input, and the preprocessor that suits it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .datasets import Dataset
from .images import ImagePreprocessor
from .tabular import TabularPreprocessor

Preprocessor = TabularPreprocessor | ImagePreprocessor


def as_model_input(X: Any) -> pd.DataFrame | np.ndarray:
    """Accept what the API takes (DataFrame, 2-D array = table, 3/4-D array = images)."""
    if isinstance(X, Dataset):
        return X.X
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, pd.Series):
        raise InputError("expected a table or an array of rows, got a single pandas Series; use series.to_frame().")
    array = np.asarray(X)
    if array.ndim == 2:
        if not np.issubdtype(array.dtype, np.number):
            raise InputError(f"a 2-D array must be numeric, got dtype {array.dtype}; pass a DataFrame for mixed types.")
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
    if array.ndim in (3, 4):
        return array
    raise InputError(f"expected a table (2-D) or images (3-D or 4-D), got an array of shape {array.shape}.")


def make_preprocessor(X: pd.DataFrame | np.ndarray, **table_options: Any) -> Preprocessor:
    """An unfitted preprocessor suited to X."""
    return TabularPreprocessor(**table_options) if isinstance(X, pd.DataFrame) else ImagePreprocessor()


def preprocessor_from_state(state: dict[str, Any]) -> Preprocessor:
    kinds = {"table": TabularPreprocessor, "image": ImagePreprocessor}
    if state.get("kind") not in kinds:
        raise InputError(f"unknown preprocessing kind {state.get('kind')!r} in the saved model.")
    return kinds[state["kind"]].from_state(state)
