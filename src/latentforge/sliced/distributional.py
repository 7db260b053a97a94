"""Distributional sliced Wasserstein: SW under an optimised distribution over directions.

Nguyen et al., "Distributional Sliced-Wasserstein and Applications to Generative Modeling"
(ICLR 2021), as used for prior selection in "Model Selection for Bayesian Autoencoders". Two
families of slicing distributions: von Mises-Fisher (:func:`~latentforge.sliced.sample_vmf`, its
location found by the same ascent as max-sliced Wasserstein) and the push-forward of the uniform
distribution by a network (:class:`PushforwardNet`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import unknown_name_error
from ._checks import (
    Pair,
    check_count,
    check_kappa,
    check_p,
    check_pair,
    detached,
    output_array,
    output_distance,
)
from .core import directional_costs
from .directions import int_seed, normalise_rows, sample_vmf, torch_generator, uniform_directions
from .max_sliced import ascend_on_sphere, initial_direction

DSW_FAMILIES = ("vmf", "network")


class PushforwardNet(nn.Module):
    """The DSW push-forward f(θ) = normalise(Wθ + c) of directions, started at the identity.

    At the identity the push-forward of uniform directions is uniform, so DSW starts at plain SW.
    Pass one as ``network=`` to :func:`distributional_sliced_wasserstein` to warm-start DSW
    across calls; it is trained in place.

    Parameters
    ----------
    d : int
        Dimension of the directions.
    dtype : torch.dtype
        Floating type of the weights (that of the data).

    References
    ----------
    .. [1] K. Nguyen, N. Ho, T. Pham and H. Bui, "Distributional Sliced-Wasserstein and
       Applications to Generative Modeling", International Conference on Learning
       Representations (ICLR), 2021.

    Examples
    --------
    >>> import torch
    >>> from latentforge.sliced import PushforwardNet, projections
    >>> net = PushforwardNet(3, torch.float64)
    >>> theta = projections(3, 8, seed=0, dtype=torch.float64)
    >>> bool(torch.allclose(net(theta), theta))
    True
    """

    def __init__(self, d: int, dtype: torch.dtype):
        super().__init__()
        self.linear = nn.Linear(d, d, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(d, dtype=dtype))
            self.linear.bias.zero_()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return normalise_rows(self.linear(theta))


def _mean_abs_cosine(theta: torch.Tensor) -> torch.Tensor:
    """The DSW diversity penalty: mean |θ_i·θ_j| over all pairs (unit rows)."""
    return (theta @ theta.T).abs().mean()


def distributional_sliced_wasserstein(
    X: Any, Y: Any, a: Any = None, b: Any = None, *, p: float = 2, n_projections: int = 100,
    family: str = "vmf", kappa: float = 10.0, regularization: float = 1.0, n_iter: int = 50,
    lr: float | None = None, init: Any = None, network: nn.Module | None = None, seed: int | None = None,
    root: bool = True, return_directions: bool = False,
) -> Any:
    """Distributional sliced Wasserstein: SW_p under an optimised distribution σ over directions.

    DSW [1]_ sits between SW (σ uniform) and max-SW (σ a point mass). The slicing distribution
    is optimised on detached copies of X and Y for ``n_iter`` steps to maximise E_{θ~σ} W_p^p;
    the returned value is (mean of W_p^p over ``n_projections`` fresh directions from the final
    σ)^(1/p) on the original inputs, so gradients flow to X and Y (the distribution itself is held
    fixed, as in the envelope theorem), e.g. to optimise prior hyper-parameters as in [2]_.

    ``family="vmf"``: σ = vMF(location, ``kappa``). The location is optimised by projected
    gradient ascent on the sphere (``lr`` radians per step, default 0.1) with reparameterised
    samples (:func:`sample_vmf`), from ``init`` or the best of a few candidate directions.
    ``kappa`` is fixed: it plays the role of the DSW diversity constraint (maximising over κ
    too would drive κ to infinity, i.e. to max-sliced Wasserstein); κ = 0 gives plain SW.

    ``family="network"``: σ = f#Uniform(S^{d-1}) with f(θ) = normalise(Wθ + c), the push-forward
    of Nguyen et al. (2021) (:class:`PushforwardNet`); f is trained with Adam (``lr`` default
    0.01) to maximise (E W_p^p)^(1/p) - ``regularization`` · E|f(θ)·f(θ')| (the penalty keeps
    directions diverse; it is in the data's units).

    Parameters
    ----------
    X, Y, a, b, p, seed
        As in :func:`sliced_wasserstein` (``seed`` fixes every random draw).
    n_projections : int, default 100
        Directions L drawn from σ, both during the optimisation and for the returned value.
    family : {"vmf", "network"}, default "vmf"
        The family of slicing distributions.
    kappa : float, default 10.0
        vMF concentration κ >= 0 (``family="vmf"``).
    regularization : float, default 1.0
        Weight λ of the diversity penalty (``family="network"``).
    n_iter : int, default 50
        Optimisation steps (0: σ stays at its start).
    lr : float, optional
        Step size: radians per step for ``"vmf"`` (default 0.1), Adam's rate for ``"network"``
        (default 0.01).
    init : array_like or torch.Tensor, shape (d,), optional
        Starting vMF location (``family="vmf"``).
    network : torch.nn.Module, optional
        For ``family="network"``: any module mapping (L, d) directions to (L, d) vectors
        (normalised here), to warm-start across calls; it is trained in place. ``None``: a fresh
        :class:`PushforwardNet`.
    root : bool, default True
        Return DSW_p; ``False`` returns its p-th power.
    return_directions : bool, default False
        Also return the final directions.

    Returns
    -------
    distance : numpy.float64 or torch.Tensor
        DSW_p (or its p-th power): a NumPy float for NumPy inputs, a differentiable 0-d tensor for
        tensors.
    directions : numpy.ndarray or torch.Tensor, shape (L, d)
        The directions drawn from the final σ; only with ``return_directions=True``.

    Raises
    ------
    latentforge.errors.InputError
        On an unknown ``family``, a negative or infinite ``kappa``, ``n_iter < 0``, and as
        :func:`sliced_wasserstein`.

    References
    ----------
    .. [1] K. Nguyen, N. Ho, T. Pham and H. Bui, "Distributional Sliced-Wasserstein and
       Applications to Generative Modeling", International Conference on Learning
       Representations (ICLR), 2021.
    .. [2] B.-H. Tran, S. Rossi, D. Milios, P. Michiardi, E. V. Bonilla and M. Filippone, "Model
       Selection for Bayesian Autoencoders", Advances in Neural Information Processing Systems
       (NeurIPS), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import (distributional_sliced_wasserstein, max_sliced_wasserstein,
    ...                                 sliced_wasserstein)
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3))
    >>> Y = X + [3.0, 0.0, 0.0]

    DSW lies between SW (uniform directions) and max-SW (the best one, here W_2 = |t| = 3):

    >>> sw = sliced_wasserstein(X, Y, seed=0)
    >>> msw = max_sliced_wasserstein(X, Y, n_iter=5, seed=0)
    >>> dsw = distributional_sliced_wasserstein(X, Y, n_projections=20, kappa=10.0, n_iter=3, seed=0)
    >>> bool(sw < dsw <= msw)
    True
    >>> round(float(msw), 6)
    3.0
    """
    if family not in DSW_FAMILIES:
        raise unknown_name_error("DSW family", str(family), DSW_FAMILIES)
    p = check_p(p)
    pair = check_pair(X, Y, a, b)
    L = check_count(n_projections)
    n_iter = check_count(n_iter, "n_iter", minimum=0)
    gen = torch_generator(seed)
    fixed = detached(pair)
    if family == "vmf":
        theta = _vmf_directions(fixed, p, L, check_kappa(kappa), n_iter, 0.1 if lr is None else float(lr), init, gen)
    else:
        theta = _network_directions(fixed, p, L, float(regularization), n_iter, 0.01 if lr is None else float(lr),
                                    network, gen)
    power = directional_costs(pair, theta, p).mean()
    value = output_distance(power, p, root, pair.numpy_mode)
    if return_directions:
        return value, output_array(theta, pair.numpy_mode)
    return value


def _vmf_directions(pair: Pair, p: float, L: int, kappa: float, n_iter: int, lr: float, init: Any,
                    gen: torch.Generator | None) -> torch.Tensor:
    if pair.X.shape[1] == 1:  # S^0 = {-1, 1}: every direction gives the same 1-D distance
        return torch.ones(L, 1, dtype=pair.X.dtype, device=pair.X.device)
    rng = np.random.default_rng(int_seed(gen))
    with torch.no_grad():
        start = initial_direction(pair, p, init, 16, gen)

    def expected_cost(location: torch.Tensor) -> torch.Tensor:
        return directional_costs(pair, sample_vmf(location, kappa, L, rng), p).mean()

    location = ascend_on_sphere(expected_cost, start, n_iter, lr, keep_best=False)
    return sample_vmf(location, kappa, L, rng).detach()


def _network_directions(pair: Pair, p: float, L: int, regularization: float, n_iter: int, lr: float,
                        network: nn.Module | None, gen: torch.Generator | None) -> torch.Tensor:
    d = pair.X.shape[1]
    base = uniform_directions(d, L, gen).to(pair.X)
    f = PushforwardNet(d, pair.X.dtype).to(pair.X.device) if network is None else network
    optimizer = torch.optim.Adam(f.parameters(), lr=lr)
    for _ in range(n_iter):
        theta = normalise_rows(f(base))
        # clamp_min: the root's gradient is infinite at 0 (identical inputs); clamped, it is 0
        objective = directional_costs(pair, theta, p).mean().clamp_min(torch.finfo(theta.dtype).tiny) ** (1.0 / p)
        loss = regularization * _mean_abs_cosine(theta) - objective
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return normalise_rows(f(base)).detach()
