"""Hugging Face model plumbing shared by activation extraction (:mod:`.activations`) and
downstream fidelity (:mod:`.fidelity`), so both load the same model class, hook the same module
and select exactly the same tokens: :func:`load_model`, :func:`find_module`,
:func:`special_token_ids`, :func:`iter_window_batches`, :func:`pad_windows`, :func:`first_tensor`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError
from ..validation import positive_int

__all__ = [
    "LoadedModel", "Window", "check_max_length", "find_module", "first_tensor", "forward_options",
    "iter_window_batches", "load_model", "pad_token_id", "pad_windows", "special_token_ids", "token_rows",
]


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
