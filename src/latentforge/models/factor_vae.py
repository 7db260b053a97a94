"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising").

Encoder output: mean and log-variance of a diagonal Gaussian q(z|x) (inherited from VAE). The ELBO
gets a penalty on the total correlation TC = KL(q(z) ‖ Π_l q(z_l)) of the aggregate posterior,
estimated by the density-ratio trick: a discriminator D (an MLP on codes, one logit) learns to tell
codes z ~ q(z) (label 1) from codes whose every axis is shuffled independently across the batch
(:func:`permute_dims`: samples of Π_l q(z_l), label 0), and then

    TC ≈ E_q(z)[log D(z) / (1 − D(z))] = E_q(z)[logit D(z)].

Loss, one reparameterised sample: reconstruction + KL(q(z|x) ‖ N(0, I)) + γ·TC for the VAE, plus
the discriminator's binary cross-entropy. The paper trains the two with two optimisers;
latentforge's trainer minimises one ``total``, so each part is made to see only its own
objective's gradient: the TC term runs the discriminator on z with its parameters detached
(``torch.func.functional_call``), so it reaches the encoder only; the cross-entropy runs it on
``z.detach()`` and the permuted detached codes, so it reaches the discriminator only. The
discriminator has its own parameter group: Adam betas (0.5, 0.9) as in the paper, no weight decay
(decay would shrink its logit, i.e. the TC estimate, towards 0); the learning rate is shared (the
paper uses 1e-4 for both networks). The permuted codes come from the same minibatch (the paper
draws a second one). Sampler: z ~ N(0, I), decoded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .vae import VAE, gaussian_kl


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each column of z (B, d) shuffled by its own random permutation of the rows: every
    marginal is kept, the dependence between the axes is broken."""
    order = torch.rand(z.shape, device=z.device).argsort(dim=0)
    return z.gather(0, order)


def discriminator(latent_dim: int, width: int, depth: int) -> nn.Sequential:
    """MLP, ``depth`` hidden layers of ``width`` with leaky ReLU (0.2) as in the paper, one logit."""
    layers: list[nn.Module] = []
    d_in = latent_dim
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2)]
        d_in = width
    layers.append(nn.Linear(d_in, 1))
    return nn.Sequential(*layers)


class FactorVAE(VAE):
    name = "factor_vae"
    description = "FactorVAE: ELBO + γ·total correlation, estimated by a discriminator on permuted codes"
    hyperparameters = {"gamma": 6.0, "discriminator_width": 256, "discriminator_depth": 3}
    bounds = {"gamma": (0.0, None), "discriminator_width": (1, None), "discriminator_depth": (1, None)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.discriminator = discriminator(self.latent_dim, self.hp["discriminator_width"],
                                           self.hp["discriminator_depth"])

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.encode(x)
        z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
        recon = self.likelihood.nll(self.decode(z), x).mean()
        kl = gaussian_kl(q["mu"], q["logvar"]).sum(1).mean()
        # VAE side: the discriminator as a fixed function of z
        frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
        tc = functional_call(self.discriminator, frozen, (z,)).mean()
        # discriminator side: fixed codes, joint (label 1) against permuted (label 0)
        codes = z.detach()
        joint, product = self.discriminator(codes), self.discriminator(permute_dims(codes))
        disc = 0.5 * (F.softplus(-joint).mean() + F.softplus(product).mean())
        total = recon + kl + self.hp["gamma"] * tc + disc
        return {"reconstruction": recon, "kl": kl, "tc": tc, "discriminator": disc, "total": total}

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        own = {id(p) for p in self.discriminator.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in own]
        return [{"params": rest, "weight_decay": weight_decay},
                {"params": list(self.discriminator.parameters()), "weight_decay": 0.0, "betas": (0.5, 0.9)}]
