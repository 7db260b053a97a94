"""VAE with a radial-flow posterior (Rezende & Mohamed 2015, "Variational Inference with
Normalizing Flows"; pythae 0.1.2's ``VAE_LinNF`` with Radial layers).

Encoder output: mean and log-variance of q₀(z₀|x) = N(μ, diag σ²), as in VAE; z₀ is then pushed
through K = ``n_flows`` radial layers f(z) = z + β·(z − c)/(α + ‖z − c‖)
(``models.flows.RadialFlow``; α > 0 and β ≥ −α keep each layer invertible). As in pythae's
VAE_LinNF, the flow parameters (centre c, α, β of each layer) are free parameters shared by all
inputs, not amortised (not predicted by the encoder per x). K defaults to 2, pythae's default
number of layers.

Loss: −ELBO with one reparameterised draw, reconstruction NLL of z_K plus the one-sample KL
log q_K(z_K|x) − log N(z_K; 0, I), where log q_K(z_K|x) = log q₀(z₀|x) − Σ_k log|det J_k|.
Embedding: the flow applied to μ. ``log_likelihood`` importance-samples with q_K.
Sampler: z ~ N(0, I), decoded.
"""

from __future__ import annotations

import torch

from .flows import FlowPosteriorVAE, FlowStack, RadialFlow


class RadialVAE(FlowPosteriorVAE):
    name = "radial_vae"
    description = "VAE whose Gaussian posterior is refined by K radial flows (not amortised, as pythae's VAE_LinNF)"
    hyperparameters = {"n_flows": 2}
    bounds = {"n_flows": (0, None)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flows = FlowStack(RadialFlow(self.latent_dim) for _ in range(self.hp["n_flows"]))

    def flow(self, z0: torch.Tensor, q: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flows(z0)           # the same flow for every x: q is not used
