"""Sliced losses for training loops: one entry point for every direction method and estimator."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InputError, unknown_name_error
from ._checks import Pair, root_of_power
from .control_variates import sliced_wasserstein_cv
from .core import directional_costs, sliced_wasserstein_power
from .directions import METHODS, projections
from .distributional import distributional_sliced_wasserstein
from .max_sliced import max_sliced_wasserstein
from .reservoir import DirectionReservoir

#: Control-variate estimators usable wherever a projection method name is accepted ("cv" = lower).
CV_METHODS = {"cv": "lower", "cv_lower": "lower", "cv_upper": "upper"}
#: Methods with state or an inner optimisation: only through :class:`SlicedLoss`.
STATEFUL_METHODS = ("max", "dsw", "reservoir")
LOSS_METHODS: tuple[str, ...] = METHODS + tuple(CV_METHODS) + STATEFUL_METHODS


def sliced_loss(
    X: Any, Y: Any, a: Any = None, b: Any = None, *, method: str = "mc", n_projections: int = 100,
    p: float = 2, seed: int | None = None,
) -> Any:
    """SW_p^p estimated with a projection method (``mc``, ``rqmc``...) or a control-variate
    estimator (``cv`` = ``cv_lower``, or ``cv_upper``; Monte Carlo directions).

    The stateless loss behind :class:`SlicedLoss`: :func:`sliced_wasserstein_power` for a
    projection method, :func:`sliced_wasserstein_cv` (``root=False``) for a control variate.
    Methods with state or an inner optimisation (``max``, ``dsw``, ``reservoir``) need
    :class:`SlicedLoss`.

    Parameters
    ----------
    X, Y, a, b, p, n_projections, seed
        As in :func:`sliced_wasserstein`.
    method : str, default "mc"
        A projection method (see :func:`projections`), ``cv``, ``cv_lower`` or ``cv_upper``.

    Returns
    -------
    loss : numpy.float64 or torch.Tensor
        The SW_p^p estimate: a NumPy float for NumPy inputs, a differentiable 0-d tensor for
        tensors.

    Raises
    ------
    latentforge.errors.InputError
        For ``max``, ``dsw`` or ``reservoir``, an unknown method, and as :func:`sliced_wasserstein`.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sliced import sliced_loss
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> Y = X + [1.0, 0.0, 0.0]

    For a translation by t, SW_2^2 = |t|²/d, which both estimators below return exactly:

    >>> round(float(sliced_loss(X, Y, method="cv", n_projections=10, seed=0)), 6)
    0.333333
    >>> round(float(sliced_loss(X, Y, method="orthogonal", n_projections=30, seed=0)), 6)
    0.333333
    """
    if method in CV_METHODS:
        return sliced_wasserstein_cv(X, Y, a, b, p=p, n_projections=n_projections, seed=seed,
                                     variant=CV_METHODS[method], root=False)
    if method in STATEFUL_METHODS:
        raise InputError(f"method {method!r} keeps state or optimises directions; use SlicedLoss(method={method!r}).")
    return sliced_wasserstein_power(X, Y, a, b, p=p, n_projections=n_projections, method=method, seed=seed)


def sliced_training_loss(X: torch.Tensor, Y: torch.Tensor, *, method: str = "mc", n_projections: int = 100,
                         p: float = 2) -> torch.Tensor:
    """:func:`sliced_loss` of two equally weighted tensor samples inside a training step, without
    the input checks: the same estimate from the same random state, bit for bit.

    The public functions check their inputs for NaN, and each check reads a value back to the
    host: a device synchronisation in every step on a GPU, and a tenth of a small table's step on
    a CPU. In a training loop a non-finite value reaches the loss instead, where the trainer looks
    for it once (and names the term). Control variates go through :func:`sliced_loss`.

    Parameters
    ----------
    X, Y : torch.Tensor, shape (n, d) and (m, d)
        The two samples, on one device and of one dtype.
    method, n_projections, p
        As in :func:`sliced_loss`.

    Returns
    -------
    loss : torch.Tensor
        SW_p^p, a differentiable 0-d tensor.

    Examples
    --------
    >>> import torch
    >>> from latentforge.sliced import sliced_loss, sliced_training_loss
    >>> X, Y = torch.randn(64, 3), torch.randn(64, 3) + 1.0
    >>> _ = torch.manual_seed(0); checked = sliced_loss(X, Y)
    >>> _ = torch.manual_seed(0); bool(sliced_training_loss(X, Y) == checked)
    True
    """
    if method in CV_METHODS or method in STATEFUL_METHODS:
        return sliced_loss(X, Y, method=method, n_projections=n_projections, p=p)
    theta = projections(X.shape[1], n_projections, method, dtype=X.dtype, device=X.device)
    return directional_costs(Pair(X, Y, None, None, False), theta, p).mean()  # the pair as the checks leave it


class SlicedLoss(nn.Module):
    """A sliced-Wasserstein training loss: ``SlicedLoss(method, n_projections)(X, Y)`` = SW_p^p.

    One module for every direction method and estimator; calling it on tensors X (n, d) and
    Y (m, d) (and optional weights a, b) returns a differentiable 0-d tensor.

    Parameters
    ----------
    method : str, default "mc"
        One of :data:`LOSS_METHODS`: a projection method (see :func:`projections`),
        ``cv``/``cv_upper``/``cv_lower`` (control variates, :func:`sliced_wasserstein_cv`),
        ``max`` (:func:`max_sliced_wasserstein`), ``dsw`` (:func:`distributional_sliced_wasserstein`)
        or ``reservoir`` (directions kept across calls, :class:`DirectionReservoir`).
    n_projections : int, default 100
        Directions per call (unused by ``max``).
    p : float, default 2
        Transport exponent, at least 1.
    root : bool, default False
        Return SW_p instead of its p-th power.
    **options
        Passed to the underlying estimator (e.g. ``seed``; ``n_iter`` for ``max``/``dsw``,
        ``kappa`` or ``family`` for ``dsw``, ``n_new`` for ``reservoir``).

    Raises
    ------
    latentforge.errors.InputError
        On an unknown ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from latentforge.sliced import SlicedLoss
    >>> rng = np.random.default_rng(0)
    >>> X = torch.tensor(rng.normal(size=(200, 3)), requires_grad=True)
    >>> Y = X.detach() + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    >>> loss = SlicedLoss("cv", n_projections=10, seed=0)(X, Y)
    >>> round(loss.item(), 6)
    0.333333
    >>> loss.backward()
    >>> tuple(X.grad.shape)
    (200, 3)
    >>> round(SlicedLoss("max", root=True, n_iter=10, seed=0)(X, Y).item(), 6)  # the best direction: W_2 = |t|
    1.0
    """

    def __init__(self, method: str = "mc", n_projections: int = 100, p: float = 2, *, root: bool = False,
                 **options: Any):
        super().__init__()
        if method not in LOSS_METHODS:
            raise unknown_name_error("sliced loss method", str(method), LOSS_METHODS)
        self.method, self.n_projections, self.p, self.root = method, n_projections, p, root
        self.options = options
        self.reservoir: DirectionReservoir | None = None

    def forward(self, X: torch.Tensor, Y: torch.Tensor, a: Any = None, b: Any = None) -> Any:
        if self.method == "max":
            return max_sliced_wasserstein(X, Y, a, b, p=self.p, root=self.root, **self.options)
        if self.method == "dsw":
            return distributional_sliced_wasserstein(X, Y, a, b, p=self.p, n_projections=self.n_projections,
                                                     root=self.root, **self.options)
        if self.method == "reservoir":
            if self.reservoir is None:
                self.reservoir = DirectionReservoir(X.shape[1], self.n_projections, **self.options)
            value = self.reservoir.sliced_wasserstein_power(X, Y, a, b, p=self.p)
        else:
            value = sliced_loss(X, Y, a, b, method=self.method, n_projections=self.n_projections, p=self.p,
                                **self.options)
        if not self.root:
            return value
        return root_of_power(value, self.p)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, n_projections={self.n_projections}, p={self.p}, root={self.root}"
