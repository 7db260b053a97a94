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

The helpers :func:`load_model`, :func:`find_module`, :func:`special_token_ids`,
:func:`iter_window_batches`, :func:`pad_windows` and :func:`first_tensor` are shared with
:mod:`latentforge.sae.fidelity`, so both select exactly the same tokens.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._version import __version__
from ..data import SafetensorsSource
from ..errors import InputError
from ..fsutil import atomic_directory, atomic_write, check_output_dir
from ..validation import positive_int

__all__ = [
    "ActivationStore", "DTYPES", "FORMAT", "LoadedModel", "Window", "check_max_length", "extract_activations",
    "find_module", "first_tensor", "forward_options", "is_activations_dir", "iter_window_batches", "load_model", "open_activations",
    "pad_token_id", "pad_windows", "read_texts", "special_token_ids", "token_rows",
]

#: version of the activations directory layout written here
FORMAT = 1
MANIFEST = "manifest.json"
VOCAB = "vocab.json"
SHARD_PATTERN = "shard-{:05d}.safetensors"
#: storage dtypes of the activation rows
DTYPES = ("float32", "float16", "bfloat16")
TEXT_SUFFIXES = (".txt", ".text")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: seconds between two progress lines
PROGRESS_EVERY_S = 5.0
#: rows between two wanted rows of a shard below which :meth:`ActivationStore.read` reads through the gap
READ_GAP_ROWS = 256
_MANIFEST_KEYS = ("kind", "format", "model", "model_class", "layer", "d", "dtype", "n_tokens", "n_sequences",
                  "n_texts", "max_length", "batch_size", "keep_special", "special_ids_excluded", "shards")


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


class LoadedModel(NamedTuple):
    """A model and its tokenizer loaded by :func:`load_model`."""

    model: Any
    tokenizer: Any
    kind: str  # "causal_lm", "masked_lm" or "encoder"
    model_class: str


def _model_kind(architectures: Sequence[str]) -> str:
    for arch in architectures:
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal_lm"
        if arch.endswith("ForMaskedLM"):
            return "masked_lm"
    return "encoder"


