"""What every sparse-autoencoder architecture shares: the linear encoder and decoder, input
scaling, the unit-norm dictionary, dead-latent bookkeeping and the AuxK loss.

Shapes: activations ``x`` (n, d) → pre-activations (n, F) → codes (n, F), mostly zeros → the
reconstruction (n, d). With ``W_enc`` (d, F), ``W_dec`` (F, d):

    x_s   = x · scale                                   (a fixed factor making E‖x_s‖² = d)
    pre   = (x_s − b_dec) W_enc + b_enc                 (pre-encoder bias subtraction)
    codes = activation(pre)                             (the architecture's part)
    x̂     = (codes W_dec + b_dec) / scale

The decoder's rows (the dictionary) are kept at unit norm: before each optimizer step the part of
their gradient parallel to each row is removed, and after it the rows are renormalised (Bricken et
al. 2023; Gao et al. 2024). The loss is the squared error summed over the d dimensions of the
scaled activations, averaged over tokens; there is no per-dimension standardisation.

Codes of the top-k family come as :class:`SparseCodes` (values and indices), decoded with
``embedding_bag``: k rows per token instead of a dense (n, F) × (F, d) product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError, unknown_name_error
from ...models.base import TrainHooks


@dataclass
class SparseCodes:
    """Codes as ``values[j]`` at feature ``indices[j]`` of token ``rows[j]``, tokens in order:
    ``offsets[i]`` is where token i's entries start (``embedding_bag``'s convention)."""

    values: torch.Tensor
    indices: torch.Tensor
    offsets: torch.Tensor
    n_tokens: int
    n_features: int

    @classmethod
    def per_row(cls, values: torch.Tensor, indices: torch.Tensor, n_features: int) -> "SparseCodes":
        """The same number of entries per token: ``values``/``indices`` of shape (n, k)."""
        n, k = values.shape
        offsets = torch.arange(0, n * k, k, device=values.device)
        return cls(values.reshape(-1), indices.reshape(-1), offsets, n, n_features)

    def decode(self, W_dec: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Σ_j value_j · W_dec[index_j] per token (no bias); ``keep`` (bool per entry) masks entries out."""
        values = self.values if keep is None else self.values * keep
        return F.embedding_bag(self.indices, W_dec, self.offsets, mode="sum", per_sample_weights=values)

    def dense(self) -> torch.Tensor:
        rows = self.rows()
        out = torch.zeros(self.n_tokens, self.n_features, dtype=self.values.dtype, device=self.values.device)
        return out.index_put_((rows, self.indices), self.values, accumulate=True)

    def rows(self) -> torch.Tensor:
        counts = torch.diff(self.offsets, append=torch.tensor([len(self.values)], device=self.offsets.device))
        return torch.repeat_interleave(torch.arange(self.n_tokens, device=self.values.device), counts)

    def fired(self) -> torch.Tensor:
        """(F,) bool: the features with a positive value for some token (no host sync)."""
        counts = torch.zeros(self.n_features, dtype=self.values.dtype, device=self.values.device)
        return counts.index_add_(0, self.indices, (self.values > 0).to(self.values.dtype)) > 0


Codes = torch.Tensor | SparseCodes


def fired_features(codes: Codes) -> torch.Tensor:
    return codes.fired() if isinstance(codes, SparseCodes) else (codes > 0).any(0)


def dense_codes(codes: Codes) -> torch.Tensor:
    return codes.dense() if isinstance(codes, SparseCodes) else codes


