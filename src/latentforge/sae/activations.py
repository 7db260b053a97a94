"""Token activations of a Hugging Face ``transformers`` model at one module, written to and read from
an *activations directory* (format 1), the input of sparse-autoencoder training.

:func:`extract_activations` loads a model offline from a local directory, hooks one module (a name
of ``model.named_modules()``), streams texts through the model batch by batch and writes every
non-padding token's activation row, shard by shard::

    DIR/
      manifest.json            written last: its presence means the directory is complete
      vocab.json               {"<token id>": "<token string>"} for every token id in the shards
      shard-00000.safetensors  activations (n, d), token_ids, sequences, positions (n,) int64
      ...

:class:`ActivationStore` (from :func:`open_activations`) reads it back: as a streaming
:class:`~latentforge.data.SafetensorsSource` of activation rows, or rows by global index with their
token, sequence and position, and the tokens around a row. :func:`read_texts` streams documents from
a text file (one per non-empty line) or a Parquet column.

The model plumbing is in :mod:`.hf` (shared with :mod:`.fidelity`) and the reader in :mod:`.store`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import InputError
from ..fsutil import atomic_directory, atomic_write, check_output_dir
from ..validation import positive_int
from .hf import (
    check_max_length,
    find_module,
    first_tensor,
    forward_options,
    iter_window_batches,
    load_model,
    pad_token_id,
    pad_windows,
    special_token_ids,
    token_rows,
)
from .store import DTYPES, FORMAT, MANIFEST, VOCAB, ActivationStore, open_activations

__all__ = ["extract_activations", "read_texts"]

SHARD_PATTERN = "shard-{:05d}.safetensors"
TEXT_SUFFIXES = (".txt", ".text")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: seconds between two progress lines
PROGRESS_EVERY_S = 5.0




# ---------------------------------------------------------------------------------------------
# texts


def read_texts(path: str | Path, column: str | None = None) -> Iterator[str]:
    """Stream the documents of a text file or a Parquet file/folder, one string at a time.

    Parameters
    ----------
    path : str or Path
        A UTF-8 text file (``.txt`` or any non-Parquet file): **one document per non-empty line**
        (the line without its end-of-line; whitespace-only lines are skipped). Or a Parquet file
        (``.parquet``/``.pq``), or a folder of Parquet files (sorted by name), read one row group at
        a time.
    column : str, optional
        The Parquet column of strings; default: the only string column. Not allowed for text files.

    Returns
    -------
    Iterator[str]
        The documents in file order (null and empty Parquet values are skipped).

    Raises
    ------
    InputError
        When the path does not exist, the Parquet column is missing or does not hold strings (checked
        before the first document is returned), or a text file is not valid UTF-8 (when reached).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"text file not found: {path}.")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES
                       and not p.name.startswith((".", "_")))
        if not files:
            raise InputError(f"the folder {path} contains no Parquet files (a text source is a text file, a "
                             "Parquet file or a folder of Parquet files).")
        return _parquet_texts(files, column)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _parquet_texts([path], column)
    if column is not None:
        raise InputError(f"column={column!r} selects a Parquet column, but {path} is read as a text file "
                         "(one document per line).")
    return _line_texts(path)


