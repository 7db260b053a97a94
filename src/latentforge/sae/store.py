"""Reading an activations directory (format 1) back: :class:`ActivationStore`, from
:func:`open_activations`, as a streaming :class:`~latentforge.data.SafetensorsSource` of activation
rows, or rows by global index with their token, sequence and position, and the tokens around a row.
The layout is written by :func:`latentforge.sae.activations.extract_activations`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import SafetensorsSource
from ..errors import InputError

__all__ = ["ActivationStore", "DTYPES", "FORMAT", "MANIFEST", "VOCAB", "is_activations_dir", "open_activations"]

#: version of the activations directory layout
FORMAT = 1
MANIFEST = "manifest.json"
VOCAB = "vocab.json"
#: storage dtypes of the activation rows
DTYPES = ("float32", "float16", "bfloat16")
#: rows between two wanted rows of a shard below which :meth:`ActivationStore.read` reads through the gap
READ_GAP_ROWS = 256
_MANIFEST_KEYS = ("kind", "format", "model", "model_class", "layer", "d", "dtype", "n_tokens", "n_sequences",
                  "n_texts", "max_length", "batch_size", "keep_special", "special_ids_excluded", "shards")


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
