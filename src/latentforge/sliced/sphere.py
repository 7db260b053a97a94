"""Spherical sliced Wasserstein and the Wasserstein distance on the circle.

SSW_p(μ, ν) = ( E_U W_p^p(P^U#μ, P^U#ν) )^{1/p} for measures on the sphere S^{d-1} [1]_: U is
uniform on the Stiefel manifold V_{d,2} (d x 2 matrices with orthonormal columns) and
P^U(x) = U^T x / |U^T x| projects the sphere onto the great circle of the plane spanned by U;
W_p is the Wasserstein distance on that circle for its geodesic distance. The same definition and
the same projection parameterisation as POT's ``ot.sliced_wasserstein_sphere``, so that given the
same projections both return the same number.

Points on a circle are coordinates in turns, t in [0, 1) (t = (π + atan2(-z_2, -z_1)) / 2π for
z in R^2, as POT's ``get_coordinate_circle``), with the geodesic distance min(|s - t|, 1 - |s - t|).
On the circle W_p^p(μ, ν) = inf_θ ∫_0^1 |F_μ^{-1}(q) - F_ν^{-1}(q + θ)|^p dq, with the
cumulative distribution functions extended to R by F(t + 1) = F(t) + 1 [2]_. For p >= 1 the
integral is convex in θ and, for discrete measures, piecewise linear: its pieces are the
intervals of θ on which the pairing of atoms is fixed. :func:`wasserstein_circle` minimises it
with a safeguarded cutting-plane search (Kelley's method on the tangent lines at both ends of a
bracket, with a bisection whenever a step does not halve the bracket). Each step yields a
certified lower bound besides the value, and the search stops when the two meet (relative gap
1e-13) or the bracket reaches machine precision; a piecewise-linear convex function is minimal at
a kink, which the cutting planes find in a few steps, and the result is finally snapped to the
nearest kink when that is no worse. POT's binary search instead stops at a tolerance of 1e-6 on θ.
The search runs in float64 NumPy on detached values (single-threaded, which a busy CPU favours);
the cost is then evaluated on the inputs at the rotation found, so tensors keep their gradients.

Against the uniform measure on the circle W_2^2 has a closed form [1]_: with atoms x_i sorted, weights
α_i, cumulative weights A_i, the best rotation is θ* = Σ α_i x_i - 1/2 and
W_2^2 = Σ_i ((x_i - θ* - A_{i-1})^3 - (x_i - θ* - A_i)^3) / 3.

References
----------
.. [1] C. Bonet, P. Berg, N. Courty, F. Septier, L. Drumetz and M.-T. Pham, "Spherical
   Sliced-Wasserstein", International Conference on Learning Representations (ICLR), 2023.
.. [2] J. Delon, J. Salomon and A. Sobolevski, "Fast transport optimization for Monge costs on the
   circle", SIAM Journal on Applied Mathematics 70(7), 2239-2258, 2010.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import InputError
from ._checks import (
    all_finite,
    as_tensor,
    check_count,
    check_p,
    check_pair,
    check_weights,
    numpy_mode,
    output,
    output_array,
    output_distance,
)
from .directions import torch_generator

#: Largest |‖x‖² - 1| accepted for a point "on the unit sphere" (POT's tolerance).
SPHERE_TOLERANCE = 1e-4
_MAX_STEPS = 200
_REL_GAP = 1e-13


# -- the circle ---------------------------------------------------------------------------------
def _sorted_cdf(u: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of u (L, n) reduced mod 1 and sorted, with the cumulative weights in that order (the
    last one set to exactly 1)."""
    n = u.shape[1]
    u_sorted, idx = torch.sort(torch.remainder(u, 1.0).contiguous(), dim=1)
    if w is None:
        cdf = torch.arange(1, n + 1, dtype=u.dtype, device=u.device).div(n).expand_as(u_sorted)
    else:
        cdf = torch.cumsum(w.to(u)[idx], dim=1)
    return u_sorted, torch.cat([cdf[:, :-1], torch.ones_like(cdf[:, -1:])], dim=1)


