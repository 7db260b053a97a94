"""Directions on the unit sphere S^{d-1} for slicing: Monte Carlo, orthogonal, quasi-Monte Carlo and
von Mises-Fisher (:func:`sample_vmf`).

Randomised methods give every direction the uniform distribution on the sphere, so any sliced
estimate built on them is unbiased; deterministic methods (QMC point sets) trade unbiasedness for a
smaller integration error. The QMC constructions in d = 3 and their randomised versions follow
Nguyen, Bariletto & Ho, "Quasi-Monte Carlo for 3D Sliced Wasserstein" (ICLR 2024).

The seeding and normalisation helpers (:func:`torch_generator`, :func:`int_seed`,
:func:`normalise_rows`, :func:`uniform_directions`) are shared by the estimators.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import qmc

from ..errors import InputError, unknown_name_error
from ._checks import check_count, check_kappa

# Fixed scramble for the deterministic ``qmc`` set: unscrambled Sobol starts at 0 (Gaussian -inf)
# and its second point (1/2, ..., 1/2) maps to the zero vector.
_QMC_SEED = 20240507
_SOBOL_MAX_DIM = 21201


def torch_generator(seed: Any) -> torch.Generator | None:
    """A CPU generator for ``seed``: an integer, a NumPy ``RandomState`` / ``Generator`` (as POT
    accepts; one integer is drawn from it, so it advances) or None (torch's global generator)."""
    if seed is None:
        return None
    if isinstance(seed, np.random.RandomState):
        seed = int(seed.randint(0, 2**31 - 1, dtype=np.int64))
    elif isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 2**63 - 1))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, a NumPy RandomState or Generator, or None, got {seed!r}.")
    return torch.Generator().manual_seed(int(seed) % 2**64)


def int_seed(gen: torch.Generator | None) -> int:
    """An integer seed for NumPy/SciPy drawn from torch's generator (global one when None)."""
    return int(torch.randint(0, 2**62, (1,), generator=gen).item())


def normalise_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row of x divided by its Euclidean norm (rows must be non-zero)."""
    return x / x.norm(dim=1, keepdim=True)


def random_rotation(d: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-distributed orthogonal d x d matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    # Without the sign fix QR's convention biases Q away from the Haar measure.
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)


def _sobol(d: int, n: int, scramble_seed: int | None) -> np.ndarray:
    """The first n Sobol points in [0, 1)^d (scrambled when a seed is given)."""
    if d > _SOBOL_MAX_DIM:
        raise InputError(f"Sobol directions support d <= {_SOBOL_MAX_DIM}, got d = {d}; use method 'mc'.")
    engine = qmc.Sobol(d, scramble=scramble_seed is not None, seed=scramble_seed)
    # random_base2 avoids SciPy's warning for sizes that are not powers of two; the first n
    # points of the sequence are the same either way.
    return engine.random_base2(max(0, math.ceil(math.log2(n))))[:n]


def _gaussian_map(u: np.ndarray) -> torch.Tensor:
    """Uniform points in the cube -> Gaussian (inverse CDF) -> the sphere by normalisation."""
    tiny = np.finfo(np.float64).tiny
    g = torch.from_numpy(ndtri(np.clip(u, tiny, 1.0 - np.finfo(np.float64).epsneg)))
    return normalise_rows(g)


def _equal_area_map(u: np.ndarray) -> torch.Tensor:
    """Lambert's cylindrical equal-area map [0, 1]^2 -> S^2: uniform in, uniform out."""
    alpha, tau = torch.from_numpy(u[:, 0]), torch.from_numpy(u[:, 1])
    rho = 2.0 * torch.sqrt((tau - tau * tau).clamp_min(0.0))
    return torch.stack([rho * torch.cos(2 * math.pi * alpha), rho * torch.sin(2 * math.pi * alpha), 1.0 - 2.0 * tau], 1)


def _spiral_points(n: int) -> torch.Tensor:
    """Generalised spiral points on S^2 as in the QSW paper: z_i = 1 - (2i - 1)/n, azimuth
    1.8 sqrt(n) arccos(z_i) (mod 2 pi)."""
    z = 1.0 - (2.0 * torch.arange(1, n + 1, dtype=torch.float64) - 1.0) / n
    polar = torch.arccos(z)
    azimuth = torch.remainder(1.8 * math.sqrt(n) * polar, 2 * math.pi)
    return torch.stack([torch.sin(polar) * torch.cos(azimuth), torch.sin(polar) * torch.sin(azimuth), z], 1)


