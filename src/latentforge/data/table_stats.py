"""One-pass table statistics (:class:`TableStats`): what ``TabularPreprocessor`` is fitted from.

Exact count, mean and M2 per numeric column, merged pairwise as Chan et al. do (with the rounding
error of each chunk's mean carried along); exact category counts; a bounded, seeded sample of each
numeric column for its median. Accumulators filled on several processes merge exactly.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .columns import MISSING, as_datetimes, as_numbers, as_strings, check_flat, infer_role

DEFAULT_RESERVOIR = 100_000  # values kept per numeric column by fit_stream for the median
_U64 = np.uint64
#: names pandas (``Unnamed: 0``) and pyarrow (``""``) give a CSV's unnamed first column, where R's
#: ``write.csv`` and pandas' ``to_csv`` put the row numbers
INDEX_NAMES = re.compile(r"(Unnamed: 0)?")


def _sample_keys(seed: int, rows: np.ndarray) -> np.ndarray:
    """SplitMix64 outputs for the given global row numbers: distinct, uniform sort keys.

    A column's median sample is the rows with the smallest keys (bottom-k sampling, a vectorised
    equivalent of reservoir Algorithm R). Keys depend only on the seed and the row number, so the
    sample does not depend on how the rows are chunked or split across processes.
    """
    z = _U64(seed % 2**64) + (rows.astype(_U64) + _U64(1)) * _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """a + b as the nearest float and the exact rounding error (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


class _NumericStats:
    """Observed count, mean and M2 (sum of squared deviations), missing count, and the median sample.

    Chunks merge with Chan et al.'s pairwise update, never a sum of squares: with values like
    1e9 + N(0, 1) the latter loses every digit of the variance. The mean is carried as a float
    plus what rounding it left out (``mean_lo``): a chunk mean of 1e9 + 0.1 is only good to 1e-7,
    and that error would enter the variance linearly through the difference of chunk means.
    ``m2`` is taken about ``mean`` (as ``np.std`` does), so one chunk gives ``np.std`` bit for bit.
    """

    def __init__(self, size: int | None):
        self.size = size  # values kept for the median; None = all (exact)
        self.count, self.mean, self.mean_lo, self.m2, self.n_missing = 0, 0.0, 0.0, 0.0, 0
        self.min, self.max = np.inf, -np.inf  # of the observed values
        self.whole = True  # every observed value is a whole number (an integer column read as floats)
        self.values: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []  # sample keys of `values` (empty when size is None)
        self.held = 0  # values held in `values`

    @classmethod
    def of_chunk(cls, values: np.ndarray, first_row: int, seed: int, size: int | None) -> "_NumericStats":
        st = cls(size)
        missing = np.isnan(values)
        st.n_missing = int(missing.sum())
        observed = values[~missing] if st.n_missing else values
        st.count = int(observed.size)
        if st.count:
            # the same operations as np.std, so a one-chunk fit gives the numbers fit() always gave;
            # values near ±1.8e308 overflow: checked (and named) once the statistics are complete
            with np.errstate(over="ignore", invalid="ignore"):
                st.mean = float(observed.mean())
                centred = observed - st.mean
                st.m2 = float(np.square(centred).sum())
                st.mean_lo = float(centred.mean())
            st.min, st.max = float(observed.min()), float(observed.max())
            st.whole = bool(np.all(np.mod(observed, 1.0) == 0))
            st.values, st.held = [observed], st.count
            if size is not None:
                rows = np.flatnonzero(~missing) if st.n_missing else np.arange(values.size)
                st.keys = [_sample_keys(seed, rows + first_row)]
                if st.count > size:
                    st._compact()
                elif not st.n_missing:
                    st.values = [observed.copy()]  # it may view the caller's chunk, which may be reused
        return st

    def merge(self, other: "_NumericStats") -> "_NumericStats":
        if other.count:
            self.min, self.max = min(self.min, other.min), max(self.max, other.max)
            self.whole = self.whole and other.whole
            if self.count == 0:
                self.count, self.mean, self.mean_lo, self.m2 = other.count, other.mean, other.mean_lo, other.m2
            else:
                na, nb = self.count, other.count
                n = na + nb
                with np.errstate(over="ignore", invalid="ignore"):
                    delta = (other.mean - self.mean) + (other.mean_lo - self.mean_lo)  # of the true chunk means
                    lo = self.mean_lo + delta * (nb / n)  # the merged mean, relative to self.mean
                with np.errstate(over="ignore", invalid="ignore"):
                    m2 = (self.m2 - na * self.mean_lo ** 2) + (other.m2 - nb * other.mean_lo ** 2) \
                        + delta * delta * (na * nb / n)   # about the true merged mean
                    self.mean, self.mean_lo = _two_sum(self.mean, lo)
                    self.m2 = m2 + n * self.mean_lo ** 2  # back to "about self.mean"
                self.count = n
            self.values.extend(other.values)
            self.keys.extend(other.keys)
            self.held += other.held
            # trim only past twice the size: amortised O(chunk) per update even for tiny chunks
            if self.size is not None and self.held > 2 * self.size:
                self._compact()
        self.n_missing += other.n_missing
        return self

    def _compact(self) -> None:
        values, keys = np.concatenate(self.values), np.concatenate(self.keys)
        if self.size is not None and values.size > self.size:
            keep = np.argpartition(keys, self.size - 1)[: self.size]
            values, keys = values[keep], keys[keep]
        self.values, self.keys, self.held = [values], [keys], int(values.size)

    def sample(self) -> np.ndarray:
        """The values the median is taken from (all of them when the column is small enough)."""
        if self.size is None:
            return self.values[0] if len(self.values) == 1 else np.concatenate(self.values)
        if len(self.values) != 1 or self.held > self.size:
            self._compact()
        return self.values[0]

    @property
    def std(self) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sqrt(self.m2 / self.count))  # population (ddof=0), as fit() always used

    def to_dict(self) -> dict[str, Any]:
        values = self.sample() if self.count else np.empty(0)
        return {"count": self.count, "mean": self.mean, "mean_lo": self.mean_lo, "m2": self.m2,
                "n_missing": self.n_missing, "whole": self.whole,
                "min": self.min if self.count else None, "max": self.max if self.count else None,
                "values": values.tolist(),
                "keys": None if self.size is None else (self.keys[0].tolist() if self.count else [])}

    @classmethod
    def from_dict(cls, d: dict[str, Any], size: int | None) -> "_NumericStats":
        st = cls(size)
        st.count, st.n_missing = int(d["count"]), int(d["n_missing"])
        st.mean, st.mean_lo, st.m2 = float(d["mean"]), float(d["mean_lo"]), float(d["m2"])
        st.whole = bool(d.get("whole", False))
        if st.count:
            values = np.asarray(d["values"], dtype=float)
            st.min = float(d["min"]) if d.get("min") is not None else float(values.min())
            st.max = float(d["max"]) if d.get("max") is not None else float(values.max())
            st.values = [np.asarray(d["values"], dtype=float)]
            st.held = int(st.values[0].size)
            if size is not None:
                st.keys = [np.asarray(d["keys"], dtype=_U64)]
        return st


