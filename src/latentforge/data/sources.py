"""Streaming data sources: read a table or a set of images fragment by fragment, never whole.

A :class:`DataSource` describes its rows as *fragments*: bounded pieces in storage order
(a Parquet row group, a slice of an array, a CSV block, a group of image files). Fragment ``f``
covers the global row indices ``[offsets[f], offsets[f + 1])``. Fragments are the unit of reading
and of sharding; :mod:`latentforge.data.streams` deals them out to ranks and workers, shuffles
and batches them. :func:`open_source` picks the reader for a path or an object.

Raw rows are what the readers of :mod:`latentforge.data.io` return for a whole file: a DataFrame
for tables (indexed here by global row number, so error messages name the file's row), a
``(n, C, H, W)`` array for images (uint8 for image folders; scaling is the preprocessor's job).
"""

from __future__ import annotations

import inspect
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import positive_int
from .chunks import Chunk, Raw, concat_raw, take_rows
from .datasets import Dataset
from .images import IMAGE_SUFFIXES, as_nchw, decode_images, scan_image_folder

#: rows held by the shuffle buffer of :func:`iter_chunks` (besides the fragment being read)
DEFAULT_SHUFFLE_BUFFER = 65_536
#: most rows in one fragment of an array-like source, and the memory one fragment aims at
DEFAULT_FRAGMENT_ROWS = 65_536
FRAGMENT_BYTES = 64 << 20
#: bytes of CSV text parsed per block (= per fragment) by :class:`CsvSource`
CSV_BLOCK_BYTES = 16 << 20
PARQUET_SUFFIXES = (".parquet", ".pq")
SAFETENSORS_SUFFIXES = (".safetensors",)

# ---------------------------------------------------------------------------------------------
# raw-row helpers (a DataFrame or an array, addressed by position)

def _as_raw(block: Raw, kind: str, columns: list[str] | None, start: int, source: str) -> Raw:
    """A fragment's rows as the source's raw type: a DataFrame indexed by global row, or NCHW images."""
    if kind == "image":
        return as_nchw(block, source=source)
    index = pd.RangeIndex(start, start + len(block))
    if isinstance(block, pd.DataFrame):
        return block.set_axis(index, axis=0)
    return pd.DataFrame(block, columns=columns, index=index)


def _kind_of(shape: Sequence[int], dtype: np.dtype, source: str) -> tuple[str, list[str] | None]:
    """(kind, columns) of rows shaped ``shape``: a table (rows, features) with columns x0.., or images
    (N, H, W) / (N, C, H, W) with no columns; checked without reading any data."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3, 4):
        raise InputError(f"{source} must be 2-D (rows × features) or 3-/4-D (images), got shape {shape}.")
    if shape[0] == 0:
        raise InputError(f"{source} has no rows (shape {shape}).")
    if len(shape) == 2:
        if not (np.issubdtype(dtype, np.number) or dtype == bool):
            raise InputError(f"{source} must be numeric, got dtype {dtype}; use a table file for mixed types.")
        return "table", [f"x{i}" for i in range(shape[1])]
    # a zero-strided stand-in carries the real shape and dtype through as_nchw's checks for free
    as_nchw(np.broadcast_to(np.zeros((), dtype=dtype), shape), source=source)
    return "image", None


def _pick_columns(available: Sequence[str], wanted: Sequence[str] | None, source: str) -> list[str]:
    """The columns to read: all of them, or ``wanted`` (which must all exist)."""
    if not available:
        raise InputError(f"{source} has no columns.")
    if wanted is None:
        return list(available)
    wanted = [str(c) for c in wanted]
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(
            f"column(s) {', '.join(map(repr, missing))} not found in {source}; it has "
            f"{', '.join(map(repr, list(available)[:20]))}" + (" ..." if len(available) > 20 else "") + "."
        )
    if not wanted:
        raise InputError(f"columns=[] selects nothing from {source}.")
    return wanted


def _plain_number(dtype: np.dtype) -> bool:
    """Integers and floats, which pandas and NumPy turn into the same float64 values (not bool,
    complex, datetimes or objects)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iuf"