def coulomb_energy(x: torch.Tensor, *, antipodal: bool = False, block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Coulomb (Riesz s = 1) energy sum_{i<j} 1/|x_i - x_j| of unit vectors x (n, d) and its gradient.

    ``antipodal=True`` adds the terms 1/|x_i + x_j|, i.e. the energy of the symmetric set x ∪ -x
    (up to a constant). Uses |x_i -+ x_j|^2 = 2 -+ 2 x_i.x_j, valid on the sphere (the gradient is
    only meaningful in its tangential part), in row blocks to bound memory at O(block * n).
    """
    n = x.shape[0]
    energy = x.new_zeros(())
    grad = torch.zeros_like(x)
    for start in range(0, n, block):
        cos = x[start:start + block] @ x.T                                    # (b, n)
        near = (2.0 - 2.0 * cos).clamp_min(1e-300)
        idx = torch.arange(cos.shape[0])
        near[idx, start + idx] = float("inf")                               # no self-interaction
        kernel = torch.rsqrt(near)
        energy = energy + 0.5 * kernel.sum()                                 # pairs seen from both ends
        coef = kernel.pow(3)                                                 # d/dc of (2 - 2c)^(-1/2)
        if antipodal:
            far_kernel = torch.rsqrt((2.0 + 2.0 * cos).clamp_min(1e-300))
            energy = energy + 0.5 * far_kernel.sum()
            coef = coef - far_kernel.pow(3)
        grad[start:start + block] = coef @ x
    return energy, grad


@functools.lru_cache(maxsize=32)
def _energy_points_cached(n: int, n_iter: int = 100) -> torch.Tensor:
    """Points on S^2 of low Riesz (Coulomb, s = 1) energy for the antipodally symmetric set x ∪ -x.

    Sliced integrands are even (theta and -theta give the same 1-D distance), so the quality of a
    set for SW is that of x ∪ -x; we minimise that energy by projected gradient descent from the
    spiral points, with a step that grows on success and halves on failure (monotone, so the result
    is deterministic and never worse than the start).
    """
    x = _spiral_points(n)
    if n < 2:
        return x
    step = 0.2 * math.sqrt(4 * math.pi / n)  # a fraction of the typical spacing between points
    energy, grad = coulomb_energy(x, antipodal=True)
    for _ in range(n_iter):
        tangent = grad - (grad * x).sum(1, keepdim=True) * x
        scale = tangent.norm(dim=1).max()
        if scale == 0 or step < 1e-9:
            break
        candidate = normalise_rows(x - step * tangent / scale)
        new_energy, new_grad = coulomb_energy(candidate, antipodal=True)
        if new_energy < energy:
            x, energy, grad, step = candidate, new_energy, new_grad, step * 1.2
        else:
            step *= 0.5
    return x


def _check_sphere3(d: int, method: str) -> None:
    if d != 3:
        raise InputError(f"projection method {method!r} is defined on the 2-sphere only (d = 3), got d = {d}.")


def uniform_directions(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    """n independent directions uniform on S^{d-1} (normalised Gaussians), float64, as (n, d)."""
    return normalise_rows(torch.randn(n, d, generator=gen, dtype=torch.float64))


def _orthogonal(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    blocks = [random_rotation(d, gen) for _ in range(-(-n // d))]
    return torch.cat(blocks, 0)[:n]


@functools.lru_cache(maxsize=64)
def _qmc_cached(d: int, n: int) -> torch.Tensor:
    return _gaussian_map(_sobol(d, n, _QMC_SEED))


def _qmc(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    return _qmc_cached(d, n).clone()


def _rqmc(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    # Owen-type (LMS + digital shift) scrambling makes each point uniform in the cube, hence
    # each direction uniform on the sphere: the estimate is unbiased.
    return _gaussian_map(_sobol(d, n, int_seed(gen)))


def _spiral(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    _check_sphere3(d, "spiral")
    return _spiral_points(n)


@functools.lru_cache(maxsize=64)
def _equal_area_cached(n: int) -> torch.Tensor:
    return _equal_area_map(_sobol(2, n, None))


def _equal_area(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    _check_sphere3(d, "equal_area")
    return _equal_area_cached(n).clone()


def _energy(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    _check_sphere3(d, "energy")
    return _energy_points_cached(n).clone()


def _rotated(base: Callable[[int, int, torch.Generator | None], torch.Tensor]) -> Callable:
    # A uniformly random rotation of any point set makes each point uniform on the sphere.
    def sample(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
        points = base(d, n, gen)
        return points @ random_rotation(d, gen).T

    return sample


def _rqmc_equal_area(d: int, n: int, gen: torch.Generator | None) -> torch.Tensor:
    _check_sphere3(d, "rqmc_equal_area")
    return _equal_area_map(_sobol(2, n, int_seed(gen)))


_METHODS: dict[str, Callable[[int, int, torch.Generator | None], torch.Tensor]] = {
    "mc": uniform_directions,
    "orthogonal": _orthogonal,
    "qmc": _qmc,
    "rqmc": _rqmc,
    "spiral": _spiral,
    "equal_area": _equal_area,
    "energy": _energy,
    "rqmc_spiral": _rotated(_spiral),
    "rqmc_equal_area": _rqmc_equal_area,
    "rqmc_energy": _rotated(_energy),
}
METHODS: tuple[str, ...] = tuple(_METHODS)
#: Methods whose directions are each uniform on the sphere (unbiased sliced estimates).
RANDOMISED_METHODS: tuple[str, ...] = ("mc", "orthogonal", "rqmc", "rqmc_spiral", "rqmc_equal_area", "rqmc_energy")
#: Methods defined only for d = 3 (the 2-sphere).
SPHERE3_METHODS: tuple[str, ...] = ("spiral", "equal_area", "energy", "rqmc_spiral", "rqmc_equal_area", "rqmc_energy")


def projections(
    d: int, n: int, method: str = "mc", seed: int | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` unit directions in R^d as an (n, d) tensor, one direction per row.

    Randomised methods (:data:`RANDOMISED_METHODS`) make each direction uniform on the sphere, so
    sliced estimates built on them are unbiased; deterministic point sets trade that for a smaller
    integration error. The d = 3 constructions follow the QSW paper [1]_. Sobol sets are balanced
    at powers of two: prefer n = 64, 128, 256... for ``qmc`` and ``rqmc``.

    Parameters
    ----------
    d : int
        Dimension of the space (at least 1).
    n : int
        Number of directions (at least 1).
    method : str, default "mc"
        One of :data:`METHODS` (any d unless noted):

        - ``mc``: independent uniform directions (normalised Gaussians).
        - ``orthogonal``: stacked Haar-random orthonormal bases (d directions per basis).
        - ``qmc``: a fixed scrambled Sobol set mapped to the sphere by the Gaussian inverse CDF and
          normalisation (deterministic; ``seed`` is ignored).
        - ``rqmc``: the same map applied to a freshly scrambled Sobol set (unbiased).
        - d = 3 only (:data:`SPHERE3_METHODS`): ``spiral`` (generalised spiral points),
          ``equal_area`` (Lambert's equal-area map of a Sobol set), ``energy`` (low Riesz energy,
          computed once per n and cached in-process; deterministic), and their unbiased
          randomisations ``rqmc_spiral`` and ``rqmc_energy`` (uniform random rotation) and
          ``rqmc_equal_area`` (scrambled Sobol).
    seed : int, numpy.random.RandomState, numpy.random.Generator or None, default None
        Fixes the directions. ``None`` draws from torch's global generator, so
        ``torch.manual_seed`` fixes it.
    dtype : torch.dtype, default torch.float32
        Floating type of the result.
    device : torch.device, str or None, default None
        Device of the result (``None``: the CPU).

    Returns
    -------
    theta : torch.Tensor, shape (n, d)
        Unit directions, one per row (the transpose of POT's (d, n) layout).

    Raises
    ------
    latentforge.errors.InputError
        If ``d`` or ``n`` is not a positive integer, ``method`` is unknown, a d = 3 method is asked
        for another dimension, or a Sobol method is asked for d > 21201.

    References
    ----------
    .. [1] K. Nguyen, N. Bariletto and N. Ho, "Quasi-Monte Carlo for 3D Sliced Wasserstein",
       International Conference on Learning Representations (ICLR), 2024.

    Examples
    --------
    >>> import torch
    >>> from latentforge.sliced import projections
    >>> theta = projections(3, 64, method="rqmc", seed=0)
    >>> tuple(theta.shape), theta.dtype
    ((64, 3), torch.float32)
    >>> bool(torch.allclose(theta.norm(dim=1), torch.ones(64)))
    True

    ``orthogonal`` directions come in orthonormal bases:

    >>> basis = projections(4, 4, method="orthogonal", seed=0, dtype=torch.float64)
    >>> bool(torch.allclose(basis @ basis.T, torch.eye(4, dtype=torch.float64)))
    True
    """
    n = check_count(n, "n_projections")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise InputError(f"the dimension must be a positive integer, got {d!r}.")
    if method not in _METHODS:
        raise unknown_name_error("projection method", str(method), METHODS)
    theta = _METHODS[method](int(d), n, torch_generator(seed))
    return theta.to(dtype=dtype, device=device)


# -- von Mises-Fisher directions ----------------------------------------------------------------
def sample_vmf(
    location: torch.Tensor, kappa: float, n: int, generator: np.random.Generator | int | None = None
) -> torch.Tensor:
    """n samples (n, d) from the von Mises-Fisher distribution on S^{d-1}, differentiable in ``location``.

    The vMF density on the sphere is proportional to exp(κ θ·location). The cosine
    w = θ·location is drawn by Wood's rejection sampler [1]_ (it depends on κ only), the
    tangential part uniformly; θ = w·location + sqrt(1 - w²)·v with v a uniform unit vector
    orthogonal to ``location``. The samples are thus reparameterised: gradients flow to
    ``location``, as the vMF family of :func:`distributional_sliced_wasserstein` needs.

    Parameters
    ----------
    location : torch.Tensor, shape (d,)
        Mean direction; must be a unit vector, d >= 2.
    kappa : float
        Concentration κ >= 0 (0: uniform on the sphere; large: concentrated at ``location``).
    n : int
        Number of samples (at least 1).
    generator : numpy.random.Generator, int or None, default None
        Random source, or a seed for :func:`numpy.random.default_rng` (``None``: fresh entropy).

    Returns
    -------
    theta : torch.Tensor, shape (n, d)
        Unit vectors, one sample per row, on the dtype and device of ``location``.

    Raises
    ------
    latentforge.errors.InputError
        If d < 2, ``kappa`` is negative or not finite, or ``n`` is not a positive integer.

    References
    ----------
    .. [1] A. T. A. Wood, "Simulation of the von Mises Fisher distribution", Communications in
       Statistics - Simulation and Computation 23(1), 157-164, 1994.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from latentforge.sliced import sample_vmf
    >>> mu = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    >>> theta = sample_vmf(mu, kappa=50.0, n=2000, generator=0)
    >>> tuple(theta.shape)
    (2000, 3)
    >>> bool(torch.allclose(theta.norm(dim=1), torch.ones(2000, dtype=torch.float64)))
    True

    On S^2 the mean cosine to the location is coth(κ) - 1/κ:

    >>> bool(abs(float((theta @ mu).mean()) - (1 / np.tanh(50.0) - 1 / 50.0)) < 0.005)
    True
    """
    d = location.shape[0]
    if d < 2:
        raise InputError("von Mises-Fisher sampling needs d >= 2.")
    kappa = check_kappa(kappa)
    n = check_count(n, "n")
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    w = _vmf_cosines(d, kappa, n, rng)
    g = torch.from_numpy(rng.standard_normal((n, d))).to(location)
    tangent = g - (g @ location)[:, None] * location
    tangent = tangent / tangent.norm(dim=1, keepdim=True)
    w = torch.from_numpy(w).to(location)
    return w[:, None] * location + torch.sqrt((1 - w * w).clamp_min(0))[:, None] * tangent


def _vmf_cosines(d: int, kappa: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Wood's rejection sampler for w = θ·μ under vMF(μ, κ) on S^{d-1}."""
    if kappa == 0:
        x = rng.standard_normal((n, d))
        return x[:, 0] / np.linalg.norm(x, axis=1)
    m = d - 1
    b = m / (2 * kappa + math.sqrt(4 * kappa**2 + m**2))  # stable form of (-2κ + sqrt(4κ² + m²)) / m
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + m * math.log(1 - x0**2)
    out = np.empty(n)
    filled = 0
    while filled < n:
        k = max(16, 2 * (n - filled))
        z = rng.beta(m / 2, m / 2, size=k)
        w = (1 - (1 + b) * z) / (1 - (1 - b) * z)
        u = rng.random(k)
        keep = w[kappa * w + m * np.log(1 - x0 * w) - c >= np.log(u)]
        take = min(len(keep), n - filled)
        out[filled:filled + take] = keep[:take]
        filled += take
    return out
