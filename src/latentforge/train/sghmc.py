"""Stochastic-gradient Hamiltonian Monte Carlo (SGHMC) over any list of tensors.

Chen, Fox & Guestrin, "Stochastic Gradient Hamiltonian Monte Carlo" (ICML 2014), in the form of
their eq. (15) with the gradient-noise estimate β̂ = 0::

    v ← (1 − α) v − η M⁻¹ ∇Ũ(θ) + N(0, 2 α η M⁻¹)
    θ ← θ + v

Ũ is a stochastic estimate of the potential U(θ) = −log p(θ | data) + const (a minibatch's
negative log-likelihood scaled to the whole data set, plus the negative log prior), η the step size
(their learning rate), α the friction (momentum decay per step) and M⁻¹ a diagonal inverse mass.
For small η the chain's stationary distribution is exp(−U), the posterior; the minibatch noise
that β̂ = 0 leaves uncorrected inflates the spread by O(η).

``precondition=True`` sets M⁻¹ = 1/√v̂, with v̂ a running mean of ∇Ũ² estimated during burn-in and
frozen afterwards (the scale adaptation of Springenberg et al., "Bayesian Optimization with Robust
Bayesian Neural Networks", NeurIPS 2016): η is then in parameter units whatever the scale of the
gradients, which is what makes one step size work for every layer of a network. A mass that
changes only during burn-in leaves the post-burn-in chain exact in the above sense.

:func:`sample_sghmc` runs burn-in once and then ``chains`` chains from the burned-in state, each
with its own noise, and keeps thinned states; :func:`collection_steps` says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..config import SGHMC_SCHEDULES as SCHEDULES
from ..errors import InputError, TrainingDivergedError, unknown_name_error
# The polynomial schedule η_t = η (1 + t/τ)^(-γ) of Welling & Teh (2011); γ in (0.5, 1] keeps the
# decaying-step chain consistent. τ is set so that η has halved when burn-in ends.
_POLY_GAMMA = 0.55


class SGHMC:
    """One SGHMC chain over ``params`` (updated in place); gradients are read from ``.grad``.

    Parameters
    ----------
    params : tensors to sample (leaf tensors with ``requires_grad``).
    step_size : η, the per-step momentum change per unit of M⁻¹∇U (Chen et al.'s learning rate).
    friction : α in (0, 1], the share of the momentum lost per step.
    precondition : adapt a diagonal M⁻¹ = 1/√v̂ from squared gradients while ``step(adapt=True)``.
    noise : per-tensor flags; a tensor without noise follows the same momentum dynamics without the
        injected noise (a stochastic optimiser of U: a point estimate inside a sampled model).
    generator : the random generator for the injected noise (reproducible chains).
    """

    def __init__(
        self, params: Sequence[torch.Tensor], step_size: float, friction: float = 0.05, precondition: bool = False,
        noise: Sequence[bool] | None = None, generator: torch.Generator | None = None, decay: float = 0.99,
    ):
        if not step_size > 0 or not math.isfinite(step_size):
            raise InputError(f"step_size must be a positive finite number, got {step_size!r}.")
        if not 0 < friction <= 1:
            raise InputError(f"friction must lie in (0, 1], got {friction!r}.")
        self.params = list(params)
        self.noise = [True] * len(self.params) if noise is None else [bool(f) for f in noise]
        if len(self.noise) != len(self.params):
            raise InputError(f"noise has {len(self.noise)} flags for {len(self.params)} tensors.")
        self.step_size, self.friction, self.precondition = float(step_size), float(friction), bool(precondition)
        self.generator, self.decay = generator, float(decay)
        self.momentum = [torch.zeros_like(p) for p in self.params]
        # running first and second moments of the gradient (bias-corrected by 1 - decay^t)
        self.grad_avg = [torch.zeros_like(p) for p in self.params]
        self.sq_avg = [torch.zeros_like(p) for p in self.params]
        self.inv_mass: list[torch.Tensor] | None = None
        self.steps = 0

    @torch.no_grad()
    def step(self, step_size: float | None = None, adapt: bool = False) -> None:
        """One update from the gradients in ``.grad``; ``adapt`` re-estimates M⁻¹ (burn-in only)."""
        eta = self.step_size if step_size is None else float(step_size)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params]
        self.steps += 1
        torch._foreach_lerp_(self.grad_avg, grads, 1.0 - self.decay)
        torch._foreach_lerp_(self.sq_avg, [g * g for g in grads], 1.0 - self.decay)
        if self.precondition and (adapt or self.inv_mass is None):
            self.inv_mass = self._inverse_mass()
        a = self.friction
        for i, (p, v, g) in enumerate(zip(self.params, self.momentum, grads)):
            m = None if self.inv_mass is None else self.inv_mass[i]
            v.mul_(1.0 - a).add_(g if m is None else g * m, alpha=-eta)
            if self.noise[i]:
                scale = math.sqrt(2.0 * a * eta)
                eps = torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
                v.add_(eps * (scale if m is None else m.sqrt() * scale))
            p.add_(v)

    def _inverse_mass(self) -> list[torch.Tensor]:
        correction = 1.0 - self.decay ** self.steps
        out = []
        for s in self.sq_avg:
            v = s / correction
            # a floor relative to the tensor's mean keeps M⁻¹ bounded where gradients vanish
            out.append(torch.rsqrt(v + 1e-2 * v.mean() + torch.finfo(v.dtype).tiny))
        return out

    def grad_noise(self) -> float:
        """Share of the gradient's running second moment not explained by its running mean, in [0, 1].

        Near 1: minibatch noise (or the chain's own motion) dominates the gradient, as expected
        while sampling; near 0: a consistent drift, as in early burn-in.
        """
        flagged = [i for i, f in enumerate(self.noise) if f] or list(range(len(self.params)))
        mean_sq = sum(float(self.grad_avg[i].pow(2).sum()) for i in flagged)
        second = sum(float(self.sq_avg[i].sum()) for i in flagged)
        correction = 1.0 - self.decay ** max(self.steps, 1)
        if second <= 0:
            return 0.0
        return float(min(1.0, max(0.0, 1.0 - (mean_sq / correction) / second)))

    def state(self) -> dict[str, Any]:
        """A copy of the parameters and the sampler's state (to branch chains from it)."""
        copy = lambda ts: [t.detach().clone() for t in ts]  # noqa: E731
        return {"params": copy(self.params), "momentum": copy(self.momentum), "grad_avg": copy(self.grad_avg),
                "sq_avg": copy(self.sq_avg), "inv_mass": None if self.inv_mass is None else copy(self.inv_mass),
                "steps": self.steps}

    @torch.no_grad()
    def restore(self, state: dict[str, Any]) -> None:
        """Put back a state taken by :meth:`state`."""
        for dst, src in zip(self.params, state["params"]):
            dst.copy_(src)
        self.momentum = [t.clone() for t in state["momentum"]]
        self.grad_avg = [t.clone() for t in state["grad_avg"]]
        self.sq_avg = [t.clone() for t in state["sq_avg"]]
        self.inv_mass = None if state["inv_mass"] is None else [t.clone() for t in state["inv_mass"]]
        self.steps = state["steps"]


def step_schedule(kind: str | Callable[[int], float], burn_in: int) -> Callable[[int], float]:
    """The step-size multiplier as a function of the step: ``"constant"`` (1), ``"polynomial"``
    ((1 + t/τ)^-0.55, halved at the end of burn-in) or a callable of the step."""
    if callable(kind):
        return kind
    if kind == "constant":
        return lambda t: 1.0
    if kind == "polynomial":
        tau = max(burn_in, 1) / (2.0 ** (1.0 / _POLY_GAMMA) - 1.0)
        return lambda t: (1.0 + t / tau) ** -_POLY_GAMMA
    raise unknown_name_error("step-size schedule", str(kind), SCHEDULES)


def collection_steps(window: int, n_samples: int, thinning: int = 0) -> list[int]:
    """Steps (0-based, within a chain's collection window of ``window`` steps) whose end states are kept.

    The last state of the window is kept and then every ``thinning`` steps before it;
    ``thinning=0`` spaces the ``n_samples`` states as widely as the window allows.
    """
    if n_samples < 1:
        raise InputError(f"the number of posterior samples must be at least 1, got {n_samples}.")
    if thinning < 0:
        raise InputError(f"thinning must be 0 (automatic) or a positive number of steps, got {thinning}.")
    thin = thinning or max(window // n_samples, 1)
    needed = (n_samples - 1) * thin + 1
    if window < needed:
        raise InputError(f"collecting {n_samples} posterior samples {thin} step(s) apart needs {needed} SGHMC steps "
                         f"after burn-in, but only {window} remain; run more epochs, shorten burn_in, lower thinning "
                         f"or ask for fewer posterior_samples.")
    return [window - 1 - j * thin for j in reversed(range(n_samples))]


def flatten(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors' values as one detached flat vector (in order)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def sample_sghmc(
    params: Sequence[torch.Tensor],
    potential: Callable[[int], torch.Tensor],
    *,
    n_samples: int,
    burn_in: int,
    window: int,
    step_size: float,
    friction: float = 0.05,
    chains: int = 1,
    thinning: int = 0,
    precondition: bool = False,
    schedule: str | Callable[[int], float] = "constant",
    noise: Sequence[bool] | None = None,
    seed: int = 0,
    callback: Callable[[dict[str, Any]], None] | None = None,
    steps_per_epoch: int = 1,
    blowup: float | None = 1e4,
) -> torch.Tensor:
    """Posterior samples of ``params`` by SGHMC, as a tensor (n_samples, P) of flattened values.

    ``potential(t)`` returns the stochastic potential Ũ (a scalar with a graph to ``params``) at
    global step t. The run is ``burn_in`` steps (M⁻¹ adapted, nothing kept), then ``chains``
    chains of ``window`` steps each, every one starting from the burned-in state with its own noise;
    the ``n_samples`` are split as evenly as possible between chains (chain-major order) and
    thinned by :func:`collection_steps`. ``callback`` gets a dict per step (step, chain, burn_in,
    value, step_size, collected, sampler). A non-finite potential or parameter, or a potential
    above ``blowup`` times its first value or the number of parameters, whichever is larger (a
    chain thrown far off that has not overflowed yet),
    stops with :class:`TrainingDivergedError` after restoring the starting values;
    ``steps_per_epoch`` only labels epochs in that error. ``params`` end at the last state of the
    last chain.
    """
    if chains < 1:
        raise InputError(f"chains must be at least 1, got {chains}.")
    if n_samples < chains:
        raise InputError(f"{chains} chains need at least one posterior sample each, got n_samples={n_samples}.")
    if burn_in < 0 or window < 1:
        raise InputError(f"burn_in must be >= 0 and window >= 1 steps, got {burn_in} and {window}.")
    per_chain = [n_samples // chains + (c < n_samples % chains) for c in range(chains)]
    keep = [set(collection_steps(window, m, thinning)) for m in per_chain]
    factor = step_schedule(schedule, burn_in)
    device = params[0].device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    sampler = SGHMC(params, step_size, friction, precondition, noise, gen)
    start = sampler.state()
    samples: list[torch.Tensor] = []
    t = 0
    first: list[float] = []
    n_scalars = float(sum(p.numel() for p in params))

    def advance(chain: int, burning: bool) -> float:
        nonlocal t
        eta = step_size * factor(t)
        for p in sampler.params:
            p.grad = None
        value = potential(t)
        current = float(value.detach())
        if not math.isfinite(current):
            _diverged(sampler, start, t, steps_per_epoch, step_size, "potential", current)
        if not first:
            first.append(current)
        # scale: the first value, or the number of parameters (≈ 2 U of a chain at rest in its prior)
        if blowup is not None and current > blowup * max(abs(first[0]), n_scalars):
            _diverged(sampler, start, t, steps_per_epoch, step_size, "potential", current,
                      f" (from {first[0]:.4g}, more than {blowup:g} times its start)")
        value.backward()
        sampler.step(eta, adapt=burning)
        t += 1
        return current

    for _ in range(burn_in):
        value = advance(0, True)
        if callback is not None:
            callback({"step": t - 1, "chain": 0, "burn_in": True, "value": value,
                      "step_size": step_size * factor(t - 1), "collected": 0, "sampler": sampler})
    burned = sampler.state() if chains > 1 else None
    for chain in range(chains):
        if chain > 0:
            sampler.restore(burned)  # every chain starts from the shared burned-in state
            gen.manual_seed(int(seed) * 7919 + chain)  # ...with noise of its own
        for j in range(window):
            value = advance(chain, False)
            if j in keep[chain]:
                flat = flatten(sampler.params)
                if not torch.isfinite(flat).all():
                    _diverged(sampler, start, t - 1, steps_per_epoch, step_size, "parameters", float("nan"))
                samples.append(flat)
            if callback is not None:
                callback({"step": t - 1, "chain": chain, "burn_in": False, "value": value,
                          "step_size": step_size * factor(t - 1), "collected": len(samples), "sampler": sampler})
    for p in sampler.params:
        p.grad = None
    return torch.stack(samples)


def _diverged(sampler: SGHMC, start: dict[str, Any], t: int, steps_per_epoch: int, step_size: float, what: str,
              value: float, detail: str = "") -> None:
    sampler.restore(start)
    for p in sampler.params:
        p.grad = None
    epoch, step = t // steps_per_epoch + 1, t % steps_per_epoch + 1
    raise TrainingDivergedError(
        f"SGHMC became unstable: the {what} became {value:.4g}{detail} at epoch {epoch}, step {step} "
        f"(step_size={step_size:g}); "
        f"the weights were reset to their starting values. Try a smaller step size, e.g. step_size={step_size / 10:g}.",
        epoch, step, what)