def _auto_fragment_rows(fragment_rows: int | None, row_bytes: float) -> int:
    """``fragment_rows`` if given, else as many rows as fit in FRAGMENT_BYTES (at most DEFAULT_FRAGMENT_ROWS)."""
    if fragment_rows is not None:
        return positive_int(fragment_rows, "fragment_rows")
    return int(max(1, min(DEFAULT_FRAGMENT_ROWS, FRAGMENT_BYTES // max(int(row_bytes), 1))))


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}.")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path} is empty.")
    return path


def _folder_files(path: Path, suffixes: Sequence[str]) -> list[Path]:
    """``path`` itself, or the files of folder ``path`` with one of ``suffixes`` (sorted by name; hidden ones skipped)."""
    path = _existing_file(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith((".", "_")))
    if not files:
        raise InputError(f"the folder {path} contains no {'/'.join(suffixes)} files.")
    for f in files:
        _existing_file(f)
    return files


def _torch() -> Any:
    import torch  # lazily: the data layer must not make `import latentforge` pay for torch

    return torch


def _tensor_numpy(value: Any) -> np.ndarray:
    """A tensor (bfloat16 widened to float32, which NumPy lacks) or array-like as a NumPy array."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    return np.asarray(value)


# ---------------------------------------------------------------------------------------------
# the interface


class DataSource(ABC):
    """Rows stored as bounded fragments, read one fragment at a time.

    Attributes
    ----------
    kind : ``"table"`` (fragments are DataFrames) or ``"image"`` (``(n, C, H, W)`` arrays).
    name : a short name for messages and outputs (the file stem, the folder name...).
    columns : a table's column names, in order (None for images).
    seekable : True when :meth:`read_fragment` costs one fragment; False when it re-reads the
        storage from the start (CSV, iterable torch data) and :meth:`iter_fragments` yields
        fragments in storage order whatever order is asked for.
    shardable : True when the fragments are fixed and known, so :func:`iter_chunks` can deal them
        out to ranks and workers; False for iterable torch data, which shards itself.
    """

    kind: str
    name: str
    columns: list[str] | None = None
    seekable: bool = True
    shardable: bool = True
    _sizes: list[int]

    @property
    def fragment_sizes(self) -> list[int]:
        """Rows per fragment, in storage order."""
        return list(self._sizes)

    @property
    def n_fragments(self) -> int:
        return len(self.fragment_sizes)

    @property
    def n_rows(self) -> int:
        return int(sum(self.fragment_sizes))

    @property
    def offsets(self) -> np.ndarray:
        """``n_fragments + 1`` boundaries: fragment f covers global rows ``[offsets[f], offsets[f + 1])``."""
        return np.concatenate([[0], np.cumsum(self.fragment_sizes, dtype=np.int64)]).astype(np.int64)

    @abstractmethod
    def read_fragment(self, f: int) -> Raw:
        """The raw rows of fragment ``f`` only."""

    def iter_fragments(self, fragments: Iterable[int] | None = None) -> Iterator[Chunk]:
        """One :class:`Chunk` per fragment of ``fragments`` (default: all, in storage order)."""
        offsets = self.offsets
        for f in range(self.n_fragments) if fragments is None else fragments:
            yield Chunk(np.arange(offsets[f], offsets[f + 1], dtype=np.int64), self.read_fragment(f))

    def column_reader(self, columns: Sequence[str]) -> Callable[[int], list[np.ndarray] | None] | None:
        """``read(f) -> arrays``: fragment f's ``columns`` as 1-D integer or float NumPy arrays
        (missing values as NaN: the numbers pandas would hold), read without building a
        DataFrame. None when this source cannot read those columns so (other types, in-memory
        frames, storage read only from the start); ``read(f)`` itself returns None for a fragment
        it cannot read so after all (the caller then uses :meth:`read_fragment`). The fast path of
        :func:`latentforge.data.columnar.numeric_view`."""
        return None

    def head(self, n: int) -> Raw:
        """The first ``n`` rows (fewer if the source is shorter), reading only the fragments they lie in."""
        n = positive_int(n, "n")
        parts, got = [], 0
        for chunk in self.iter_fragments():
            parts.append(take_rows(chunk.data, slice(0, n - got)))
            got += len(parts[-1])
            if got >= n:
                break
        return concat_raw(parts)

    def _check_fragment(self, f: int) -> int:
        if not 0 <= f < self.n_fragments:
            raise IndexError(f"fragment {f} out of range: {self.name} has {self.n_fragments} fragments.")
        return int(f)

    def _set_fragments(self, sizes: Iterable[int]) -> None:
        self._sizes = [int(s) for s in sizes]

    def __repr__(self) -> str:
        n = "?" if self._sizes is None else len(self._sizes)  # an unread stream does not know yet
        return f"{type(self).__name__}({self.name!r}, kind={self.kind!r}, fragments={n})"


class _SlicedSource(DataSource):
    """Rows addressable by position in one or more parts (arrays, shards, files), cut into fixed slices."""

    def _slice_parts(self, part_rows: Sequence[int], fragment_rows: int) -> None:
        self._pieces: list[tuple[int, int, int, int]] = []  # (part, start in part, stop in part, global start)
        total = 0
        for part, n in enumerate(part_rows):
            for a in range(0, n, fragment_rows):
                b = min(a + fragment_rows, n)
                self._pieces.append((part, a, b, total + a))
            total += n
        self._set_fragments(b - a for _, a, b, _ in self._pieces)

    @abstractmethod
    def _read(self, part: int, start: int, stop: int) -> Raw:
        """Rows ``start:stop`` of one part."""

    def read_fragment(self, f: int) -> Raw:
        part, a, b, start = self._pieces[self._check_fragment(f)]
        return _as_raw(self._read(part, a, b), self.kind, self.columns, start, self.name)

    #: dtype of the rows ``_read`` returns when they are a 2-D NumPy table (None: a DataFrame, or images)
    _array_dtype: np.dtype | None = None

    def column_reader(self, columns: Sequence[str]) -> Callable[[int], list[np.ndarray] | None] | None:
        """Columns ``x<i>`` of an integer or float 2-D array source, as views of each fragment's block."""
        dtype = self._array_dtype
        if self.kind != "table" or dtype is None or not _plain_number(dtype) or self.columns is None:
            return None
        position = {c: i for i, c in enumerate(self.columns)}
        if any(c not in position for c in columns):
            return None
        index = [position[c] for c in columns]

        def read(f: int) -> list[np.ndarray] | None:
            part, a, b, _ = self._pieces[self._check_fragment(f)]
            block = self._read(part, a, b)
            if not isinstance(block, np.ndarray) or block.ndim != 2 or not _plain_number(block.dtype):
                return None  # not what the first rows promised (torch items can differ): pandas decides
            return [block[:, i] for i in index]
        return read


# ---------------------------------------------------------------------------------------------
# implementations


class ArraySource(_SlicedSource):
    """An in-memory DataFrame, 2-D numeric array (a table, columns x0..) or image array, cut into slices.

    Parameters
    ----------
    data : a DataFrame, a 2-D array (a table) or a 3-/4-D array (images).
    fragment_rows : rows per fragment; default: up to 65,536 rows and about 64 MiB.
    columns : for a DataFrame, the columns to keep (default all).
    name : a name for messages (default ``"frame"`` or ``"array"``).
    """

    def __init__(self, data: pd.DataFrame | np.ndarray, *, fragment_rows: int | None = None,
                 columns: Sequence[str] | None = None, name: str | None = None):
        if isinstance(data, pd.DataFrame):
            self.name = name or "frame"
            self.kind = "table"
            self.columns = _pick_columns([str(c) for c in data.columns], columns, f"the {self.name}")
            data = data.set_axis([str(c) for c in data.columns], axis=1)[self.columns]
            if len(data) == 0:
                raise InputError(f"the {self.name} has no rows.")
            row_bytes = data.memory_usage(index=False).sum() / len(data)
        else:
            self.name = name or "array"
            if isinstance(data, pd.Series):
                raise InputError("expected a table or an array of rows, got a single pandas Series; use series.to_frame().")
            if columns is not None:
                raise InputError("columns= selects DataFrame columns; an array's columns are x0, x1, ...")
            data = _tensor_numpy(data)
            self.kind, self.columns = _kind_of(data.shape, data.dtype, f"the {self.name}")
            self._array_dtype = data.dtype
            row_bytes = data[:1].nbytes
        self._data = data
        self._slice_parts([len(data)], _auto_fragment_rows(fragment_rows, row_bytes))

    def _read(self, part: int, start: int, stop: int) -> Raw:
        return take_rows(self._data, slice(start, stop))


class NpySource(_SlicedSource):
    """A ``.npy`` file (2-D: a table with columns x0..; 3-/4-D: images), memory-mapped and read by slices.

    The file is opened again for each fragment (a header read and an mmap), so the source pickles
    small and works in DataLoader workers.
    """

    def __init__(self, path: str | Path, *, fragment_rows: int | None = None):
        self.path = _existing_file(path)
        self.name = self.path.stem
        array = self._open()
        self.kind, self.columns = _kind_of(array.shape, array.dtype, str(self.path))
        self._array_dtype = array.dtype
        self._slice_parts([len(array)], _auto_fragment_rows(fragment_rows, array[:1].nbytes))

    def _open(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{self.path} is not a readable NumPy array file ({exc}).") from None

    def _read(self, part: int, start: int, stop: int) -> np.ndarray:
        return np.array(self._open()[start:stop])


class SafetensorsSource(_SlicedSource):
    """A ``.safetensors`` file, or a folder of shards (sorted by name), each holding one tensor of rows.

    Parameters
    ----------
    path : the file or the folder.
    tensor : the tensor's name in every shard; default: the only tensor, else ``"x"``.
    fragment_rows : rows per fragment (fragments never span two shards); default: up to 65,536 rows
        and about 64 MiB.

    Shards must agree on the row shape and dtype. A 2-D tensor is a table (columns x0..), 3-/4-D
    are images. bfloat16 is read as float32. Rows are read with ``safe_open(...).get_slice``, so a
    fragment costs only its own bytes.
    """

    def __init__(self, path: str | Path, *, tensor: str | None = None, fragment_rows: int | None = None):
        self.path = Path(path)
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self._files = _folder_files(self.path, SAFETENSORS_SUFFIXES)
        self._tensor = tensor
        rows, row_shape, dtype = [], None, None
        for f in self._files:
            with self._open(f) as handle:
                sl = handle.get_slice(self._name_in(handle, f))
                shape, this_dtype = tuple(sl.get_shape()), sl.get_dtype()
            if row_shape is None:
                row_shape, dtype, first = shape[1:], this_dtype, f
            elif (shape[1:], this_dtype) != (row_shape, dtype):
                raise InputError(f"shard {f.name} holds rows of shape {shape[1:]} ({this_dtype}) but {first.name} "
                                 f"holds {row_shape} ({dtype}); all shards must agree.")
            rows.append(shape[0] if shape else 0)
        sample = self._read_file(self._files[0], 0, 0)
        self.kind, self.columns = _kind_of((sum(rows), *row_shape), sample.dtype, str(self.path))
        self._array_dtype = sample.dtype
        row_bytes = sample.itemsize * int(np.prod(row_shape))
        self._slice_parts(rows, _auto_fragment_rows(fragment_rows, row_bytes))

    @staticmethod
    def _open(f: Path) -> Any:
        from safetensors import safe_open

        _torch()  # the "pt" framework reads every dtype (NumPy has no bfloat16)
        try:
            return safe_open(str(f), framework="pt")
        except Exception as exc:  # safetensors raises its own SafetensorError for malformed files
            raise InputError(f"{f} cannot be read as a safetensors file ({exc}).") from None

    def _name_in(self, handle: Any, f: Path) -> str:
        names = list(handle.keys())
        name = self._tensor or (names[0] if len(names) == 1 else "x")
        if name not in names:
            raise InputError(f"{f} has no tensor {name!r}; it has {', '.join(map(repr, names))} (pass tensor=...).")
        return name

    def _read_file(self, f: Path, start: int, stop: int) -> np.ndarray:
        with self._open(f) as handle:
            return _tensor_numpy(handle.get_slice(self._name_in(handle, f))[start:stop])

    def _read(self, part: int, start: int, stop: int) -> np.ndarray:
        return self._read_file(self._files[part], start, stop)


class ImageFolderSource(_SlicedSource):
    """A folder of PNG/JPEG files (sorted by name), decoded lazily, one group of files per fragment.

    Same rules as :func:`latentforge.data.images.load_image_folder`: all images share one size (or
    an error names the odd one), grey-only folders give one channel and anything else RGB, pixels
    stay uint8 (scaling to [0, 1] is the preprocessor's job). Construction opens every file's
    header once (no decoding) to check sizes and modes. ``files`` lists the file names in row order.
    """

    def __init__(self, path: str | Path, *, fragment_rows: int | None = None):
        self.path = _existing_file(path)
        self.name = self.path.name
        if not self.path.is_dir():
            raise InputError(f"{self.path} is not a folder of images.")
        self._files, self._mode, self.image_shape = scan_image_folder(self.path)
        self.kind = "image"
        self._slice_parts([len(self._files)], _auto_fragment_rows(fragment_rows, int(np.prod(self.image_shape))))

    @property
    def files(self) -> list[str]:
        return [f.name for f in self._files]

    def _read(self, part: int, start: int, stop: int) -> np.ndarray:
        return decode_images(self._files[start:stop], self._mode, self.image_shape)


class ParquetSource(DataSource):
    """A Parquet file or a folder of Parquet files (sorted by name): one fragment per row group.

    Read through ``pyarrow.dataset`` (``fragment.split_by_row_group()``), only the ``columns``
    asked for; a pandas index stored in the file is not a column. Fragment sizes are the writer's
    row groups (pyarrow writes up to about a million rows per group; pass ``row_group_size=`` when
    writing to make them smaller). Every file of a folder must have the same columns and types.
    """

    kind = "table"

    def __init__(self, path: str | Path, *, columns: Sequence[str] | None = None):
        import pyarrow as pa
        import pyarrow.dataset as ds

        self.path = Path(path)
        self.name = self.path.stem if self.path.is_file() else self.path.name
        files = _folder_files(self.path, PARQUET_SUFFIXES)
        try:
            dataset = ds.dataset([str(f) for f in files], format="parquet")
            schema = dataset.schema.remove_metadata()
            self._fragments, sizes = [], []
            for fragment in dataset.get_fragments():
                if not fragment.physical_schema.remove_metadata().equals(schema):
                    raise InputError(f"{fragment.path} has columns {fragment.physical_schema.names} that differ in name or type "
                                     f"from those of {files[0].name} ({schema.names}).")
                for group in fragment.split_by_row_group():
                    if group.row_groups[0].num_rows:
                        self._fragments.append(group)
                        sizes.append(group.row_groups[0].num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path} cannot be read as a parquet table ({exc}).") from None
        index_columns = (dataset.schema.pandas_metadata or {}).get("index_columns", [])
        available = [n for n in schema.names if n not in index_columns]
        self.columns = _pick_columns(available, columns, str(self.path))
        if not sizes:
            raise InputError(f"{self.path} has a header but no rows.")
        self._set_fragments(sizes)
        self._starts = self.offsets
        self._types = {name: schema.field(name).type for name in self.columns}

    def column_reader(self, columns: Sequence[str]) -> Callable[[int], list[np.ndarray] | None] | None:
        """Integer and float columns straight from Arrow to NumPy (zero-copy where Arrow allows;
        nulls become NaN, as in ``to_pandas``), reading only those columns; decoding runs on the
        calling thread (``use_threads=False``), so a background reader does not also start
        Arrow's thread pool next to PyTorch's threads."""
        import pyarrow as pa

        columns = list(columns)
        if not columns or any(c not in self._types for c in columns):
            return None
        if not all(pa.types.is_integer(self._types[c]) or pa.types.is_floating(self._types[c]) for c in columns):
            return None

        def read(f: int) -> list[np.ndarray]:
            table = self._fragments[self._check_fragment(f)].to_table(columns=columns, use_threads=False)
            return [table.column(i).to_numpy() for i in range(table.num_columns)]
        return read

    def read_fragment(self, f: int) -> pd.DataFrame:
        table = self._fragments[self._check_fragment(f)].to_table(columns=self.columns)
        # split_blocks + self_destruct free Arrow buffers as pandas takes them (about half the peak)
        frame = table.to_pandas(split_blocks=True, self_destruct=True)
        return _as_raw(frame, self.kind, self.columns, int(self._starts[f]), self.name)


class _StreamedSource(DataSource):
    """Storage that can only be read from the start: fragment f is reached by streaming past 0..f-1."""

    seekable = False

    @abstractmethod
    def _stream(self) -> Iterator[Raw]:
        """Every fragment's rows (not yet indexed), in storage order, in one pass."""

    def iter_fragments(self, fragments: Iterable[int] | None = None) -> Iterator[Chunk]:
        """Stream once, yielding the fragments asked for in storage order (whatever order they are given in)."""
        wanted = None if fragments is None else {self._check_fragment(f) for f in fragments}
        if wanted is not None and not wanted:
            return
        last = None if wanted is None else max(wanted)
        start = 0
        for f, block in enumerate(self._stream()):
            n = len(block)
            if wanted is None or f in wanted:
                yield Chunk(np.arange(start, start + n, dtype=np.int64),
                            _as_raw(block, self.kind, self.columns, start, self.name))
            start += n
            if f == last:
                return  # nothing more is needed: stop parsing here

    def read_fragment(self, f: int) -> Raw:
        """Fragment f, found by streaming past the fragments before it (cost: f + 1 fragments)."""
        return next(self.iter_fragments([f])).data


def check_header(names: Sequence[str], path: Path | str) -> None:
    """Refuse a table whose header repeats a column name, naming it (pandas would silently call the
    second one ``NAME.1``, and which is which could not be told apart later)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{path} has more than one column named {name!r}; give every column its own name.")
        seen.add(name)


class CsvSource(_StreamedSource):
    """A CSV file streamed with ``pyarrow.csv.open_csv``, one fragment per parsed block.

    A CSV cannot be seeked by row, so construction makes one counting pass that parses the whole
    file once (memory: one block) and records the rows of each block; block boundaries depend only
    on the bytes and ``block_size``, so later passes find the same fragments (a changed file is an
    error). :meth:`read_fragment` re-streams from the start up to its block, and :func:`iter_chunks`
    makes one pass per epoch per consumer, keeping only the consumer's blocks: every rank and
    worker parses the whole file every epoch. Convert large tables to Parquet.

    Column types are pyarrow's, inferred from the first block; a column whose later values fail to
    parse as that type is read as text instead (one more counting pass per such column).
    """

    kind = "table"

    def __init__(self, path: str | Path, *, columns: Sequence[str] | None = None, block_size: int = CSV_BLOCK_BYTES):
        import pyarrow as pa

        self.path = _existing_file(path)
        self.name = self.path.stem
        self.block_size = positive_int(block_size, "block_size")
        self._types: dict[str, Any] = {}  # columns re-typed as text after a later block failed to parse
        self._names: list[str] | None = None  # the header with unnamed columns named as pandas names them
        try:
            header = self._open().schema.names
        except UnicodeDecodeError as exc:  # pyarrow decodes the header's names lazily, here
            raise InputError(f"{self.path} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at "
                             f"position {exc.start} of its header); save it as UTF-8.") from None
        check_header(header, self.path)
        if any(not name for name in header):
            self._names = header = [name or f"Unnamed: {i}" for i, name in enumerate(header)]
            check_header(header, self.path)
        self.columns = _pick_columns(header, columns, str(self.path))
        while True:
            try:
                sizes = [len(b) for b in self._batches(checked=False)]
                break
            except pa.ArrowInvalid as exc:
                column = re.search(r"CSV column #(\d+)", str(exc))
                name = header[int(column[1])] if column and "conversion error" in str(exc) else None
                if name is None or name in self._types:
                    raise self._error(exc) from None
                self._types[name] = pa.string()
        if not sizes:
            raise InputError(f"{self.path} has a header but no rows.")
        self._set_fragments(sizes)

    def _error(self, exc: Exception) -> InputError:
        return InputError(f"{self.path} cannot be read as a csv table ({exc}).")

    def _open(self) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pc

        try:
            names = {} if self._names is None else {"column_names": self._names, "skip_rows": 1}
            return pc.open_csv(
                self.path, read_options=pc.ReadOptions(block_size=self.block_size, **names),
                convert_options=pc.ConvertOptions(include_columns=self.columns or [], column_types=self._types),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                raise InputError(f"{self.path} is empty.") from None
            raise self._error(exc) from None

    def _batches(self, checked: bool = True) -> Iterator[Any]:
        """Non-empty record batches in file order; with ``checked``, each must match the counted size."""
        import pyarrow as pa

        f = 0
        reader = self._open()
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                if not checked:
                    raise  # the counting pass retries conversion errors with text columns
                raise self._error(exc) from None
            if not batch.num_rows:
                continue
            if checked and (f >= len(self._sizes) or batch.num_rows != self._sizes[f]):
                raise InputError(f"{self.path} changed since it was opened; open it again.")
            f += 1
            yield batch

    def _stream(self) -> Iterator[pd.DataFrame]:
        for batch in self._batches():
            yield batch.to_pandas()


def _first_tensor(item: Any) -> np.ndarray:
    """The rows of a torch item or batch: the tensor itself or the first element of a (tensor, label) pair."""
    if isinstance(item, (tuple, list)):
        if not item:
            raise InputError("the torch data yielded an empty tuple; items must be tensors or (tensor, label) tuples.")
        item = item[0]
    if isinstance(item, dict):
        raise InputError("the torch data yields dicts; items must be tensors or (tensor, label) tuples.")
    return _tensor_numpy(item)


class TorchSource(_SlicedSource):
    """A map-style ``torch.utils.data.Dataset``: fragments are index ranges, read with ``dataset[i]``.

    Each item is a tensor or a ``(tensor, label)`` tuple (the label is dropped): 1-D items make a
    table (columns x0..), ``(H, W)`` or ``(C, H, W)`` items make images. For an
    ``IterableDataset`` or a ``DataLoader`` use :class:`TorchStreamSource` (``open_source`` picks).
    """

    def __init__(self, dataset: Any, *, fragment_rows: int | None = None, name: str | None = None):
        torch = _torch()
        if isinstance(dataset, (torch.utils.data.IterableDataset, torch.utils.data.DataLoader)):
            raise InputError(f"{type(dataset).__name__} is iterable, not indexable; use TorchStreamSource or open_source.")
        self.name = name or type(dataset).__name__
        try:
            n = len(dataset)
        except TypeError:
            raise InputError(f"the torch dataset {self.name} has no len(); make it an IterableDataset.") from None
        if n == 0:
            raise InputError(f"the torch dataset {self.name} has no items.")
        self._dataset = dataset
        first = _first_tensor(dataset[0])
        self._row_shape = first.shape
        self.kind, self.columns = _kind_of((n, *first.shape), first.dtype, f"the torch dataset {self.name}")
        self._array_dtype = first.dtype
        self._slice_parts([n], _auto_fragment_rows(fragment_rows, first.nbytes))

    def _read(self, part: int, start: int, stop: int) -> np.ndarray:
        items = [_first_tensor(self._dataset[i]) for i in range(start, stop)]
        odd = next((i for i, x in zip(range(start, stop), items) if x.shape != self._row_shape), None)
        if odd is not None:
            raise InputError(f"item {odd} of {self.name} has shape {items[odd - start].shape}, not {self._row_shape}.")
        return np.stack(items)


class TorchStreamSource(_StreamedSource):
    """An ``IterableDataset`` (items) or a ``DataLoader`` (batches): one sequential pass per epoch.

    A DataLoader's batches are the fragments; an IterableDataset's items are grouped into fragments
    of ``fragment_rows``. Items and batches are tensors or ``(tensor, label)`` tuples (labels are
    dropped); 2-D batches make a table (columns x0..), 4-D (or 3-D) batches images. The data
    cannot be dealt out by fragment (``shardable`` is False): :func:`iter_chunks` gives each
    consumer the whole stream, so a user's dataset that runs on several ranks or workers must
    shard itself (``torch.utils.data.get_worker_info()``), and row indices are positions in the
    stream each consumer sees. ``fragment_sizes`` and ``n_rows`` are known after one complete
    pass; asking earlier runs a counting pass over the data. Construction reads the first item.
    """

    shardable = False

    def __init__(self, data: Any, *, fragment_rows: int | None = None, name: str | None = None):
        torch = _torch()
        self._data = data
        self.name = name or type(getattr(data, "dataset", data)).__name__
        self._batched = isinstance(data, torch.utils.data.DataLoader) and data.batch_size is not None
        self._group = positive_int(fragment_rows, "fragment_rows") if fragment_rows is not None else None
        self._sizes = None  # type: ignore[assignment]
        first = next(iter(self._stream_rows()), None)
        if first is None:
            raise InputError(f"the torch data {self.name} yields no items.")
        self._row_shape = first.shape[1:]
        self.kind, self.columns = _kind_of(first.shape, first.dtype, f"the torch data {self.name}")
        if self._group is None:
            self._group = _auto_fragment_rows(None, first[:1].nbytes)

    @property
    def fragment_sizes(self) -> list[int]:
        if self._sizes is None:
            for _ in self._stream():  # a counting pass: _stream records the sizes when it completes
                pass
        return list(self._sizes)

    def _stream_rows(self) -> Iterator[np.ndarray]:
        """Batches as they come (a DataLoader's), or items as one-row blocks."""
        for item in self._data:
            rows = _first_tensor(item)
            yield rows if self._batched else rows[None]

    def _stream(self) -> Iterator[np.ndarray]:
        sizes, pending, held = [], [], 0
        for rows in self._stream_rows():
            if rows.shape[1:] != self._row_shape:
                raise InputError(f"{self.name} yielded rows of shape {rows.shape[1:]} after rows of shape {self._row_shape}.")
            pending.append(rows)
            held += len(rows)
            if self._batched or held >= self._group:
                block = np.concatenate(pending)
                pending, held = [], 0
                sizes.append(len(block))
                yield block
        if pending:
            sizes.append(held)
            yield np.concatenate(pending)
        self._set_fragments(sizes)  # a complete pass: the sizes are now known for free


# ---------------------------------------------------------------------------------------------
# opening anything


_FILE_SOURCES: dict[str, type[DataSource]] = {
    **{s: ParquetSource for s in PARQUET_SUFFIXES}, ".csv": CsvSource, ".npy": NpySource,
    **{s: SafetensorsSource for s in SAFETENSORS_SUFFIXES},
}
_FOLDER_SOURCES: dict[str, type[DataSource]] = {
    **{s: ParquetSource for s in PARQUET_SUFFIXES}, **{s: SafetensorsSource for s in SAFETENSORS_SUFFIXES},
    **{s: ImageFolderSource for s in IMAGE_SUFFIXES},
}
_KIND_NAMES = {ParquetSource: "Parquet", SafetensorsSource: "safetensors", ImageFolderSource: "image",
               CsvSource: "CSV", NpySource: ".npy"}


def _construct(cls: type[DataSource], obj: Any, options: dict[str, Any]) -> DataSource:
    accepted = [p.name for p in inspect.signature(cls).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
                         f"it takes {', '.join(map(repr, accepted)) or 'none'}.")
    return cls(obj, **options)


def _folder_source(path: Path) -> type[DataSource]:
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))]
    kinds = {_FOLDER_SOURCES.get(p.suffix.lower(), _FILE_SOURCES.get(p.suffix.lower())) for p in files} - {None}
    if len(kinds) > 1:
        names = " and ".join(sorted(_KIND_NAMES[k] for k in kinds))
        raise InputError(f"the folder {path} mixes {names} files; keep one kind of file per folder.")
    if not kinds:
        raise InputError(f"the folder {path} contains no Parquet, safetensors or PNG/JPEG files.")
    (cls,) = kinds
    if cls not in _FOLDER_SOURCES.values():
        raise InputError(f"the folder {path} holds {_KIND_NAMES[cls]} files, which are read one file at a time; "
                         "pass a single file, or convert them to Parquet.")
    return cls


