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

import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import check_output_file, write_stream
from ..data.chunks import Raw
from ..errors import InputError
from ..fsutil import atomic_write
from ..train.distributed import all_reduce_sum, finish
from ..train.distributed import context as distributed_context
from .anomaly import AnomalyDetector
from .autoencoder import Autoencoder
from .base import require_fitted
from .batched import DEFAULT_BATCH_ROWS, Ids, iter_applied


def iter_embeddings(
    est: Autoencoder, data: Any, *, batch_rows: int | None = None, embed: Callable[[Raw], np.ndarray] | None = None,
    **share: int,
) -> Iterator[tuple[Ids, np.ndarray]]:
    """``(ids, Z)`` per batch: the embeddings ``est.transform(rows)``, shaped (n, latent_dim).

    ``embed`` replaces ``est.transform`` by another per-row embedding of raw rows (the CLI passes
    ``latentforge.transform.embed_truncated`` or ``compatible_embedding`` this way). See
    :func:`iter_applied` for ``data`` and ``batch_rows``.
    """
    return iter_applied(est, data, est.transform if embed is None else embed, batch_rows=batch_rows, **share)


def iter_reconstructions(
    est: Autoencoder, data: Any, *, batch_rows: int | None = None, **share: int,
) -> Iterator[tuple[Ids, pd.DataFrame | np.ndarray]]:
    """``(ids, est.reconstruct(rows))`` per batch: a DataFrame in the original columns for tables,
    (n, C, H, W) arrays for images. See :func:`iter_applied` for ``data`` and ``batch_rows``."""
    return iter_applied(est, data, est.reconstruct, batch_rows=batch_rows, **share)


def iter_scores(
    detector: AnomalyDetector, data: Any, *, batch_rows: int | None = None, **share: int,
) -> Iterator[tuple[Ids, np.ndarray]]:
    """``(ids, detector.decision_function(rows))`` per batch: outlier scores (n,), higher = more
    anomalous, against the detector's training statistics (e.g.
    ``AnomalyDetector.from_autoencoder(est)``); ``detector.threshold_`` flags outliers.
    See :func:`iter_applied` for ``data`` and ``batch_rows``."""
    require_fitted(detector)
    return iter_applied(detector.autoencoder_, data, detector.decision_function, batch_rows=batch_rows, **share)


MANIFEST = "_manifest.json"  # a leading underscore: Parquet readers skip it when reading the folder


def check_outputs(path: str | Path, allowed: tuple[str, ...] | None = None) -> None:
    """Check (before any work) that ``path`` can take the output: a file of an ``allowed`` type in
    one process, a folder of parts under torchrun (``WORLD_SIZE`` > 1)."""
    path = Path(path)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if path.suffix:
            raise InputError(f"under torchrun every rank writes a part: give a folder for --out, not the file {path}.")
        return
    check_output_file(path, *(() if allowed is None else (allowed,)))


def write_outputs(path: str | Path, chunks_of: Callable[[int, int], Iterable[Any]], n_rows: int) -> int:
    """Write a stream of output chunks to ``path`` and return the rows written.

    ``chunks_of(rank, world_size)`` yields the chunks of one share (e.g. ``iter_embeddings(...,
    rank=rank, world_size=world_size)`` turned into frames). In one process: one file, written by
    :func:`latentforge.data.write_stream`. Under torchrun: ``path`` is a folder; each rank writes
    its share (fragments ``rank::world_size``) to ``part-RANK.parquet`` and rank 0 writes
    ``_manifest.json`` (parts, rows per part); ``pd.read_parquet(path)`` reads the folder back as
    one table, ranks' parts one after another (the id columns say which row is which).
    """
    check_outputs(path)
    ctx = distributed_context()
    if not ctx.active:
        return write_stream(path, chunks_of(0, 1), n_rows)
    path = Path(path)
    chunks = iter(chunks_of(ctx.rank, ctx.world_size))
    first = next(chunks, None)
    rows = 0 if first is None else write_stream(path / f"part-{ctx.rank:05d}.parquet",
                                                itertools.chain([first], chunks))
    counts = torch.zeros(ctx.world_size, dtype=torch.long)
    counts[ctx.rank] = rows
    counts = all_reduce_sum(counts, ctx).tolist()
    if ctx.is_main:
        parts = [{"file": f"part-{r:05d}.parquet", "rows": n} for r, n in enumerate(counts) if n]
        atomic_write(path / MANIFEST, json.dumps({"world_size": ctx.world_size, "rows": sum(counts),
                                                  "parts": parts}, indent=2).encode())
    finish(ctx)
    return sum(counts)


__all__ = ["DEFAULT_BATCH_ROWS", "MANIFEST", "iter_applied", "iter_embeddings", "iter_reconstructions", "iter_scores",
           "check_outputs", "write_outputs"]