def load_model(model_dir: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Load a ``transformers`` model and its tokenizer offline from a local directory, in eval mode.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by ``save_pretrained`` (``config.json``, weights, tokenizer files).
    device : str
        Torch device to put the model on.

    Returns
    -------
    LoadedModel
        ``(model, tokenizer, kind, model_class)``. The class follows the config's ``architectures``:
        ``AutoModelForCausalLM`` for ``*ForCausalLM`` / ``*LMHeadModel`` (kind ``"causal_lm"``),
        ``AutoModelForMaskedLM`` for ``*ForMaskedLM`` (``"masked_lm"``), else ``AutoModel``
        (``"encoder"``). Module names are those of this model's ``named_modules()``.

    Raises
    ------
    InputError
        When the directory is missing, is not a transformers model, or has no loadable tokenizer.
    """
    path = Path(model_dir)
    if not path.exists():
        raise InputError(f"model directory not found: {path}.")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise InputError(f"{path} is not a transformers model directory (no config.json); save one with "
                         "model.save_pretrained(dir) and tokenizer.save_pretrained(dir).")
    import transformers
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in our logs; the user's setting is restored
    try:
        return _load(transformers, path, device)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load(transformers: Any, path: Path, device: str) -> LoadedModel:
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # ValueError / OSError / JSON errors for an unusable config
        raise InputError(f"{path} is not a transformers model directory ({exc}).") from None
    kind = _model_kind(list(getattr(config, "architectures", None) or []))
    auto = {"causal_lm": transformers.AutoModelForCausalLM, "masked_lm": transformers.AutoModelForMaskedLM,
            "encoder": transformers.AutoModel}[kind]
    try:
        model = auto.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # missing/corrupt weights, an architecture this transformers lacks...
        raise InputError(f"cannot load the model in {path} with {auto.__name__} ({exc}).") from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise InputError(f"cannot load a tokenizer from {path} ({exc}); save it beside the model with "
                         "tokenizer.save_pretrained(dir).") from None
    try:
        model.to(device)
    except Exception as exc:  # an unknown or unavailable device
        raise InputError(f"cannot move the model to device {device!r} ({exc}).") from None
    model.eval()
    return LoadedModel(model, tokenizer, kind, type(model).__name__)


def find_module(model: Any, layer: str) -> tuple[str, Any]:
    """The module called ``layer`` in ``model.named_modules()``.

    Parameters
    ----------
    model : torch.nn.Module
        A loaded model.
    layer : str
        A module name, e.g. ``"encoder.layer.0"`` or ``"transformer.h.0"``. A name relative to the
        base model (``"h.0"`` in a ``GPT2LMHeadModel``, whose base is ``transformer``) is accepted
        too, and so is a base-model name with its prefix in a bare base model.

    Returns
    -------
    tuple[str, torch.nn.Module]
        The full module name in ``model`` and the module.

    Raises
    ------
    InputError
        When no module has that name; the message names the closest names.
    """
    modules = dict(model.named_modules())
    prefix = getattr(model, "base_model_prefix", "") or ""
    layer = str(layer)
    candidates = [layer]
    if prefix:
        candidates.append(f"{prefix}.{layer}")
        if layer.startswith(prefix + "."):
            candidates.append(layer[len(prefix) + 1:])
    for name in candidates:
        if name and name in modules:
            return name, modules[name]
    names = [n for n in modules if n]
    short = {n[len(prefix) + 1:]: n for n in names if prefix and n.startswith(prefix + ".")}
    close = difflib.get_close_matches(layer, names + list(short), n=5, cutoff=0.5)
    if not close:  # nothing alike: show the repeated blocks, the usual hook points
        close = [n for n in names if re.search(r"\.\d+$", n) and n.count(".") <= 3][:5] or names[:5]
    raise InputError(f"{type(model).__name__} has no module {layer!r}; did you mean "
                     f"{' or '.join(map(repr, dict.fromkeys(close)))}? (names are those of model.named_modules())")


def special_token_ids(tokenizer: Any) -> list[int]:
    """The ids of the structural special tokens ([CLS], [SEP], BOS, EOS, padding, mask...) that are
    not stored unless ``keep_special``; the unknown token is content and stays, unless it doubles as
    a structural token (GPT-2's ``<|endoftext|>``).

    Parameters
    ----------
    tokenizer : transformers tokenizer

    Returns
    -------
    list[int]
        Sorted token ids.
    """
    ids = {int(i) for i in tokenizer.all_special_ids if i is not None}
    unk = tokenizer.unk_token_id
    structural = {getattr(tokenizer, f"{t}_token_id", None) for t in ("bos", "eos", "cls", "sep", "pad", "mask")}
    if unk is not None and unk not in structural:
        ids.discard(int(unk))
    return sorted(ids)


class Window(NamedTuple):
    """One sequence fed to the model: the index of the text it comes from and its token ids."""

    text: int
    ids: list[int]


def check_max_length(loaded: LoadedModel, max_length: int) -> int:
    """Check that the model and its tokenizer take windows of ``max_length`` tokens.

    Parameters
    ----------
    loaded : LoadedModel
    max_length : int
        Tokens per window, special tokens included.

    Returns
    -------
    int
        ``max_length``.

    Raises
    ------
    InputError
        When it leaves no room beside the special tokens, or exceeds the model's positions
        (``max_position_embeddings`` / ``n_positions``) or the tokenizer's ``model_max_length``.
    """
    max_length = positive_int(max_length, "max_length")
    added = int(loaded.tokenizer.num_special_tokens_to_add(pair=False))
    if max_length <= added:
        raise InputError(f"max_length={max_length} leaves no room for text: the tokenizer adds {added} "
                         "special tokens to every sequence.")
    config = loaded.model.config
    limits = [getattr(config, a) for a in ("max_position_embeddings", "n_positions")
              if isinstance(getattr(config, a, None), int)]
    tok_limit = getattr(loaded.tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and tok_limit < 1_000_000:  # transformers' "no limit" is a huge number
        limits.append(tok_limit)
    if limits and max_length > min(limits):
        raise InputError(f"max_length={max_length} exceeds what the model takes ({min(limits)} tokens).")
    return max_length


def _checked_texts(texts: Iterable[str], counter: list[int]) -> Iterator[str]:
    """The texts, one at a time, counted in ``counter[0]``; anything but a string is an InputError."""
    if isinstance(texts, (str, bytes)):
        raise InputError("texts must be an iterable of strings, got a single string; use read_texts(path) "
                         "to stream a file.")
    try:
        iterator = iter(texts)
    except TypeError:
        raise InputError(f"texts must be an iterable of strings, got {type(texts).__name__}.") from None
    for text in iterator:
        if not isinstance(text, str):
            raise InputError(f"text {counter[0]} is a {type(text).__name__}, not a string.")
        counter[0] += 1
        yield text


def _windows_of(tokenizer: Any, texts: list[str], first: int, max_length: int) -> list[Window]:
    """The windows of a group of texts: each text tokenized with its special tokens and cut into
    consecutive windows of at most ``max_length`` tokens (the tokenizer's own overflow, stride 0)."""
    options = dict(truncation=True, max_length=max_length, return_overflowing_tokens=True, stride=0,
                   add_special_tokens=True)
    enc = tokenizer(texts, **options)
    if "overflow_to_sample_mapping" not in enc:  # tokenizers that map overflow only one text at a time
        windows = []
        for i, text in enumerate(texts):
            ids = tokenizer(text, **options)["input_ids"]
            ids = [ids] if ids and isinstance(ids[0], int) else ids
            windows += [Window(first + i, list(w)) for w in ids]
        return windows
    return [Window(first + int(t), list(ids)) for t, ids in zip(enc["overflow_to_sample_mapping"], enc["input_ids"])]


def iter_window_batches(tokenizer: Any, texts: Iterable[str], max_length: int, batch_size: int,
                        *, drop_ids: Sequence[int] = (), counter: list[int] | None = None) -> Iterator[list[Window]]:
    """Batches of ``batch_size`` windows (the last may be shorter), streamed from ``texts``.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    texts : Iterable[str]
        Read ``batch_size`` texts at a time.
    max_length : int
        Most tokens in a window, special tokens included; longer texts give several windows.
    batch_size : int
        Windows per batch.
    drop_ids : Sequence[int]
        Windows made only of these ids (e.g. an empty text's [CLS] [SEP]) are skipped.
    counter : list[int], optional
        ``counter[0]`` counts the texts read.

    Returns
    -------
    Iterator[list[Window]]

    Raises
    ------
    InputError
        When ``texts`` is not an iterable of strings.
    """
    counter = [0] if counter is None else counter
    drop = set(int(i) for i in drop_ids)
    pending: list[Window] = []
    group: list[str] = []
    stream = _checked_texts(texts, counter)
    while True:
        text = next(stream, None)
        if text is not None:
            group.append(text)
        if group and (len(group) >= batch_size or text is None):
            first = counter[0] - len(group)
            pending += [w for w in _windows_of(tokenizer, group, first, max_length)
                        if w.ids and not set(w.ids) <= drop]
            group = []
        while len(pending) >= batch_size or (text is None and pending):
            yield pending[:batch_size]
            pending = pending[batch_size:]
        if text is None:
            return


def pad_windows(windows: Sequence[Window], pad_id: int, device: Any = "cpu") -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` int64 tensors ``(len(windows), longest)``, padded on the right
    (so positions of real tokens are those of an unpadded run, also for causal models).

    Parameters
    ----------
    windows : Sequence[Window]
    pad_id : int
        Token id put at padded positions (they are masked out).
    device : torch device

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
    """
    import torch

    longest = max(len(w.ids) for w in windows)
    ids = torch.full((len(windows), longest), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for i, w in enumerate(windows):
        ids[i, : len(w.ids)] = torch.tensor(w.ids, dtype=torch.long)
        mask[i, : len(w.ids)] = 1
    return ids.to(device), mask.to(device)


def pad_token_id(tokenizer: Any) -> int:
    """The id to pad batches with.

    Parameters
    ----------
    tokenizer : transformers tokenizer

    Returns
    -------
    int
        The padding id, else the EOS id (GPT-2 has no padding token), else 0; padded positions are
        masked out, so the value only has to be a valid id.
    """
    for pid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if pid is not None:
            return int(pid)
    return 0


def first_tensor(output: Any) -> Any:
    """A module's output tensor: the output itself, element 0 of a tuple/list, or the first field of
    a ``ModelOutput``.

    Parameters
    ----------
    output : torch.Tensor, tuple, list or ModelOutput

    Returns
    -------
    torch.Tensor

    Raises
    ------
    InputError
        When there is no tensor to take.
    """
    import torch

    value = output
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    elif hasattr(value, "to_tuple"):
        items = value.to_tuple()
        value = items[0] if items else None
    if not isinstance(value, torch.Tensor):
        raise InputError(f"the hooked module returns {type(output).__name__}, not a tensor (or a tuple whose "
                         "first element is one); hook another module.")
    return value


def token_rows(x: Any, input_ids: Any, layer: str) -> Any:
    """A hooked output as one vector per token.

    Parameters
    ----------
    x : torch.Tensor
        The module's output, ``(batch, tokens, ...)``.
    input_ids : torch.Tensor
        ``(batch, tokens)``: the shape ``x`` must start with.
    layer : str
        The module's name, for the message.

    Returns
    -------
    torch.Tensor
        ``(batch, tokens, d)``, trailing dims (e.g. heads × head_dim) flattened.

    Raises
    ------
    InputError
        When the output does not have one entry per input token.
    """
    if x.ndim < 3 or tuple(x.shape[:2]) != tuple(input_ids.shape):
        raise InputError(f"module {layer!r} outputs shape {tuple(x.shape)} for inputs of shape "
                         f"{tuple(input_ids.shape)}; it needs one vector per token (batch, tokens, features).")
    return x.reshape(x.shape[0], x.shape[1], -1)


def forward_options(loaded: LoadedModel) -> dict[str, Any]:
    """Extra forward arguments: no key/value cache for a causal LM (nothing is generated).

    Parameters
    ----------
    loaded : LoadedModel

    Returns
    -------
    dict[str, Any]
    """
    return {"use_cache": False} if loaded.kind == "causal_lm" else {}


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


# ---------------------------------------------------------------------------------------------
# reading


def _tensor_numpy(value: Any) -> np.ndarray:
    import torch

    return (value.float() if value.dtype == torch.bfloat16 else value).numpy()


class ActivationStore:
    """A complete activations directory (format 1), opened by :func:`open_activations`.

    Attributes
    ----------
    path : Path
        The directory.
    manifest : dict
        The parsed ``manifest.json``.
    d : int
        Width of an activation row.
    n_tokens : int
        Rows stored (global row indices are ``0 .. n_tokens - 1`` in shard order).
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        self.d = int(manifest["d"])
        self.n_tokens = int(manifest["n_tokens"])
        self._files = [self.path / s["file"] for s in manifest["shards"]]
        self._offsets = np.concatenate([[0], np.cumsum([int(s["rows"]) for s in manifest["shards"]])]).astype(np.int64)
        self._vocab: dict[str, str] | None = None

    @property
    def n_sequences(self) -> int:
        return int(self.manifest["n_sequences"])

    @property
    def layer(self) -> str:
        return str(self.manifest["layer"])

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        return (f"ActivationStore({str(self.path)!r}, layer={self.layer!r}, n_tokens={self.n_tokens}, d={self.d}, "
                f"shards={len(self._files)})")

    def source(self, fragment_rows: int | None = None) -> SafetensorsSource:
        """The activation rows as a streaming data source.

        Parameters
        ----------
        fragment_rows : int, optional
            Rows per fragment (fragments never span two shards); default: the source's own.

        Returns
        -------
        SafetensorsSource
            Over the shards, tensor ``"activations"``, global row ``i`` = row ``i`` of the store.
        """
        return SafetensorsSource(self.path, tensor="activations", fragment_rows=fragment_rows)

    def _read(self, rows: Any, keys: Sequence[str]) -> dict[str, np.ndarray]:
        from safetensors import safe_open

        rows = np.asarray(rows)
        if rows.ndim != 1 or not (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
            raise InputError(f"rows must be a 1-D array of integer row indices, got shape {rows.shape} ({rows.dtype}).")
        rows = rows.astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_tokens):
            raise InputError(f"row indices must lie in [0, {self.n_tokens}), got {rows.min()}..{rows.max()}.")
        uniq, inverse = np.unique(rows, return_inverse=True)
        shard_of = np.searchsorted(self._offsets, uniq, side="right") - 1
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for s in np.unique(shard_of):
            local = uniq[shard_of == s] - self._offsets[s]
            runs = np.split(local, np.flatnonzero(np.diff(local) > READ_GAP_ROWS) + 1)  # contiguous reads
            with safe_open(str(self._files[s]), framework="pt") as handle:
                for run in runs:
                    a, b = int(run[0]), int(run[-1]) + 1
                    for k in keys:
                        parts[k].append(_tensor_numpy(handle.get_slice(k)[a:b])[run - a])
        out = {}
        for k in keys:
            if parts[k]:
                out[k] = np.concatenate(parts[k])[inverse]
            else:
                dt = {"float16": np.float16}.get(self.manifest["dtype"], np.float32)
                out[k] = np.empty((0, self.d), dtype=dt) if k == "activations" else np.empty(0, dtype=np.int64)
        return out

    def read(self, rows: Any) -> dict[str, np.ndarray]:
        """Rows by global index, in the order asked (repeats allowed).

        Parameters
        ----------
        rows : array-like of int
            Global row indices in ``[0, n_tokens)``.

        Returns
        -------
        dict[str, np.ndarray]
            ``activations`` (len(rows), d) (bfloat16 read as float32), ``token_ids``, ``sequences``,
            ``positions`` (len(rows),) int64.

        Raises
        ------
        InputError
            For indices out of range or not integers.
        """
        return self._read(rows, ("activations", "token_ids", "sequences", "positions"))

    def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        """Display strings of token ids, from ``vocab.json`` (``"[id]"`` for an id not in it).

        Parameters
        ----------
        token_ids : Sequence[int]

        Returns
        -------
        list[str]
        """
        if self._vocab is None:
            try:
                self._vocab = json.loads((self.path / VOCAB).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path / VOCAB} cannot be read ({exc}).") from None
        return [self._vocab.get(str(int(i)), f"[{int(i)}]") for i in token_ids]

    def context(self, row: int, before: int = 8, after: int = 4) -> tuple[list[str], int]:
        """The tokens around a row, within its own sequence.

        Parameters
        ----------
        row : int
            A global row index.
        before, after : int
            Most tokens to show before and after it.

        Returns
        -------
        tuple[list[str], int]
            The token strings, and the index of ``row``'s own token in that list.

        Raises
        ------
        InputError
            For a row out of range.
        """
        row = int(row)
        if not 0 <= row < self.n_tokens:
            raise InputError(f"row {row} out of range: the store has {self.n_tokens} rows.")
        return self.contexts([row], before, after)[0]

    def contexts(self, rows: Sequence[int], before: int = 8, after: int = 4) -> list[tuple[list[str], int]]:
        """:meth:`context` of many rows with one read of the union of their windows (a feature
        browser asks for ~10 contexts per feature: one shard open per row would dominate its time).

        Parameters
        ----------
        rows : Sequence[int]
            Global row indices.
        before, after : int
            Most tokens to show before and after each.

        Returns
        -------
        list[tuple[list[str], int]]
            Per row, as :meth:`context`.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return []
        if rows.min() < 0 or rows.max() >= self.n_tokens:
            raise InputError(f"row indices must lie in [0, {self.n_tokens}), got {rows.min()}..{rows.max()}.")
        lo = np.maximum(0, rows - int(before))
        hi = np.minimum(self.n_tokens, rows + int(after) + 1)
        wanted = np.unique(np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]))
        got = self._read(wanted, ("token_ids", "sequences"))
        out = []
        for row, a, b in zip(rows, lo, hi):
            at = np.searchsorted(wanted, np.arange(a, b))
            sequences, ids = got["sequences"][at], got["token_ids"][at]
            same = np.flatnonzero(sequences == sequences[row - a])  # contiguous: one sequence
            out.append((self.token_strings(ids[same]), int(row - a - same[0])))
        return out


def open_activations(path: str | Path) -> ActivationStore:
    """Open a complete activations directory.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ActivationStore

    Raises
    ------
    InputError
        Naming the path, when it is not a complete activations directory of a known format (no
        manifest, a manifest of another kind or a newer format, missing shards).
    """
    path = Path(path)
    what = f"{path} is not an activations directory"
    if not path.is_dir():
        raise InputError(f"{what} (not a folder)." if path.exists() else f"activations directory not found: {path}.")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} (no {MANIFEST}: not written by extract_activations, or incomplete).") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} ({MANIFEST} cannot be read: {exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "activations":
        raise InputError(f"{what} ({MANIFEST} is not an activations manifest).")
    if not isinstance(manifest.get("format"), int) or manifest["format"] > FORMAT:
        raise InputError(f"{path} is an activations directory of format {manifest.get('format')!r}; this "
                         f"latentforge reads format {FORMAT} (upgrade latentforge).")
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise InputError(f"{what} ({MANIFEST} lacks {', '.join(missing)}).")
    shards = manifest["shards"]
    if not shards or not all(isinstance(s, dict) and "file" in s and "rows" in s for s in shards):
        raise InputError(f"{what} ({MANIFEST} lists no shards).")
    absent = [s["file"] for s in shards if not (path / s["file"]).is_file()]
    if absent:
        raise InputError(f"{path} is incomplete: shard(s) {', '.join(absent[:3])} are missing.")
    if sum(int(s["rows"]) for s in shards) != int(manifest["n_tokens"]):
        raise InputError(f"{what} (its shards do not add up to n_tokens={manifest['n_tokens']}).")
    return ActivationStore(path, manifest)


def is_activations_dir(path: str | Path) -> bool:
    """Whether ``path`` is a complete activations directory (:func:`open_activations` would open it).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bool
    """
    try:
        open_activations(path)
    except InputError:
        return False
    return True
