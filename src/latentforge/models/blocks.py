"""Encoder/decoder networks shared by every model: an MLP for vectors and a small conv net for images.

Both take and return flat (N, D) tensors so the models and the trainer never care which one runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import ARCHITECTURE_DEFAULTS, coerce_sizes, coerce_value
from ..errors import InputError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}
NORMS = ("none", "batch", "layer")


@dataclass
class Architecture:
    """Network shape. ``kind='auto'`` picks ``conv`` for images of at least 16x16, else ``mlp``."""

    kind: str = ARCHITECTURE_DEFAULTS["kind"]
    hidden: tuple[int, ...] = ARCHITECTURE_DEFAULTS["hidden"]
    activation: str = ARCHITECTURE_DEFAULTS["activation"]
    norm: str = ARCHITECTURE_DEFAULTS["norm"]
    channels: tuple[int, ...] = ARCHITECTURE_DEFAULTS["channels"]
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hidden = coerce_sizes(self.hidden, "hidden")  # [512, 256], "512,256" or 512
        self.channels = coerce_sizes(self.channels, "channels")
        for name in ("kind", "activation", "norm"):
            setattr(self, name, coerce_value(getattr(self, name), str, name))
        if self.kind not in ("auto", "mlp", "conv"):
            raise InputError(f"architecture {self.kind!r} is not one of auto, mlp, conv.")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}.")
        if self.norm not in NORMS:
            raise InputError(f"norm {self.norm!r} is not one of {', '.join(NORMS)}.")
        if any(h < 1 for h in self.hidden + self.channels):
            raise InputError("hidden widths and channel counts must be positive.")

    def resolve(self, input_shape: tuple[int, ...]) -> str:
        if self.kind != "auto":
            if self.kind == "conv" and len(input_shape) != 3:
                raise InputError("the conv architecture needs images; use 'mlp' for tables.")
            return self.kind
        return "conv" if len(input_shape) == 3 and min(input_shape[1:]) >= 16 else "mlp"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["channels"] = list(self.hidden), list(self.channels)
        return d


def _norm(kind: str, width: int, conv: bool = False) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(width) if conv else nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.GroupNorm(1, width) if conv else nn.LayerNorm(width)
    return nn.Identity()


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), _norm(norm, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def _conv_sizes(h: int, w: int, n_stages: int) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(n_stages):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convolutions, then an MLP head to ``out_dim``."""

    def __init__(self, input_shape: tuple[int, int, int], out_dim: int, arch: Architecture):
        super().__init__()
        c, h, w = input_shape
        self.input_shape = input_shape
        layers: list[nn.Module] = []
        for width in arch.channels:
            layers += [nn.Conv2d(c, width, 3, stride=2, padding=1), _norm(arch.norm, width, conv=True),
                       ACTIVATIONS[arch.activation]()]
            c = width
        self.features = nn.Sequential(*layers)
        fh, fw = _conv_sizes(h, w, len(arch.channels))[-1]
        self.head = mlp(c * fh * fw, arch.hidden[:1], out_dim, arch.activation, arch.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, *self.input_shape)).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: resize-then-convolve stages (no checkerboard artefacts), flat logits out."""

    def __init__(self, latent_dim: int, output_shape: tuple[int, int, int], arch: Architecture):
        super().__init__()
        c_out, h, w = output_shape
        sizes = _conv_sizes(h, w, len(arch.channels))
        channels = list(arch.channels)
        self.start = (channels[-1], *sizes[-1])
        self.head = mlp(latent_dim, arch.hidden[:1], channels[-1] * sizes[-1][0] * sizes[-1][1],
                        arch.activation, arch.norm)
        layers: list[nn.Module] = [ACTIVATIONS[arch.activation]()]
        targets = list(reversed(sizes[:-1]))               # sizes to grow back to, last = (h, w)
        ins = list(reversed(channels))
        outs = ins[1:] + [ins[-1]]
        for i, (size, cin, cout) in enumerate(zip(targets, ins, outs)):
            layers += [nn.Upsample(size=size, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1)]
            layers += [_norm(arch.norm, cout, conv=True), ACTIVATIONS[arch.activation]()]
        layers.append(nn.Conv2d(outs[-1], c_out, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(z).view(-1, *self.start)).flatten(1)


def build_encoder(input_shape: tuple[int, ...], out_dim: int, arch: Architecture) -> nn.Module:
    if arch.resolve(input_shape) == "conv":
        return ConvEncoder(input_shape, out_dim, arch)  # type: ignore[arg-type]
    return mlp(math.prod(int(d) for d in input_shape), arch.hidden, out_dim, arch.activation, arch.norm)


def build_decoder(latent_dim: int, output_shape: tuple[int, ...], arch: Architecture) -> nn.Module:
    if arch.resolve(output_shape) == "conv":
        return ConvDecoder(latent_dim, output_shape, arch)  # type: ignore[arg-type]
    out_dim = math.prod(int(d) for d in output_shape)  # no tensor: builds on the meta device too
    return mlp(latent_dim, tuple(reversed(arch.hidden)), out_dim, arch.activation, arch.norm)
