"""Regularised autoencoder (Ghosh, Sajjadi, Vergari, Black & Schölkopf, "From Variational to
Deterministic Autoencoders", ICLR 2020).

The noise a Gaussian VAE injects into its decoder's input is read as a smoothness regulariser on
the decoder, and replaced by an explicit one on a deterministic autoencoder.
Encoder output: the code z (``latent_dim`` numbers, no distribution).
Loss: L_rec + β·½‖z‖² + λ·L_reg, with β = ``embedding_weight`` (keeps the code space bounded,
since there is no prior to do it) and the decoder regulariser chosen by ``regularisation``:

* ``"l2"`` (the paper's RAE-L2, Tikhonov): ‖θ_dec‖², i.e. weight decay on the decoder's
  parameters only. It is applied by the optimiser through :meth:`RAE.parameter_groups` (the
  trainer's decoupled AdamW decay, at the training option ``weight_decay``, on every decoder
  parameter; none on the encoder, whose code is held in by β·½‖z‖² instead), so it is no loss term;
* ``"gradient_penalty"`` (RAE-GP): λ·‖∂D(z)/∂z‖²_F, the squared Frobenius norm of the decoder's
  Jacobian at each code, averaged over the batch, λ = ``reg_weight``. It is computed exactly and
  kept differentiable: forward-mode autograd gives the Jacobian's columns J e_j, one per
  latent dimension, in one pass over the rows repeated d times (cheap for the narrow codes an
  autoencoder has), and the loss backpropagates through them (second-order autograd).
  pythae's RAE_GP instead differentiates the *sum* of the outputs with respect to the *input* x
  (through the encoder too), which is ‖1^T J_{D∘E}‖², a different quantity from the paper's.

Defaults as pythae 0.1.2's RAE_L2/RAE_GP: embedding_weight 1e-4, reg_weight 1e-7 (on the
per-sample summed reconstruction NLL, the same scale as pythae's summed squared error).
Sampler: none of its own. The paper's ex-post density estimation is a Gaussian mixture fitted on
the training codes, which is the estimator's ``gmm`` code sampler (its default for models
without a prior).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from .base import BaseAutoencoder

REGULARISATIONS = ("l2", "gradient_penalty")


def _composite_norm(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    """The output of a LayerNorm / GroupNorm recomputed from elementary ops. PyTorch's fused
    kernels treat their saved mean and 1/σ as constants in the forward-mode (tangent) formula, so
    backpropagating through the tangent misses their dependence on the input and the weights
    (checked against finite differences); the elementary ops have exact formulas."""
    x = inputs[0]
    if isinstance(module, nn.LayerNorm):
        dims = tuple(range(x.ndim - len(module.normalized_shape), x.ndim))
        mean = x.mean(dims, keepdim=True)
        y = (x - mean) / torch.sqrt((x - mean).pow(2).mean(dims, keepdim=True) + module.eps)
        return y * module.weight + module.bias if module.elementwise_affine else y
    g = x.reshape(x.shape[0], module.num_groups, -1)
    mean = g.mean(2, keepdim=True)
    y = ((g - mean) / torch.sqrt((g - mean).pow(2).mean(2, keepdim=True) + module.eps)).reshape(x.shape)
    if not module.affine:
        return y
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return y * module.weight.view(shape) + module.bias.view(shape)


def decoder_jacobian_sq_norm(decoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """‖∂decoder(z_i)/∂z_i‖²_F per row (N,), differentiable in the decoder's weights and in z.

    Forward mode gives the Jacobian's columns: the rows are repeated once per latent dimension j,
    each copy carrying the tangent e_j, so one dual forward pass yields J e_j for every j and row,
    and backpropagating through those tangents is second-order autograd. (A double-backward
    "dummy cotangent" trick would need third-order derivatives, which the fused norm kernels do
    not give correctly.) Rows must not interact in the decoder: batch norm in training mode would
    make them."""
    n, d = z.shape
    directions = torch.eye(d, dtype=z.dtype, device=z.device).repeat_interleave(n, dim=0)   # (d·N, d)
    hooks = [m.register_forward_hook(_composite_norm) for m in decoder.modules()
             if isinstance(m, (nn.LayerNorm, nn.GroupNorm))]
    try:
        with fwAD.dual_level(), warnings.catch_warnings():
            # torch's first make_dual loads its jvp decompositions through the deprecated torch.jit.script
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            out = decoder(fwAD.make_dual(z.repeat(d, 1), directions))
            columns = fwAD.unpack_dual(out).tangent                                          # (d·N, D)
    finally:
        for h in hooks:
            h.remove()
    return columns.pow(2).sum(1).view(d, n).sum(0)


class RAE(BaseAutoencoder):
    name = "rae"
    description = "regularised AE: reconstruction + β·½‖z‖² + decoder L2 weight decay or Jacobian penalty"
    hyperparameters = {"regularisation": "l2", "embedding_weight": 1e-4, "reg_weight": 1e-7}
    bounds = {"embedding_weight": (0.0, None), "reg_weight": (0.0, None)}
    choices = {"regularisation": REGULARISATIONS}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)["z"]
        recon = self.likelihood.nll(self.decode(z), x).mean()
        embedding = 0.5 * z.pow(2).sum(1).mean()
        out = {"reconstruction": recon, "embedding": embedding}
        total = recon + self.hp["embedding_weight"] * embedding
        if self.hp["regularisation"] == "gradient_penalty":
            out["gradient_penalty"] = decoder_jacobian_sq_norm(self.decoder, z).mean()
            total = total + self.hp["reg_weight"] * out["gradient_penalty"]
        out["total"] = total
        return out

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """``"l2"``: the trainer's ``weight_decay`` on the decoder only (the paper's L2 term);
        ``"gradient_penalty"``: the trainer's decay on everything, as for other models."""
        if self.hp["regularisation"] != "l2":
            return super().parameter_groups(weight_decay)
        decoder = [p for p in self.decoder.parameters() if p.requires_grad]
        chosen = {id(p) for p in decoder}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in chosen]
        groups = [{"params": decoder, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]
