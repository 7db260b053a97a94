"""Tables → float matrices and back.

Column roles: ``numeric`` (standardised with train statistics, missing values imputed with the
train median plus a 0/1 missing-indicator column), ``categorical`` (one-hot over the most frequent
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

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

ROLES = ("numeric", "categorical", "id", "label", "ignore")
OTHER = "<other>"
MISSING = "<missing>"
DEFAULT_RESERVOIR = 100_000  # values kept per numeric column by fit_stream for the median


def _is_numeric_dtype(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _first_non_numeric(s: pd.Series) -> tuple[int, Any] | None:
    """(position, value) of the first non-empty value that does not parse as a number."""
    parsed = pd.to_numeric(s, errors="coerce")
    bad = (parsed.isna() & s.notna()).to_numpy()
    if bad.any():
        pos = int(bad.argmax())
        return pos, s.iloc[pos]
    return None


def _row(s: pd.Series, pos: int, first_row: int | None) -> Any:
    """How errors name a row: its index label, or its global number when reading chunks."""
    return s.index[pos] if first_row is None else first_row + pos


def _as_numbers(name: str, s: pd.Series, first_row: int | None = None) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s):
        values = s.astype("int64").astype(float) / 1e9
        values[s.isna().to_numpy()] = np.nan
        return np.asarray(values, dtype=float)
    if not _is_numeric_dtype(s):
        bad = _first_non_numeric(s)
        if bad is not None:
            raise InputError(
                f"column {name!r} is numeric but holds the non-numeric value {bad[1]!r} "
                f"(row {_row(s, bad[0], first_row)}); fix the value or declare the column categorical "
                f"(column_types={{{name!r}: 'categorical'}} / --column-type {name}=categorical)."
            )
        s = pd.to_numeric(s, errors="coerce")
    values = s.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        row = _row(s, int(np.isinf(values).argmax()), first_row)
        raise InputError(f"column {name!r} holds an infinite value (row {row}); replace it or drop the row.")
    return values


def _as_strings(s: pd.Series) -> np.ndarray:
    out = s.astype(object).where(s.notna(), MISSING)
    return np.asarray([str(v) for v in out], dtype=object)


def infer_role(name: str, s: pd.Series) -> str:
    """Guess a column's role from its values (override with ``column_types``)."""
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if _is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
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


_U64 = np.uint64


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
            # the same operations as np.std, so a one-chunk fit gives the numbers fit() always gave
            st.mean = float(observed.mean())
            centred = observed - st.mean
            st.m2 = float(np.square(centred).sum())
            st.mean_lo = float(centred.mean())
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
            if self.count == 0:
                self.count, self.mean, self.mean_lo, self.m2 = other.count, other.mean, other.mean_lo, other.m2
            else:
                na, nb = self.count, other.count
                n = na + nb
                delta = (other.mean - self.mean) + (other.mean_lo - self.mean_lo)  # of the true chunk means
                lo = self.mean_lo + delta * (nb / n)  # the merged mean, relative to self.mean
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
        return float(np.sqrt(self.m2 / self.count))  # population (ddof=0), as fit() always used

    def to_dict(self) -> dict[str, Any]:
        values = self.sample() if self.count else np.empty(0)
        return {"count": self.count, "mean": self.mean, "mean_lo": self.mean_lo, "m2": self.m2,
                "n_missing": self.n_missing,
                "values": values.tolist(),
                "keys": None if self.size is None else (self.keys[0].tolist() if self.count else [])}

    @classmethod
    def from_dict(cls, d: dict[str, Any], size: int | None) -> "_NumericStats":
        st = cls(size)
        st.count, st.n_missing = int(d["count"]), int(d["n_missing"])
        st.mean, st.mean_lo, st.m2 = float(d["mean"]), float(d["mean_lo"]), float(d["m2"])
        if st.count:
            st.values = [np.asarray(d["values"], dtype=float)]
            st.held = int(st.values[0].size)
            if size is not None:
                st.keys = [np.asarray(d["keys"], dtype=_U64)]
        return st


