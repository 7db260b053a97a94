"""Chunks of rows: global row indices with their raw data (a DataFrame or an array), and the
few operations every stage of streaming needs on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

Raw = pd.DataFrame | np.ndarray


class Chunk(NamedTuple):
    """Rows read together: their global indices (int64) and the raw data, in the same order."""

    rows: np.ndarray
    data: Raw


def take_rows(data: Raw, index: np.ndarray | slice) -> Raw:
    """Rows of a frame or an array by position (a slice of an array is a view)."""
    if isinstance(data, pd.DataFrame):
        return data.iloc[index]
    if isinstance(data, np.ndarray) and not isinstance(index, slice):
        # np.take copies whole rows at a time: about 3x faster than data[index] on (n, k) features
        return np.take(data, np.asarray(index, dtype=np.intp), axis=0)
    return data[index]


def concat_raw(parts: Sequence[Raw]) -> Raw:
    """Frames or arrays one after another."""
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts) if isinstance(parts[0], pd.DataFrame) else np.concatenate(parts)


def concat_chunks(parts: Sequence[Chunk]) -> Chunk:
    """Chunks one after another."""
    return Chunk(np.concatenate([p.rows for p in parts]), concat_raw([p.data for p in parts]))


def take_chunk(chunk: Chunk, index: np.ndarray) -> Chunk:
    """The rows of a chunk at the positions ``index``."""
    return Chunk(chunk.rows[index], take_rows(chunk.data, index))


def slice_chunk(chunk: Chunk, start: int, stop: int) -> Chunk:
    """Rows ``start:stop`` of a chunk."""
    return Chunk(chunk.rows[start:stop], take_rows(chunk.data, slice(start, stop)))


__all__ = ["Chunk", "Raw", "concat_chunks", "concat_raw", "slice_chunk", "take_chunk", "take_rows"]