def _line_texts(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8", newline=None) as handle:
        line_no = 0
        try:
            for line_no, line in enumerate(handle, 1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text (after line {line_no}: {exc.reason}).") from None


def _parquet_column(files: Sequence[Path], column: str | None) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(files[0])
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-Parquet bytes
        raise InputError(f"{files[0]} cannot be read as a Parquet file ({exc}).") from None
    names = [n for n in schema.names if n != "__index_level_0__"]
    is_text = {n: pa.types.is_string(schema.field(n).type) or pa.types.is_large_string(schema.field(n).type)
               for n in names}
    if column is None:
        text_columns = [n for n in names if is_text[n]]
        if len(text_columns) != 1:
            raise InputError(f"{files[0]} has {len(text_columns)} string columns "
                             f"({', '.join(map(repr, text_columns)) or 'none'}); pass column= to pick the texts.")
        return text_columns[0]
    if column not in is_text:
        raise InputError(f"column {column!r} not found in {files[0]}; it has {', '.join(map(repr, names))}.")
    if not is_text[column]:
        raise InputError(f"column {column!r} of {files[0]} holds {schema.field(column).type}, not strings.")
    return column


def _parquet_texts(files: Sequence[Path], column: str | None) -> Iterator[str]:
    name = _parquet_column(files, column)  # checked now, not at the first next()

    def texts() -> Iterator[str]:
        import pyarrow.parquet as pq

        for f in files:
            pf = pq.ParquetFile(f)
            if name not in pf.schema_arrow.names:
                raise InputError(f"column {name!r} not found in {f}; every Parquet file must have it.")
            for g in range(pf.num_row_groups):  # one row group in memory at a time
                for value in pf.read_row_group(g, columns=[name]).column(0).to_pylist():
                    if value:
                        yield value

    return texts()


# ---------------------------------------------------------------------------------------------
# model, layer, tokens (shared with latentforge.sae.fidelity)


class _StopForward(Exception):
    """Raised by the extraction hook: nothing after the hooked module is needed."""


# ---------------------------------------------------------------------------------------------
# writing


class _ShardWriter:
    """Rows gathered in one preallocated shard buffer; each full buffer becomes one safetensors file."""

    def __init__(self, folder: Path, shard_tokens: int, dtype: Any):
        self.folder, self.shard_tokens, self.dtype = folder, shard_tokens, dtype
        self.shards: list[dict[str, Any]] = []
        self.n_rows, self.d, self._fill = 0, None, 0
        self._buf: dict[str, Any] = {}

    def add(self, acts: Any, token_ids: Any, sequences: Any, positions: Any) -> None:
        import torch

        if self.d is None:
            self.d = int(acts.shape[1])
            rows = self.shard_tokens
            self._buf = {"activations": torch.empty((rows, self.d), dtype=self.dtype),
                         **{k: torch.empty(rows, dtype=torch.long) for k in ("token_ids", "sequences", "positions")}}
        parts = {"activations": acts, "token_ids": token_ids, "sequences": sequences, "positions": positions}
        start, n = 0, int(acts.shape[0])
        while start < n:
            take = min(n - start, self.shard_tokens - self._fill)
            for k, v in parts.items():
                self._buf[k][self._fill: self._fill + take] = v[start: start + take]
            self._fill += take
            start += take
            if self._fill == self.shard_tokens:
                self.flush()
        self.n_rows += n

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self._fill:
            return
        name = SHARD_PATTERN.format(len(self.shards))
        # a full buffer is written as is; a partial last one as its (contiguous) leading rows
        save_file({k: v[: self._fill].contiguous() for k, v in self._buf.items()}, str(self.folder / name))
        self.shards.append({"file": name, "rows": self._fill})
        self._fill = 0


class _Progress:
    """A plain line on stderr every few seconds (no progress bars: logs stay readable)."""

    def __init__(self, enabled: bool):
        self.enabled, self.last = bool(enabled), time.monotonic()

    def __call__(self, tokens: int, texts: int, shards: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (final or now - self.last >= PROGRESS_EVERY_S):
            self.last = now
            print(f"activations: {tokens:,} tokens written, {texts:,} texts read, {shards} shard(s)"
                  + (" — done" if final else ""), file=sys.stderr, flush=True)


def _vocab(tokenizer: Any, ids: Iterable[int]) -> dict[str, str]:
    """Token strings for display: each id decoded alone (" the" for GPT-2's "Ġthe"), else its raw token."""
    ids = sorted(int(i) for i in ids)
    decoded = tokenizer.batch_decode([[i] for i in ids]) if ids else []
    raw = tokenizer.convert_ids_to_tokens(ids) if ids else []
    return {str(i): (d if d else (r if r is not None else f"[{i}]")) for i, d, r in zip(ids, decoded, raw)}


def extract_activations(
    model_dir: str | Path,
    layer: str,
    texts: Iterable[str],
    out: str | Path,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    shard_tokens: int = 262_144,
    dtype: str = "float32",
    keep_special: bool = False,
    device: str = "cpu",
    progress: bool | None = None,
) -> ActivationStore:
    """Run texts through a local ``transformers`` model and store the output of module ``layer``
    at every token as an activations directory (format 1).

    Parameters
    ----------
    model_dir : str or Path
        A ``save_pretrained`` directory with the model and its tokenizer; loaded offline.
    layer : str
        A module name of ``model.named_modules()`` (e.g. ``"encoder.layer.3"``, ``"transformer.h.5"``;
        a name relative to the base model, ``"h.5"``, works too). Its output, or element 0 of a tuple
        output, must hold one vector per token; trailing dims are flattened.
    texts : Iterable[str]
        Documents, streamed (:func:`read_texts` reads a file); only ``batch_size`` texts and their
        windows are held at a time.
    out : str or Path
        The directory to write. It is written as a temporary sibling and renamed when complete; an
        existing activations directory there is replaced, any other non-empty directory is refused.
    batch_size : int
        Windows per forward pass.
    max_length : int
        Tokens per window, special tokens included; longer texts are cut into consecutive windows,
        each its own sequence.
    shard_tokens : int
        Rows per shard file (the last one may be shorter); memory holds one shard plus one batch.
    dtype : {"float32", "float16", "bfloat16"}
        Storage dtype of the activations.
    keep_special : bool
        Store special tokens ([CLS], [SEP], BOS...) too; padding is never stored.
    device : str
        Torch device for the model.
    progress : bool, optional
        Print a line to stderr every few seconds.

    Returns
    -------
    ActivationStore
        The written directory, opened.

    Raises
    ------
    InputError
        For a missing or unusable model directory, an unknown layer (the message names close
        matches), a layer whose output is not one vector per token, bad options, texts that are not
        strings, no tokens at all, or an output directory that cannot be replaced. On any failure
        nothing is left at ``out`` (nor a temporary directory).
    """
    batch_size = positive_int(batch_size, "batch_size")
    shard_tokens = positive_int(shard_tokens, "shard_tokens")
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if isinstance(texts, (str, bytes)):
        raise InputError("texts must be an iterable of strings, got a single string; use read_texts(path) "
                         "to stream a file.")
    out = Path(out)
    check_output_dir(out, MANIFEST)  # before loading anything
    loaded = load_model(model_dir, device=device)
    max_length = check_max_length(loaded, max_length)
    name, module = find_module(loaded.model, layer)

    import torch

    tokenizer = loaded.tokenizer
    excluded = [] if keep_special else special_token_ids(tokenizer)
    excluded_t = torch.tensor(excluded, dtype=torch.long)
    pad_id = pad_token_id(tokenizer)
    store_dtype = getattr(torch, dtype)
    captured: dict[str, Any] = {}

    def hook(_module: Any, _args: Any, output: Any) -> None:
        captured["x"] = first_tensor(output)
        raise _StopForward  # the rest of the model is not needed

    counter = [0]
    show = _Progress(bool(progress))
    seen_ids: set[int] = set()
    n_sequences = 0
    handle = module.register_forward_hook(hook)
    try:
        with atomic_directory(out, marker=MANIFEST) as tmp:
            writer = _ShardWriter(tmp, shard_tokens, store_dtype)
            batches = iter_window_batches(tokenizer, texts, max_length, batch_size, drop_ids=excluded, counter=counter)
            for batch in batches:
                input_ids, attention = pad_windows(batch, pad_id, loaded.model.device)
                captured.clear()
                with torch.inference_mode():
                    try:
                        loaded.model(input_ids=input_ids, attention_mask=attention, **forward_options(loaded))
                    except _StopForward:
                        pass
                if "x" not in captured:
                    raise InputError(f"module {name!r} was not called in the forward pass of {loaded.model_class}; "
                                     "hook a module on the path from the input to the output.")
                x = token_rows(captured.pop("x"), input_ids, name).to("cpu")
                ids, keep = input_ids.cpu(), attention.cpu().bool()
                if len(excluded_t):
                    keep &= ~torch.isin(ids, excluded_t)
                # windows that keep no token take no sequence number: stored sequences are 0..n-1
                has_rows = keep.any(dim=1)
                seq_of_window = n_sequences + torch.cumsum(has_rows.long(), 0) - 1
                n_sequences += int(has_rows.sum())
                positions = torch.arange(ids.shape[1]).expand_as(ids)
                token_ids = ids[keep]
                writer.add(x[keep].to(store_dtype), token_ids, seq_of_window[:, None].expand_as(ids)[keep],
                           positions[keep])
                seen_ids.update(torch.unique(token_ids).tolist())
                show(writer.n_rows, counter[0], len(writer.shards))
            if writer.n_rows == 0:
                raise InputError(f"the texts gave no tokens to store ({counter[0]} texts read"
                                 + ("" if keep_special else "; special tokens are dropped unless keep_special=True")
                                 + ").")
            writer.flush()
            atomic_write(tmp / VOCAB, json.dumps(_vocab(tokenizer, seen_ids), ensure_ascii=False).encode("utf-8"))
            manifest = {
                "kind": "activations", "format": FORMAT, "model": str(model_dir), "model_class": loaded.model_class,
                "layer": name, "d": int(writer.d), "dtype": dtype, "n_tokens": int(writer.n_rows),
                "n_sequences": int(n_sequences), "n_texts": int(counter[0]), "max_length": int(max_length),
                "batch_size": int(batch_size), "keep_special": bool(keep_special),
                "special_ids_excluded": [int(i) for i in excluded], "shards": writer.shards,
                "latentforge_version": __version__,
            }
            # last: its presence marks a complete directory
            atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=2, allow_nan=False).encode("utf-8"))
    finally:
        handle.remove()
    show(int(manifest["n_tokens"]), counter[0], len(manifest["shards"]), final=True)
    return open_activations(out)


