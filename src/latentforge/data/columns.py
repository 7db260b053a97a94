"""Table columns as numbers, seconds since the epoch or category strings, and the inference of a
column's role: the conversions that fitting statistics and transforming rows share."""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

ROLES = ("numeric", "categorical", "datetime", "id", "label", "ignore")
OTHER = "<other>"
MISSING = "<missing>"

#: a text value is a date/time when it is ISO 8601: ``YYYY-MM-DD``, optionally ``T`` or a space and
#: ``hh:mm[:ss[.fff]]``, optionally ``Z`` or an offset ``±hh[:mm]``
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?")
#: a text column is inferred ``datetime`` when this share of its sampled non-missing values is ISO 8601
DATETIME_SHARE = 0.95
#: non-missing values looked at to infer that a text column holds dates
DATETIME_SAMPLE = 1000
_NESTED = (list, tuple, dict, set, frozenset, np.ndarray)


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


def epoch_seconds(s: pd.Series) -> np.ndarray:
    """Seconds since 1970-01-01 UTC of a pandas datetime64 column of any unit (s, ms, us, ns) and
    time zone (aware values are converted to UTC, naive ones are read as UTC); NaT → NaN.

    The stored integers are split into whole seconds and a remainder, so the same instants give
    the same floats whatever the unit they are stored in."""
    if getattr(s.dtype, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    array = np.asarray(s.to_numpy())
    if array.dtype.kind != "M":
        array = array.astype("datetime64[ns]")
    unit, step = np.datetime_data(array.dtype)
    per_second = int(np.timedelta64(1, "s") // np.timedelta64(1, unit)) // step if unit in ("s", "ms", "us", "ns") \
        else None
    ticks = array.view("int64")
    missing = np.isnat(array)
    if per_second is None:  # coarser numpy units (D, h, m): exact through seconds
        seconds = array.astype("datetime64[s]").view("int64").astype(float)
    else:
        whole, rest = np.divmod(ticks, per_second)
        seconds = whole.astype(float) + rest / per_second
    seconds[missing] = np.nan
    return seconds


def _is_date_object(v: Any) -> bool:
    return isinstance(v, (_dt.date, np.datetime64))


def looks_like_datetimes(s: pd.Series) -> bool:
    """True when at least 95% of a sample of the column's non-missing values are ISO 8601 dates or
    times written as text (``2024-03-01``, ``2024-03-01 14:30``, ``2024-03-01T14:30:00+02:00``) or
    date/datetime objects (what a Parquet or CSV date column becomes in pandas)."""
    non_null = s.dropna()
    if not len(non_null):
        return False
    sample = non_null.iloc[:DATETIME_SAMPLE].tolist()
    hits = sum(1 for v in sample if _is_date_object(v) or (isinstance(v, str) and ISO_DATETIME.fullmatch(v.strip())))
    return hits >= DATETIME_SHARE * len(sample)


def as_datetimes(name: str, s: pd.Series, first_row: int | None = None) -> tuple[np.ndarray, bool]:
    """(seconds since the epoch, whether any value carried a time zone) of a datetime column.

    pandas datetime64 columns are converted by their unit (:func:`epoch_seconds`); text must be
    ISO 8601 (strictly: a value that is not is an error naming the column, the value and the row;
    UTC offsets are applied, values without one are read as UTC); ``datetime.date`` /
    ``datetime.datetime`` objects are taken as they are. Missing values and NaT are NaN.
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        return epoch_seconds(s), getattr(s.dtype, "tz", None) is not None
    values = s.astype(object).where(s.notna(), None).tolist()
    text: list[str | None] = []
    aware = False
    for pos, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            text.append(None)
            continue
        if isinstance(v, pd.Timestamp):
            aware = aware or v.tzinfo is not None
            v = v.isoformat()
        elif isinstance(v, (_dt.datetime, _dt.date)):
            aware = aware or getattr(v, "tzinfo", None) is not None
            v = v.isoformat()
        elif isinstance(v, np.datetime64):
            v = str(v)
        match = ISO_DATETIME.fullmatch(v.strip()) if isinstance(v, str) else None
        if match is None:
            raise InputError(
                f"column {name!r} is a datetime column but holds {v!r} (row {row_label(s, pos, first_row)}), which is "
                f"not an ISO 8601 date or time (YYYY-MM-DD[ hh:mm[:ss]]); fix the value or declare the column categorical "
                f"(column_types={{{name!r}: 'categorical'}})."
            )
        aware = aware or match.group(1) is not None
        text.append(v.strip())
    parsed = pd.to_datetime(pd.Series(text, dtype=object), format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy() & np.array([t is not None for t in text], dtype=bool)
    if bad.any():
        pos = int(bad.argmax())
        raise InputError(f"column {name!r} holds {text[pos]!r} (row {row_label(s, pos, first_row)}), which is not a "
                         f"valid date or time.")
    return epoch_seconds(parsed), aware


def nested_type(s: pd.Series) -> str | None:
    """The kind of nested value (``list``, ``dict``, ...) an object column holds, or None when flat."""
    if s.dtype != object and not isinstance(s.dtype, pd.ArrowDtype):
        return None
    for v in s.dropna().iloc[:DATETIME_SAMPLE]:
        if isinstance(v, _NESTED):
            return "list" if isinstance(v, (list, tuple, np.ndarray)) else "struct/dict" if isinstance(v, dict) \
                else type(v).__name__
    return None


def check_flat(name: str, s: pd.Series) -> None:
    """Raise an InputError naming a column that holds lists, structs or dicts (nested Parquet types)."""
    kind = nested_type(s)
    if kind is not None:
        raise InputError(
            f"column {name!r} holds {kind} values (a nested column), which latentforge cannot read; flatten it "
            f"into columns of numbers, text or dates, or leave it out (column_types={{{name!r}: 'ignore'}})."
        )


def as_numbers(name: str, s: pd.Series, first_row: int | None = None) -> np.ndarray:
    """The column's values as float64 (missing → NaN); datetimes as seconds since the epoch.

    Raises an InputError naming the column and row for text that is not a number and for ±inf."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return epoch_seconds(s)
    if not is_numeric_dtype(s):
        check_flat(name, s)
        bad = first_non_numeric(s)
        if bad is not None:
            is_date = _is_date_object(bad[1]) or (isinstance(bad[1], str)
                                                  and ISO_DATETIME.fullmatch(bad[1].strip()) is not None)
            hint = (f"declare the column datetime (column_types={{{name!r}: 'datetime'}} / --column-type {name}=datetime)"
                    if is_date else f"declare the column categorical (column_types={{{name!r}: 'categorical'}} / "
                                    f"--column-type {name}=categorical)")
            raise InputError(
                f"column {name!r} is numeric but holds the non-numeric value {bad[1]!r} "
                f"(row {row_label(s, bad[0], first_row)}); fix the value or {hint}."
            )
        s = pd.to_numeric(s, errors="coerce")
    values = s.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        row = row_label(s, int(np.isinf(values).argmax()), first_row)
        raise InputError(f"column {name!r} holds an infinite value (row {row}); replace it or drop the row.")
    return values


def as_strings(s: pd.Series) -> np.ndarray:
    """The column's values as text (``str(v)``), missing values as ``<missing>``."""
    out = s.astype(object).where(s.notna(), MISSING)
    return np.asarray([str(v) for v in out], dtype=object)


def infer_role(name: str, s: pd.Series) -> str:
    """Guess a column's role from its values (override with ``column_types``)."""
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if is_numeric_dtype(s):
        return "numeric"
    check_flat(name, s)
    non_null = s.dropna()
    if len(non_null) and pd.to_numeric(non_null, errors="coerce").notna().mean() >= 0.9:
        return "numeric"  # mostly numbers: junk in it is an error, reported by _as_numbers
    if looks_like_datetimes(non_null):
        return "datetime"  # ISO 8601 text: a value that is not one is an error, reported by as_datetimes
    if len(non_null) >= 20 and non_null.nunique() == len(non_null):
        warnings.warn(
            f"column {name!r} has a distinct text value in every row; treating it as an identifier "
            f"and leaving it out of training (set its type to 'categorical' to keep it).",
            stacklevel=3,
        )
        return "ignore"
    return "categorical"


__all__ = ["DATETIME_SHARE", "ISO_DATETIME", "MISSING", "OTHER", "ROLES", "as_datetimes", "as_numbers", "as_strings",
           "check_flat", "epoch_seconds", "first_non_numeric", "infer_role", "is_numeric_dtype", "looks_like_datetimes",
           "nested_type", "row_label"]
