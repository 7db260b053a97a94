"""The fast path for streaming a numeric table: Parquet (or array) columns straight to NumPy and to
features, without building a DataFrame per fragment.

:func:`numeric_view` wraps a source whose feature columns are all integers or floats in a view
with the same fragments, whose raw rows are :class:`ColumnBlock` s (one 1-D array per feature
column, only those columns read), and returns the transform that turns them into features with
:meth:`TabularPreprocessor.transform_arrays`: the features :meth:`TabularPreprocessor.transform`
gives, bit for bit. Fragments, row numbers, filters, shuffling, sharding and batches are those of
the source itself, so a stream read through the view is the same stream, only cheaper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .chunks import Raw
from .sources import DataSource
from .tabular import TabularPreprocessor


class ColumnBlock:
    """Rows of a table as one 1-D array per column plus the rows' global numbers (for error
    messages). Indexing by row positions or a slice indexes every array, as for a NumPy array,
    so blocks pass through the stream's row filters and buffers unchanged."""

    __slots__ = ("arrays", "rows")

    def __init__(self, arrays: Sequence[np.ndarray], rows: np.ndarray):
        self.arrays, self.rows = list(arrays), np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: np.ndarray | slice) -> "ColumnBlock":
        return ColumnBlock([a[index] for a in self.arrays], self.rows[index])


class _ColumnView(DataSource):
    """``source`` with :class:`ColumnBlock` s of some columns as raw rows (same fragments and offsets)."""

    def __init__(self, source: DataSource, read: Callable[[int], list[np.ndarray] | None]):
        self._source, self._read = source, read
        self.kind, self.name, self.columns = source.kind, source.name, source.columns
        self.seekable, self.shardable = source.seekable, source.shardable
        self._set_fragments(source.fragment_sizes)
        self._offsets = super().offsets

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    def read_fragment(self, f: int) -> Raw | ColumnBlock:
        arrays = self._read(self._check_fragment(f))
        if arrays is None:  # a fragment the column reader cannot take: the source's own rows
            return self._source.read_fragment(f)
        return ColumnBlock(arrays, np.arange(self._offsets[f], self._offsets[f + 1], dtype=np.int64))


def numeric_view(source: DataSource, preprocessor: TabularPreprocessor
                 ) -> tuple[DataSource, Callable[[Raw | ColumnBlock], np.ndarray]] | None:
    """``(view, transform)`` reading ``source``'s features without pandas, or None where the fast
    path does not apply.

    It applies when ``preprocessor`` (fitted) has only numeric feature columns, ``source`` is a
    seekable, shardable table holding no column the schema does not know, and its
    :meth:`~latentforge.data.sources.DataSource.column_reader` can read those columns (integer or
    float Parquet columns; 2-D integer or float arrays). ``transform(raw)`` equals
    ``preprocessor.transform(raw)`` on the rows ``iter_batches(source, ...)`` would see, and its
    errors (an infinite value, naming the column and the global row) are the same.
    """
    if source.kind != "table" or not source.seekable or not source.shardable or source.columns is None:
        return None
    if not isinstance(preprocessor, TabularPreprocessor) or not preprocessor.columns_:
        return None
    names = preprocessor.numeric_feature_columns
    known = {c["name"] for c in preprocessor.columns_} | set(preprocessor.id_columns) | (
        {preprocessor.label} if preprocessor.label else set())
    if not names or not set(source.columns) <= known:
        return None  # the slow transform names the unexpected columns
    read = source.column_reader(names)
    if read is None:
        return None

    def transform(raw: Raw | ColumnBlock) -> np.ndarray:
        if isinstance(raw, ColumnBlock):
            return preprocessor.transform_arrays(raw.arrays, raw.rows)
        return preprocessor.transform(raw).reshape(len(raw), -1)
    return _ColumnView(source, read), transform


__all__ = ["ColumnBlock", "numeric_view"]
