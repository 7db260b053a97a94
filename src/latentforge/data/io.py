"""Read a dataset from a built-in name or a path (CSV, Parquet, .npy/.npz, or a folder of images),
and write outputs (embeddings, scores, reconstructions, samples) as Parquet, CSV or .npy."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..fsutil import atomic_file, atomic_write
from .datasets import BUILTIN, Dataset, load_builtin
from .images import as_nchw, load_image_array, load_image_folder
from .sources import check_header

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npy", ".npz")
OUTPUT_SUFFIXES = (".parquet", ".csv", ".npy")


def _csv_header(path: Path) -> list[str]:
    """The first row of a CSV as written (pandas renames a repeated name ``NAME.1``)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return next(csv.reader(fh), [])


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning pandas/pyarrow failures into one-sentence errors."""
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty.")
    try:
        if path.suffix.lower() == ".csv":
            check_header(_csv_header(path), path)
            frame = pd.read_csv(path)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty.") from None
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise InputError(f"{path} cannot be read as a {path.suffix.lstrip('.')} table ({exc}).") from None
    if frame.shape[1] == 0:
        raise InputError(f"{path} has no columns.")
    if len(frame) == 0:
        raise InputError(f"{path} has a header but no rows.")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def dataset_from_frame(
    frame: pd.DataFrame, name: str = "table", label: str | None = None, id_columns: Sequence[str] = ()
) -> Dataset:
    """Split a frame into features, label and id columns (both named columns must exist)."""
    wanted = list(id_columns) + ([label] if label else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InputError(
            f"column(s) {', '.join(map(repr, missing))} not found; the table has {', '.join(map(repr, frame.columns[:20]))}"
            + (" ..." if frame.shape[1] > 20 else "") + "."
        )
    y = frame[label].to_numpy() if label else None
    ids = frame[list(id_columns)].reset_index(drop=True) if id_columns else None
    X = frame.drop(columns=wanted).reset_index(drop=True)
    if X.shape[1] == 0:
        raise InputError("no feature columns are left after removing the id and label columns.")
    return Dataset(name, X, y, ids, label_name=label)


def load_dataset(
    source: str | Path,
    label: str | None = None,
    id_columns: Sequence[str] = (),
    require_label: bool = False,
) -> Dataset:
    """Load a built-in dataset by name, or a file/folder by path."""
    path = Path(source)
    if str(source) in BUILTIN and not path.exists():
        ds = load_builtin(str(source))
    elif not path.exists():
        from ..errors import unknown_name_error

        if path.suffix or "/" in str(source):
            raise InputError(f"file not found: {source}.")
        raise unknown_name_error("dataset (and no such file)", str(source), BUILTIN)
    elif path.is_dir():
        images, names = load_image_folder(path)
        ds = Dataset(path.name, images, ids=pd.DataFrame({"file": names}))
    elif path.suffix.lower() in TABLE_SUFFIXES:
        ds = dataset_from_frame(read_table(path), path.stem, label, id_columns)
    elif path.suffix.lower() in ARRAY_SUFFIXES:
        ds = _load_array_file(path)
    else:
        raise InputError(
            f"{path} has an unsupported type; use {', '.join(TABLE_SUFFIXES + ARRAY_SUFFIXES)} or a folder of PNG/JPEG images."
        )
    if require_label and ds.y is None:
        raise InputError(f"{source} has no labels; name the label column with --label.")
    return ds


def _load_array_file(path: Path) -> Dataset:
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty.")
    y = None
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                key = next((k for k in ("y", "labels") if k in archive), None)
                y = None if key is None else archive[key]
                raw = next((archive[k] for k in ("x", "X", "images") if k in archive), None)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path} is not a readable NumPy archive ({exc}).") from None
        if raw is None:
            array = load_image_array(path) if y is None else None
            if array is None:
                raise InputError(f"{path} has labels but no array named 'x', 'X' or 'images'.")
        else:
            array = raw
    else:
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path} is not a readable NumPy array file ({exc}).") from None
    if array.ndim == 2:
        if array.shape[0] == 0:
            raise InputError(f"{path} has no rows.")
        frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        return Dataset(path.stem, frame, y)
    return Dataset(path.stem, as_nchw(array, source=str(path)), y)


def check_output_file(path: Path, allowed: tuple[str, ...] = OUTPUT_SUFFIXES) -> Path:
    """``path`` if it can take an output of one of the ``allowed`` types (checked before any work)."""
    if path.suffix.lower() not in allowed:
        raise InputError(f"output {path} must end in {', '.join(allowed)}.")
    if path.is_dir():
        raise InputError(f"output {path} is a directory; give a file name.")
    return path


def write_output(path: Path, frame: pd.DataFrame | None, array: np.ndarray | None = None) -> None:
    """Write a frame (Parquet/CSV) or an array (.npy) atomically; frames written to .npy keep their numbers."""
    buf = io.BytesIO()
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(buf, array if array is not None else frame.select_dtypes("number").to_numpy())
    elif frame is None:
        raise InputError(f"images cannot be written as {suffix}; use .npy.")
    elif suffix == ".csv":
        buf.write(frame.to_csv(index=False).encode())
    else:
        frame.to_parquet(buf, index=False)
    atomic_write(path, buf.getvalue())


# -- streamed outputs: rows written as they come, never held whole -------------------------------
#: one chunk for :func:`write_stream`: a frame, an array, or a ``(frame, array)`` pair as :func:`write_output` takes
OutputChunk = pd.DataFrame | np.ndarray | tuple[pd.DataFrame | None, np.ndarray | None]


def _write_parquet(tmp: Path, frames: Iterable[pd.DataFrame]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, n = None, 0
    try:
        for frame in frames:
            schema = None if writer is None else writer.schema
            try:  # later chunks are cast to the first chunk's schema (an int column with gaps stays int)
                table = pa.Table.from_pandas(frame, preserve_index=False, schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InputError(f"rows {n}.. do not fit the column types of the first rows ({exc}).") from None
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            n += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return n


def _write_csv(tmp: Path, frames: Iterable[pd.DataFrame]) -> int:
    n, columns = 0, None
    with open(tmp, "w", newline="") as fh:
        for frame in frames:
            if columns is None:
                columns = list(frame.columns)
            elif list(frame.columns) != columns:
                raise InputError(f"rows {n}.. have the columns {list(frame.columns)}, not {columns}.")
            frame.to_csv(fh, index=False, header=n == 0)
            n += len(frame)
    return n


def _write_npy(tmp: Path, arrays: Iterable[np.ndarray], n_rows: int) -> int:
    n, row_shape = 0, None
    for array in arrays:
        if row_shape is None:  # the header, and the file's full size, from the first chunk
            row_shape = array.shape[1:]
            np.lib.format.open_memmap(tmp, mode="w+", dtype=array.dtype, shape=(n_rows, *row_shape))
        if array.shape[1:] != row_shape:
            raise InputError(f"rows {n}.. are shaped {array.shape[1:]}, not {row_shape} like the first rows.")
        if n + len(array) > n_rows:
            raise InputError(f"more rows came than the {n_rows} announced.")
        # mapped again per chunk: written pages leave this process (and its RSS) when the map closes
        out = np.lib.format.open_memmap(tmp, mode="r+")
        out[n:n + len(array)] = array
        del out
        n += len(array)
    if n != n_rows:
        raise InputError(f"{n} rows came, not the {n_rows} announced.")
    return n


def _frame_for(frame: pd.DataFrame | None, suffix: str) -> pd.DataFrame:
    if frame is None:
        raise InputError(f"images cannot be written as {suffix}; use .npy.")
    return frame


def write_stream(path: str | Path, chunks: Iterable[OutputChunk], n_rows: int | None = None) -> int:
    """Write chunks of rows to ``path`` (``.parquet``, ``.csv`` or ``.npy``) as they come; returns the rows written.

    Each chunk is a DataFrame, an array or a ``(frame, array)`` pair, as :func:`write_output` takes: Parquet
    (one row group per chunk, the column types of the first chunk) and CSV (appended, one header)
    get the frame; ``.npy`` gets the array, else the frame's numeric columns, in a file of
    ``n_rows`` rows (required: the header holds the shape) filled through a memory map. Only the
    chunk being written is held. Atomic: everything goes to a temporary file in ``path``'s folder
    that replaces ``path`` at the end, so a failure, even in the last chunk, leaves ``path`` as it
    was and no temporary file; one left by a killed run is removed by the next write to ``path``.
    """
    path = check_output_file(Path(path))
    suffix = path.suffix.lower()
    if suffix == ".npy" and n_rows is None:
        raise InputError(f"writing {path} needs the total row count (n_rows=): a .npy header holds its shape.")
    pairs = ((c, None) if isinstance(c, pd.DataFrame) else (None, c) if isinstance(c, np.ndarray) else c
             for c in chunks)
    with atomic_file(path) as tmp:
        if suffix == ".npy":
            arrays = (a if a is not None else f.select_dtypes("number").to_numpy() for f, a in pairs)
            n = _write_npy(tmp, arrays, int(n_rows))
        else:
            frames = (_frame_for(f, suffix) for f, _ in pairs)
            n = (_write_csv if suffix == ".csv" else _write_parquet)(tmp, frames)
        if n == 0:
            raise InputError(f"no rows to write to {path}.")
    return n
