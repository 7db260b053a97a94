"""Training configuration and where settings come from.

- :class:`TrainConfig` holds every training option and its default, once; the estimator, the
  CLI and the comparison read their defaults from it (``DEFAULTS``).
- :func:`read_config_file` is the one YAML/JSON reader (``fit --config`` and ``compare``).
- :func:`resolve_device` turns ``"auto"``/``"cpu"``/``"cuda[:i]"`` into a ``torch.device``, once.
"""

from __future__ import annotations

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

#: LR schedules: "cosine" to zero over the run, "plateau" (halve when validation stalls), "constant",
#: "linear_decay" (constant, then linear to zero over the last fifth of the steps, the SAE recipe)
SCHEDULES = ("cosine", "plateau", "constant", "linear_decay")
#: SGHMC step-size schedules (``latentforge.train.sghmc``), listed here so models can validate them.
SGHMC_SCHEDULES = ("constant", "polynomial")
PRECISIONS = ("fp32", "bf16", "fp16")


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
    #: with a checkpoint directory: save the run every N steps (None: at the end of every epoch)
    checkpoint_every: int | None = None
    #: keep the checkpoint directory after a finished run
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
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
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid YAML/JSON ({exc}).") from None
    if not isinstance(values, dict):
        raise InputError(f"{path} must hold a mapping of settings.")
    return dict(values)
