"""VAE with a planar-flow posterior (Rezende & Mohamed 2015, "Variational Inference with
Normalizing Flows"; pythae 0.1.2's ``VAE_LinNF`` with Planar layers).

Encoder output: mean and log-variance of q₀(z₀|x) = N(μ, diag σ²), as in VAE; z₀ is then pushed
through K = ``n_flows`` planar layers f(z) = z + û·tanh(wᵀz + b) (``models.flows.PlanarFlow``,
with the invertibility constraint wᵀû > −1). As in pythae's VAE_LinNF, the flow parameters
(u, w, b of each layer) are free parameters shared by all inputs, not amortised (not predicted by
the encoder per x): the flow reshapes every posterior the same way. K defaults to 2, pythae's
default (``flows=["Planar", "Planar"]``).

Loss: −ELBO with one reparameterised draw, reconstruction NLL of z_K plus the one-sample KL
log q_K(z_K|x) − log N(z_K; 0, I), where log q_K(z_K|x) = log q₀(z₀|x) − Σ_k log|det J_k|.
Embedding: the flow applied to μ. ``log_likelihood`` importance-samples with q_K.
Sampler: z ~ N(0, I), decoded.
"""

from __future__ import annotations

import torch

from .flows import FlowPosteriorVAE, FlowStack, PlanarFlow


class PlanarVAE(FlowPosteriorVAE):
    name = "planar_vae"
    description = "VAE whose Gaussian posterior is refined by K planar flows (not amortised, as pythae's VAE_LinNF)"
    hyperparameters = {"n_flows": 2}
    bounds = {"n_flows": (0, None)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flows = FlowStack(PlanarFlow(self.latent_dim) for _ in range(self.hp["n_flows"]))

    def flow(self, z0: torch.Tensor, q: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flows(z0)           # the same flow for every x: q is not used
