"""Sliced MMD with the Riesz kernel K(x, y) = -|x - y| (the energy distance), by sorting.

Hertrich et al., "Generative Sliced MMD Flows with Riesz Kernels" (ICLR 2024): for r = 1 the MMD²
of the Riesz kernel equals, up to a dimension constant, the average over directions of the 1-D
MMD², and in 1-D that is 2 ∫ (F - G)² dt (Székely's energy distance), computable after one sort
of the M + N projected points: O((M + N) log(M + N)) per direction instead of O(MN).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import InputError
from ._checks import check_pair, output
from .core import resolve_directions


def riesz_slicing_constant(d: int) -> float:
    """c_d = E_θ |θ_1| for θ uniform on S^{d-1} = Γ(d/2) / (√π Γ((d+1)/2)): E_θ|θ·x| = c_d |x|."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


def energy_distance_1d_rows(
    u: torch.Tensor, v: torch.Tensor, a: torch.Tensor | None = None, b: torch.Tensor | None = None
) -> torch.Tensor:
    """1-D energy distance 2E|U-V| - E|U-U'| - E|V-V'| between the rows of u (L, n) and v (L, m).

    Computed as 2 Σ_k (F_k - G_k)² (z_{k+1} - z_k) over the sorted pooled points z; weights a, b
    (summing to one) default to uniform. Differentiable in u and v.
    """
    n, m = u.shape[1], v.shape[1]
    wa = torch.full((n,), 1.0 / n, dtype=u.dtype, device=u.device) if a is None else a.to(u)
    wb = torch.full((m,), 1.0 / m, dtype=u.dtype, device=u.device) if b is None else b.to(u)
    pooled, order = torch.sort(torch.cat([u, v], dim=1), dim=1)
    signed = torch.cat([wa, -wb])[order]                     # +mass of u, -mass of v, in sorted order
    cdf_gap = torch.cumsum(signed, dim=1)[:, :-1]             # F - G on each gap between points
    return 2.0 * (cdf_gap.square() * torch.diff(pooled, dim=1)).sum(dim=1)


def sliced_mmd_riesz(
    X: Any, Y: Any, a: Any = None, b: Any = None, *, r: float = 1, n_projections: int = 100,
    method: str = "mc", projections: Any = None, seed: int | None = None, squared: bool = True,
) -> Any:
    """MMD² for the Riesz kernel -|x - y| (the energy distance), estimated by slicing and sorting.

    For r = 1 the MMD² of the Riesz kernel equals, up to the dimension constant
    c_d = E_θ|θ_1| = Γ(d/2) / (√π Γ((d+1)/2)), the mean over directions of the 1-D MMD² [1]_, and
    in 1-D that is Székely's energy distance 2 ∫ (F - G)², computable after one sort of the
    M + N projected points: O((M + N) log(M + N)) per direction instead of O(MN). The result,
    (1 / c_d) · mean over directions of the 1-D energy distance, is an unbiased estimate (for
    uniform random directions) of the full-dimensional energy distance
    2 E|X - Y| - E|X - X'| - E|Y - Y'| between the (weighted) empirical measures — the
    V-statistic, which includes the i = j terms.

    Parameters
    ----------
    X, Y, a, b, n_projections, method, projections, seed
        As in :func:`sliced_wasserstein`.
    r : float, default 1
        Riesz exponent; only r = 1 is computable by sorting.
    squared : bool, default True
        Return MMD²; ``False`` returns its square root (the MMD).

    Returns
    -------
    mmd : numpy.float64 or torch.Tensor
        The MMD² (or MMD) estimate: a NumPy float for NumPy inputs, a differentiable 0-d tensor
        for tensors.

    Raises
    ------
    latentforge.errors.InputError
        If ``r != 1``, and as :func:`sliced_wasserstein`.

    References
    ----------
    .. [1] J. Hertrich, C. Wald, F. Altekrüger and P. Hagemann, "Generative Sliced MMD Flows with
       Riesz Kernels", International Conference on Learning Representations (ICLR), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import sliced_mmd_riesz
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3))
    >>> Y = X + [1.0, 0.0, 0.0]
    >>> float(sliced_mmd_riesz(X, X, seed=0))
    0.0

    It matches the energy distance computed from all O(nm) pairwise distances:

    >>> def mean_dist(A, B):
    ...     return np.linalg.norm(A[:, None] - B[None], axis=-1).mean()
    >>> exact = 2 * mean_dist(X, Y) - mean_dist(X, X) - mean_dist(Y, Y)
    >>> estimate = sliced_mmd_riesz(X, Y, method="spiral", n_projections=200)
    >>> bool(abs(estimate - exact) < 1e-3 * exact)
    True
    """
    if r != 1:
        raise InputError(f"only the Riesz exponent r = 1 is computable by sorting, got r = {r!r}.")
    pair = check_pair(X, Y, a, b)
    theta = resolve_directions(pair, n_projections, method, projections, seed)
    per_direction = energy_distance_1d_rows(theta @ pair.X.T, theta @ pair.Y.T, pair.a, pair.b)
    value = per_direction.mean() / riesz_slicing_constant(pair.X.shape[1])
    return output(value if squared else value.clamp_min(0).sqrt(), pair.numpy_mode)
