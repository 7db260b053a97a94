"""Tables → float matrices and back.

Column roles: ``numeric`` (standardised with train statistics, missing values imputed with the
train median plus a 0/1 missing-indicator column), ``datetime`` (seconds since the epoch, then as
``numeric``), ``categorical`` (one-hot over the most frequent
``max_categories`` values plus one ``<other>`` bucket that also catches categories unseen at fit
time; booleans and strings are categorical), ``id`` and ``label`` (excluded from training, carried
separately), ``ignore`` (dropped). Roles are inferred and can be overridden per column.

The fitted state is plain JSON; ``check_schema`` compares new data against it and names the
columns that are missing, extra or of a changed type.

Fitting is one pass over the rows: ``fit(frame)`` and ``fit_stream(chunks)`` both feed a
``TableStats`` accumulator (exact count, mean and M2 per numeric column, merged pairwise as Chan
et al. do; exact category counts; a bounded, seeded sample of each numeric column for its median)
that can also be filled on several processes and merged. ``fit`` keeps every value, so its medians
are exact; ``fit_stream`` keeps ``reservoir_size`` per column (see docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .columns import (MISSING, OTHER, ROLES, as_datetimes, as_numbers, as_strings, check_flat, first_non_numeric,
                      is_numeric_dtype, row_label)
from .table_stats import DEFAULT_RESERVOIR, TableStats, check_unique_columns


#: rows :meth:`TabularPreprocessor.transform_arrays` works on at a time (a float64 block stays in cache)
TRANSFORM_BLOCK_ROWS = 4096
#: the largest standardised feature a float32 holds: a value farther from the training values is an error
FEATURE_LIMIT = float(np.finfo(np.float32).max)
#: roles whose features are one standardised Gaussian column each (and a missing indicator)
GAUSSIAN_ROLES = ("numeric", "datetime")
_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _gaussian(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns of the Gaussian block, in column order: numeric and datetime."""
    return [c for c in columns if c["role"] in GAUSSIAN_ROLES]


