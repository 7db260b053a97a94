"""Training configuration and where settings come from.

- :class:`TrainConfig` holds every training option and its default, once; the estimator, the
  CLI and the comparison read their defaults from it (``DEFAULTS``).
- :func:`read_config_file` is the one YAML/JSON reader (``fit --config`` and ``compare``).
- :func:`resolve_device` turns ``"auto"``/``"cpu"``/``"cuda[:i]"`` into a ``torch.device``, once.
- :func:`coerce_value` is the one rule for values written as text (a config file, ``--param``,
  ``Autoencoder(lr="1e-3")``): numbers written the way people write them become numbers, anything
  else is an :class:`~latentforge.errors.InputError` naming the key.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, unknown_name_error

if TYPE_CHECKING:  # torch is imported only when a device is resolved, so `latentforge --help` starts fast
    import torch

#: estimator defaults that are not training options
DEFAULT_MODEL = "swae"
DEFAULT_LATENT_DIM = 8
#: network defaults (``latentforge.models.Architecture``): an MLP 512-256 with LayerNorm, ReLU;
#: conv channels for images of at least 16x16
ARCHITECTURE_DEFAULTS: dict[str, Any] = {"kind": "auto", "hidden": (512, 256), "activation": "relu",
                                         "norm": "layer", "channels": (32, 64)}

#: the value of ``epochs``, ``batch_size``, ``lr``, ``hidden``... that leaves them to :func:`auto_plan`
AUTO = "auto"
#: optimizer steps the auto rule aims a table's training at (epochs = steps / batches per epoch)
AUTO_STEP_BUDGET = 1000
#: the AdamW learning rate the auto rule gives a table's shorter run
TABLE_LR = 2e-3
#: what the auto rule keeps for images (the digits-protocol defaults)
IMAGE_PLAN: dict[str, Any] = {"epochs": 100, "batch_size": 64, "lr": 1e-3, "hidden": (512, 256), "patience": 30,
                              "threads": None}


def _pow2(x: float) -> int:
    """The power of two nearest to x (in log scale), at least 1."""
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def auto_plan(n_rows: int, n_features: int, image: bool, batch_size: int | None = None) -> dict[str, Any]:
    """Epochs, batch size, learning rate, early-stopping patience, MLP widths and CPU threads for
    ``"auto"``, from the training rows and input features.

    Images keep the network and budget tuned on the digits protocol (:data:`IMAGE_PLAN`). Tables
    (the 512-256 network and 100 epochs overfit and overspend on a few hundred rows):

    - batch size: the power of two nearest n_rows / 32, within [32, 256];
    - epochs: a budget of :data:`AUTO_STEP_BUDGET` optimizer steps, ``ceil(budget / batches per
      epoch)``, within [5, 200], with the batch size given if one is;
    - learning rate: :data:`TABLE_LR` (2e-3; 1,000 steps at 2e-3 matched 2,000 at 1e-3 against PCA
      on the benchmark tables, in half the time: benchmarks/README.md);
    - patience: 30 epochs, or half the epochs when that is more (a validation split of a few dozen
      rows is noisy, and 30 epochs of a small table are only a few hundred steps);
    - widths: w = the power of two nearest 2 × n_features, within [64, 512]; one hidden layer
      (w) under 2,000 rows, two (2w, w, capped at 512) under 20,000, else 512-256;
    - threads: 1 (a step of these networks is microseconds of arithmetic per layer, so a second
      thread costs more in synchronisation than it computes, and on a busy machine it waits for a
      core: Wages, 10 epochs, was 1.2x slower with 2 threads on a quiet 2-core machine, 6.5x on a
      busy one). Images keep PyTorch's default (None).

    The rule is stated in docs/data.md; a value the user gives is never replaced.
    """
    if image:
        return dict(IMAGE_PLAN)
    batch = batch_size or min(256, max(32, _pow2(n_rows / 32)))
    epochs = min(200, max(5, math.ceil(AUTO_STEP_BUDGET / math.ceil(n_rows / batch))))
    width = min(512, max(64, _pow2(2 * n_features)))
    if n_rows < 2_000:
        hidden: tuple[int, ...] = (width,)
    elif n_rows < 20_000:
        hidden = (min(512, 2 * width), width)
    else:
        hidden = (512, 256)
    return {"epochs": epochs, "batch_size": batch, "lr": TABLE_LR, "hidden": hidden,
            "patience": max(30, math.ceil(epochs / 2)), "threads": 1}


#: LR schedules: "cosine" to zero over the run, "plateau" (halve when validation stalls), "constant",
#: "linear_decay" (constant, then linear to zero over the last fifth of the steps, the SAE recipe)
SCHEDULES = ("cosine", "plateau", "constant", "linear_decay")
#: SGHMC step-size schedules (``latentforge.train.sghmc``), listed here so models can validate them.
SGHMC_SCHEDULES = ("constant", "polynomial")
PRECISIONS = ("fp32", "bf16", "fp16")


_KIND_NAMES = {int: "an integer", float: "a float", bool: "true or false", str: "a string"}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce_value(value: Any, kind: type, name: str, *, optional: bool = False) -> Any:
    """``value`` as a ``kind`` (int, float, bool or str), or an InputError naming ``name``.

    Text is read the way people write numbers: ``"2"``, ``" 2 "``, ``"1e-3"``, ``"1_000"``; an
    integer may be written ``2.0`` or ``1e3`` (not ``2.5``); booleans as true/false, yes/no, on/off,
    1/0. Floats must be finite. With ``optional``, None (or the text ``none``/``null``) stays None.
    Booleans are never numbers (``True`` is not the integer 1).
    """
    text = value.strip() if isinstance(value, str) else None
    if optional and (value is None or (text is not None and text.lower() in ("none", "null", "~"))):
        return None
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if text is not None and text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
        elif kind is str:
            if isinstance(value, str):
                return value
            if isinstance(value, numbers.Real) and not isinstance(value, bool):  # YAML reads `name: 1` as a number
                return str(value)
            if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
                return ",".join(str(v) for v in value)  # `sizes: [2, 4]` for a comma-separated setting
        elif not isinstance(value, bool):
            number = value if isinstance(value, numbers.Real) else None  # numpy scalars too
            if text is not None and text:
                number = int(text) if re.fullmatch(r"[-+]?[0-9][0-9_]*", text) else float(text)
            if kind is float and number is not None and math.isfinite(number):
                return float(number)
            if kind is int and isinstance(number, numbers.Integral):
                return int(number)
            if kind is int and number is not None and math.isfinite(number) and float(number).is_integer():
                return int(number)
    except (ValueError, OverflowError):
        pass
    what = _KIND_NAMES.get(kind, kind.__name__) + (" or None" if optional else "")
    raise InputError(f"{name} must be {what}, got {value!r}.")


def coerce_sizes(value: Any, name: str) -> tuple[int, ...]:
    """Layer sizes from a list, one number or text such as ``"512,256"``; ``"none"``/``""``: no layers."""
    if isinstance(value, str):
        text = value.strip()
        value = [] if text.lower() in ("", "none", "0") else [v for v in text.strip("[]()").split(",") if v.strip()]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{name} must be a list of positive integers, got {value!r}.")
    return tuple(coerce_value(v, int, f"{name}[{i}]") for i, v in enumerate(value))


def _field_kinds(cls: type) -> dict[str, tuple[type, bool]]:
    """(type, optional) of each field of a dataclass annotated with int/float/str/bool [| None]."""
    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    out = {}
    for f in fields(cls):
        parts = [p.strip() for p in str(f.type).split("|")]
        base = [kinds[p] for p in parts if p in kinds]
        if len(base) == 1:
            out[f.name] = (base[0], "None" in parts)
    return out


@dataclass
class TrainConfig:
    """How to train. ``patience=None`` disables early stopping; ``val_fraction=0`` disables
    validation (then the final weights are kept)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"
    #: steps over which the LR rises linearly from lr / warmup_steps to lr (0: none)
    warmup_steps: int = 0
    grad_clip: float | None = 10.0
    patience: int | None = 30
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    #: CPU threads for training (None: PyTorch's default). The same seed and thread count give the
    #: same weights on CPU; another thread count may change the last bits of a reduction.
    threads: int | None = None
    #: "fp32", or autocast to "bf16" / "fp16" (with a gradient scaler)
    precision: str = "fp32"
    #: wrap the model's loss in torch.compile (opt-in; the first steps compile)
    compile: bool = False
    #: with a checkpoint directory: save the run every N steps; at an epoch's end it is saved too, when
    #: that is worth it (the first and last epochs, and once training outlasted the last save 20 times)
    checkpoint_every: int | None = None
    #: keep the checkpoint directory after a finished run
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        for name, (kind, optional) in _field_kinds(type(self)).items():  # "1e-3" from YAML, "5" from --param
            setattr(self, name, coerce_value(getattr(self, name), kind, f"training option {name!r}", optional=optional))
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise InputError(f"epochs must be a positive integer, got {self.epochs!r}.")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        if not (self.lr > 0):
            raise InputError(f"lr must be positive, got {self.lr!r}.")
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be non-negative, got {self.weight_decay!r}.")
        if self.schedule not in SCHEDULES:
            raise unknown_name_error("schedule", self.schedule, SCHEDULES)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise InputError(f"warmup_steps must be a non-negative integer, got {self.warmup_steps!r}.")
        if self.warmup_steps and self.schedule == "plateau":
            raise InputError("warmup_steps cannot be combined with schedule 'plateau'; use cosine, constant or linear_decay.")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise InputError(f"grad_clip must be positive or None, got {self.grad_clip!r}.")
        if self.patience is not None and self.patience < 1:
            raise InputError(f"patience must be at least 1 or None, got {self.patience!r}.")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"val_fraction must lie in [0, 1), got {self.val_fraction!r}.")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}.")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise InputError(f"threads must be a positive integer or None, got {self.threads!r}.")
        if self.precision not in PRECISIONS:
            raise unknown_name_error("precision", self.precision, PRECISIONS)
        if self.checkpoint_every is not None and (not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1):
            raise InputError(f"checkpoint_every must be a positive number of steps or None, got {self.checkpoint_every!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        for key in values:
            if key not in names:
                raise unknown_name_error("training option", key, names)
        return cls(**values)


#: The training defaults, for signatures and help texts that must not restate them.
DEFAULTS = TrainConfig()


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for ``"auto"`` (CUDA when PyTorch sees a GPU, else CPU), ``"cpu"`` or ``"cuda[:i]"``."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but PyTorch sees no CUDA GPU; use --device cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}.")
    return torch.device(device)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON file (YAML is a superset of JSON); problems are InputErrors."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}.")
    try:
        values = yaml.load(path.read_text(), Loader=_config_loader())  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not valid YAML/JSON (it is not UTF-8 text).") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML/JSON ({_yaml_problem(exc)}).") from None
    if not isinstance(values, dict):
        raise InputError(f"{path} must hold a mapping of settings.")
    return dict(values)


#: YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e-3`` and ``1E5`` as strings, people mean numbers
_YAML12_FLOAT = re.compile(r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$""")


def _config_loader() -> type:
    """PyYAML's SafeLoader (no object construction) that also reads ``1e-3`` as a number."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))
    return Loader


def _yaml_problem(exc: Exception) -> str:
    """A YAML error in one line: what is wrong and where (PyYAML's own text spans several lines)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())
