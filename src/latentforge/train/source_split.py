"""A streamed source as the trainer's training and validation batches.

The validation rows are chosen by a seeded hash of the global row index
(:func:`latentforge.data.hash_split`), so the split needs no pass over the data, is the same on
every rank and in every epoch, and each side is read as its own stream. Under torchrun each rank
reads its own fragments, and every rank takes the steps of the smallest share; a source with
fewer than ``ROW_SHARD_BELOW`` fragments per rank (a single small file, say) cannot be dealt out by
fragment without leaving a rank idle, so there every rank reads the whole stream in global batches
and keeps rows ``rank::world_size`` of each, the rule of in-memory data.

With ``val_cache_bytes`` the validation batches are kept in memory after their first read (they
are the same every epoch), and in one process the first training pass also sets them aside
(:class:`latentforge.data.RowsAside`), so an epoch reads the source once, not twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..config import TrainConfig, resolve_device
from ..data import DataSource, RowsAside, hash_split, iter_batches, rows_per_rank
from ..errors import InputError
from .batches import StreamBatches
from .distributed import context, local_device

Transform = Callable[[object], np.ndarray]
MIN_ROWS_FOR_VALIDATION = 20
ROW_SHARD_BELOW = 4  # fragments per rank under which ranks share rows rather than fragments


def validation_fraction(n_rows: int, config: TrainConfig) -> float:
    """``config.val_fraction``, or 0 for sources too small to hold a validation split out."""
    return config.val_fraction if n_rows >= MIN_ROWS_FOR_VALIDATION else 0.0


def count_validation_rows(source: DataSource, fraction: float, seed: int, block: int = 1 << 20) -> int:
    """How many of the source's rows the hash split sends to validation (row indices only, in blocks)."""
    n, total = source.n_rows, 0
    for start in range(0, n, block):
        total += int(hash_split(np.arange(start, min(n, start + block), dtype=np.int64), fraction, seed).sum())
    return total


