"""Bounded-memory inference: embeddings, reconstructions and anomaly scores of a source, chunk by chunk.

The generators read their input in storage order (:func:`latentforge.data.iter_chunks` with
``shuffle=False``), cut or join its fragments into batches of ``batch_rows`` rows and run the
estimator's own method (``transform``, ``reconstruct``, ``decision_function``) on each batch's raw
rows. Every one of these methods works row by row, so the concatenated outputs equal the
in-memory call on the whole input, row for row and in order, while memory holds one fragment,
one batch and its outputs, whatever the number of rows. Each yields ``(ids, values)``: ``ids`` is a
DataFrame of the id columns the model knows that the input has (an image folder's file names,
column ``file``) or None. :func:`latentforge.data.io.write_stream` writes such a stream to a file as
it comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..data import Chunk, DataSource, ImageFolderSource, iter_chunks, open_source
from ..data.sources import DEFAULT_FRAGMENT_ROWS, Raw
from ..errors import InputError
from ..validation import positive_int
from .anomaly import AnomalyDetector
from .autoencoder import Autoencoder
from .base import require_fitted

#: rows per batch when ``batch_rows`` is not given: one array fragment's worth
DEFAULT_BATCH_ROWS = DEFAULT_FRAGMENT_ROWS

Ids = pd.DataFrame | None


def _join(parts: list[Chunk]) -> Chunk:
    if len(parts) == 1:
        return parts[0]
    raws = [p.data for p in parts]
    return Chunk(np.concatenate([p.rows for p in parts]),
                 pd.concat(raws) if isinstance(raws[0], pd.DataFrame) else np.concatenate(raws))


def _cut(chunk: Chunk, start: int, stop: int) -> Chunk:
    data = chunk.data.iloc[start:stop] if isinstance(chunk.data, pd.DataFrame) else chunk.data[start:stop]
    return Chunk(chunk.rows[start:stop], data)


def _batches(source: DataSource, batch_rows: int) -> Iterator[Chunk]:
    """The source's rows in storage order, ``batch_rows`` at a time (the last batch shorter): large
    fragments are cut, so the work per call stays bounded, and small ones joined, so it is not tiny."""
    held: list[Chunk] = []
    n_held = 0
    for chunk in iter_chunks(source, shuffle=False):
        held.append(chunk)
        n_held += len(chunk.rows)
        if n_held >= batch_rows:
            joined, full = _join(held), n_held - n_held % batch_rows
            for a in range(0, full, batch_rows):
                yield _cut(joined, a, a + batch_rows)
            held = [_cut(joined, full, n_held)] if full < n_held else []
            n_held -= full
    if held:
        yield _join(held)


def _id_reader(est: Autoencoder, source: DataSource) -> Callable[[Chunk], Ids]:
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
    est: Autoencoder, data: Any, fn: Callable[[Raw], Any], *, batch_rows: int | None = None,
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

    The source is opened (and checked) at once; rows are read as the iterator is consumed.
    """
    require_fitted(est)
    batch_rows = positive_int(DEFAULT_BATCH_ROWS if batch_rows is None else batch_rows, "batch_rows")
    source = open_source(data)
    ids = _id_reader(est, source)

    def generate() -> Iterator[tuple[Ids, Any]]:
        for chunk in _batches(source, batch_rows):
            values = fn(chunk.data)
            if len(values) != len(chunk.rows):
                raise InputError(f"{getattr(fn, '__name__', 'fn')} returned {len(values)} rows for a batch of "
                                 f"{len(chunk.rows)}; it must keep one row per input row.")
            yield ids(chunk), values
    return generate()


def iter_embeddings(
    est: Autoencoder, data: Any, *, batch_rows: int | None = None, embed: Callable[[Raw], np.ndarray] | None = None,
) -> Iterator[tuple[Ids, np.ndarray]]:
    """``(ids, Z)`` per batch: the embeddings ``est.transform(rows)``, shaped (n, latent_dim).

    ``embed`` replaces ``est.transform`` by another per-row embedding of raw rows (the CLI passes
    ``latentforge.transform.embed_truncated`` or ``compatible_embedding`` this way). See
    :func:`iter_applied` for ``data`` and ``batch_rows``.
    """
    return iter_applied(est, data, est.transform if embed is None else embed, batch_rows=batch_rows)


def iter_reconstructions(
    est: Autoencoder, data: Any, *, batch_rows: int | None = None,
) -> Iterator[tuple[Ids, pd.DataFrame | np.ndarray]]:
    """``(ids, est.reconstruct(rows))`` per batch: a DataFrame in the original columns for tables,
    (n, C, H, W) arrays for images. See :func:`iter_applied` for ``data`` and ``batch_rows``."""
    return iter_applied(est, data, est.reconstruct, batch_rows=batch_rows)


def iter_scores(
    detector: AnomalyDetector, data: Any, *, batch_rows: int | None = None,
) -> Iterator[tuple[Ids, np.ndarray]]:
    """``(ids, detector.decision_function(rows))`` per batch: outlier scores (n,), higher = more
    anomalous, against the detector's training statistics (e.g.
    ``AnomalyDetector.from_autoencoder(est)``); ``detector.threshold_`` flags outliers.
    See :func:`iter_applied` for ``data`` and ``batch_rows``."""
    require_fitted(detector)
    return iter_applied(detector.autoencoder_, data, detector.decision_function, batch_rows=batch_rows)


__all__ = ["DEFAULT_BATCH_ROWS", "iter_applied", "iter_embeddings", "iter_reconstructions", "iter_scores"]
