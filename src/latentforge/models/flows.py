"""Normalising-flow pieces shared by the flow posteriors (``planar_vae``, ``radial_vae``,
``iaf_vae``) and the MAF code sampler (``latentforge.estimator.flow_sampler``).

Every flow layer maps z (..., d) to (z_out, log|det ∂z_out/∂z|) with the log-determinant shaped
(...,), so a stack of layers sums them:

* :class:`PlanarFlow` — f(z) = z + û·tanh(wᵀz + b) (Rezende & Mohamed 2015, "Variational
  Inference with Normalizing Flows", eq. 10–12); û = u + (m(wᵀu) − wᵀu)·w/‖w‖² with
  m(a) = −1 + softplus(a) makes wᵀû > −1, the condition for f to be invertible (appendix A.1).
* :class:`RadialFlow` — f(z) = z + β·h(α, r)·(z − c), h = 1/(α + r), r = ‖z − c‖, with
  α = softplus(α̃) > 0 and β = −α + softplus(β̃) ≥ −α (the invertibility condition, A.2).
* :class:`MADE` — masked autoencoder for distribution estimation (Germain et al. 2015): masked
  linear layers so that output i depends only on the inputs before i in a given order (plus an
  optional unmasked context); it gives a per-dimension shift m and log-scale s, the conditioner of
  both the inverse autoregressive flow (``iaf_vae``) and the masked autoregressive flow
  (the ``maf`` sampler).

:class:`FlowPosteriorVAE` is the VAE whose posterior is a Gaussian q₀(z₀|x) pushed through a flow:
log q_K(z_K|x) = log q₀(z₀|x) − Σ_k log|det J_k|, and the KL term is estimated with the same single
draw, log q_K(z_K|x) − log p(z_K). The concrete models only say what the flow is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vae import VAE


class PlanarFlow(nn.Module):
    """f(z) = z + û·tanh(wᵀz + b); log|det J| = log|1 + tanh'(wᵀz + b)·wᵀû|."""

    def __init__(self, dim: int):
        super().__init__()
        # small weights: each layer starts close to the identity
        self.w = nn.Parameter(0.1 * torch.randn(dim))
        self.u = nn.Parameter(0.1 * torch.randn(dim))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> torch.Tensor:
        """u moved along w so that wᵀû = −1 + softplus(wᵀu) > −1 (invertibility)."""
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1.0 - wu) * self.w / self.w.pow(2).sum().clamp_min(1e-12)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.u_hat()
        h = torch.tanh(z @ self.w + self.b)
        # det(I + û ψᵀ) = 1 + ψᵀû with ψ = tanh'(·) w (matrix determinant lemma)
        log_det = torch.log1p((1.0 - h.pow(2)) * (self.w @ u))
        return z + h.unsqueeze(-1) * u, log_det


class RadialFlow(nn.Module):
    """f(z) = z + β·(z − c)/(α + ‖z − c‖) about a learned centre c;
    log|det J| = (d − 1)·log(1 + βh) + log(1 + βh + βh'r), h = 1/(α + r), h' = −h²."""

    def __init__(self, dim: int):
        super().__init__()
        self.center = nn.Parameter(0.1 * torch.randn(dim))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def alpha_beta(self) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)    # β ≥ −α keeps f invertible

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, beta = self.alpha_beta()
        diff = z - self.center
        r = diff.norm(dim=-1)
        h = 1.0 / (alpha + r)
        # 1 + βh + βh'r = 1 + βαh²; both factors are ≥ 0 because β ≥ −α
        log_det = (z.shape[-1] - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h.pow(2))
        return z + (beta * h).unsqueeze(-1) * diff, log_det


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Shift and log-scale (m, s), each (..., d), autoregressive in ``order``: output ``order[i]``
    depends only on inputs ``order[:i]`` (and on the context, which feeds the first hidden layer
    unmasked).

    Degrees (Germain et al.): input ``order[i]`` has degree i + 1; hidden units cycle through
    1 … d − 1 (0 … d − 1 with a context, since a degree-0 unit then still carries information);
    a hidden connection is kept where the degree does not fall, an output connection of degree k
    only from hidden units of degree < k. The output layer starts at zero, so the network starts
    at m = s = 0 (an identity flow step).
    """

    def __init__(self, dim: int, hidden: int, n_hidden: int = 1, context_dim: int = 0,
                 order: torch.Tensor | None = None):
        super().__init__()
        order = torch.arange(dim) if order is None else torch.as_tensor(order)
        in_degree = torch.empty(dim, dtype=torch.long)
        in_degree[order] = torch.arange(1, dim + 1)
        low = 0 if context_dim > 0 or dim == 1 else 1
        hidden_degree = low + torch.arange(hidden) % (dim - low)
        self.register_buffer("order", order)
        layers: list[nn.Module] = []
        previous = in_degree
        for i in range(n_hidden):
            mask = hidden_degree.unsqueeze(1) >= previous.unsqueeze(0)
            layers.append(MaskedLinear(dim if i == 0 else hidden, hidden, mask))
            previous = hidden_degree
        self.hidden_layers = nn.ModuleList(layers)
        self.context = nn.Linear(context_dim, hidden, bias=False) if context_dim > 0 else None
        out_mask = (in_degree.unsqueeze(1) > hidden_degree.unsqueeze(0)).repeat(2, 1)
        self.out = MaskedLinear(hidden, 2 * dim, out_mask)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden_layers[0](x)
        if self.context is not None:
            h = h + self.context(context)           # broadcasts over leading sample axes
        h = torch.relu(h)
        for layer in self.hidden_layers[1:]:
            h = torch.relu(layer(h))
        shift, log_scale = self.out(h).chunk(2, dim=-1)
        return shift, log_scale


class FlowStack(nn.ModuleList):
    """Layers applied in turn; returns (z_K, Σ_k log|det J_k|)."""

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = z.new_zeros(z.shape[:-1])
        for layer in self:
            z, step = layer(z)
            log_det = log_det + step
        return z, log_det


class FlowPosteriorVAE(VAE):
    """A VAE whose posterior is q₀(z₀|x) = N(μ, diag σ²) followed by ``flow``.

    Subclasses implement :meth:`flow` (and, when the encoder emits more than (μ, log σ²),
    :meth:`base_posterior` and ``encoder_width``). The embedding ``encode(x)["z"]`` is the flow
    applied to μ (the image of the base posterior's mean; not the mean of q_K, which has no closed
    form). ``mu`` and ``logvar`` in the encoding stay those of q₀.
    """

    hyperparameters: dict = {}

    def flow(self, z0: torch.Tensor, q: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_K, Σ_k log|det J_k|) for base draws z0 (..., N, d) of the posterior ``q``."""
        raise NotImplementedError

    def base_posterior(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's output: mu, logvar (and whatever else :meth:`flow` needs)."""
        return VAE.encode(self, x)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.base_posterior(x)
        q["z"] = self.flow(q["mu"], q)[0]
        return q

    def posterior_draws(self, q: dict[str, torch.Tensor], n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        z0, log_q0 = super().posterior_draws(q, n_samples)
        z, log_det = self.flow(z0, q)
        return z, log_q0 - log_det                  # change of variables

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.base_posterior(x)
        z, log_q = (t[0] for t in self.posterior_draws(q, 1))
        recon = self.likelihood.nll(self.decode(z), x).mean()
        kl = (log_q - self.prior_log_density(z)).mean()          # one-sample estimate of KL(q_K ‖ p)
        return {"reconstruction": recon, "kl": kl, "total": recon + kl}