class _Pairing(NamedTuple):
    """The quantile pairing at rotations θ (L,): which levels, atoms and shifts make up C(θ)."""

    wrapped: np.ndarray   # (L, m) bool: ν levels B_j - s that wrap past q = 0 (then + 1)
    cyclic: np.ndarray    # (L, m) the ν levels in increasing order on (0, 1]
    order: np.ndarray     # (L, n + m) sort order of [ν levels (cyclic), μ levels A]
    mu_atom: np.ndarray   # (L, n + m) index into [x, x_0 + 1] of the μ atom on each interval
    nu_atom: np.ndarray   # (L, n + m) index into [y, y + 1] of the ν atom on each interval
    shift: np.ndarray     # (L,) floor(θ), added to the ν atoms


def _pairing(theta: np.ndarray, A: np.ndarray, B: np.ndarray) -> tuple[_Pairing, np.ndarray]:
    """The pairing behind C(θ) = ∫_0^1 |F_μ^{-1}(q) - F_ν^{-1}(q + θ)|^p dq, and its sorted levels.

    On q in (0, 1] the quantile functions jump at the levels A (fixed) and B - θ mod 1 (moving
    with slope -1 in θ); between consecutive levels both are constant. Ties sort the moving levels
    first: the order of θ slightly to the right, so the slope is the right derivative.
    """
    n, m = A.shape[1], B.shape[1]
    shift = np.floor(theta)
    moving = B - (theta - shift)[:, None]
    wrapped = moving <= 0
    first = wrapped.sum(1, keepdims=True)                  # the ν atom held at q = 0+
    moving = np.where(wrapped, moving + 1, moving)
    cyclic = (np.arange(m) + first) % m
    moving = np.maximum.accumulate(np.take_along_axis(moving, cyclic, 1), axis=1)  # sorted despite rounding
    levels = np.concatenate([moving, A], axis=1)
    order = np.argsort(levels, axis=1, kind="stable")
    is_nu = order < m
    nu_before = np.cumsum(is_nu, 1) - is_nu                # ν levels strictly before each level
    mu_before = np.arange(n + m) - nu_before
    pairing = _Pairing(wrapped, cyclic, order, np.minimum(mu_before, n),
                       np.minimum(first + nu_before, 2 * m - 1), shift)
    return pairing, np.take_along_axis(levels, order, 1)


