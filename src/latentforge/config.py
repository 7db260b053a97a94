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

SCHEDULES = ("cosine", "plateau", "constant")
#: SGHMC step-size schedules (``latentforge.train.sghmc``), listed here so models can validate them.
SGHMC_SCHEDULES = ("constant", "polynomial")


@dataclass
class TrainConfig:
    """How to train. ``patience=None`` disables early stopping; ``val_fraction=0`` disables
    validation (then the final weights are kept)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"
    grad_clip: float | None = 10.0
    patience: int | None = 30
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"

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
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise InputError(f"grad_clip must be positive or None, got {self.grad_clip!r}.")
        if self.patience is not None and self.patience < 1:
            raise InputError(f"patience must be at least 1 or None, got {self.patience!r}.")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"val_fraction must lie in [0, 1), got {self.val_fraction!r}.")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}.")

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