def open_source(obj: Any, **options: Any) -> DataSource:
    """A :class:`DataSource` for a path, an in-memory table or array, or torch data.

    Parameters
    ----------
    obj : a path (``.parquet``/``.pq``, ``.csv``, ``.npy``, ``.safetensors``, or a folder of
        Parquet files, of safetensors shards or of PNG/JPEG images), a DataFrame, a NumPy array or
        tensor, a :class:`~latentforge.data.Dataset`, a torch ``Dataset``/``IterableDataset``/
        ``DataLoader``, or a DataSource (returned as is).
    **options : passed to the source's constructor (``columns``, ``fragment_rows``,
        ``block_size``, ``tensor``, ``name``); an option the source does not take is an error.

    Returns
    -------
    DataSource

    Raises
    ------
    InputError : a missing or empty file, an unknown type, a folder mixing kinds of files.
    """
    if isinstance(obj, DataSource):
        if options:
            raise InputError(f"options {sorted(options)} cannot change the already opened source {obj.name!r}.")
        return obj
    if isinstance(obj, (str, Path)):
        path = _existing_file(obj)
        if path.is_dir():
            return _construct(_folder_source(path), path, options)
        suffix = path.suffix.lower()
        if suffix in _FILE_SOURCES:
            return _construct(_FILE_SOURCES[suffix], path, options)
        if suffix == ".npz":
            raise InputError(f"{path} is an .npz archive, which cannot be read lazily; save the array with np.save as .npy.")
        if suffix in IMAGE_SUFFIXES:
            raise InputError(f"{path} is a single image; pass the folder that holds the images.")
        raise InputError(f"{path} has an unsupported type; use {', '.join(_FILE_SOURCES)}, "
                         "or a folder of Parquet, safetensors or PNG/JPEG files.")
    if isinstance(obj, Dataset):
        return _construct(ArraySource, obj.X, {"name": obj.name, **options})
    if isinstance(obj, (pd.DataFrame, pd.Series, np.ndarray)):
        return _construct(ArraySource, obj, options)
    torch = sys.modules.get("torch")  # a torch object means torch is imported already
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            return _construct(ArraySource, obj, options)
        if isinstance(obj, (torch.utils.data.IterableDataset, torch.utils.data.DataLoader)):
            return _construct(TorchStreamSource, obj, options)
        if isinstance(obj, torch.utils.data.Dataset):
            return _construct(TorchSource, obj, options)
    raise InputError(f"cannot read a {type(obj).__name__} as data; pass a path, a DataFrame, an array, "
                     "a torch Dataset or DataLoader, or a DataSource.")


__all__ = [
    "CSV_BLOCK_BYTES", "DEFAULT_FRAGMENT_ROWS", "DEFAULT_SHUFFLE_BUFFER", "ArraySource", "Chunk", "CsvSource",
    "DataSource", "ImageFolderSource", "NpySource", "ParquetSource", "SafetensorsSource", "TorchSource",
    "TorchStreamSource", "open_source",
]