def _as_integers(values: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Decoded values of an integer column: rounded, clipped to the training range, in its dtype."""
    lo, hi = float(spec["min"]), float(spec["max"])
    rounded = np.clip(np.rint(values), lo, hi)
    try:
        dtype = np.dtype(spec.get("dtype", "int64"))
    except TypeError:  # a pandas extension dtype (Int64, ...) or floats with gaps: plain int64
        dtype = np.dtype("int64")
    if dtype.kind not in "iu":
        dtype = np.dtype("int64")
    info = np.iinfo(dtype)
    out = np.empty(len(rounded), dtype=dtype)
    low, high = rounded <= float(info.min), rounded >= float(info.max)  # float(2**63 - 1) rounds up to 2**63
    inside = ~(low | high)
    out[inside] = rounded[inside].astype(dtype)
    out[low], out[high] = info.min, min(info.max, int(spec["max"]))
    return out


def _as_datetimes(seconds: np.ndarray, spec: dict[str, Any]) -> pd.Series:
    """Decoded seconds of a datetime column: rounded to whole days or seconds when every training
    value was one, clipped to the training range, rounded to its unit, in its unit and time zone."""
    unit = spec.get("unit") or "us"
    per = _TICKS_PER_SECOND.get(unit, 10**6)
    if spec.get("step"):  # dates stay dates, whole seconds whole (the float32 features blur them)
        seconds = np.rint(seconds / spec["step"]) * spec["step"]
    seconds = np.clip(seconds, float(spec["min"]), float(spec["max"]))
    whole = np.floor(seconds)
    ticks = whole.astype(np.int64) * per + np.rint((seconds - whole) * per).astype(np.int64)
    out = pd.Series(ticks.view(f"datetime64[{unit}]"))
    if spec.get("tz"):
        out = out.dt.tz_localize("UTC").dt.tz_convert(spec["tz"])
    return out


def _constant_column(spec: dict[str, Any], n: int) -> np.ndarray | pd.Series:
    """A column dropped as constant, decoded as its one value in every row (in its type)."""
    value = spec["value"]
    if spec.get("was") == "categorical":
        typed = _typed_categories([str(value)], spec)[0]
        return np.full(n, typed, dtype=bool if isinstance(typed, bool) else object)
    bounds = {**spec, "min": value, "max": value}
    if spec.get("was") == "datetime":
        return _as_datetimes(np.full(n, float(value)), bounds)
    if spec.get("integer"):
        return _as_integers(np.full(n, float(value)), bounds)
    return np.full(n, float(value))


def _typed_categories(labels: list[str], spec: dict[str, Any]) -> np.ndarray:
    """The category texts as the column's values: booleans, integers and floats as such (the text of
    ``<other>`` stays; ``<missing>`` becomes a missing value)."""
    out = np.array(labels, dtype=object)
    out[out == MISSING] = None
    dtype = spec.get("dtype", "")
    convert: Any = None
    if spec.get("boolean"):
        convert = {"True": True, "False": False}.__getitem__
    else:
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = ""
        convert = int if kind in "iu" and kind else float if kind == "f" else None
    if convert is not None:
        for i, v in enumerate(out):
            if v is not None and v != OTHER:
                try:
                    out[i] = convert(v)
                except (KeyError, ValueError):
                    pass
    return out


class TabularPreprocessor:
    """Fit on a DataFrame, then map frames to float32 matrices (and back)."""

    kind = "table"

    def __init__(
        self,
        column_types: dict[str, str] | None = None,
        max_categories: int = 20,
        id_columns: tuple[str, ...] | list[str] = (),
        label: str | None = None,
    ):
        self.column_types = dict(column_types or {})
        for col, role in self.column_types.items():
            if role not in ROLES:
                raise InputError(f"column type {role!r} for column {col!r} is not one of {', '.join(ROLES)}.")
        if max_categories < 1:
            raise InputError(f"max_categories must be at least 1, got {max_categories}.")
        self.max_categories = int(max_categories)
        self.id_columns = list(id_columns)
        self.label = label
        self.columns_: list[dict[str, Any]] = []

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> "TabularPreprocessor":
        """Fit on a whole DataFrame (exact medians; errors name rows by their index label)."""
        stats = self.new_stats(reservoir_size=None)
        stats._rows_by_label = True  # a whole frame: name rows as its index does, not by position
        return self.fit_from_stats(stats.update(frame))

    def fit_stream(
        self, chunks: Iterable[pd.DataFrame], *, seed: int = 0, reservoir_size: int | None = DEFAULT_RESERVOIR
    ) -> "TabularPreprocessor":
        """Fit in one pass over consecutive pieces of one table (same columns), e.g. Parquet batches.

        The saved ``state()`` is the one ``fit`` gives on the whole table, key for key: means,
        standard deviations, missing indicators and categories are exact; each numeric column's
        median comes from a seeded sample of ``reservoir_size`` of its observed values (exact while
        the column has at most that many; otherwise its rank is off by about ``0.5 / sqrt(size)``,
        one standard deviation; ``None`` keeps every value). Roles are inferred from the first
        non-empty chunk (override them with ``column_types``); errors name rows by their global
        number, counted from 0 across chunks.

        Parameters
        ----------
        chunks : iterable of pandas.DataFrame
            The table, piece by piece, in order; read once.
        seed : int
            Seeds the median sample (which rows are kept depends only on the seed and the row numbers).
        reservoir_size : int or None
            Values kept per numeric column for its median.

        Returns
        -------
        TabularPreprocessor
            ``self``, fitted.
        """
        if isinstance(chunks, pd.DataFrame):  # iterating a frame would give its column names
            raise InputError("fit_stream takes an iterable of DataFrames (e.g. [frame]); use fit(frame) for one frame.")
        stats = self.new_stats(seed=seed, reservoir_size=reservoir_size)
        for chunk in chunks:
            stats.update(chunk)
        return self.fit_from_stats(stats)

    def new_stats(
        self, *, seed: int = 0, reservoir_size: int | None = DEFAULT_RESERVOIR, row_offset: int = 0
    ) -> "TableStats":
        """An empty accumulator with this preprocessor's roles, to fill with chunks and merge.

        For data split across processes, each one starts with ``row_offset`` = the global number of
        its first row (so error messages and the median sample match a single pass), fills its
        accumulator, and the accumulators (or their ``to_dict()``) are merged before
        ``fit_from_stats``.
        """
        return TableStats(self.column_types, self.id_columns, self.label,
                          seed=seed, reservoir_size=reservoir_size, row_offset=row_offset)

    def fit_from_stats(self, stats: "TableStats") -> "TabularPreprocessor":
        """Fit from a filled (possibly merged) accumulator made by ``new_stats``."""
        if (stats.column_types, stats.id_columns, stats.label) != (self.column_types, self.id_columns, self.label):
            raise InputError("these statistics were gathered with other column types, id columns or label "
                             "than this preprocessor's; make them with its new_stats().")
        self.columns_ = stats.schema(self.max_categories)
        return self

    # -- the feature layout ----------------------------------------------------------------
    @property
    def layout(self) -> list[tuple[str, int, int]]:
        """Blocks of the feature vector as (likelihood, start, stop): gaussian, bernoulli or categorical."""
        blocks, pos = [], 0
        numeric = _gaussian(self.columns_)
        if numeric:
            blocks.append(("gaussian", pos, pos + len(numeric)))
            pos += len(numeric)
        n_ind = sum(c["missing_indicator"] for c in numeric)
        if n_ind:
            blocks.append(("bernoulli", pos, pos + n_ind))
            pos += n_ind
        for c in self.columns_:
            if c["role"] == "categorical":
                width = len(c["categories"]) + 1
                blocks.append(("categorical", pos, pos + width))
                pos += width
        return blocks

    @property
    def n_features(self) -> int:
        return self.layout[-1][2]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.n_features,)

    @property
    def feature_names(self) -> list[str]:
        numeric = _gaussian(self.columns_)
        names = [c["name"] for c in numeric]
        names += [f"{c['name']}__missing" for c in numeric if c["missing_indicator"]]
        for c in self.columns_:
            if c["role"] == "categorical":
                names += [f"{c['name']}={v}" for v in c["categories"]] + [f"{c['name']}={OTHER}"]
        return names

    @property
    def passthrough_columns(self) -> list[str]:
        """Columns the model does not read but that new data may carry (ids, label, ignored)."""
        return [c["name"] for c in self.columns_ if c["role"] not in ("numeric", "categorical", "datetime")]

    # -- transforming ----------------------------------------------------------------------
    def check_schema(self, frame: pd.DataFrame) -> None:
        """Raise an InputError naming missing, extra or retyped columns."""
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"expected a pandas DataFrame, got {type(frame).__name__}.")
        known = {c["name"] for c in self.columns_} | set(self.id_columns) | ({self.label} if self.label else set())
        features = [c["name"] for c in self.columns_ if c["role"] in ("numeric", "categorical", "datetime")]
        frame = frame.rename(columns=str)
        check_unique_columns(frame)
        cols = list(frame.columns)
        missing = [c for c in features if c not in cols]
        extra = [c for c in cols if c not in known]
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
        if extra:
            problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
        if problems:
            raise InputError(f"the data does not match the model's schema: {'; '.join(problems)}.")
        for c in self.columns_:
            if c["role"] == "numeric" and not is_numeric_dtype(frame[c["name"]]):
                bad = first_non_numeric(frame[c["name"]])
                if bad is not None and not pd.api.types.is_datetime64_any_dtype(frame[c["name"]]):
                    raise InputError(
                        f"column {c['name']!r} was numeric when the model was fitted but now holds "
                        f"{bad[1]!r} (row {row_label(frame[c['name']], bad[0], None)}); the column's type changed."
                    )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        if isinstance(frame, pd.DataFrame):
            frame = frame.rename(columns=str)  # a renamed copy: never touch the caller's frame
        self.check_schema(frame)
        if len(frame) == 0:
            raise InputError("the table has no rows.")
        numeric = _gaussian(self.columns_)
        parts: list[np.ndarray] = []
        if numeric:  # one (n, k) matrix: the same arithmetic per element, vectorised over columns
            values = np.empty((len(frame), len(numeric)), order="F")  # column writes stay contiguous
            for j, c in enumerate(numeric):
                s = frame[c["name"]]
                values[:, j] = as_datetimes(c["name"], s)[0] if c["role"] == "datetime" else as_numbers(c["name"], s)
            miss = np.isnan(values)
            stats = {key: np.array([c[key] for c in numeric]) for key in ("median", "mean", "std")}
            with np.errstate(over="ignore", invalid="ignore"):
                standardised = (np.where(miss, stats["median"], values) - stats["mean"]) / stats["std"]
            if not (np.abs(standardised) <= FEATURE_LIMIT).all():
                self._raise_too_far([c["name"] for c in numeric], values, standardised, frame.index)
            parts.append(standardised)
            flagged = [j for j, c in enumerate(numeric) if c["missing_indicator"]]
            if flagged:
                parts.append(miss[:, flagged].astype(float))
        for c in self.columns_:
            if c["role"] == "categorical":
                check_flat(c["name"], frame[c["name"]])
                strings = as_strings(frame[c["name"]])
                index = {v: i for i, v in enumerate(c["categories"])}
                codes = np.array([index.get(v, len(index)) for v in strings])
                parts.append(np.eye(len(index) + 1)[codes])
        out = np.empty((len(frame), self.n_features), dtype=np.float32)
        start = 0
        for part in parts:  # each block cast to float32 as it is written: no float64 copy of the whole
            out[:, start:start + part.shape[1]] = part
            start += part.shape[1]
        return out

    @property
    def numeric_feature_columns(self) -> list[str] | None:
        """The feature columns, in feature order, when every one of them is numeric (no categorical
        or datetime columns): what :meth:`transform_arrays` takes; None otherwise."""
        self._check_fitted()
        if any(c["role"] in ("categorical", "datetime") for c in self.columns_):
            return None
        return [c["name"] for c in self.columns_ if c["role"] == "numeric"]

    def transform_arrays(self, arrays: Sequence[np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """:meth:`transform` for a table of numeric feature columns given as NumPy arrays: the same
        float32 features, bit for bit, without pandas.

        The fast path of streamed fits (:func:`latentforge.data.columnar.numeric_view`): the same
        float64 arithmetic as :meth:`transform` (median imputation, then ``(x - mean) / std``,
        rounded once to float32; missing indicators), done in blocks of rows that stay in cache.

        Parameters
        ----------
        arrays : one 1-D integer or float array per column of :attr:`numeric_feature_columns`, in
            that order, all of one length; NaN marks a missing value.
        rows : the rows' labels for error messages (default: positions), as the index of the
            frame :meth:`transform` would get.
        """
        names = self.numeric_feature_columns
        if names is None:
            raise InputError("transform_arrays takes tables whose feature columns are all numeric; "
                             "this schema has categorical or datetime columns (use transform).")
        if len(arrays) != len(names):
            raise InputError(f"transform_arrays needs {len(names)} arrays ({', '.join(names)}), got {len(arrays)}.")
        arrays = [np.asarray(a) for a in arrays]
        n = len(arrays[0]) if arrays else 0
        if any(a.ndim != 1 or len(a) != n for a in arrays):
            raise InputError("transform_arrays needs 1-D arrays of one length, one per column.")
        if any(a.dtype.kind not in "iuf" for a in arrays):
            raise InputError("transform_arrays takes integer or float arrays; use transform for other types.")
        if n == 0:
            raise InputError("the table has no rows.")
        numeric = [c for c in self.columns_ if c["role"] == "numeric"]
        median, mean, std = (np.array([c[key] for c in numeric], dtype=float) for key in ("median", "mean", "std"))
        flagged = [j for j, c in enumerate(numeric) if c["missing_indicator"]]
        k, n_flag = len(numeric), len(flagged)
        out = np.empty((n, self.n_features), dtype=np.float32)
        block = np.empty((min(n, TRANSFORM_BLOCK_ROWS), k))
        for a in range(0, n, TRANSFORM_BLOCK_ROWS):
            b = min(a + TRANSFORM_BLOCK_ROWS, n)
            values = block[: b - a]
            for j, column in enumerate(arrays):
                values[:, j] = column[a:b]  # integers and floats become float64 as pandas makes them
            if not np.isfinite(values).all():
                if np.isinf(values).any():
                    self._raise_infinite(names, arrays, rows)
                miss = np.isnan(values)
                np.copyto(values, median, where=miss)  # transform's np.where(miss, median, values)
                if n_flag:
                    out[a:b, k:k + n_flag] = miss[:, flagged]
            elif n_flag:
                out[a:b, k:k + n_flag] = 0.0
            with np.errstate(over="ignore", invalid="ignore"):
                values -= mean
                values /= std
            if not (np.abs(values) <= FEATURE_LIMIT).all():
                raw = np.column_stack([column[a:b] for column in arrays]).astype(float)
                self._raise_too_far(names, raw, values, np.arange(a, b) if rows is None else rows[a:b])
            out[a:b, :k] = values
        return out

    @staticmethod
    def _raise_too_far(names: list[str], values: np.ndarray, standardised: np.ndarray, rows: Any) -> None:
        """The error for the first column holding a value whose standardised feature overflows float32."""
        bad = ~(np.abs(standardised) <= FEATURE_LIMIT)
        j = int(bad.any(axis=0).argmax())
        i = int(bad[:, j].argmax())
        raise InputError(f"column {names[j]!r} holds {values[i, j]:.6g} (row {rows[i]}), too far from the training "
                         f"values to standardise (the feature would overflow float32); rescale or drop it.")

    @staticmethod
    def _raise_infinite(names: list[str], arrays: list[np.ndarray], rows: np.ndarray | None) -> None:
        """The error transform raises for the first column (in order) that holds an infinite value."""
        for name, column in zip(names, arrays):
            inf = np.isinf(column)
            if inf.any():
                pos = int(inf.argmax())
                row = pos if rows is None else rows[pos]
                raise InputError(f"column {name!r} holds an infinite value (row {row}); replace it or drop the row.")

    def inverse_transform(self, features: np.ndarray) -> pd.DataFrame:
        """Decoded feature matrix (means/probabilities) → a frame in the original columns and types.

        Numeric columns are ``mean + std * feature``; integer columns are then rounded, clipped to
        their training range and cast to their integer dtype (floats are not clipped); datetime
        columns come back as datetimes in their unit and time zone, clipped to the training range;
        a categorical column takes its most probable training category (``<other>`` only if rarer
        values fell into it at fit time; ``<missing>`` as a missing value), booleans as booleans,
        integer and float categories as numbers. A column dropped as constant comes back holding
        its one value, so the frame has every column the model was fitted on (ids, label and other
        ignored columns excepted).
        """
        self._check_fitted()
        features = np.asarray(features, dtype=float)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InputError(f"expected an (n, {self.n_features}) feature matrix, got shape {features.shape}.")
        out: dict[str, Any] = {}
        numeric = _gaussian(self.columns_)
        for j, c in enumerate(numeric):
            values = features[:, j] * c["std"] + c["mean"]
            if c["role"] == "datetime":
                out[c["name"]] = _as_datetimes(values, c)
            elif c.get("integer"):
                out[c["name"]] = _as_integers(values, c)
            else:
                out[c["name"]] = values
        blocks = [b for b in self.layout if b[0] == "categorical"]
        for c, (_, start, stop) in zip([c for c in self.columns_ if c["role"] == "categorical"], blocks):
            labels = _typed_categories(c["categories"] + [OTHER], c)
            scores = features[:, start:stop]
            if c.get("has_other") is False:  # no training value fell into <other>: never decode to it
                scores = scores[:, :-1]
            picked = labels[scores.argmax(axis=1)]
            if c.get("boolean") and all(v is True or v is False for v in picked):
                picked = picked.astype(bool)
            out[c["name"]] = picked
        for c in self.columns_:
            if c.get("dropped") == "constant" and "value" in c:
                out[c["name"]] = _constant_column(c, len(features))
        order = [c["name"] for c in self.columns_ if c["name"] in out]
        return pd.DataFrame({name: v.reset_index(drop=True) if isinstance(v, pd.Series) else v
                             for name, v in out.items()})[order]

    # -- persistence -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.columns_:
            raise RuntimeError("the preprocessor is not fitted yet.")

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "max_categories": self.max_categories,
            "id_columns": self.id_columns,
            "label": self.label,
            "columns": self.columns_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TabularPreprocessor":
        pre = cls(max_categories=state["max_categories"], id_columns=state["id_columns"], label=state["label"])
        pre.columns_ = [dict(c) for c in state["columns"]]
        return pre


__all__ = ["DEFAULT_RESERVOIR", "MISSING", "OTHER", "ROLES", "TableStats", "TabularPreprocessor"]
