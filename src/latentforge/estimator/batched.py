"""Apply a fitted estimator's row-wise method to a source batch by batch, in storage order.

The core of :mod:`latentforge.estimator.streaming`, kept apart so the estimators themselves can
use it (``Autoencoder.transform(path)``) without importing the module that builds on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..data import Chunk, DataSource, ImageFolderSource, iter_chunks, open_source, rebatch
from ..data.chunks import Raw
from ..data.sources import DEFAULT_FRAGMENT_ROWS
from ..errors import InputError
from ..validation import positive_int
from .base import require_fitted

#: rows per batch when ``batch_rows`` is not given: one array fragment's worth
DEFAULT_BATCH_ROWS = DEFAULT_FRAGMENT_ROWS

Ids = pd.DataFrame | None


def _batches(source: DataSource, batch_rows: int, rank: int = 0, world_size: int = 1) -> Iterator[Chunk]:
    """The source's rows in storage order, ``batch_rows`` at a time (the last batch shorter): large
    fragments are cut, so the work per call stays bounded, and small ones joined, so it is not tiny."""
    return rebatch(iter_chunks(source, shuffle=False, rank=rank, world_size=world_size), batch_rows)


def _id_reader(est: Any, source: DataSource) -> Callable[[Chunk], Ids]:
    """``ids(chunk)``: the rows' known id columns (tables), file names (image folders), else None."""
    if source.kind == "table":
        present = [c for c in est.preprocessor_.id_columns if c in source.columns]
        if present:
            return lambda chunk: chunk.data[present].reset_index(drop=True)
    elif isinstance(source, ImageFolderSource):
        files = np.asarray(source.files, dtype=object)
        return lambda chunk: pd.DataFrame({"file": files[chunk.rows]})
    return lambda chunk: None


def iter_applied(
    est: Any, data: Any, fn: Callable[[Raw], Any], *, batch_rows: int | None = None, rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[Ids, Any]]:
    """``(ids, fn(raw))`` for each batch of ``data``'s raw rows, in storage order.

    Parameters
    ----------
    est : a fitted Autoencoder (it decides which id columns are carried).
    data : anything :func:`latentforge.data.open_source` takes: a path (Parquet file or folder,
        CSV, ``.npy``, safetensors, image folder), a DataSource, a DataFrame, an array, a Dataset.
    fn : ``fn(raw) -> values`` with one row per input row, e.g. ``est.transform``; it must work
        row by row for the batches to add up to the call on the whole input.
    batch_rows : rows per batch (default :data:`DEFAULT_BATCH_ROWS`, 65,536).
    rank, world_size : read only this rank's share of the fragments (``rank::world_size`` in
        storage order), as each torchrun process does in :func:`write_outputs`.

    The source is opened (and checked) at once; rows are read as the iterator is consumed.
    """
    require_fitted(est)
    batch_rows = positive_int(DEFAULT_BATCH_ROWS if batch_rows is None else batch_rows, "batch_rows")
    source = open_source(data)
    ids = _id_reader(est, source)

    def generate() -> Iterator[tuple[Ids, Any]]:
        for chunk in _batches(source, batch_rows, rank, world_size):
            values = fn(chunk.data)
            if len(values) != len(chunk.rows):
                raise InputError(f"{getattr(fn, '__name__', 'fn')} returned {len(values)} rows for a batch of "
                                 f"{len(chunk.rows)}; it must keep one row per input row.")
            yield ids(chunk), values
    return generate()