class _DatetimeStats(_NumericStats):
    """:class:`_NumericStats` of seconds since the epoch, plus whether any value carried a time zone
    (then the column comes back from ``inverse_transform`` in UTC)."""

    def __init__(self, size: int | None):
        super().__init__(size)
        self.aware = False
        self.days = True  # every observed value is a midnight (UTC): a date column

    @classmethod
    def of_chunk(cls, values: np.ndarray, first_row: int, seed: int, size: int | None) -> "_DatetimeStats":
        st = super().of_chunk(values, first_row, seed, size)
        observed = values[~np.isnan(values)]
        st.days = bool(np.all(np.mod(observed, 86400.0) == 0))  # type: ignore[attr-defined]
        return st  # type: ignore[return-value]

    def merge(self, other: "_NumericStats") -> "_NumericStats":
        if other.count:
            self.days = self.days and getattr(other, "days", False)
        self.aware = self.aware or getattr(other, "aware", False)
        return super().merge(other)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "aware": self.aware, "days": self.days}

    @classmethod
    def from_dict(cls, d: dict[str, Any], size: int | None) -> "_DatetimeStats":
        st = super().from_dict(d, size)
        st.aware, st.days = bool(d.get("aware", False)), bool(d.get("days", False))  # type: ignore[attr-defined]
        return st  # type: ignore[return-value]


