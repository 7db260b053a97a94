"""Table columns as numbers or category strings, and the inference of a column's role: the
conversions that fitting statistics and transforming rows share."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

ROLES = ("numeric", "categorical", "id", "label", "ignore")
OTHER = "<other>"
MISSING = "<missing>"


def is_numeric_dtype(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def first_non_numeric(s: pd.Series) -> tuple[int, Any] | None:
    """(position, value) of the first non-empty value that does not parse as a number."""
    parsed = pd.to_numeric(s, errors="coerce")
    bad = (parsed.isna() & s.notna()).to_numpy()
    if bad.any():
        pos = int(bad.argmax())
        return pos, s.iloc[pos]
    return None


def row_label(s: pd.Series, pos: int, first_row: int | None) -> Any:
    """How errors name a row: its index label, or its global number when reading chunks."""
    return s.index[pos] if first_row is None else first_row + pos


def as_numbers(name: str, s: pd.Series, first_row: int | None = None) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s):
        values = s.astype("int64").astype(float) / 1e9
        values[s.isna().to_numpy()] = np.nan
        return np.asarray(values, dtype=float)
    if not is_numeric_dtype(s):
        bad = first_non_numeric(s)
        if bad is not None:
            raise InputError(
                f"column {name!r} is numeric but holds the non-numeric value {bad[1]!r} "
                f"(row {row_label(s, bad[0], first_row)}); fix the value or declare the column categorical "
                f"(column_types={{{name!r}: 'categorical'}} / --column-type {name}=categorical)."
            )
        s = pd.to_numeric(s, errors="coerce")
    values = s.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        row = row_label(s, int(np.isinf(values).argmax()), first_row)
        raise InputError(f"column {name!r} holds an infinite value (row {row}); replace it or drop the row.")
    return values


def as_strings(s: pd.Series) -> np.ndarray:
    out = s.astype(object).where(s.notna(), MISSING)
    return np.asarray([str(v) for v in out], dtype=object)


def infer_role(name: str, s: pd.Series) -> str:
    """Guess a column's role from its values (override with ``column_types``)."""
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return "numeric"
    non_null = s.dropna()
    if len(non_null) and pd.to_numeric(non_null, errors="coerce").notna().mean() >= 0.9:
        return "numeric"  # mostly numbers: junk in it is an error, reported by _as_numbers
    if len(non_null) >= 20 and non_null.nunique() == len(non_null):
        warnings.warn(
            f"column {name!r} has a distinct text value in every row; treating it as an identifier "
            f"and leaving it out of training (set its type to 'categorical' to keep it).",
            stacklevel=3,
        )
        return "ignore"
    return "categorical"


__all__ = ["MISSING", "OTHER", "ROLES", "as_numbers", "as_strings", "first_non_numeric", "infer_role",
           "is_numeric_dtype", "row_label"]