def _cost_and_slope(
    theta: np.ndarray, x: np.ndarray, A: np.ndarray, y: np.ndarray, B: np.ndarray, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """C(θ) and its right derivative per row, for sorted atoms x (L, n), y (L, m) in [0, 1) with
    cumulative weights A, B (NumPy: the search runs single-threaded, unhurt by a busy CPU)."""
    pair, levels = _pairing(theta, A, B)
    xq = np.take_along_axis(np.concatenate([x, x[:, :1] + 1], 1), pair.mu_atom, 1)
    yq = np.take_along_axis(np.concatenate([y, y + 1], 1), pair.nu_atom, 1) + pair.shift[:, None]
    diff = np.abs(xq - yq)
    cost = diff if p == 1 else diff * diff if p == 2 else diff ** p
    widths = np.diff(levels, axis=1, prepend=0.0)
    level_slopes = -(pair.order < B.shape[1]).astype(x.dtype)   # moving levels: -1
    return (widths * cost).sum(1), (np.diff(level_slopes, axis=1, prepend=0.0) * cost).sum(1)


def _snap_to_kink(theta: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The kink of C nearest θ: the rotation B_j - A_i + k at which a moving level meets a fixed
    one (A_0 = 0 included), computed from the levels themselves so that it is exact where it can
    be (θ = 0 between identical samples)."""
    L, m = B.shape
    s = theta - np.floor(theta)
    target = B - s[:, None]
    target = np.where(target <= 0, target + 1, target)     # in (0, 1]
    fixed = np.concatenate([np.zeros((L, 1)), A], 1)       # (L, n + 1), sorted
    offset = 2.0 * np.arange(L)[:, None]                   # one sorted array for all rows
    pos = np.searchsorted((fixed + offset).ravel(), (target + offset).ravel()).reshape(L, m)
    pos -= (np.arange(L) * fixed.shape[1])[:, None]
    above = np.take_along_axis(fixed, np.minimum(pos, fixed.shape[1] - 1), 1)
    below = np.take_along_axis(fixed, np.maximum(pos - 1, 0), 1)
    near = np.where(np.abs(above - target) <= np.abs(target - below), above, below)
    j = np.abs(target - near).argmin(1)
    kink = np.take_along_axis(B, j[:, None], 1)[:, 0] - np.take_along_axis(near, j[:, None], 1)[:, 0]
    return kink + np.round(theta - kink)


def _best_rotation(x: np.ndarray, A: np.ndarray, y: np.ndarray, B: np.ndarray, p: float) -> np.ndarray:
    """The θ minimising C per row (float64 NumPy).

    C is convex with C'(-1+) <= 0 <= C'(1+), so a minimiser lies in [-1, 1]. Each step evaluates C
    and C' at the crossing of the tangent lines at the two ends of the bracket (or at its midpoint
    after a step that did not halve it); the tangents' crossing value is a lower bound of min C,
    the best value seen an upper bound, and a row stops when they meet (relative gap 1e-13) or its
    bracket is 4 ulps wide. A convex piecewise-linear function is minimal at a kink: the best θ is
    finally snapped to the nearest kink when that is no worse.
    """
    L = x.shape[0]
    lo, hi = np.full(L, -1.0), np.ones(L)
    c_lo, d_lo = _cost_and_slope(lo, x, A, y, B, p)
    c_hi, d_hi = _cost_and_slope(hi, x, A, y, B, p)
    best, upper = np.where(c_lo <= c_hi, lo, hi), np.minimum(c_lo, c_hi)
    best = np.where(d_lo >= 0, lo, np.where(d_hi <= 0, hi, best))  # a zero slope at an end: a minimiser
    active = (d_lo < 0) & (d_hi > 0)
    bisect = np.zeros(L, dtype=bool)
    eps = np.finfo(np.float64).eps
    # Every step evaluates all rows and masks the finished ones out of the updates.
    for _ in range(_MAX_STEPS):
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.clip((c_hi - c_lo + lo * d_lo - hi * d_hi) / np.where(active, d_lo - d_hi, -1.0), lo, hi)
        lower = c_lo + d_lo * (cross - lo)
        active &= (upper - lower > _REL_GAP * np.abs(upper)) & (hi - lo > 4 * eps)
        if not active.any():
            break
        t = np.where(bisect, 0.5 * (lo + hi), cross)
        ct, dt = _cost_and_slope(t, x, A, y, B, p)
        improved = active & (ct < upper)
        best, upper = np.where(improved, t, best), np.where(improved, ct, upper)
        to_hi, to_lo = active & (dt >= 0), active & (dt < 0)   # a minimiser lies at or left of t, or right
        width = hi - lo
        lo, c_lo, d_lo = np.where(to_lo, t, lo), np.where(to_lo, ct, c_lo), np.where(to_lo, dt, d_lo)
        hi, c_hi, d_hi = np.where(to_hi, t, hi), np.where(to_hi, ct, c_hi), np.where(to_hi, dt, d_hi)
        bisect = ~bisect & (hi - lo > 0.5 * width)
        best = np.where(active & (dt == 0), t, best)           # 0 in the subdifferential: a minimiser
        active &= dt != 0
    kink = _snap_to_kink(best, A, B)
    return np.where(_cost_and_slope(kink, x, A, y, B, p)[0] <= upper, kink, best)


def _cost_at(theta: np.ndarray, x: torch.Tensor, A: torch.Tensor, y: torch.Tensor, B: torch.Tensor,
             p: float) -> torch.Tensor:
    """C(θ) per row on the tensors themselves (differentiable), with the pairing found in NumPy."""
    pair, _ = _pairing(theta, A.detach().cpu().to(torch.float64).numpy(), B.detach().cpu().to(torch.float64).numpy())

    def idx(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(x.device)

    s = torch.from_numpy(theta - pair.shift).to(x)
    moving = B - s[:, None] + idx(pair.wrapped).to(x.dtype)
    levels = torch.gather(torch.cat([torch.gather(moving, 1, idx(pair.cyclic)), A], 1), 1, idx(pair.order))
    widths = torch.diff(levels, dim=1, prepend=torch.zeros_like(levels[:, :1])).clamp_min(0)
    xq = torch.gather(torch.cat([x, x[:, :1] + 1], 1), 1, idx(pair.mu_atom))
    yq = torch.gather(torch.cat([y, y + 1], 1), 1, idx(pair.nu_atom)) + idx(pair.shift).to(x.dtype)[:, None]
    diff = (xq - yq).abs()
    cost = diff if p == 1 else diff * diff if p == 2 else diff.pow(p)
    return (widths * cost).sum(1)


def wasserstein_circle_rows(
    u: torch.Tensor, v: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None, p: float
) -> torch.Tensor:
    """W_p^p on the circle between the rows of u (L, n) and v (L, m) (coordinates in turns), with
    optional weights a (n,), b (m,) used as given (they should sum to one).

    The best rotation θ is searched in float64 NumPy on detached copies; the cost is then
    evaluated at it on the inputs, so gradients reach u and v as the envelope theorem gives them
    (the weights get the partial gradient at that fixed θ, as in POT).
    """
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (u, v, a, b))):
        (x, A), (y, B) = _sorted_cdf_numpy(u, a), _sorted_cdf_numpy(v, b)
        cost = _cost_and_slope(_best_rotation(x, A, y, B, p), x, A, y, B, p)[0]
        return torch.from_numpy(cost).to(dtype=u.dtype, device=u.device)
    x, A = _sorted_cdf(u, a)
    y, B = _sorted_cdf(v, b)
    f64 = [t.detach().cpu().to(torch.float64).numpy() for t in (x, A, y, B)]
    return _cost_at(_best_rotation(*f64, p), x, A, y, B, p)


def _sorted_cdf_numpy(u: torch.Tensor, w: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_sorted_cdf` in float64 NumPy, for values that need no gradient (faster on CPU)."""
    values = np.remainder(u.detach().cpu().to(torch.float64).numpy(), 1.0)
    idx = np.argsort(values, axis=1)
    if w is None:
        cdf = np.broadcast_to(np.arange(1, values.shape[1] + 1) / values.shape[1], values.shape).copy()
    else:
        cdf = np.cumsum(w.detach().cpu().to(torch.float64).numpy()[idx], axis=1)
    cdf[:, -1] = 1.0
    return np.take_along_axis(values, idx, 1), cdf


def uniform_circle_rows(u: torch.Tensor, a: torch.Tensor | None) -> torch.Tensor:
    """W_2^2 on the circle between the rows of u (L, n) and the uniform measure (closed form)."""
    x, A = _sorted_cdf(u, a)
    widths = torch.diff(A, dim=1, prepend=torch.zeros_like(A[:, :1]))
    theta = (widths * x).sum(1, keepdim=True) - 0.5        # the best rotation
    c = x - theta
    return ((c - (A - widths)).pow(3) - (c - A).pow(3)).sum(1) / 3


def _as_circle_values(u: Any, name: str) -> torch.Tensor:
    t = as_tensor(u, name)
    if t.ndim not in (1, 2) or t.shape[0] == 0:
        raise InputError(f"{name} must be shaped (n,) or (n, L) with at least one point, got {tuple(t.shape)}.")
    if not all_finite(t):
        raise InputError(f"{name} contains NaN or infinite values.")
    return t


def wasserstein_circle(u: Any, v: Any, a: Any = None, b: Any = None, *, p: float = 1) -> Any:
    """W_p^p on the circle between the empirical measures of u and v: coordinates in turns.

    The circle is [0, 1) with its ends glued (values are taken mod 1) and the geodesic distance
    min(|s - t|, 1 - |s - t|); W_p^p(μ, ν) = inf_θ ∫_0^1 |F_μ^{-1}(q) - F_ν^{-1}(q + θ)|^p dq [1]_,
    the quantity POT's ``ot.wasserstein_circle`` computes (also the p-th power). The infimum over
    the rotation θ is found exactly, for any p >= 1, by a cutting-plane search on this convex,
    piecewise-linear function (see :mod:`latentforge.sliced.sphere`); POT's binary search stops at
    a tolerance. Columns are independent circles, solved together.

    Parameters
    ----------
    u : array_like or torch.Tensor, shape (n,) or (n, L)
        Coordinates of the first measure's atoms, in turns; one measure per column. To get them
        from points z on the unit circle of R^2: (π + atan2(-z_2, -z_1)) / 2π.
    v : array_like or torch.Tensor, shape (m,) or (m, L)
        The second measures' atoms, as ``u`` (the same number L of columns).
    a : array_like or torch.Tensor, shape (n,), optional
        Non-negative weights of the atoms of ``u`` (shared by the columns), normalised here;
        ``None``: uniform.
    b : array_like or torch.Tensor, shape (m,), optional
        Weights of the atoms of ``v``, as ``a``.
    p : float, default 1
        Transport exponent, at least 1.

    Returns
    -------
    cost : numpy scalar, numpy.ndarray, or torch.Tensor
        W_p^p: a scalar for 1-D inputs, a vector of L values for (n, L) inputs; NumPy (of the
        inputs' float dtype) for NumPy or list inputs, a differentiable tensor for tensors.

    Raises
    ------
    latentforge.errors.InputError
        On NaN or infinite values, wrong shapes or mismatched column counts, negative or all-zero
        weights, or ``p < 1``.

    References
    ----------
    .. [1] J. Delon, J. Salomon and A. Sobolevski, "Fast transport optimization for Monge costs on
       the circle", SIAM Journal on Applied Mathematics 70(7), 2239-2258, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import wasserstein_circle

    0.9 and 0.1 are 0.2 apart across 0, not 0.8:

    >>> round(float(wasserstein_circle([0.9], [0.1], p=2)), 12)
    0.04

    POT's example, with each point of one sample at most 0.1 from the other's:

    >>> round(float(wasserstein_circle([0.2, 0.5, 0.8], [0.4, 0.5, 0.7])), 12)
    0.1

    Columns are separate circles; a half turn maps {0, 1/2} onto itself:

    >>> u = np.array([[0.0, 0.1], [0.5, 0.2]])
    >>> v = np.array([[0.5, 0.3], [0.0, 0.4]])
    >>> np.round(wasserstein_circle(u, v, p=1), 12)
    array([0. , 0.2])
    """
    p = check_p(p)
    mode = numpy_mode(u, v)
    ut, vt = _as_circle_values(u, "u"), _as_circle_values(v, "v")
    if ut.ndim != vt.ndim or (ut.ndim == 2 and ut.shape[1] != vt.shape[1]):
        raise InputError(f"u and v must hold the same number of circles (columns), got shapes "
                         f"{tuple(ut.shape)} and {tuple(vt.shape)}.")
    if ut.device != vt.device:
        raise InputError(f"u is on {ut.device} but v is on {vt.device}.")
    dtype = torch.promote_types(ut.dtype, vt.dtype)
    ut, vt = ut.to(dtype), vt.to(dtype)
    at = check_weights(a, ut.shape[0], "a", ut)
    bt = check_weights(b, vt.shape[0], "b", ut)
    rows_u = ut.reshape(1, -1) if ut.ndim == 1 else ut.T
    rows_v = vt.reshape(1, -1) if vt.ndim == 1 else vt.T
    costs = wasserstein_circle_rows(rows_u, rows_v, at, bt, p)
    if ut.ndim == 1:
        return output(costs[0], mode)
    return output_array(costs.detach() if mode else costs, mode)


# -- the sphere ---------------------------------------------------------------------------------
def _check_on_sphere(Z: torch.Tensor, name: str) -> None:
    if Z.shape[1] < 2:
        raise InputError(f"spherical slicing needs points on S^(d-1) with d >= 2, got d = {Z.shape[1]}.")
    off = ((Z.detach() * Z.detach()).sum(1) - 1).abs()
    worst = int(off.argmax())
    if float(off[worst]) > SPHERE_TOLERANCE:
        norm = float(Z[worst].detach().norm())
        raise InputError(f"{name} must lie on the unit sphere, but row {worst} has norm {norm:.6g}; "
                         "divide each row by its norm first.")


def sphere_projections(
    d: int, n: int, seed: Any = None, dtype: torch.dtype = torch.float64, device: Any = None
) -> torch.Tensor:
    """n matrices uniform on the Stiefel manifold V_{d,2}, shaped (n, d, 2) as POT's
    ``get_projections_sphere``: Gram-Schmidt (QR with the signs of R's diagonal fixed) of Gaussian
    d x 2 matrices."""
    gen = torch_generator(seed)
    Z = torch.randn(n, d, 2, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(Z)
    q = q * torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0)[:, None, :]
    return q.to(dtype=dtype, device=device)


def _resolve_sphere_projections(Z: torch.Tensor, n_projections: int, projections: Any, seed: Any) -> torch.Tensor:
    d = Z.shape[1]
    if projections is None:
        return sphere_projections(d, check_count(n_projections), seed, dtype=Z.dtype, device=Z.device)
    U = as_tensor(projections, "projections").to(dtype=Z.dtype, device=Z.device)
    if U.ndim != 3 or U.shape[1:] != (d, 2) or U.shape[0] < 1:
        raise InputError(f"projections must be shaped (L, {d}, 2), one d x 2 matrix with orthonormal "
                         f"columns per projection (POT's layout), got {tuple(U.shape)}.")
    if not all_finite(U):
        raise InputError("projections contain NaN or infinite values.")
    return U


def circle_coordinates(Z: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Coordinates in turns, shaped (L, n), of P^U(z) = U^T z / |U^T z| for the rows z of Z (n, d)
    and each U of U (L, d, 2). atan2 needs no normalisation: the angle of U^T z is that of P^U(z)."""
    planar = torch.einsum("ldk,nd->lnk", U, Z)
    angle = torch.atan2(-planar[..., 1], -planar[..., 0])
    return torch.remainder((angle + math.pi) / (2 * math.pi), 1.0)


def sliced_wasserstein_sphere(
    X: Any, Y: Any, a: Any = None, b: Any = None, *, p: float = 2, n_projections: int = 100,
    projections: Any = None, seed: Any = None, root: bool = True,
) -> Any:
    """Spherical sliced Wasserstein SSW_p between the empirical measures of X (n, d) and Y (m, d)
    on the unit sphere S^{d-1}.

    SSW_p(μ, ν) = (E_U W_p^p(P^U#μ, P^U#ν))^(1/p) [1]_: each projection U, a d x 2 matrix with
    orthonormal columns drawn uniformly, maps the sphere onto a great circle,
    P^U(x) = U^T x / |U^T x|, and W_p is the Wasserstein distance on that circle (in turns, as
    :func:`wasserstein_circle`, which solves each circle exactly). The definition and the
    projection layout of POT's ``ot.sliced_wasserstein_sphere``: given the same projections both
    return the same number. Use it for latents that live on the sphere (normalised embeddings,
    hyperspherical VAEs), where the Euclidean :func:`sliced_wasserstein` ignores the geometry.

    Parameters
    ----------
    X : array_like or torch.Tensor, shape (n, d)
        Samples of the first measure, unit vectors (|‖x‖² - 1| <= 1e-4, as POT checks), d >= 2.
    Y : array_like or torch.Tensor, shape (m, d)
        Samples of the second measure, as ``X``.
    a : array_like or torch.Tensor, shape (n,), optional
        Non-negative sample weights of ``X``, normalised here; ``None``: uniform.
    b : array_like or torch.Tensor, shape (m,), optional
        Sample weights of ``Y``, as ``a``.
    p : float, default 2
        Transport exponent, at least 1.
    n_projections : int, default 100
        Number L of projections drawn uniformly on the Stiefel manifold (ignored when
        ``projections`` is given).
    projections : array_like or torch.Tensor, shape (L, d, 2), optional
        The projections themselves, **POT's layout**: ``projections[l]`` is a d x 2 matrix U with
        orthonormal columns spanning the l-th plane (as ``ot.sliced.get_projections_sphere``
        returns them). Used as given.
    seed : int, numpy.random.RandomState, numpy.random.Generator or None, default None
        Fixes the projections; ``None`` uses torch's global generator.
    root : bool, default True
        Return SSW_p; ``False`` returns SSW_p^p (a smoother training loss).

    Returns
    -------
    distance : numpy.float64 or torch.Tensor
        SSW_p (or its p-th power): a NumPy float of the inputs' dtype for NumPy (or list) inputs,
        a differentiable 0-d tensor for tensors.

    Raises
    ------
    latentforge.errors.InputError
        On points off the unit sphere, d < 2, NaN or infinite values, mismatched dimensions,
        empty samples, negative or all-zero weights, ``p < 1``, ``n_projections < 1`` or
        projections of the wrong shape.

    References
    ----------
    .. [1] C. Bonet, P. Berg, N. Courty, F. Septier, L. Drumetz and M.-T. Pham, "Spherical
       Sliced-Wasserstein", International Conference on Learning Representations (ICLR), 2023.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from latentforge.sliced import sliced_wasserstein_sphere
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3))
    >>> X /= np.linalg.norm(X, axis=1, keepdims=True)
    >>> float(sliced_wasserstein_sphere(X, X, seed=0))
    0.0

    On S^1 (d = 2) every projection is a rotation or a reflection, so SSW_p is W_p on the circle,
    in turns: a quarter turn apart costs 1/4.

    >>> round(float(sliced_wasserstein_sphere([[1.0, 0.0]], [[0.0, 1.0]], p=1, seed=0)), 12)
    0.25

    Tensors give a differentiable result:

    >>> Xt = torch.tensor(X, requires_grad=True)
    >>> Y = torch.nn.functional.normalize(torch.tensor(X) + 0.3, dim=1)
    >>> sliced_wasserstein_sphere(Xt, Y, seed=0).backward()
    >>> tuple(Xt.grad.shape)
    (100, 3)
    """
    p = check_p(p)
    pair = check_pair(X, Y, a, b)
    _check_on_sphere(pair.X, "X")
    _check_on_sphere(pair.Y, "Y")
    U = _resolve_sphere_projections(pair.X, n_projections, projections, seed)
    costs = wasserstein_circle_rows(circle_coordinates(pair.X, U), circle_coordinates(pair.Y, U), pair.a, pair.b, p)
    return output_distance(costs.mean(), p, root, pair.numpy_mode)


def sliced_wasserstein_sphere_unif(
    X: Any, a: Any = None, *, n_projections: int = 100, projections: Any = None, seed: Any = None,
    root: bool = True,
) -> Any:
    """SSW_2 between the empirical measure of X (n, d) on S^{d-1} and the uniform measure on it.

    Each projection of the uniform measure on the sphere is the uniform measure on the circle, and
    W_2 to it has a closed form [1]_ (the best rotation is the mean displacement, see
    :mod:`latentforge.sliced.sphere`), so no second sample is needed: the same quantity as POT's
    ``ot.sliced_wasserstein_sphere_unif``, a regulariser that spreads codes over the sphere.

    Parameters
    ----------
    X : array_like or torch.Tensor, shape (n, d)
        Samples, unit vectors (|‖x‖² - 1| <= 1e-4), d >= 2.
    a : array_like or torch.Tensor, shape (n,), optional
        Non-negative sample weights, normalised here; ``None``: uniform.
    n_projections, projections, seed
        As in :func:`sliced_wasserstein_sphere` (``projections`` shaped (L, d, 2), POT's layout).
    root : bool, default True
        Return SSW_2; ``False`` returns SSW_2^2.

    Returns
    -------
    distance : numpy.float64 or torch.Tensor
        SSW_2 (or its square) to the uniform measure: a NumPy float of the inputs' dtype for NumPy
        inputs, a differentiable 0-d tensor for tensors.

    Raises
    ------
    latentforge.errors.InputError
        As :func:`sliced_wasserstein_sphere`.

    References
    ----------
    .. [1] C. Bonet, P. Berg, N. Courty, F. Septier, L. Drumetz and M.-T. Pham, "Spherical
       Sliced-Wasserstein", International Conference on Learning Representations (ICLR), 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import sliced_wasserstein_sphere_unif
    >>> rng = np.random.default_rng(0)
    >>> spread = rng.normal(size=(2000, 3))
    >>> spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    >>> clustered = spread * [0.1, 0.1, 1.0] + [0.0, 0.0, 3.0]
    >>> clustered /= np.linalg.norm(clustered, axis=1, keepdims=True)
    >>> bool(sliced_wasserstein_sphere_unif(spread, seed=0) < 0.02 < sliced_wasserstein_sphere_unif(clustered, seed=0))
    True

    On S^1 a single point is at W_2^2 = 1/12 from the uniform measure (the variance of a uniform
    angle in turns), whatever the projection:

    >>> round(float(sliced_wasserstein_sphere_unif([[1.0, 0.0]], seed=0, root=False)), 12)
    0.083333333333
    """
    X_t = as_tensor(X, "X")
    if X_t.ndim != 2 or X_t.shape[0] == 0 or X_t.shape[1] == 0:
        raise InputError(f"X must be 2-D (samples, features) with at least one sample, got shape {tuple(X_t.shape)}.")
    if not all_finite(X_t):
        raise InputError("X contains NaN or infinite values.")
    mode = numpy_mode(X)
    _check_on_sphere(X_t, "X")
    w = check_weights(a, X_t.shape[0], "a", X_t)
    U = _resolve_sphere_projections(X_t, n_projections, projections, seed)
    costs = uniform_circle_rows(circle_coordinates(X_t, U), w)
    return output_distance(costs.mean(), 2.0, root, mode)