class _CategoricalStats:
    """Exact counts of each value as text (missing as ``<missing>``), and the missing count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.n_missing = 0

    @classmethod
    def of_chunk(cls, s: pd.Series) -> "_CategoricalStats":
        st = cls()
        st.n_missing = int(s.isna().sum())
        counts = pd.Series(as_strings(s)).value_counts()
        st.counts = dict(zip(counts.index.tolist(), counts.tolist()))
        return st

    def merge(self, other: "_CategoricalStats") -> "_CategoricalStats":
        if not self.counts:
            self.counts = dict(other.counts)
        else:
            for value, n in other.counts.items():
                self.counts[value] = self.counts.get(value, 0) + n
        self.n_missing += other.n_missing
        return self

    def top(self, k: int) -> list[str]:
        """The k most frequent values; ties go to the smaller value."""
        counts = pd.Series(list(self.counts.values()), index=pd.Index(list(self.counts), dtype=object))
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        return [str(c) for c in counts.index[:k]]

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "n_missing": self.n_missing}

    @classmethod
    def from_dict(cls, d: dict[str, Any], size: int | None = None) -> "_CategoricalStats":
        st = cls()
        st.counts = {str(k): int(v) for k, v in d["counts"].items()}
        st.n_missing = int(d["n_missing"])
        return st


_STATS = {"numeric": _NumericStats, "datetime": _DatetimeStats, "categorical": _CategoricalStats}


def _common_dtype(a: Any, b: Any) -> Any:
    """The dtype pandas gives the two concatenated (int64 + float64 → float64, bool + object → object)."""
    if a == b:
        return a
    return pd.concat([pd.Series([], dtype=a), pd.Series([], dtype=b)]).dtype


def _is_integer(dtype: Any, st: _NumericStats) -> bool:
    """An integer column: an integer dtype, or floats that are all whole numbers with gaps (how
    ``pandas.read_csv`` and pyarrow read an integer column with missing values)."""
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if pd.api.types.is_integer_dtype(dtype):
        return True
    return pd.api.types.is_float_dtype(dtype) and st.whole and st.n_missing > 0


def _constant_value(role: str, spec: dict[str, Any], st: Any) -> Any:
    """A constant column's one value, as JSON: a number (an int for integer columns), seconds since
    the epoch for a datetime (decoded with the spec's unit and zone), the category's text."""
    if role == "categorical":
        return next(iter(st.counts))
    if role == "numeric" and spec.get("integer"):
        return int(st.min)
    return float(st.min)


def check_unique_columns(frame: pd.DataFrame, source: str = "the table") -> None:
    """Raise an InputError naming a column name that occurs more than once (refused: which of the
    two a saved schema means could not be told apart)."""
    names = [str(c) for c in frame.columns]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{source} has more than one column named {name!r}; give every column its own name.")
        seen.add(name)


class TableStats:
    """One-pass, mergeable statistics of a table read in chunks: all that fitting a TabularPreprocessor needs.

    Make one with ``TabularPreprocessor.new_stats``, feed it chunks with ``update``, combine
    accumulators filled elsewhere (other processes) with ``merge`` (``to_dict``/``from_dict`` carry
    them as plain JSON), and finish with ``TabularPreprocessor.fit_from_stats``. Memory: per numeric
    column the median sample (up to twice ``reservoir_size`` values and keys, 16 bytes each, between
    trims); per categorical column one count per distinct value.

    Parameters
    ----------
    column_types, id_columns, label
        As for ``TabularPreprocessor``; roles are decided on the first non-empty chunk.
    seed : int
        Seeds the median sample; accumulators merge only with the same seed and reservoir_size.
    reservoir_size : int or None
        Values kept per numeric column for its median (None: all, exact).
    row_offset : int
        Global number of this accumulator's first row: error messages count from it, and the
        median sample of a table split across processes is then the one a single pass takes.
    """

    def __init__(
        self,
        column_types: dict[str, str] | None = None,
        id_columns: tuple[str, ...] | list[str] = (),
        label: str | None = None,
        *,
        seed: int = 0,
        reservoir_size: int | None = DEFAULT_RESERVOIR,
        row_offset: int = 0,
    ):
        if reservoir_size is not None and (isinstance(reservoir_size, bool) or int(reservoir_size) != reservoir_size
                                           or reservoir_size < 1):
            raise InputError(f"reservoir_size must be a positive integer or None, got {reservoir_size!r}.")
        self.column_types = dict(column_types or {})
        self.id_columns = list(id_columns)
        self.label = label
        self.seed = int(seed)
        self.reservoir_size = None if reservoir_size is None else int(reservoir_size)
        self.row_offset = int(row_offset)
        self.n_rows = 0
        self.n_chunks = 0
        self.columns: list[str] | None = None  # decided on the first non-empty chunk
        self.roles: dict[str, str] = {}
        self.dtypes: dict[str, Any] = {}
        self._stats: dict[str, _NumericStats | _CategoricalStats] = {}
        self._rows_by_label = False  # set by fit(): errors name rows by index label, as they always did

    def _config(self) -> tuple[Any, ...]:
        return self.column_types, self.id_columns, self.label, self.seed, self.reservoir_size

    def _set_columns(self, columns: list[str], roles: dict[str, str], dtypes: dict[str, Any]) -> None:
        self.columns, self.roles, self.dtypes = list(columns), dict(roles), dict(dtypes)
        self._stats = {c: _STATS[r](self.reservoir_size) if r in ("numeric", "datetime") else _STATS[r]()
                       for c, r in roles.items() if r in _STATS}

    def _decide_roles(self, chunk: pd.DataFrame) -> None:
        unknown = sorted(set(self.column_types) - set(chunk.columns))
        if unknown:
            raise InputError(f"column_types names columns that are not in the data: {', '.join(unknown)}.")
        roles = {}
        for name in chunk.columns:
            role = self.column_types.get(name)
            if role is None:
                role = ("id" if name in self.id_columns else "label" if name == self.label
                        else "ignore" if name == chunk.columns[0] and self._is_row_number(chunk[name])
                        else infer_role(name, chunk[name]))
            roles[name] = role
        self._set_columns(list(chunk.columns), roles, {c: chunk[c].dtype for c in chunk.columns})

    def _is_row_number(self, s: pd.Series) -> bool:
        """An unnamed first column holding the row numbers (0.. or 1.., as pandas' ``to_csv`` and R's
        ``write.csv`` write them): an index, not a feature; a warning says it is left out."""
        if INDEX_NAMES.fullmatch(str(s.name)) is None or not pd.api.types.is_numeric_dtype(s) \
                or pd.api.types.is_bool_dtype(s) or s.isna().any():
            return False
        start = self.row_offset + self.n_rows
        values = s.to_numpy()
        for first in (start, start + 1):
            if np.array_equal(values, np.arange(first, first + len(values))):
                name = str(s.name)
                warnings.warn(
                    f"column {name!r} holds the row numbers {first}, {first + 1}, ... (an index written by pandas "
                    f"or R); leaving it out of training (set its type with column_types={{{name!r}: 'numeric'}} "
                    f"to keep it).", stacklevel=5)
                return True
        return False

    def update(self, chunk: pd.DataFrame) -> "TableStats":
        """Add the next rows of the table (a DataFrame with the first chunk's columns)."""
        if not isinstance(chunk, pd.DataFrame):
            raise InputError(f"expected a pandas DataFrame, got {type(chunk).__name__}.")
        if chunk.shape[1] == 0:
            raise InputError("the table has no columns.")
        chunk = chunk.rename(columns=str)  # names are strings from here on (and in the saved schema)
        check_unique_columns(chunk)
        index, self.n_chunks = self.n_chunks, self.n_chunks + 1
        if self.columns is not None and set(chunk.columns) != set(self.columns):
            missing = [c for c in self.columns if c not in chunk.columns]
            extra = [c for c in chunk.columns if c not in self.columns]
            problems = ([f"missing column(s) {', '.join(map(repr, missing))}"] if missing else []) + (
                [f"unexpected column(s) {', '.join(map(repr, extra))}"] if extra else [])
            raise InputError(f"chunk {index} (from row {self.row_offset + self.n_rows}) does not have the "
                             f"columns of the first: {'; '.join(problems)}.")
        if len(chunk) == 0:
            return self  # an empty batch adds nothing (and says nothing about the roles)
        if self.columns is None:
            self._decide_roles(chunk)
        first_row = self.row_offset + self.n_rows
        for name in self.columns:  # type: ignore[union-attr]
            s = chunk[name]
            self.dtypes[name] = _common_dtype(self.dtypes[name], s.dtype)
            role = self.roles[name]
            rows = None if self._rows_by_label else first_row
            if role == "numeric":
                values = as_numbers(name, s, rows)
                self._stats[name].merge(_NumericStats.of_chunk(values, first_row, self.seed, self.reservoir_size))
            elif role == "datetime":
                values, aware = as_datetimes(name, s, rows)
                part = _DatetimeStats.of_chunk(values, first_row, self.seed, self.reservoir_size)
                part.aware = aware  # type: ignore[attr-defined]
                self._stats[name].merge(part)
            elif role == "categorical":
                check_flat(name, s)
                self._stats[name].merge(_CategoricalStats.of_chunk(s))
        self.n_rows += len(chunk)
        return self

    def merge(self, other: "TableStats") -> "TableStats":
        """Add another accumulator's rows (filled by another process, or on a later part of the table)."""
        if other._config() != self._config():
            raise InputError("cannot merge table statistics gathered with different column types, id columns, "
                             "label, seed or reservoir_size.")
        if other.columns is not None:
            if self.columns is None:
                self._set_columns(other.columns, other.roles, other.dtypes)
            elif other.columns != self.columns:
                raise InputError("cannot merge table statistics of tables with different columns: "
                                 f"{self.columns} and {other.columns}.")
            for name in self.columns:  # type: ignore[union-attr]
                if other.roles[name] != self.roles[name]:
                    raise InputError(
                        f"column {name!r} was inferred as {self.roles[name]} in one part of the data and as "
                        f"{other.roles[name]} in another; set its type with column_types={{{name!r}: ...}}.")
                self.dtypes[name] = _common_dtype(self.dtypes[name], other.dtypes[name])
                if name in self._stats:
                    self._stats[name].merge(other._stats[name])  # type: ignore[arg-type]
        self.n_rows += other.n_rows
        self.n_chunks += other.n_chunks
        return self

    def missing_rates(self) -> dict[str, float]:
        """Share of missing values in each numeric and categorical column."""
        return {c: st.n_missing / self.n_rows for c, st in self._stats.items()} if self.n_rows else {}

    def schema(self, max_categories: int) -> list[dict[str, Any]]:
        """The fitted column specs (``TabularPreprocessor.columns_``), or the error ``fit`` raises.

        Numeric specs say whether the column is ``integer`` (an integer dtype, or whole numbers
        with gaps, which CSV readers turn into floats) and hold its training ``min``/``max``;
        datetime specs hold the ``unit`` and ``tz`` the column comes back in; categorical specs
        say whether rarer values fell into ``<other>`` at fit time (``has_other``) and whether
        the column was boolean. Columns whose roles were inferred and that hold a single value
        in every row (no gaps) are dropped (role ``ignore``, ``"dropped": "constant"``) with a
        warning naming them.
        """
        if self.columns is None or self.n_rows == 0:
            raise InputError("the table has no rows.")
        specs, constant = [], []
        for name in self.columns:
            role = self.roles[name]
            dtype = self.dtypes[name]
            spec: dict[str, Any] = {"name": name, "role": role, "dtype": str(dtype)}
            st = self._stats.get(name)
            if isinstance(st, _NumericStats):
                if st.count == 0:
                    raise InputError(f"column {name!r} has no values (all missing); drop it or set its type to 'ignore'.")
                std = st.std
                if not (np.isfinite(st.mean) and np.isfinite(std)):
                    big = max(abs(st.min), abs(st.max))
                    raise InputError(
                        f"column {name!r} holds values as large as {big:.3g}, too large for its mean and standard "
                        f"deviation (they overflow float64); rescale the column or drop it.")
                spec.update(mean=st.mean, std=std if std > 1e-12 else 1.0, median=float(np.median(st.sample())),
                            missing_indicator=st.n_missing > 0)
                if role == "datetime":
                    unit, tz = None, None
                    if pd.api.types.is_datetime64_any_dtype(dtype):
                        unit = getattr(dtype, "unit", None) or np.datetime_data(np.dtype(dtype))[0]
                        tz = getattr(dtype, "tz", None)
                    elif getattr(st, "aware", False):
                        tz = "UTC"
                    step = 86400 if getattr(st, "days", False) else 1 if st.whole else None
                    spec.update(min=st.min, max=st.max, unit=unit if unit in ("s", "ms", "us", "ns") else "us",
                                tz=None if tz is None else str(tz), step=step)
                elif _is_integer(dtype, st):
                    spec.update(integer=True, min=int(st.min), max=int(st.max))
                    if max(abs(st.min), abs(st.max)) > 2.0 ** 53:
                        warnings.warn(
                            f"column {name!r} holds integers beyond ±2**53 (up to {max(abs(spec['min']), abs(spec['max']))}), "
                            f"which float64 features only hold to about 16 digits; declare it an id if it is an "
                            f"identifier.", stacklevel=4)
                if name not in self.column_types and self.n_rows > 1 and st.n_missing == 0 and st.min == st.max:
                    constant.append(name)
            elif isinstance(st, _CategoricalStats):
                if set(st.counts) <= {MISSING}:
                    raise InputError(f"column {name!r} has no values (all missing); drop it or set its type to 'ignore'.")
                spec["categories"] = st.top(max_categories)
                spec["has_other"] = len(st.counts) > max_categories
                if pd.api.types.is_bool_dtype(dtype) or (
                        (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))
                        and set(st.counts) - {MISSING} <= {"True", "False"}):
                    spec["boolean"] = True
                if name not in self.column_types and self.n_rows > 1 and st.n_missing == 0 and len(st.counts) == 1:
                    constant.append(name)
            if name in constant:  # the value comes back in every decoded row (inverse_transform)
                spec = {"name": name, "role": "ignore", "dtype": str(dtype), "dropped": "constant", "was": role,
                        "value": _constant_value(role, spec, st),
                        **{k: spec[k] for k in ("integer", "unit", "tz", "boolean") if k in spec}}
            specs.append(spec)
        if constant:
            warnings.warn(
                f"column(s) {', '.join(map(repr, constant))} hold one value in every row; leaving them out of "
                f"training (set their type with column_types to keep them).", stacklevel=4)
        if not any(c["role"] in ("numeric", "categorical", "datetime") for c in specs):
            raise InputError("the table has no feature columns left after removing id, label, ignored and constant "
                             "columns.")
        return specs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (exact: floats round-trip) to send to another process; see ``from_dict``."""
        columns = None if self.columns is None else [
            {"name": c, "role": self.roles[c], "dtype": str(self.dtypes[c]),
             **(self._stats[c].to_dict() if c in self._stats else {})} for c in self.columns]
        return {"format": 1, "column_types": self.column_types, "id_columns": self.id_columns, "label": self.label,
                "seed": self.seed, "reservoir_size": self.reservoir_size, "row_offset": self.row_offset,
                "n_rows": self.n_rows, "n_chunks": self.n_chunks, "columns": columns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TableStats":
        """The accumulator ``to_dict`` described (after a trip through JSON or another process)."""
        if d.get("format") != 1:
            raise InputError(f"unknown table statistics format {d.get('format')!r}.")
        stats = cls(d["column_types"], d["id_columns"], d["label"], seed=d["seed"],
                    reservoir_size=d["reservoir_size"], row_offset=d["row_offset"])
        stats.n_rows, stats.n_chunks = int(d["n_rows"]), int(d["n_chunks"])
        if d["columns"] is not None:
            cols = d["columns"]
            stats._set_columns([c["name"] for c in cols], {c["name"]: c["role"] for c in cols},
                               {c["name"]: pd.api.types.pandas_dtype(c["dtype"]) for c in cols})
            for c in cols:
                if c["role"] in _STATS:
                    stats._stats[c["name"]] = _STATS[c["role"]].from_dict(c, stats.reservoir_size)
        return stats


__all__ = ["DEFAULT_RESERVOIR", "TableStats", "check_unique_columns"]
