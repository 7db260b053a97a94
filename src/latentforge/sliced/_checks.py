"""Input checks and conversions shared by every sliced estimator.

Each check raises :class:`latentforge.errors.InputError` (a ``ValueError``) with one sentence that
names the culprit. NumPy (or list) inputs select "NumPy mode": the estimators then return a
NumPy float instead of a tensor.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import InputError


class Pair(NamedTuple):
    """Two validated samples with normalised weights (None = uniform) on a common dtype/device."""

    X: torch.Tensor
    Y: torch.Tensor
    a: torch.Tensor | None
    b: torch.Tensor | None
    numpy_mode: bool


def numpy_mode(*values: Any) -> bool:
    """True when no argument is a tensor: results are then returned as NumPy floats."""
    return not any(isinstance(v, torch.Tensor) for v in values)


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """A floating tensor view of x (zero-copy for NumPy arrays); integers become float64."""
    if isinstance(x, torch.Tensor):
        t = x
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        return t
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InputError(f"{name} must be a numeric array, got {type(x).__name__}.") from exc
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
    if arr.dtype.kind != "f" or arr.dtype == np.float16:
        arr = arr.astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(arr))


def all_finite(t: torch.Tensor) -> bool:
    """torch.isfinite(t).all(), through NumPy on CPU: torch's multi-threaded reduction is
    orders of magnitude slower for this on a small, busy CPU."""
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(t.detach().numpy()).all())
    return bool(torch.isfinite(t).all())


def check_count(n: Any, name: str = "n_projections", minimum: int = 1) -> int:
    """An integer count of at least ``minimum`` (directions, iterations, permutations...)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise InputError(f"{name} must be {what}, got {n!r}.")
    return int(n)


def check_p(p: Any) -> float:
    """The transport exponent p as a float: finite and at least 1."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not math.isfinite(p) or p < 1:
        raise InputError(f"p must be a finite number of at least 1, got {p!r}.")
    return float(p)


def check_kappa(kappa: Any) -> float:
    """The von Mises-Fisher concentration κ as a float: finite and non-negative."""
    try:
        value = float(kappa)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"kappa must be a finite non-negative number, got {kappa!r}.")
    return value


def check_weights(w: Any, n: int, name: str, like: torch.Tensor) -> torch.Tensor | None:
    """Weights as a probability vector of length n, or None for uniform weights."""
    if w is None:
        return None
    t = as_tensor(w, name).to(dtype=like.dtype, device=like.device)
    if t.ndim != 1 or t.shape[0] != n:
        raise InputError(f"weights {name} must be a vector of length {n}, got shape {tuple(t.shape)}.")
    if not all_finite(t):
        raise InputError(f"weights {name} must not contain NaN or infinite values.")
    if (t < 0).any():
        raise InputError(f"weights {name} must be non-negative.")
    total = t.sum()
    if total <= 0:
        raise InputError(f"weights {name} sum to zero.")
    return t / total


def check_pair(X: Any, Y: Any, a: Any = None, b: Any = None) -> Pair:
    """Validate two samples (n, d) and (m, d) and their optional weights."""
    mode = numpy_mode(X, Y)
    Xt, Yt = as_tensor(X, "X"), as_tensor(Y, "Y")
    if Xt.ndim != 2 or Yt.ndim != 2:
        raise InputError(
            f"X and Y must be 2-D (samples, features), got shapes {tuple(Xt.shape)} and {tuple(Yt.shape)}; "
            "reshape 1-D data with .reshape(-1, 1)."
        )
    if Xt.shape[1] != Yt.shape[1]:
        raise InputError(f"X has {Xt.shape[1]} features but Y has {Yt.shape[1]}.")
    if Xt.shape[0] == 0 or Yt.shape[0] == 0:
        raise InputError(f"X and Y must each hold at least one sample, got {Xt.shape[0]} and {Yt.shape[0]}.")
    if Xt.shape[1] == 0:
        raise InputError("X and Y must have at least one feature.")
    if Xt.device != Yt.device:
        raise InputError(f"X is on {Xt.device} but Y is on {Yt.device}.")
    dtype = torch.promote_types(Xt.dtype, Yt.dtype)
    Xt, Yt = Xt.to(dtype), Yt.to(dtype)
    if not all_finite(Xt):
        raise InputError("X contains NaN or infinite values.")
    if not all_finite(Yt):
        raise InputError("Y contains NaN or infinite values.")
    return Pair(Xt, Yt, check_weights(a, Xt.shape[0], "a", Xt), check_weights(b, Yt.shape[0], "b", Xt), mode)


def detached(pair: Pair) -> Pair:
    """The pair with every tensor detached: inner optimisations of directions must not reach X, Y."""
    def det(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach()

    return Pair(pair.X.detach(), pair.Y.detach(), det(pair.a), det(pair.b), pair.numpy_mode)


def check_directions(theta: Any, d: int, like: torch.Tensor) -> torch.Tensor:
    """User-given directions: an (L, d) array, one direction per row, used as given."""
    t = as_tensor(theta, "projections").to(dtype=like.dtype, device=like.device)
    if t.ndim != 2 or t.shape[1] != d or t.shape[0] < 1:
        raise InputError(f"projections must be shaped (L, {d}) with one direction per row, got {tuple(t.shape)}.")
    if not all_finite(t):
        raise InputError("projections contain NaN or infinite values.")
    return t


def output(value: torch.Tensor, mode: bool) -> Any:
    """A NumPy scalar of the inputs' float dtype in NumPy mode (float32 stays float32, as in POT),
    else the (differentiable) tensor itself."""
    return value.detach().cpu().numpy()[()] if mode else value


def root_of_power(power: Any, p: float) -> Any:
    """power^(1/p), clamped at 0 first (estimates of SW_p^p may dip below it), with a gradient of 0
    (not NaN) where the power is 0: identical samples, which flows and SWAE training do reach."""
    if not isinstance(power, torch.Tensor):
        return np.maximum(power, 0) ** (1.0 / p)  # NumPy scalars keep their dtype
    positive = power > 0
    safe = torch.where(positive, power, torch.ones_like(power))  # keeps the unused branch's gradient finite
    return torch.where(positive, safe ** (1.0 / p), torch.zeros_like(power))


def output_distance(power: torch.Tensor, p: float, root: bool, mode: bool) -> Any:
    """SW_p (``root=True``, see :func:`root_of_power`) or the power itself, as :func:`output` returns it."""
    return output(root_of_power(power, p) if root else power, mode)


def output_array(t: torch.Tensor, mode: bool) -> Any:
    """A NumPy array in NumPy mode (directions returned beside a value), else the tensor itself."""
    return t.numpy() if mode else t