class SparseAutoencoderModule(TrainHooks, nn.Module):
    """One SAE architecture: subclasses define :meth:`activate` and their sparsity terms."""

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    #: the architecture's own hyper-parameters and their defaults
    hyperparameters: ClassVar[dict[str, Any]] = {}
    #: how the trainer fits it (see ``latentforge.models.BaseAutoencoder.fit_method``)
    fit_method: ClassVar[str] = "gradient"
    #: whether the AuxK loss on dead latents applies (the top-k family; L1 / L0 models revive by their penalty)
    uses_auxk: ClassVar[bool] = False
    #: the encoder starts as this multiple of the decoder's transpose (see the top-k family)
    encoder_init_scale: ClassVar[float] = 1.0

    def __init__(self, d: int, n_features: int, *, aux_k: int | None = None, aux_coefficient: float = 1 / 32,
                 dead_tokens: int | None = None, **hyperparameters: Any):
        super().__init__()
        if d < 1 or n_features < 1:
            raise InputError(f"an SAE needs d ≥ 1 and n_features ≥ 1, got d={d}, n_features={n_features}.")
        self.d, self.n_features = int(d), int(n_features)
        self.hp = self.resolve_hyperparameters(hyperparameters)
        self.aux_k = int(aux_k) if aux_k else max(1, d // 2)  # Gao et al.: k_aux = d / 2
        self.aux_coefficient = float(aux_coefficient)
        self.dead_tokens_setting = dead_tokens
        self.W_enc = nn.Parameter(torch.empty(d, n_features))
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.W_dec = nn.Parameter(torch.empty(n_features, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        #: tokens seen since each feature last fired (training only): the dead-latent clock
        self.register_buffer("tokens_since_fired", torch.zeros(n_features, dtype=torch.long))
        self.register_buffer("dead_tokens", torch.tensor(dead_tokens or 10_000_000, dtype=torch.long))
        self.register_buffer("sparsity_warmup", torch.zeros((), dtype=torch.long))
        with torch.no_grad():
            self.W_dec.copy_(F.normalize(torch.randn(n_features, d), dim=1))
            self.W_enc.copy_(self.encoder_init_scale * self.W_dec.T)

    @classmethod
    def resolve_hyperparameters(cls, given: dict[str, Any]) -> dict[str, Any]:
        out = dict(cls.hyperparameters)
        for key, value in given.items():
            if key not in cls.hyperparameters:
                raise unknown_name_error(f"setting of SAE architecture {cls.name!r}", key, cls.hyperparameters)
            out[key] = value
        return out

    def checked_k(self) -> int:
        """The ``k`` setting of the top-k family, which must lie in [1, n_features]."""
        if not 1 <= int(self.hp["k"]) <= self.n_features:
            raise InputError(f"k must lie in [1, n_features={self.n_features}], got {self.hp['k']!r}.")
        return int(self.hp["k"])

    # -- set-up ----------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, sample: torch.Tensor) -> None:
        """Data-dependent initialisation from a sample of raw activations (n, d): the input scale
        (E‖x · scale‖² = d), the decoder bias at the sample's geometric median, random unit-norm
        dictionary rows and the encoder as ``encoder_init_scale`` × their transpose."""
        sample = sample.to(self.W_dec.device, torch.float32)
        mean_sq = sample.pow(2).sum(1).mean()
        if not torch.isfinite(mean_sq) or mean_sq <= 0:
            raise InputError("the activations are all zero or not finite; an SAE cannot be fitted to them.")
        self.scale.fill_(math.sqrt(self.d / float(mean_sq)))
        self.b_dec.copy_(geometric_median(sample * self.scale))
        self.W_enc.copy_(self.encoder_init_scale * self.W_dec.T)

    def finish_training(self, sample: torch.Tensor) -> None:
        """Called once after training with a sample of raw training activations; architectures
        whose inference rule is estimated during training (BatchTopK's threshold) settle it here."""

    def begin_training(self, total_steps: int, batch_size: int) -> None:
        """Schedules that depend on the run's length: dead = silent for a twentieth of the run's
        tokens (at most Gao et al.'s 10M, at least 4 batches) unless set; the sparsity coefficient
        warms up over the first 5% of steps."""
        if self.dead_tokens_setting is None:
            run_tokens = total_steps * batch_size
            self.dead_tokens.fill_(int(min(10_000_000, max(4 * batch_size, run_tokens // 20))))
        self.sparsity_warmup.fill_(total_steps // 20)

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": 0.0}]

    def config(self) -> dict[str, Any]:
        return {"architecture": self.name, "d": self.d, "n_features": self.n_features, "aux_k": self.aux_k,
                "aux_coefficient": self.aux_coefficient, "dead_tokens": self.dead_tokens_setting, **self.hp}

    # -- the map ---------------------------------------------------------------------------
    def pre_activation(self, x_scaled: torch.Tensor) -> torch.Tensor:
        return (x_scaled - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> Codes:
        """Codes from pre-activations (the architecture's own part)."""
        raise NotImplementedError

    def decode_scaled(self, codes: Codes) -> torch.Tensor:
        if isinstance(codes, SparseCodes):
            return codes.decode(self.W_dec) + self.b_dec
        return codes @ self.W_dec + self.b_dec

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Dense codes (n, F) of raw activations x (n, d)."""
        return dense_codes(self.activate(self.pre_activation(x * self.scale)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Raw-scale reconstructions of dense codes."""
        return self.decode_scaled(codes) / self.scale

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_scaled(self.activate(self.pre_activation(x * self.scale))) / self.scale

    # -- training --------------------------------------------------------------------------
    def sparsity_coefficient(self, value: float) -> torch.Tensor:
        """``value`` ramped up linearly over the warm-up steps, computed on the device (no host sync)."""
        warm = self.sparsity_warmup
        ramp = ((self.step + 1).float() / warm.clamp_min(1).float()).clamp(max=1.0)
        return value * torch.where(warm > 0, ramp, torch.ones_like(ramp))

    def sparsity_terms(self, pre: torch.Tensor, codes: Codes) -> dict[str, torch.Tensor]:
        """Extra loss terms of the architecture (an L1 or L0 penalty); none for the top-k family."""
        return {}

    def reconstruction_terms(self, x_scaled: torch.Tensor, pre: torch.Tensor, codes: Codes) -> dict[str, torch.Tensor]:
        """The reconstruction term(s); Matryoshka adds its prefix losses."""
        recon = self.decode_scaled(codes)
        return {"mse": (recon - x_scaled).pow(2).sum(1).mean(), "_recon": recon}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x_scaled = x * self.scale
        pre = self.pre_activation(x_scaled)
        codes = self.activate(pre)
        terms = self.reconstruction_terms(x_scaled, pre, codes)
        recon = terms.pop("_recon")
        terms.update(self.sparsity_terms(pre, codes))
        if self.training:
            fired = fired_features(codes)
            if self.uses_auxk:
                terms["aux"] = self.auxk_loss(x_scaled - recon.detach(), pre)
            self.tokens_since_fired.add_(len(x)).masked_fill_(fired, 0)
        terms["total"] = sum(terms.values())
        return terms

    def auxk_loss(self, residual: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """Gao et al.'s AuxK: the top-``aux_k`` dead latents reconstruct the residual (scaled by the
        share of dead latents, as SAELens does), so dead latents get gradient and come back."""
        dead = self.tokens_since_fired >= self.dead_tokens
        if pre.device.type == "cpu":
            # on CPU looking at the dead set is free: skip AuxK when none is dead, else work on the
            # dead columns only (a few percent of F) with a dense product, much cheaper here than
            # embedding_bag and its backward
            dead_columns = dead.nonzero().squeeze(1)
            if len(dead_columns) == 0:
                return pre.new_zeros(())
            codes = pre[:, dead_columns].clamp_min(0)
            if len(dead_columns) > self.aux_k:  # keep each token's aux_k largest
                kth = codes.detach().topk(self.aux_k, dim=1).values[:, -1:]
                codes = codes * (codes >= kth)
            aux = codes @ self.W_dec[dead_columns]
        else:
            # no host sync on an accelerator: live latents are masked to -inf, so fewer than k dead
            # ones leave zeros (after the ReLU)
            values, indices = pre.masked_fill(~dead, float("-inf")).topk(min(self.aux_k, self.n_features), dim=1)
            aux = SparseCodes.per_row(values.clamp_min(0), indices, self.n_features).decode(self.W_dec)
        weight = self.aux_coefficient * (dead.sum().float() / self.aux_k).clamp(max=1.0)
        return weight * (aux - residual).pow(2).sum(1).mean()

    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """Remove the gradient component parallel to each (unit-norm) dictionary row."""
        g = self.W_dec.grad
        if g is not None:
            g.sub_((g * self.W_dec).sum(1, keepdim=True) * self.W_dec)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        self.W_dec.copy_(F.normalize(self.W_dec, dim=1))
        self.step.add_(1)


@torch.no_grad()
def geometric_median(X: torch.Tensor, iterations: int = 200, tol: float = 1e-7) -> torch.Tensor:
    """The point minimising the sum of Euclidean distances to the rows of X (Weiszfeld's algorithm)."""
    X = X.double()
    y = X.mean(0)
    for _ in range(iterations):
        w = 1.0 / (X - y).norm(dim=1).clamp_min(1e-12)
        y_next = (w[:, None] * X).sum(0) / w.sum()
        moved = (y_next - y).norm()
        y = y_next
        if moved <= tol * max(1.0, float(y.norm())):
            break
    return y.float()
