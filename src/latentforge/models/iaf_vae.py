"""VAE with an inverse-autoregressive-flow posterior (Kingma et al. 2016, "Improved Variational
Inference with Inverse Autoregressive Flow"; pythae 0.1.2's ``VAE_IAF``).

Encoder output: mean and log-variance of q₀(z₀|x) = N(μ, diag σ²) and a context vector h
(``context_dim`` wide). z₀ is pushed through T = ``n_made_blocks`` IAF steps, each with its own
MADE (``models.flows.MADE``: ``n_hidden_in_made`` masked hidden layers of ``hidden_size`` units,
h feeding the first one) and the numerically stable gated update of the paper's Algorithm 1:

    (m, s) = MADE_t(z, h),  σ = sigmoid(s + 2),  z ← σ·z + (1 − σ)·m,  log|det J_t| = Σ_i log σ_i.

The Jacobian is triangular because m_i and s_i depend on z_{<i} only; the variable order is
reversed between steps so every coordinate gets to depend on every other. The +2 offset makes each
step start close to the identity (σ ≈ 0.88, m = 0: the MADEs' output layers start at zero), as the
paper recommends. pythae's defaults: two MADE blocks of three hidden layers of 128 units; pythae's
IAF takes no context (``context_dim=0`` here gives that unconditional flow).

Loss: −ELBO with one reparameterised draw, reconstruction NLL of z_T plus the one-sample KL
log q_T(z_T|x) − log N(z_T; 0, I), log q_T(z_T|x) = log q₀(z₀|x) − Σ_t Σ_i log σ_{t,i}.
Embedding: the flow applied to μ (with the same h). ``log_likelihood`` importance-samples with q_T.
Sampler: z ~ N(0, I), decoded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .flows import MADE, FlowPosteriorVAE

#: added to s before the sigmoid gate, so that a fresh step barely moves z (σ = sigmoid(2) ≈ 0.88)
GATE_OFFSET = 2.0


class IAFStep(nn.Module):
    """z ← σ·z + (1 − σ)·m with (m, s) = MADE(z, h), σ = sigmoid(s + GATE_OFFSET)."""

    def __init__(self, dim: int, hidden: int, n_hidden: int, context_dim: int, order: torch.Tensor):
        super().__init__()
        self.made = MADE(dim, hidden, n_hidden, context_dim, order)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self.made(z, context)
        gate = s + GATE_OFFSET
        sigma = torch.sigmoid(gate)
        return sigma * z + (1.0 - sigma) * m, F.logsigmoid(gate).sum(-1)


class IAFVAE(FlowPosteriorVAE):
    name = "iaf_vae"
    description = "VAE with an inverse autoregressive flow posterior (T MADE steps conditioned on an encoder context)"
    hyperparameters = {"n_made_blocks": 2, "n_hidden_in_made": 3, "hidden_size": 128, "context_dim": 16}
    bounds = {"n_made_blocks": (0, None), "n_hidden_in_made": (1, None), "hidden_size": (1, None),
              "context_dim": (0, None)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        d, hp = self.latent_dim, self.hp
        forward_order, reverse_order = torch.arange(d), torch.arange(d).flip(0)
        self.steps = nn.ModuleList(
            IAFStep(d, hp["hidden_size"], hp["n_hidden_in_made"], hp["context_dim"],
                    forward_order if t % 2 == 0 else reverse_order)
            for t in range(hp["n_made_blocks"]))

    def encoder_width(self) -> int:
        return 2 * self.latent_dim + self.hp["context_dim"]

    def base_posterior(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        d = self.latent_dim
        out = self.encoder(x)
        mu, logvar, h = out[:, :d], out[:, d:2 * d].clamp(-12.0, 8.0), out[:, 2 * d:]   # clamp as in VAE
        return {"z": mu, "mu": mu, "logvar": logvar, "h": h}

    def flow(self, z0: torch.Tensor, q: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        context = q["h"] if self.hp["context_dim"] > 0 else None
        z, log_det = z0, z0.new_zeros(z0.shape[:-1])
        for step in self.steps:
            z, step_log_det = step(z, context)
            log_det = log_det + step_log_det
        return z, log_det

