"""Where the trainer's batches come from: a tensor in memory (today's fast path) or a stream of
preprocessed chunks from a file source. Both give the same epochs for the same seed, whatever
epoch is asked for first, so a resumed run reads exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

import numpy as np
import torch


class Batches(Protocol):
    """Training or validation rows, batch by batch, one epoch at a time."""

    #: rows per epoch (over all ranks)
    n_rows: int
    batch_size: int

    def steps(self, epoch: int) -> int:
        """Steps in epoch ``epoch``: the same on every rank."""
        ...

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[torch.Tensor]:
        """This rank's batches of epoch ``epoch`` (1-based) on the trainer's device, after the first ``skip``."""
        ...


def steps_per_epoch(batches: Batches) -> int:
    return math.ceil(batches.n_rows / batches.batch_size)


class TensorBatches:
    """Shuffled minibatches of a tensor held on the device (one ``randperm`` per epoch).

    The permutations come from one generator seeded with ``seed`` and drawn once per epoch in
    order, exactly as before streaming existed, so in-memory results are unchanged; asking for a
    later epoch first (on resume) replays the earlier draws, which costs one ``randperm`` each.
    Under data parallelism every rank draws the same permutation and takes rows ``rank::world_size``
    of each global batch, so the ranks' shares are disjoint and together are the global batch.
    """

    def __init__(self, X: torch.Tensor, batch_size: int, seed: int, device: torch.device, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.X = X.to(device)
        self.n_rows, self.batch_size, self.seed, self.shuffle = len(X), int(batch_size), int(seed), shuffle
        self.rank, self.world_size = rank, world_size
        self._generator = torch.Generator().manual_seed(self.seed)
        self._drawn = 0  # epochs whose permutation the generator has produced

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch <= self._drawn:  # an earlier epoch again: replay from the start
            self._generator.manual_seed(self.seed)
            self._drawn = 0
        while self._drawn < epoch:
            order = torch.randperm(self.n_rows, generator=self._generator)
            self._drawn += 1
        return order.to(self.X.device)

    def steps(self, epoch: int) -> int:
        return steps_per_epoch(self)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[torch.Tensor]:
        if not self.shuffle:
            for start in range(skip * self.batch_size, self.n_rows, self.batch_size):
                yield self._share(self.X[start:start + self.batch_size])
            return
        order = self._order(epoch)
        for step in range(skip, steps_per_epoch(self)):
            yield self.X[self._share(order[step * self.batch_size:(step + 1) * self.batch_size])]

    def _share(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (all of it in one process)."""
        return rows if self.world_size == 1 else rows[self.rank::self.world_size]


class StreamBatches:
    """Batches of preprocessed features read from a stream, copied to the device.

    ``read(epoch)`` yields float32 feature arrays of ``batch_size`` rows (the last may be
    shorter), deterministically for an epoch; on CUDA they go through pinned memory with
    non-blocking copies, so reading the next batch overlaps the current step. ``steps(epoch)``
    (data parallelism: the fewest steps any rank's share allows, the same on every rank) caps an
    epoch; None reads the stream to its end.

    ``cache_bytes`` (for a stream that is the same every epoch, such as the validation rows):
    after the first complete read, keep the batches in memory, if they come to at most that many
    bytes, and serve later epochs from them instead of reading the source again. 0 never keeps.
    """

    def __init__(self, read: Callable[[int], Iterable[np.ndarray]], n_rows: int, batch_size: int,
                 device: torch.device, steps: Callable[[int], int] | None = None, *, cache_bytes: int = 0):
        self.read, self.n_rows, self.batch_size, self.device = read, int(n_rows), int(batch_size), device
        self.pin = device.type == "cuda"
        self._steps = steps
        self.cache_bytes = int(cache_bytes)
        self._cached: list[np.ndarray] | None = None

    def steps(self, epoch: int) -> int:
        return self._steps(epoch) if self._steps is not None else steps_per_epoch(self)

    @property
    def cached(self) -> bool:
        """Whether the batches are kept in memory (later epochs do not read the source)."""
        return self._cached is not None

    def prime(self, batches: list[np.ndarray]) -> bool:
        """Keep ``batches`` (this stream's batches, every one of them, read elsewhere: e.g. set
        aside by the training pass) as if a first epoch had read them; False, keeping nothing,
        when they exceed ``cache_bytes`` or batches are kept already."""
        if self._cached is not None or sum(b.nbytes for b in batches) > self.cache_bytes:
            return False
        self._cached = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
        return True

    def _to_device(self, features: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        if self.pin:
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=self.pin)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[torch.Tensor]:
        limit = self._steps(epoch) if self._steps is not None else None
        if self._cached is not None:
            for step, features in enumerate(self._cached):
                if limit is not None and step >= limit:
                    return
                if step >= skip:  # a copy: the kept batch stays as read whatever the step does with its input
                    yield self._to_device(features.copy() if self.device.type == "cpu" else features)
            return
        keep: list[np.ndarray] | None = [] if self.cache_bytes > 0 and skip == 0 and limit is None else None
        kept_bytes = 0
        for step, features in enumerate(prefetched(self.read(epoch), PREFETCH)):
            if limit is not None and step >= limit:
                return
            if step < skip:  # resuming mid-epoch: the stream is replayed up to the saved position
                continue
            features = np.ascontiguousarray(features, dtype=np.float32)
            if keep is not None:
                kept_bytes += features.nbytes
                if kept_bytes > self.cache_bytes:
                    keep = None  # too large to keep: read from the source every epoch
                else:
                    keep.append(features.copy() if self.device.type == "cpu" else features)
            yield self._to_device(features)
        if keep is not None:  # a complete read: later epochs are served from memory
            self._cached = keep


T = TypeVar("T")
PREFETCH = 4  # batches read ahead by the background reader
#: most bytes of validation features a streamed fit keeps in memory after the first epoch reads them
VALIDATION_CACHE_BYTES = 64 << 20


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """The items of ``items`` in order, produced by a background thread up to ``depth`` ahead, so
    reading and preprocessing the next batches overlaps the training step (pyarrow, NumPy and most
    of pandas release the GIL). An error in the reader is raised here; stopping early stops it."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failed(error))

    reader = threading.Thread(target=produce, name="latentforge-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def as_batches(data: Any, batch_size: int, seed: int, device: torch.device, shuffle: bool = True, rank: int = 0,
               world_size: int = 1) -> Batches | None:
    """``data`` as :class:`Batches`: a tensor becomes :class:`TensorBatches`; Batches pass through;
    None or an empty tensor give None (no validation)."""
    if data is None:
        return None
    if isinstance(data, torch.Tensor):
        return TensorBatches(data, batch_size, seed, device, shuffle, rank, world_size) if len(data) else None
    return data