@dataclass
class SourceSplit:
    """Training and validation :class:`StreamBatches` of one source, and how to read a sample."""

    train: StreamBatches
    val: StreamBatches | None
    n_train: int
    n_val: int
    read: Callable[..., Callable[[int], object]]

    def sample(self, max_rows: int) -> torch.Tensor:
        """Up to ``max_rows`` training rows in a seeded shuffled order, read from epoch 0 (which no
        training epoch uses: epochs count from 1), on the CPU."""
        return self._read_rows(training=True, shuffle=True, max_rows=max_rows)

    def read_whole(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training and the validation rows, each read once in storage order, as CPU tensors
        (for a source small enough to hold: epochs then shuffle in memory instead of reading and
        preprocessing the source again). The split is the hash split the streams use."""
        return (self._read_rows(training=True, shuffle=False),
                self._read_rows(training=False, shuffle=False) if self.n_val else None)

    def _read_rows(self, training: bool, shuffle: bool, max_rows: int | None = None) -> torch.Tensor:
        """One side of the split read as epoch 0, one float32 CPU tensor of at most ``max_rows`` rows."""
        parts, got = [], 0
        for features in self.read(training=training, batch_size=4096, shuffle=shuffle, rank=0, world_size=1)(0):
            parts.append(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)))
            got += len(features)
            if max_rows is not None and got >= max_rows:
                break
        return torch.cat(parts)[:max_rows]


def split_source(source: DataSource, transform: Transform, config: TrainConfig, *, n_val: int | None = None,
                 val_batch_size: int = 1024, read_from: DataSource | None = None, val_cache_bytes: int = 0,
                 row_width: int | None = None) -> SourceSplit:
    """The trainer's batches of ``source``: ``transform(raw fragment) -> float32 features`` runs per
    fragment; ``n_val`` (counted from the row indices when not given) is the validation size.

    ``read_from``: the source actually read, with ``source``'s fragments (e.g. a columnar view of
    it; default ``source``). ``val_cache_bytes``: keep the validation batches in memory up to that
    size; with ``row_width`` (features per row) known to fit, the training pass sets them aside."""
    n = source.n_rows
    if n < 2:
        raise InputError(f"training needs at least 2 rows, got {n} in {source.name}.")
    fraction = validation_fraction(n, config)

    def is_val(rows: np.ndarray) -> np.ndarray:
        return hash_split(rows, fraction, config.seed)

    def is_train(rows: np.ndarray) -> np.ndarray:
        return ~is_val(rows)

    if n_val is None:
        n_val = count_validation_rows(source, fraction, config.seed)
    if n - n_val < 1:
        raise InputError(f"the validation split leaves no training rows in {source.name}.")
    stream = source if read_from is None else read_from
    ctx = context(resolve_device(config.device))
    device = local_device(resolve_device(config.device), ctx)

    def read(training: bool, batch_size: int, shuffle: bool, rank: int = ctx.rank,
             world_size: int = ctx.world_size) -> Callable[[int], object]:
        """Epoch → the feature batches of the training (or validation) rows of this rank."""
        row_filter = is_train if training else is_val
        return lambda epoch: (features for _, features in iter_batches(
            stream, transform, batch_size, epoch=epoch, seed=config.seed, shuffle=shuffle, row_filter=row_filter,
            rank=rank, world_size=world_size))

    by_rows = ctx.active and source.n_fragments < ROW_SHARD_BELOW * ctx.world_size
    local_batch = max(1, config.batch_size // ctx.world_size) if ctx.active else config.batch_size

    def smallest_share_steps(epoch: int) -> int:
        """Under torchrun each rank reads its own fragments; all take the steps of the smallest share."""
        shares = rows_per_rank(source, epoch=epoch, seed=config.seed, world_size=ctx.world_size, row_filter=is_train)
        return max(1, math.ceil(min(shares) / local_batch))

    def rows_of_global_batches(training: bool, batch_size: int, shuffle: bool) -> Callable[[int], object]:
        """The whole stream in global batches, this rank keeping rows rank::world_size of each."""
        def epoch_batches(epoch: int):
            for features in read(training, batch_size * ctx.world_size, shuffle, rank=0, world_size=1)(epoch):
                yield features[ctx.rank::ctx.world_size]
        return epoch_batches
    if by_rows:
        steps = math.ceil((n - n_val) / (local_batch * ctx.world_size))
        train = StreamBatches(rows_of_global_batches(True, local_batch, True), n - n_val, local_batch, device,
                              lambda epoch: steps)
        val_read = rows_of_global_batches(False, val_batch_size, False)
    else:
        train = StreamBatches(read(True, local_batch, True), n - n_val, local_batch, device,
                              smallest_share_steps if ctx.active else None)
        val_read = read(False, val_batch_size, False)
    val = StreamBatches(val_read, n_val, val_batch_size, device, cache_bytes=val_cache_bytes) if n_val else None
    if (val is not None and not ctx.active and source.shardable and row_width is not None
            and n_val * row_width * 4 <= val_cache_bytes):
        train.read = _setting_validation_aside(train, val, stream, transform, is_train, is_val, local_batch,
                                               val_batch_size, config.seed)
    return SourceSplit(train, val, n - n_val, n_val, read)


def _setting_validation_aside(train: StreamBatches, val: StreamBatches, stream: DataSource, transform: Transform,
                              is_train: Callable, is_val: Callable, batch_size: int, val_batch_size: int,
                              seed: int) -> Callable[[int], object]:
    """The training read which, until ``val`` keeps its batches, also sets the validation rows aside:
    one read of the source in an epoch, not two (the same batches ``val`` would read)."""
    plain_read = train.read

    def read(epoch: int):
        if val.cached:
            yield from plain_read(epoch)
            return
        aside = RowsAside(stream, is_val, transform)
        for _, features in iter_batches(aside, transform, batch_size, epoch=epoch, seed=seed, row_filter=is_train):
            yield features
        batches = aside.batches(val_batch_size)
        if batches is not None:
            val.prime(batches)
    return read


__all__ = ["SourceSplit", "count_validation_rows", "split_source", "validation_fraction"]
