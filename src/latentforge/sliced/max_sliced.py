"""Max-sliced Wasserstein: the most discriminative single direction (Deshpande et al., 2019).

The direction is found by projected (Riemannian) gradient ascent on the sphere. The ascent
helpers :func:`initial_direction` and :func:`ascend_on_sphere` are shared with the vMF family of
:func:`~latentforge.sliced.distributional_sliced_wasserstein`, which optimises a location the
same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import InputError
from ._checks import (
    Pair,
    as_tensor,
    check_count,
    check_directions,
    check_p,
    check_pair,
    detached,
    output_array,
    output_distance,
)
from .core import directional_costs, sample_mean
from .directions import torch_generator, uniform_directions


def initial_direction(pair: Pair, p: float, init: Any, n_candidates: int, gen: torch.Generator | None) -> torch.Tensor:
    """The given unit direction ``init``, else the best (highest W_p^p) of the mean-difference
    direction and ``n_candidates`` random ones: a start that is rarely far from the optimum."""
    d = pair.X.shape[1]
    if init is not None:
        theta = check_directions(as_tensor(init, "init").reshape(1, -1), d, pair.X)[0]
        if theta.norm() == 0:
            raise InputError("init must be a non-zero direction.")
        return theta / theta.norm()
    candidates = uniform_directions(d, n_candidates, gen).to(pair.X)
    diff = sample_mean(pair.X, pair.a) - sample_mean(pair.Y, pair.b)
    if diff.norm() > 0:
        candidates = torch.cat([(diff / diff.norm())[None], candidates])
    return candidates[directional_costs(pair, candidates, p).argmax()]


def ascend_on_sphere(
    objective: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, n_iter: int, lr: float, keep_best: bool
) -> torch.Tensor:
    """Projected (Riemannian) gradient ascent of ``objective`` over unit vectors.

    Each step moves along the great circle in the direction of the tangential gradient by an
    angle lr * (1 + cos(pi t / n_iter)) / 2, so ``lr`` is in radians and independent of the data's
    scale. With ``keep_best`` the best iterate is returned (deterministic objectives).
    """
    best, best_value = theta, -math.inf
    for t in range(n_iter + 1):
        if t == n_iter and not keep_best:
            break
        point = theta.detach().requires_grad_(True)
        value = objective(point)
        if keep_best and value.item() > best_value:
            best, best_value = theta, value.item()
        if t == n_iter:
            break
        (grad,) = torch.autograd.grad(value, point)
        tangent = grad - (grad @ theta) * theta
        norm = tangent.norm()
        if not torch.isfinite(norm) or norm <= 1e-12 * (grad.norm() + 1e-300):
            break  # stationary point (or a direction where W_p^p is flat)
        angle = lr * 0.5 * (1.0 + math.cos(math.pi * t / n_iter))
        theta = math.cos(angle) * theta + math.sin(angle) * tangent / norm
        theta = (theta / theta.norm()).detach()
    return best if keep_best else theta


def max_sliced_wasserstein(
    X: Any, Y: Any, a: Any = None, b: Any = None, *, p: float = 2, n_iter: int = 100, lr: float = 0.2,
    init: Any = None, n_candidates: int = 32, seed: int | None = None, root: bool = True,
    return_direction: bool = False,
) -> Any:
    """Max-sliced Wasserstein: max over unit θ of W_p(θ#μ, θ#ν), by projected gradient ascent.

    Max-SW [1]_ replaces the mean over directions of SW by the most discriminative one. The
    ascent starts from ``init`` or from the best of the mean-difference direction and
    ``n_candidates`` random directions, takes ``n_iter`` steps on the sphere (step angle ``lr``
    radians, cosine-decayed) and keeps the best direction visited, so the result is at least the
    value at the start. The value is then recomputed on the original inputs with that direction
    fixed: gradients flow to X and Y.

    Parameters
    ----------
    X, Y, a, b, p, seed
        As in :func:`sliced_wasserstein` (``seed`` fixes the random candidate directions).
    n_iter : int, default 100
        Ascent steps (0: keep the best starting direction).
    lr : float, default 0.2
        Initial step angle in radians, decayed to 0 along a cosine schedule.
    init : array_like or torch.Tensor, shape (d,), optional
        Starting direction (normalised here); ``None``: the best of the candidates.
    n_candidates : int, default 32
        Random candidate starting directions, besides the mean difference.
    root : bool, default True
        Return W_p in the best direction; ``False`` returns W_p^p.
    return_direction : bool, default False
        Also return the best direction.

    Returns
    -------
    distance : numpy.float64 or torch.Tensor
        Max-SW_p (or its p-th power): a NumPy float for NumPy inputs, a differentiable 0-d tensor
        for tensors.
    direction : numpy.ndarray or torch.Tensor, shape (d,)
        The unit direction attaining it; only with ``return_direction=True``.

    Raises
    ------
    latentforge.errors.InputError
        If ``init`` is zero or of the wrong length, ``n_iter`` is negative, ``n_candidates < 1``,
        and as :func:`sliced_wasserstein`.

    References
    ----------
    .. [1] I. Deshpande, Y.-T. Hu, R. Sun, A. Pyrros, N. Siddiqui, S. Koyejo, Z. Zhao, D. Forsyth
       and A. G. Schwing, "Max-Sliced Wasserstein Distance and its use for GANs", IEEE/CVF
       Conference on Computer Vision and Pattern Recognition (CVPR), 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import max_sliced_wasserstein, sliced_wasserstein
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> Y = X + [3.0, 0.0, 0.0]

    For a translation by t the best direction is t/|t|, where W_2 = |t|:

    >>> d, direction = max_sliced_wasserstein(X, Y, n_iter=10, seed=0, return_direction=True)
    >>> round(float(d), 6)
    3.0
    >>> np.round(np.abs(direction), 6)
    array([1., 0., 0.])
    >>> bool(d >= sliced_wasserstein(X, Y, seed=0))
    True
    """
    p = check_p(p)
    pair = check_pair(X, Y, a, b)
    n_iter = check_count(n_iter, "n_iter", minimum=0)
    gen = torch_generator(seed)
    fixed = detached(pair)
    with torch.no_grad():
        start = initial_direction(fixed, p, init, check_count(n_candidates, "n_candidates"), gen)
    theta = ascend_on_sphere(lambda th: directional_costs(fixed, th[None], p)[0], start, n_iter, float(lr), True)
    value = output_distance(directional_costs(pair, theta[None], p)[0], p, root, pair.numpy_mode)
    if return_direction:
        return value, output_array(theta, pair.numpy_mode)
    return value