class _CategoricalStats:
    """Exact counts of each value as text (missing as ``<missing>``), and the missing count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.n_missing = 0

    @classmethod
    def of_chunk(cls, s: pd.Series) -> "_CategoricalStats":
        st = cls()
        st.n_missing = int(s.isna().sum())
        counts = pd.Series(_as_strings(s)).value_counts()
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


_STATS = {"numeric": _NumericStats, "categorical": _CategoricalStats}


def _common_dtype(a: Any, b: Any) -> Any:
    """The dtype pandas gives the two concatenated (int64 + float64 → float64, bool + object → object)."""
    if a == b:
        return a
    return pd.concat([pd.Series([], dtype=a), pd.Series([], dtype=b)]).dtype


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
        self._stats = {c: _STATS[r](self.reservoir_size) if r == "numeric" else _STATS[r]()
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
                        else infer_role(name, chunk[name]))
            roles[name] = role
        self._set_columns(list(chunk.columns), roles, {c: chunk[c].dtype for c in chunk.columns})

    def update(self, chunk: pd.DataFrame) -> "TableStats":
        """Add the next rows of the table (a DataFrame with the first chunk's columns)."""
        if not isinstance(chunk, pd.DataFrame):
            raise InputError(f"expected a pandas DataFrame, got {type(chunk).__name__}.")
        if chunk.shape[1] == 0:
            raise InputError("the table has no columns.")
        chunk = chunk.rename(columns=str)  # names are strings from here on (and in the saved schema)
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
            if role == "numeric":
                values = _as_numbers(name, s, None if self._rows_by_label else first_row)
                self._stats[name].merge(_NumericStats.of_chunk(values, first_row, self.seed, self.reservoir_size))
            elif role == "categorical":
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
        """The fitted column specs (``TabularPreprocessor.columns_``), or the error ``fit`` raises."""
        if self.columns is None or self.n_rows == 0:
            raise InputError("the table has no rows.")
        specs = []
        for name in self.columns:
            role = self.roles[name]
            spec: dict[str, Any] = {"name": name, "role": role, "dtype": str(self.dtypes[name])}
            st = self._stats.get(name)
            if isinstance(st, _NumericStats):
                if st.count == 0:
                    raise InputError(f"column {name!r} has no values (all missing); drop it or set its type to 'ignore'.")
                std = st.std
                spec.update(mean=st.mean, std=std if std > 1e-12 else 1.0, median=float(np.median(st.sample())),
                            missing_indicator=st.n_missing > 0)
            elif isinstance(st, _CategoricalStats):
                if set(st.counts) <= {MISSING}:
                    raise InputError(f"column {name!r} has no values (all missing); drop it or set its type to 'ignore'.")
                spec["categories"] = st.top(max_categories)
            specs.append(spec)
        if not any(c["role"] in ("numeric", "categorical") for c in specs):
            raise InputError("the table has no feature columns left after removing id, label and ignored columns.")
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
        numeric = [c for c in self.columns_ if c["role"] == "numeric"]
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
        numeric = [c for c in self.columns_ if c["role"] == "numeric"]
        names = [c["name"] for c in numeric]
        names += [f"{c['name']}__missing" for c in numeric if c["missing_indicator"]]
        for c in self.columns_:
            if c["role"] == "categorical":
                names += [f"{c['name']}={v}" for v in c["categories"]] + [f"{c['name']}={OTHER}"]
        return names

    @property
    def passthrough_columns(self) -> list[str]:
        """Columns the model does not read but that new data may carry (ids, label, ignored)."""
        return [c["name"] for c in self.columns_ if c["role"] not in ("numeric", "categorical")]

    # -- transforming ----------------------------------------------------------------------
    def check_schema(self, frame: pd.DataFrame) -> None:
        """Raise an InputError naming missing, extra or retyped columns."""
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"expected a pandas DataFrame, got {type(frame).__name__}.")
        known = {c["name"] for c in self.columns_} | set(self.id_columns) | ({self.label} if self.label else set())
        features = [c["name"] for c in self.columns_ if c["role"] in ("numeric", "categorical")]
        frame = frame.rename(columns=str)
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
            if c["role"] == "numeric" and not _is_numeric_dtype(frame[c["name"]]):
                bad = _first_non_numeric(frame[c["name"]])
                if bad is not None and not pd.api.types.is_datetime64_any_dtype(frame[c["name"]]):
                    raise InputError(
                        f"column {c['name']!r} was numeric when the model was fitted but now holds "
                        f"{bad[1]!r} (row {_row(frame[c['name']], bad[0], None)}); the column's type changed."
                    )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        if isinstance(frame, pd.DataFrame):
            frame = frame.rename(columns=str)  # a renamed copy: never touch the caller's frame
        self.check_schema(frame)
        if len(frame) == 0:
            raise InputError("the table has no rows.")
        numeric = [c for c in self.columns_ if c["role"] == "numeric"]
        parts: list[np.ndarray] = []
        if numeric:  # one (n, k) matrix: the same arithmetic per element, vectorised over columns
            values = np.empty((len(frame), len(numeric)), order="F")  # column writes stay contiguous
            for j, c in enumerate(numeric):
                values[:, j] = _as_numbers(c["name"], frame[c["name"]])
            miss = np.isnan(values)
            stats = {key: np.array([c[key] for c in numeric]) for key in ("median", "mean", "std")}
            parts.append((np.where(miss, stats["median"], values) - stats["mean"]) / stats["std"])
            flagged = [j for j, c in enumerate(numeric) if c["missing_indicator"]]
            if flagged:
                parts.append(miss[:, flagged].astype(float))
        for c in self.columns_:
            if c["role"] == "categorical":
                strings = _as_strings(frame[c["name"]])
                index = {v: i for i, v in enumerate(c["categories"])}
                codes = np.array([index.get(v, len(index)) for v in strings])
                parts.append(np.eye(len(index) + 1)[codes])
        out = np.empty((len(frame), self.n_features), dtype=np.float32)
        start = 0
        for part in parts:  # each block cast to float32 as it is written: no float64 copy of the whole
            out[:, start:start + part.shape[1]] = part
            start += part.shape[1]
        return out

    def inverse_transform(self, features: np.ndarray) -> pd.DataFrame:
        """Decoded feature matrix (means/probabilities) → a frame in the original columns."""
        self._check_fitted()
        features = np.asarray(features, dtype=float)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InputError(f"expected an (n, {self.n_features}) feature matrix, got shape {features.shape}.")
        out: dict[str, Any] = {}
        numeric = [c for c in self.columns_ if c["role"] == "numeric"]
        for j, c in enumerate(numeric):
            out[c["name"]] = features[:, j] * c["std"] + c["mean"]
        blocks = [b for b in self.layout if b[0] == "categorical"]
        for c, (_, start, stop) in zip([c for c in self.columns_ if c["role"] == "categorical"], blocks):
            labels = np.array(c["categories"] + [OTHER], dtype=object)
            out[c["name"]] = labels[features[:, start:stop].argmax(axis=1)]
        order = [c["name"] for c in self.columns_ if c["name"] in out]
        return pd.DataFrame(out)[order]

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
