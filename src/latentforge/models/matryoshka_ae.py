"""Matryoshka autoencoder: nested codes whose prefixes are themselves good codes (Kusupati et al.,
"Matryoshka Representation Learning", 2022), trained on a fixed list of prefix sizes as in
Starbucks (Zhuang et al., 2024) rather than a random prefix per step.

Encoder output: the code z (latent_dim units). Loss: Σ_m w_m · reconstruction NLL of x decoded
from the prefix z[:, :m], over ``prefix_sizes`` (a comma-separated list; sizes above latent_dim
are dropped and latent_dim is always included), with MRL's relative importance w_m = 1
(``weighting="uniform"``), w_m = √(m/d) (``"sqrt_size"``) or w_m = m/d (``"size"``), which shift
the weight towards the full code. Sampler: none of its own (a mixture fitted on
training codes).

How a prefix is decoded (``prefix_decoder``). MRL puts one linear classifier on each prefix
size; its cheaper MRL-E variant slices one shared classifier, which is what zero-filling the
units after the prefix and running one decoder amounts to. Here the decoder plays the
classifier's role:

* ``"shared"`` (MRL-E): one decoder; a prefix of m units is decoded with units m+1…d set to 0;
* ``"first_layer"`` (MRL): one decoder, but each listed size has its own first (linear) layer,
  which reads only the m prefix units; the layers after it are shared;
* ``"separate"``: each listed size has a whole decoder of its own, reading only its m units.

With per-size parts, a size m that is not listed is decoded by the part of the largest listed
size below m (the units after it are ignored), or by the smallest listed part, zero-filled, when
m is below every listed size. The full code always goes through ``self.decoder``.

``truncation`` replaces the fixed list by a random prefix per sample while training: Maestro's
ordered dropout (Horváth et al., 2024; ``"ordered"``: b uniform on 1…d) or Rippel et al.'s
nested dropout (2014; ``"nested"``: b geometric, P(b) = ρ^(b−1)(1−ρ), the tail mass on b = d,
ρ = ``nested_rho``); the loss is the mean NLL of each sample decoded from its own prefix. In
evaluation mode (validation, early stopping) the fixed-list loss is used, so it is deterministic.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..errors import InputError
from .base import BaseAutoencoder
from .blocks import build_decoder


def parse_prefix_sizes(spec: str, latent_dim: int) -> list[int]:
    """Sorted distinct prefix sizes from "2,4,8": those ≤ latent_dim, plus latent_dim itself."""
    try:
        sizes = [int(part) for part in str(spec).replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(f"prefix_sizes must be comma-separated whole numbers like '2,4,8', got {spec!r}.") from None
    if any(s < 1 for s in sizes):
        raise InputError(f"prefix_sizes must all be at least 1, got {spec!r}.")
    return sorted({s for s in sizes if s <= latent_dim} | {latent_dim})


def nested_dropout_probabilities(latent_dim: int, rho: float) -> torch.Tensor:
    """P(b) for b = 1…d of nested dropout: geometric ρ^(b−1)(1−ρ), the tail mass ρ^(d−1) on b = d."""
    b = torch.arange(1, latent_dim + 1, dtype=torch.float64)
    p = rho ** (b - 1) * (1 - rho)
    p[-1] = rho ** (latent_dim - 1)
    return p


class MatryoshkaAE(BaseAutoencoder):
    name = "matryoshka_ae"
    description = "Matryoshka autoencoder: every code prefix in a fixed list of sizes reconstructs the input"
    hyperparameters = {"prefix_sizes": "2,4,8,16,32,64,128", "prefix_decoder": "separate", "weighting": "sqrt_size",
                       "truncation": "fixed", "nested_rho": 0.9}
    choices = {"prefix_decoder": ("shared", "first_layer", "separate"), "weighting": ("uniform", "sqrt_size", "size"),
               "truncation": ("fixed", "ordered", "nested")}
    bounds = {"nested_rho": (0.0, 0.999)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: the prefix sizes the loss sums over, ascending, always ending with latent_dim.
        self.prefix_sizes = parse_prefix_sizes(self.hp["prefix_sizes"], self.latent_dim)
        smaller = self.prefix_sizes[:-1]
        kind = self.hp["prefix_decoder"]
        if kind == "separate":           # a whole decoder per listed size below latent_dim
            self.prefix_decoders = nn.ModuleList(build_decoder(m, self.input_shape, self.architecture) for m in smaller)
        elif kind == "first_layer":      # a first linear layer per listed size, the rest shared
            self._first = next(n for n, mod in self.decoder.named_modules() if isinstance(mod, nn.Linear))
            width = self.decoder.get_submodule(self._first).out_features
            self.prefix_first_layers = nn.ModuleList(nn.Linear(m, width) for m in smaller)

    def _decode_listed(self, z_prefix: torch.Tensor, i: int) -> torch.Tensor:
        """Decoder output of the i-th listed size for prefixes (N, m ≤ that size), zero-filling up to it."""
        size = self.prefix_sizes[i]
        z = torch.nn.functional.pad(z_prefix, (0, size - z_prefix.shape[1]))
        if size == self.latent_dim or self.hp["prefix_decoder"] == "shared":
            return self.decode(torch.nn.functional.pad(z, (0, self.latent_dim - size)))
        if self.hp["prefix_decoder"] == "separate":
            return self.prefix_decoders[i](z)
        layer = self.prefix_first_layers[i]
        # the shared decoder with its first layer swapped for this size's: a weight that reads only
        # the first `size` units of a zero-filled code (the rest of the columns are zero)
        weight = torch.nn.functional.pad(layer.weight, (0, self.latent_dim - size))
        params = {f"{self._first}.weight": weight, f"{self._first}.bias": layer.bias}
        return functional_call(self.decoder, params, (torch.nn.functional.pad(z, (0, self.latent_dim - size)),))

    def prefix_part(self, m: int) -> int:
        """Index of the listed size whose decoder part decodes an m-unit prefix: m itself if listed,
        else the largest listed size below m (its extra units are ignored: a part never saw them),
        or the smallest listed size (zero-filled) when m is below them all."""
        below = [i for i, s in enumerate(self.prefix_sizes) if s <= m]
        return below[-1] if below else 0

    def decode_prefix(self, z_prefix: torch.Tensor) -> torch.Tensor:
        """Decoder output for codes truncated to their first m units (N, m)."""
        m = z_prefix.shape[1]
        if not 1 <= m <= self.latent_dim:
            raise InputError(f"a prefix has between 1 and {self.latent_dim} units, got {m}.")
        if self.hp["prefix_decoder"] == "shared":   # one decoder: every unit of the prefix, zero-filled
            return self.decode(torch.nn.functional.pad(z_prefix, (0, self.latent_dim - m)))
        i = self.prefix_part(m)
        return self._decode_listed(z_prefix[:, :self.prefix_sizes[i]], i)

    def reconstruct_prefix(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Expected features of x reconstructed from the first m code units."""
        return self.likelihood.mean(self.decode_prefix(self.embed(x)[:, :m]))

    def sample_truncation(self, n: int) -> torch.Tensor:
        """Prefix lengths b (n,) in 1…d for ordered (uniform) or nested (geometric) dropout."""
        if self.hp["truncation"] == "ordered":
            return torch.randint(1, self.latent_dim + 1, (n,))
        p = nested_dropout_probabilities(self.latent_dim, self.hp["nested_rho"]).float()
        return torch.multinomial(p, n, replacement=True) + 1

    def _random_prefix_nll(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean NLL of each sample decoded from its own random prefix z[i, :b_i]."""
        b = self.sample_truncation(len(z)).to(z.device)
        z = z * (torch.arange(self.latent_dim, device=z.device) < b[:, None]).to(z.dtype)
        if self.hp["prefix_decoder"] == "shared":
            return self.likelihood.nll(self.decode(z), x).mean()
        part = torch.tensor([self.prefix_part(int(v)) for v in b], device=z.device)
        nll = z.new_zeros(len(z))
        for i, size in enumerate(self.prefix_sizes):     # one pass per decoder part, over its samples
            rows = part == i
            if rows.any():
                out = self._decode_listed(z[rows, :size], i)
                nll = nll.index_put((rows.nonzero()[:, 0],), self.likelihood.nll(out, x[rows]))
        return nll.mean()

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)["z"]
        if self.training and self.hp["truncation"] != "fixed":
            recon = self._random_prefix_nll(z, x)
            return {"reconstruction": recon, "total": recon}
        # "reconstruction" is the full code's term (as in every model), "reconstruction_m" a prefix's.
        terms = {(f"reconstruction_{m}" if m < self.latent_dim else "reconstruction"):
                 self.likelihood.nll(self.decode_prefix(z[:, :m]), x).mean() for m in self.prefix_sizes}
        power = {"uniform": 0.0, "sqrt_size": 0.5, "size": 1.0}[self.hp["weighting"]]
        weights = [(m / self.latent_dim) ** power for m in self.prefix_sizes]
        terms["total"] = sum(w * t for w, t in zip(weights, terms.values()))
        return terms
