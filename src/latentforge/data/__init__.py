"""Data layer: read tables and images, built-in datasets, preprocessing with a saved schema, output writers.

Names are imported from their submodule on first use (PEP 562), so that ``latentforge datasets``
and other light commands do not pay for pandas, pyarrow and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .datasets import BUILTIN, Dataset, load_builtin, make_shapes
    from .images import ImagePreprocessor
    from .io import OUTPUT_SUFFIXES, check_output_file, dataset_from_frame, load_dataset, read_table, write_output, write_stream
    from .chunks import Chunk
    from .columnar import ColumnBlock, numeric_view
    from .sources import ArraySource, CsvSource, DEFAULT_SHUFFLE_BUFFER, DataSource, ImageFolderSource, NpySource, ParquetSource, SafetensorsSource, TorchSource, TorchStreamSource, open_source
    from .streams import RowsAside, hash_split, iter_batches, iter_chunks, rebatch, rows_per_rank
    from .split import split_dataset, split_indices
    from .tabular import DEFAULT_RESERVOIR, TableStats, TabularPreprocessor
    from .inputs import Preprocessor, as_model_input, make_preprocessor, preprocessor_from_state

#: public name → the submodule that defines it
_LAZY: dict[str, str] = {
    "BUILTIN": "datasets", "Dataset": "datasets", "load_builtin": "datasets", "make_shapes": "datasets",
    "ImagePreprocessor": "images",
    "OUTPUT_SUFFIXES": "io", "check_output_file": "io", "dataset_from_frame": "io", "load_dataset": "io", "read_table": "io", "write_output": "io", "write_stream": "io",
    "Chunk": "chunks",
    "ColumnBlock": "columnar", "numeric_view": "columnar",
    "ArraySource": "sources", "CsvSource": "sources", "DEFAULT_SHUFFLE_BUFFER": "sources", "DataSource": "sources", "ImageFolderSource": "sources", "NpySource": "sources", "ParquetSource": "sources", "SafetensorsSource": "sources", "TorchSource": "sources", "TorchStreamSource": "sources", "open_source": "sources",
    "RowsAside": "streams", "hash_split": "streams", "iter_batches": "streams", "iter_chunks": "streams", "rebatch": "streams", "rows_per_rank": "streams",
    "split_dataset": "split", "split_indices": "split",
    "DEFAULT_RESERVOIR": "tabular", "TableStats": "tabular", "TabularPreprocessor": "tabular",
    "Preprocessor": "inputs", "as_model_input": "inputs", "make_preprocessor": "inputs", "preprocessor_from_state": "inputs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ArraySource", "Chunk", "ColumnBlock", "CsvSource", "DEFAULT_RESERVOIR", "DEFAULT_SHUFFLE_BUFFER", "DataSource", "ImageFolderSource",
    "NpySource", "ParquetSource", "RowsAside", "SafetensorsSource", "TableStats", "TorchSource", "TorchStreamSource", "hash_split",
    "iter_batches", "iter_chunks", "numeric_view", "open_source", "rebatch", "rows_per_rank",
    "BUILTIN", "OUTPUT_SUFFIXES", "Dataset", "check_output_file", "write_output", "write_stream", "ImagePreprocessor", "Preprocessor", "TabularPreprocessor", "as_model_input",
    "dataset_from_frame", "load_builtin", "load_dataset", "make_preprocessor", "make_shapes",
    "preprocessor_from_state", "read_table", "split_dataset", "split_indices",
]
