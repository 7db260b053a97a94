"""Invariance: how much embeddings move when the input is changed in a way that should not matter,
and a training-time term that makes them move less.

**Score** (:func:`invariance_score`, in the spirit of "Lost in Translation", Azulay & Weiss): for
rows x_i with embeddings z_i = f(x_i) and z̃_i = f(T(x_i)),

    ratio = mean_i ‖z̃_i − z_i‖²  /  mean_{i≠j} ‖z_i − z_j‖²

the squared displacement caused by the transformation T relative to the squared distance between
two different inputs. 0 = perfectly invariant; 1 = the transformation moves an embedding as far
as replacing the input by a random other one. Lower is more invariant. :func:`invariance_report`
adds ``nn_retention``: the share of rows whose transformed embedding has its own original as
nearest neighbour among all original embeddings.

**Transformations** (``TRANSFORMS``; each takes a ``strength``, seeded through a torch Generator):
``identity``; ``noise`` (Gaussian, std = strength, default 0.1; images clipped to [0, 1]);
``mask`` (each feature set to 0 with probability strength, default 0.2; for standardised table
columns 0 is the mean); image-only ``shift`` (up to ±strength pixels in x and y, default 1),
``rotate`` (up to ±strength degrees, default 15) and ``scale`` (zoom by a factor in
[1 − strength, 1 + strength], default 0.1), all by bilinear resampling with zero padding
(``torch.nn.functional.affine_grid``/``grid_sample``). They act on preprocessed features (pixels
in [0, 1], standardised/one-hot table columns).

**Training** (:class:`InvarianceLoss`, a regularizer for ``Autoencoder(regularizers=...)``,
TiCo-style): two independently transformed views of each batch are embedded, and the term is
``weight · (consistency + cov_weight · covariance)`` with ``consistency = mean‖z¹ − z²‖² /
(2 · mean‖z¹ − z̄¹‖²)`` (the score above on the batch, so shrinking the codes does not help) and
``covariance = mean_i ẑ_iᵀ C ẑ_i``, ẑ the centred, unit-normalised codes and C a running average
of ẑᵀẑ/N (TiCo's covariance contrast: it penalises codes concentrating in few directions, which
prevents collapse). Works for any model with a deterministic ``embed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, unknown_name_error
from ..validation import block_rows, sq_distances
from ._common import embed_features, features, network

TRANSFORMS: dict[str, tuple[float, bool, str]] = {
    # name: (default strength, images only, description)
    "identity": (0.0, False, "no change (a sanity check: score 0)"),
    "noise": (0.1, False, "additive Gaussian noise, std = strength"),
    "mask": (0.2, False, "each feature zeroed with probability = strength"),
    "shift": (1.0, True, "translation by up to ±strength pixels in x and y"),
    "rotate": (15.0, True, "rotation by up to ±strength degrees"),
    "scale": (0.1, True, "zoom by a factor in [1 - strength, 1 + strength]"),
}


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


@dataclass(frozen=True)
class Transformation:
    """A named built-in transformation of preprocessed features (see ``TRANSFORMS``)."""

    name: str
    strength: float

    def __call__(self, x: torch.Tensor, input_shape: tuple[int, ...], generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Transform flat features x (n, D) of inputs shaped ``input_shape`` ((C, H, W) for images)."""
        images = len(input_shape) == 3
        if TRANSFORMS[self.name][1] and not images:
            raise InputError(f"transformation {self.name!r} needs images; this model was fitted on a table "
                             f"(use 'noise' or 'mask').")
        n, s = len(x), self.strength
        if self.name == "identity" or n == 0:
            return x
        if self.name == "noise":
            out = x + s * torch.randn(x.shape, generator=generator).to(x)
            return out.clamp(0, 1) if images else out
        if self.name == "mask":
            keep = torch.rand(x.shape, generator=generator) >= s
            return x * keep.to(x)
        c, h, w = input_shape
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        if self.name == "shift":                        # affine_grid works in [-1, 1]: one pixel = 2 / size
            theta[:, 0, 2] = _uniform(n, -s, s, generator) * 2 / w
            theta[:, 1, 2] = _uniform(n, -s, s, generator) * 2 / h
        elif self.name == "rotate":
            angle = _uniform(n, -s, s, generator) * math.pi / 180
            theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
            theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
        else:  # scale: sampling the input at coordinates / f zooms by f
            f = _uniform(n, 1 - s, 1 + s, generator)
            theta[:, 0, 0] = theta[:, 1, 1] = 1 / f
        theta = theta.to(x)
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        out = F.grid_sample(x.reshape(n, c, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(n, -1)


def get_transform(name: str, strength: float | None = None) -> Transformation:
    """A built-in transformation by name (``TRANSFORMS``), with its default strength unless given."""
    if not isinstance(name, str) or name not in TRANSFORMS:
        raise unknown_name_error("transformation", str(name), TRANSFORMS)
    default, _, _ = TRANSFORMS[name]
    value = default if strength is None else strength
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"the strength of transformation {name!r} must be a non-negative number, got {strength!r}.")
    if name in ("mask", "scale") and value >= 1:
        raise InputError(f"the strength of transformation {name!r} must be below 1, got {value!r}.")
    return Transformation(name, float(value))


TransformSpec = str | Transformation | Callable[[torch.Tensor], torch.Tensor]


def _resolve(transform: TransformSpec, strength: float | None) -> Callable[..., torch.Tensor]:
    """A function (x, input_shape, generator) → transformed x, from a name, a Transformation or a
    user callable ``x -> x'`` on flat feature tensors."""
    if isinstance(transform, str):
        return get_transform(transform, strength)
    if isinstance(transform, Transformation):
        return transform
    if callable(transform):
        return lambda x, shape, generator: transform(x)
    raise InputError(f"transform must be a transformation name ({', '.join(TRANSFORMS)}) or a callable, "
                     f"got {type(transform).__name__}.")


def _input_shape(model: Any) -> tuple[int, ...]:
    return tuple(network(model).input_shape)


def invariance_report(model: Any, X: Any, transform: TransformSpec = "noise", strength: float | None = None,
                      seed: int = 0) -> dict[str, float]:
    """``{"ratio", "displacement", "spread", "nn_retention"}`` of a fitted estimator on X under
    ``transform`` (a name in ``TRANSFORMS``, a :class:`Transformation` or a callable on flat
    feature tensors); see the module docstring for the definitions. X needs at least 2 rows."""
    apply = _resolve(transform, strength)
    flat = features(model, X)
    if len(flat) < 2:
        raise InputError(f"the invariance score needs at least 2 rows, got {len(flat)}.")
    moved = apply(flat, _input_shape(model), torch.Generator().manual_seed(seed))
    if not isinstance(moved, torch.Tensor) or moved.shape != flat.shape:
        raise InputError(f"the transformation must return a tensor shaped like its input {tuple(flat.shape)}.")
    Z, Zt = embed_features(model, flat), embed_features(model, moved)
    n = len(Z)
    displacement = float(((Zt - Z) ** 2).sum(1).mean())
    # mean over ordered pairs i ≠ j of ‖z_i − z_j‖² = 2n/(n−1) · mean_i ‖z_i − z̄‖²
    spread = float(2 * n / (n - 1) * ((Z - Z.mean(0)) ** 2).sum(1).mean())
    if spread == 0:
        raise InputError("all embeddings of X are identical, so the invariance ratio is undefined.")
    hits = 0
    step = block_rows(n)
    for start in range(0, n, step):
        nearest = sq_distances(Zt[start:start + step], Z).argmin(1)
        hits += int((nearest == np.arange(start, start + len(nearest))).sum())
    return {"ratio": displacement / spread, "displacement": displacement, "spread": spread, "nn_retention": hits / n}


def invariance_score(model: Any, X: Any, transform: TransformSpec = "noise", strength: float | None = None,
                     seed: int = 0) -> float:
    """Displacement ratio ``mean‖f(T x_i) − f(x_i)‖² / mean_{i≠j}‖f(x_i) − f(x_j)‖²`` (0 = invariant;
    lower is more invariant). See :func:`invariance_report` for the arguments."""
    return invariance_report(model, X, transform, strength, seed)["ratio"]


class InvarianceLoss:
    """TiCo-style invariance regularizer for ``Autoencoder(regularizers=(InvarianceLoss("noise", 1.0),))``.

    Returns two named terms per batch: ``invariance`` = ``weight · consistency`` and
    ``invariance_cov`` = ``weight · cov_weight · covariance`` (definitions in the module
    docstring). ``momentum`` is the running average's β for C; ``seed`` fixes the views. Both
    terms are ratios of order 0.01–1 while the reconstruction term is a log-likelihood summed over
    features (about 20 nats per digits image), hence the default weight of 10.
    """

    def __init__(self, transform: str | Transformation = "noise", weight: float = 10.0, strength: float | None = None,
                 cov_weight: float = 0.5, momentum: float = 0.9, seed: int = 0):
        self.transform = transform if isinstance(transform, Transformation) else get_transform(transform, strength)
        for name, value in (("weight", weight), ("cov_weight", cov_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputError(f"the invariance {name} must be a non-negative number, got {value!r}.")
        if not 0 <= momentum < 1:
            raise InputError(f"momentum must lie in [0, 1), got {momentum!r}.")
        self.weight, self.cov_weight, self.momentum = float(weight), float(cov_weight), float(momentum)
        self.generator = torch.Generator().manual_seed(seed)
        self.covariance: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (f"InvarianceLoss({self.transform.name!r}, weight={self.weight}, strength={self.transform.strength}, "
                f"cov_weight={self.cov_weight})")

    def __call__(self, model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(x) < 2:              # no spread to compare with in a one-row batch: contribute nothing
            zero = x.new_zeros(())
            return {"invariance": zero, "invariance_cov": zero}
        shape = tuple(model.input_shape)
        z1 = model.embed(self.transform(x, shape, self.generator))
        z2 = model.embed(self.transform(x, shape, self.generator))
        centred = z1 - z1.mean(0)
        spread = centred.pow(2).sum(1).mean().clamp_min(1e-8)
        consistency = (z1 - z2).pow(2).sum(1).mean() / (2 * spread)
        unit = F.normalize(centred, dim=1)
        batch_cov = unit.T @ unit / len(unit)
        if self.covariance is None or self.covariance.shape != batch_cov.shape:
            C = batch_cov
        else:
            C = self.momentum * self.covariance.to(batch_cov) + (1 - self.momentum) * batch_cov
        self.covariance = C.detach()
        covariance = ((unit @ C) * unit).sum(1).mean()
        return {"invariance": self.weight * consistency, "invariance_cov": self.weight * self.cov_weight * covariance}


def parse_invariance_spec(spec: str, seed: int = 0) -> InvarianceLoss:
    """An :class:`InvarianceLoss` from the CLI form ``"TRANSFORM:WEIGHT"`` or
    ``"TRANSFORM:WEIGHT:STRENGTH"``, e.g. ``"noise:1.0"`` or ``"shift:0.5:2"``."""
    parts = [p.strip() for p in str(spec).split(":")]
    if len(parts) not in (2, 3) or not parts[0]:
        raise InputError(f"an invariance option looks like TRANSFORM:WEIGHT or TRANSFORM:WEIGHT:STRENGTH "
                         f"(e.g. noise:1.0), got {spec!r}.")
    try:
        numbers = [float(p) for p in parts[1:]]
    except ValueError:
        raise InputError(f"the weight and strength in {spec!r} must be numbers.") from None
    strength = numbers[1] if len(numbers) == 2 else None
    return InvarianceLoss(get_transform(parts[0], strength), weight=numbers[0], seed=seed)
