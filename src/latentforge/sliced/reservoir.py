"""A reservoir of slicing directions reused across training steps (ReSWD).

After "ReSWD: ReSTIR'd, not shaken. Combining Reservoir Sampling and Sliced Wasserstein Distance
for Variance Reduction": each step evaluates K kept directions plus M fresh uniform ones, then
resamples the K kept directions in proportion to their cost W_p^p (informative directions survive).
Unbiasedness comes from resampled importance sampling: every direction carries a contribution
weight W with E[W g(θ)] = ∫ g dσ for any g; fresh directions have W = 1 and a direction resampled
from a pool {θ_j, W_j} (probability ∝ p̂(θ_j) W_j, with p̂ = cost + a floor that keeps it positive)
gets W = mean_j(p̂(θ_j) W_j) / p̂(θ). The step estimate (1/N) Σ_i W_i W_p^p(θ_i) is therefore
unbiased for measures that do not depend on past directions (in training, the models do, as in
the paper; the estimate is then unbiased given the past only approximately).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from ._checks import check_count, check_p, check_pair, output
from .core import directional_costs
from .directions import RANDOMISED_METHODS, int_seed, projections, torch_generator


class DirectionReservoir:
    """Directions and importance weights for SW estimates across optimisation steps.

    Each step evaluates the kept directions plus ``n_new`` fresh uniform ones, then resamples
    the kept ones in proportion to their cost W_p^p, so informative directions survive [1]_; the
    contribution weights of resampled importance sampling keep each step's estimate unbiased for
    measures that do not depend on past directions (see the module docstring).

    Parameters
    ----------
    d : int
        Dimension of the data.
    n_projections : int, default 64
        Directions evaluated per step (N); ``n_new`` of them are fresh each step and the other
        N - n_new are kept from earlier steps.
    n_new : int, optional
        Fresh directions per step (default N // 4, at least 1; at most N).
    method : str, default "mc"
        How fresh directions are drawn; a randomised method (``mc``, ``orthogonal``, ``rqmc``...,
        see :data:`RANDOMISED_METHODS`) so that each is uniform on the sphere.
    floor : float, default 0.05
        p̂ = cost + floor · mean(cost): keeps every direction resamplable; must be positive.
    seed : int, numpy.random.RandomState, numpy.random.Generator or None, default None
        Fixes the whole sequence of directions (``None``: torch's global generator).

    Raises
    ------
    latentforge.errors.InputError
        On a non-randomised ``method``, ``n_new > n_projections`` or a non-positive ``floor``.

    Notes
    -----
    Use :meth:`directions` then :meth:`update` once per step, or :meth:`sliced_wasserstein_power`
    which does both.

    References
    ----------
    .. [1] "ReSWD: ReSTIR'd, not shaken. Combining Reservoir Sampling and Sliced Wasserstein
       Distance for Variance Reduction".

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import DirectionReservoir
    >>> reservoir = DirectionReservoir(3, n_projections=30, method="orthogonal", seed=0)
    >>> theta, weights = reservoir.directions()
    >>> tuple(theta.shape), round(float(weights.sum()), 6)
    ((30, 3), 1.0)

    The first step uses ten fresh orthonormal bases, which integrate the cost (θ·t)² of a
    translation by t exactly (|t|²/d):

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> round(float(reservoir.sliced_wasserstein_power(X, X + [1.0, 0.0, 0.0])), 6)
    0.333333
    """

    def __init__(self, d: int, n_projections: int = 64, n_new: int | None = None, *, method: str = "mc",
                 floor: float = 0.05, seed: int | None = None):
        self.d = check_count(d, "d")
        self.n_projections = check_count(n_projections)
        self.n_new = max(1, self.n_projections // 4) if n_new is None else check_count(n_new, "n_new")
        if self.n_new > self.n_projections:
            raise InputError(f"n_new ({self.n_new}) cannot exceed n_projections ({self.n_projections}).")
        if method not in RANDOMISED_METHODS:
            raise InputError(f"DirectionReservoir needs a randomised method ({', '.join(RANDOMISED_METHODS)}), "
                             f"got {method!r}.")
        if not floor > 0:
            raise InputError(f"floor must be positive, got {floor!r}.")
        self.method, self.floor = method, float(floor)
        self._gen = torch_generator(seed) or torch.Generator().manual_seed(int_seed(None))
        self.reset()

    def reset(self) -> None:
        """Forget the kept directions: the next step draws all N afresh."""
        self._kept: torch.Tensor | None = None          # (K, d) directions kept from the last step
        self._kept_weight: torch.Tensor | None = None   # (K,) their contribution weights
        self._pool: torch.Tensor | None = None          # this step's directions, once drawn
        self._pool_weight: torch.Tensor | None = None

    def _fresh(self, n: int) -> torch.Tensor:
        return projections(self.d, n, self.method, seed=int_seed(self._gen), dtype=torch.float64)

    def directions(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's (N, d) float64 directions and (N,) importance weights.

        The estimate of SW_p^p is ``(weights * costs).sum()`` with ``costs`` the per-direction
        W_p^p; the weights average to 1/N. Repeated calls before :meth:`update` return the same.
        """
        if self._pool is None:
            if self._kept is None:
                self._pool = self._fresh(self.n_projections)
                self._pool_weight = torch.ones(self.n_projections, dtype=torch.float64)
            else:
                self._pool = torch.cat([self._kept, self._fresh(self.n_new)])
                self._pool_weight = torch.cat([self._kept_weight, torch.ones(self.n_new, dtype=torch.float64)])
        return self._pool, self._pool_weight / self.n_projections

    def update(self, costs: Any) -> None:
        """Resample the kept directions from this step's pool given its per-direction costs (N,)."""
        if self._pool is None:
            raise InputError("call directions() before update().")
        c = torch.as_tensor(costs).detach().to(dtype=torch.float64, device="cpu").reshape(-1)
        if c.shape[0] != self.n_projections or not torch.isfinite(c).all() or (c < 0).any():
            raise InputError(f"costs must be {self.n_projections} finite non-negative values, one per direction.")
        mean = c.mean()
        target = c + self.floor * mean if mean > 0 else torch.ones_like(c)
        resampling = target * self._pool_weight / self.n_projections
        keep = self.n_projections - self.n_new
        if keep > 0:
            picked = torch.multinomial(resampling, keep, replacement=True, generator=self._gen)
            self._kept = self._pool[picked]
            self._kept_weight = resampling.sum() / target[picked]
        self._pool = self._pool_weight = None

    def sliced_wasserstein_power(self, X: Any, Y: Any, a: Any = None, b: Any = None, *, p: float = 2) -> Any:
        """One step: the importance-weighted estimate of SW_p^p (differentiable), then :meth:`update`."""
        p = check_p(p)
        pair = check_pair(X, Y, a, b)
        if pair.X.shape[1] != self.d:
            raise InputError(f"the reservoir holds directions in dimension {self.d}, got data with {pair.X.shape[1]}.")
        theta, weights = self.directions()
        costs = directional_costs(pair, theta.to(pair.X), p)
        self.update(costs)
        return output((weights.to(costs) * costs).sum(), pair.numpy_mode)
