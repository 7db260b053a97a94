"""Iterating a :class:`~latentforge.data.sources.DataSource`: the fragments of an epoch dealt out to
ranks and DataLoader workers (:func:`iter_chunks`), shuffled per epoch and mixed through a bounded
buffer, turned into fixed-size float32 batches (:func:`iter_batches`); :func:`hash_split` picks
validation rows by a hash of the row index, so nothing has to be stored or agreed between
processes; :func:`rows_per_rank` says how many rows each rank reads without reading them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import positive_int
from .chunks import Chunk, Raw, concat_chunks, slice_chunk, take_chunk
from .sources import DEFAULT_SHUFFLE_BUFFER, DataSource, open_source

def _seed(seed: int) -> int:
    return int(seed) & 0xFFFF_FFFF_FFFF_FFFF  # SeedSequence takes non-negative ints; any int seed works


def _consumer(rank: int, world_size: int) -> tuple[int, int]:
    """(this consumer's id, number of consumers): ``rank * n_workers + worker_id`` over ``world_size * n_workers``."""
    world_size = positive_int(world_size, "world_size")
    rank = positive_int(rank, "rank", minimum=0)
    if rank >= world_size:
        raise InputError(f"rank must be below world_size ({world_size}), got {rank}.")
    worker_id, n_workers = 0, 1
    torch = sys.modules.get("torch")  # inside a DataLoader worker torch is imported already
    info = torch.utils.data.get_worker_info() if torch is not None else None
    if info is not None:
        worker_id, n_workers = info.id, info.num_workers
    return rank * n_workers + worker_id, world_size * n_workers


def _filtered(chunks: Iterator[Chunk], row_filter: Callable[[np.ndarray], np.ndarray] | None) -> Iterator[Chunk]:
    for chunk in chunks:
        if row_filter is not None:
            keep = np.asarray(row_filter(chunk.rows), dtype=bool)
            if keep.shape != chunk.rows.shape:
                raise InputError(f"row_filter returned shape {keep.shape} for {len(chunk.rows)} rows; "
                                 "it must return one bool per row.")
            if not keep.all():
                chunk = take_chunk(chunk, np.flatnonzero(keep))
        if len(chunk.rows):
            yield chunk


def _shuffled(chunks: Iterator[Chunk], buffer_rows: int, rng: np.random.Generator) -> Iterator[Chunk]:
    """Mix rows across fragments: hold fragments until ``buffer_rows`` rows, emit a random half, keep the rest."""
    held: list[Chunk] = []
    n_held, keep = 0, buffer_rows // 2
    for chunk in chunks:
        held.append(chunk)
        n_held += len(chunk.rows)
        if n_held >= max(buffer_rows, 1):
            merged, order = concat_chunks(held), rng.permutation(n_held)
            yield take_chunk(merged, order[: n_held - keep])
            held, n_held = ([take_chunk(merged, order[n_held - keep:])] if keep else []), keep
    if n_held:
        yield take_chunk(concat_chunks(held), rng.permutation(n_held))


def _fragments_of(source: DataSource, epoch: int, seed: int, shuffle: bool, consumer: int,
                  n_consumers: int) -> np.ndarray:
    """The fragments one consumer reads in an epoch, in reading order."""
    order = (np.random.default_rng([_seed(seed), _seed(epoch), 0]).permutation(source.n_fragments)
             if shuffle else np.arange(source.n_fragments))
    return order[consumer::n_consumers]


def rows_per_rank(
    source: DataSource | Any, *, epoch: int = 0, seed: int = 0, shuffle: bool = True, world_size: int = 1,
    row_filter: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[int]:
    """How many rows each of ``world_size`` ranks reads in an epoch (one worker per rank), computed
    from the fragment sizes and ``row_filter`` without reading any data; a data-parallel trainer
    uses it so that every rank takes the same number of steps."""
    source = open_source(source)
    if not source.shardable:
        raise InputError(f"{source.name} is an iterable torch dataset, which shards itself: its rows per rank "
                         "are not known in advance; use a map-style Dataset or a file source.")
    offsets = source.offsets
    counts = []
    for rank in range(positive_int(world_size, "world_size")):
        total = 0
        for f in _fragments_of(source, epoch, seed, shuffle, rank, world_size):
            rows = np.arange(offsets[f], offsets[f + 1], dtype=np.int64)
            total += len(rows) if row_filter is None else int(np.count_nonzero(row_filter(rows)))
        counts.append(total)
    return counts


def iter_chunks(
    source: DataSource | Any,
    *,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    rank: int = 0,
    world_size: int = 1,
    row_filter: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[Chunk]:
    """This consumer's share of one epoch of ``source``, as :class:`Chunk` s of raw rows.

    Parameters
    ----------
    source : a DataSource, or anything :func:`open_source` accepts.
    epoch, seed : the fragment order of an epoch is a permutation seeded by ``(seed, epoch)``,
        the same on every rank and worker; the same arguments always give the same chunks.
    shuffle : False reads this consumer's fragments in storage order, one chunk per fragment, with
        no buffer.
    shuffle_buffer : rows held across fragments to mix them (besides the fragment being read);
        chunks of about ``shuffle_buffer / 2`` rows come out, each a random draw from the buffer.
        0 shuffles within each fragment only. Memory peaks at about twice (buffer + one fragment)
        rows during a draw.
    rank, world_size : this process among the training processes. The fragment at position p of
        the epoch's order belongs to consumer ``p % (world_size * n_workers)``, this consumer being
        ``rank * n_workers + worker_id`` (the DataLoader worker, from
        ``torch.utils.data.get_worker_info()``; 1 worker outside a DataLoader), so one epoch over
        all ranks and workers reads every row exactly once. Ranks get whole fragments, so their
        row counts can differ by up to a fragment's worth per consumer.
    row_filter : ``row_filter(rows) -> bool mask`` over global row indices; False rows are dropped
        before buffering (e.g. ``lambda r: ~hash_split(r, 0.1, seed)`` for the training rows).

    Returns
    -------
    Iterator[Chunk]
        ``(rows, data)`` with ``rows`` int64 global row indices; never an empty chunk.
    """
    shuffle_buffer = positive_int(shuffle_buffer, "shuffle_buffer", minimum=0)
    chunks, consumer, n_consumers = _my_fragments(source, epoch, seed, shuffle, rank, world_size, row_filter)
    if not shuffle:
        return chunks
    rng = np.random.default_rng([_seed(seed), _seed(epoch), 1, consumer, n_consumers])
    return _shuffled(chunks, shuffle_buffer, rng)


def _my_fragments(source: Any, epoch: int, seed: int, shuffle: bool, rank: int, world_size: int,
                  row_filter: Callable[[np.ndarray], np.ndarray] | None) -> tuple[Iterator[Chunk], int, int]:
    """This consumer's fragments of an epoch, filtered, in the epoch's order (no row shuffling yet)."""
    source = open_source(source)
    consumer, n_consumers = _consumer(rank, world_size)
    if source.shardable:
        mine = _fragments_of(source, epoch, seed, shuffle, consumer, n_consumers)
        # a source that cannot seek streams past everything anyway: read its fragments in storage order
        chunks = source.iter_fragments(mine if source.seekable else np.sort(mine))
    else:
        chunks = source.iter_fragments()  # the data shards itself; each consumer reads its whole stream
    return _filtered(chunks, row_filter), consumer, n_consumers


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over uint64 (multiplications wrap modulo 2**64 by design)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_split(rows: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """True for the validation rows: those whose seeded 64-bit hash falls below ``fraction · 2⁶⁴``.

    The hash is splitmix64 of ``row ^ key`` with ``key = splitmix64(seed)``, so the split depends
    only on the global row index and the seed: the same on every rank, every epoch and after a
    restart, with nothing stored. Each row is held out independently with probability
    ``fraction`` (the count is binomial, not exact).

    Parameters
    ----------
    rows : global row indices (integers).
    fraction : the share of rows held out, in [0, 1].
    seed : picks another split.

    Returns
    -------
    np.ndarray
        A bool mask shaped like ``rows``.

    Examples
    --------
    >>> mask = hash_split(np.arange(10_000), 0.1, seed=0)
    >>> 900 < int(mask.sum()) < 1100
    True
    """
    rows = np.asarray(rows)
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise InputError(f"hash_split needs integer row indices, got dtype {rows.dtype}.")
    if not 0 <= fraction <= 1:
        raise InputError(f"fraction must lie in [0, 1], got {fraction!r}.")
    if fraction >= 1:
        return np.ones(rows.shape, dtype=bool)
    key = _splitmix64(np.array([_seed(seed)], dtype=np.uint64))[0]
    return _splitmix64(rows.astype(np.uint64) ^ key) < np.uint64(int(fraction * 2.0**64))


def iter_batches(
    source: DataSource | Any,
    transform: Callable[[Raw], np.ndarray],
    batch_size: int,
    *,
    drop_last: bool = False,
    **iter_chunks_kwargs: Any,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, features)`` batches of exactly ``batch_size`` rows (the last one shorter unless ``drop_last``).

    ``transform(raw) -> features`` (e.g. a fitted preprocessor's ``transform``) runs once per
    fragment, before re-batching, so it works vectorised on many rows; its output is cast to
    float32 and must keep one row per input row. The shuffle buffer then mixes the *features*
    (NumPy arrays, far cheaper to shuffle than raw DataFrames), with the same semantics as in
    :func:`iter_chunks`, whose other keyword arguments it takes.
    """
    batch_size = positive_int(batch_size, "batch_size")
    shuffle = iter_chunks_kwargs.get("shuffle", True)
    buffer = positive_int(iter_chunks_kwargs.get("shuffle_buffer", DEFAULT_SHUFFLE_BUFFER), "shuffle_buffer",
                          minimum=0)
    seed, epoch = iter_chunks_kwargs.get("seed", 0), iter_chunks_kwargs.get("epoch", 0)
    unknown = set(iter_chunks_kwargs) - {"shuffle", "shuffle_buffer", "seed", "epoch", "rank", "world_size",
                                         "row_filter"}
    if unknown:
        raise TypeError(f"iter_batches() got unexpected keyword arguments {sorted(unknown)}")
    fragments, consumer, n_consumers = _my_fragments(
        source, epoch, seed, shuffle, iter_chunks_kwargs.get("rank", 0), iter_chunks_kwargs.get("world_size", 1),
        iter_chunks_kwargs.get("row_filter"))

    chunks = (_features(transform, chunk) for chunk in fragments)
    if shuffle:  # the same buffer as iter_chunks', over features rather than raw rows
        chunks = _shuffled(chunks, buffer, np.random.default_rng([_seed(seed), _seed(epoch), 1, consumer,
                                                                   n_consumers]))
    for batch in rebatch(chunks, batch_size, drop_last=drop_last):
        yield batch.rows, batch.data


def _features(transform: Callable[[Raw], np.ndarray], chunk: Chunk) -> Chunk:
    """``transform`` of a chunk's raw rows as float32 features, one row per row."""
    x = np.asarray(transform(chunk.data), dtype=np.float32)
    if len(x) != len(chunk.rows):
        raise InputError(f"transform returned {len(x)} rows for a chunk of {len(chunk.rows)}; "
                         "it must keep one row per input row.")
    return Chunk(chunk.rows, x)


class RowsAside(DataSource):
    """``source`` read as it is, with the rows ``row_filter`` selects in every fragment read also
    transformed and set aside: one pass over the storage feeds a training stream (which filters
    those rows out) and collects the validation rows on the side, instead of a second pass.

    After a pass that read every fragment once, :meth:`batches` gives the set-aside features
    exactly as ``iter_batches(source, transform, batch_rows, shuffle=False,
    row_filter=row_filter)`` would (storage order, the same cuts). Memory: the set-aside features.
    """

    def __init__(self, source: DataSource, row_filter: Callable[[np.ndarray], np.ndarray],
                 transform: Callable[[Raw], np.ndarray]):
        if not source.shardable:
            raise InputError(f"{source.name} is read as one stream per consumer; rows cannot be set aside by fragment.")
        self._source, self._filter, self._transform = source, row_filter, transform
        self.kind, self.name, self.columns = source.kind, source.name, source.columns
        self.seekable, self.shardable = source.seekable, source.shardable
        self._set_fragments(source.fragment_sizes)
        self._aside: dict[int, Chunk] = {}  # first row of a fragment -> its set-aside features
        self._seen: set[int] = set()

    def _set_aside(self, chunk: Chunk) -> Chunk:
        first = int(chunk.rows[0]) if len(chunk.rows) else -1
        if first in self._seen:
            raise InputError(f"fragment from row {first} of {self.name} was read twice in one pass.")
        self._seen.add(first)
        keep = np.asarray(self._filter(chunk.rows), dtype=bool)
        if keep.any():
            self._aside[first] = _features(self._transform, take_chunk(chunk, np.flatnonzero(keep)))
        return chunk

    def iter_fragments(self, fragments: Iterable[int] | None = None) -> Iterator[Chunk]:
        for chunk in self._source.iter_fragments(fragments):
            yield self._set_aside(chunk)

    def read_fragment(self, f: int) -> Raw:
        return self.iter_fragments([f]).__next__().data

    def batches(self, batch_rows: int) -> list[np.ndarray] | None:
        """The set-aside features in batches of ``batch_rows`` (the last shorter), in storage
        order; None unless every fragment has been read."""
        if len(self._seen) != self.n_fragments:
            return None
        chunks = [self._aside[first] for first in sorted(self._aside)]
        return [np.ascontiguousarray(b.data) for b in rebatch(chunks, batch_rows)]


def rebatch(chunks: Iterable[Chunk], batch_rows: int, *, drop_last: bool = False) -> Iterator[Chunk]:
    """The rows of ``chunks`` (raw frames, images or feature arrays) in order, cut and joined into
    chunks of exactly ``batch_rows`` rows (the last one shorter unless ``drop_last``).

    Batches inside one input chunk are slices of it (views, no copy); only a batch that spans
    chunks is joined, from the pieces it takes."""
    batch_rows = positive_int(batch_rows, "batch_rows")
    pending: list[Chunk] = []  # the start of the next batch, from earlier chunks
    n_pending = 0
    for chunk in chunks:
        n, at = len(chunk.rows), 0
        if n_pending:
            need = batch_rows - n_pending
            if n < need:
                pending.append(chunk)
                n_pending += n
                continue
            yield concat_chunks([*pending, slice_chunk(chunk, 0, need)])
            pending, n_pending, at = [], 0, need
        while at + batch_rows <= n:
            yield slice_chunk(chunk, at, at + batch_rows)
            at += batch_rows
        if at < n:
            pending, n_pending = [slice_chunk(chunk, at, n)], n - at
    if pending and not drop_last:
        yield concat_chunks(pending)


__all__ = ["RowsAside", "hash_split", "iter_batches", "iter_chunks", "rebatch", "rows_per_rank"]
