"""The ``maf`` code sampler: a masked autoregressive flow (Papamakarios, Pavlakou & Murray 2017,
"Masked Autoregressive Flow for Density Estimation") fitted by maximum likelihood on training codes.

Density. Codes c are standardised per axis, x = (c − mean) / scale, then pass through
``N_LAYERS`` MAF layers, each u = (x − m(x))·exp(−s(x)) with (m, s) from a MADE
(``latentforge.models.flows.MADE``) autoregressive in x, the variable order reversed from one
layer to the next; the last u is N(0, I). So

    log p(c) = log N(u; 0, I) − Σ_layers Σ_i s_i − Σ_i log scale_i.

Fitting: Adam on minibatches of the mean negative log-likelihood; a tenth of the codes (at least
one) is held out, training stops when the held-out likelihood has not improved for ``PATIENCE``
epochs and the best held-out weights are kept. Initial weights, the split and the batch order all
come from ``seed``, and everything runs on the CPU in float32, so the same codes, seed and thread
count give the same sampler bit for bit: the estimator refits it from the saved codes after
loading (nothing but the codes is stored).

Sampling: u ~ N(0, I) from ``numpy.random.default_rng(seed)``, inverted layer by layer in reverse;
inverting a layer takes one MADE pass per dimension (x_i = u_i·exp(s_i) + m_i needs x_{<i}).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..models.flows import MADE

N_LAYERS = 5            # MADE layers (the paper's MAF 5)
HIDDEN = 64             # units per hidden layer
N_HIDDEN = 1            # hidden layers per MADE (two overfitted 1,300 digits codes)
LOG_SCALE_BOUND = 5.0   # |s| ≤ 5 (soft): a constant code axis cannot drive the density to infinity
LR, WEIGHT_DECAY, BATCH_SIZE = 3e-3, 1e-6, 512
MAX_EPOCHS, PATIENCE = 100, 5
MAX_STEPS = 1_000       # caps the fitting time on large code sets


class MAFLayer(nn.Module):
    """u = (x − m(x))·exp(−s(x)) (density direction) and its inverse (sampling direction)."""

    def __init__(self, dim: int, order: torch.Tensor):
        super().__init__()
        self.made = MADE(dim, HIDDEN, N_HIDDEN, order=order)

    def conditioner(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self.made(x)
        return m, LOG_SCALE_BOUND * torch.tanh(s / LOG_SCALE_BOUND)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self.conditioner(x)
        return (x - m) * torch.exp(-s), -s.sum(-1)

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(u)
        for i in self.made.order.tolist():      # x_i needs x_{<i} in the layer's order
            m, s = self.conditioner(x)
            x[:, i] = u[:, i] * torch.exp(s[:, i]) + m[:, i]
        return x


class MAF(nn.Module):
    """A stack of MAF layers on R^d; the order is reversed between layers."""

    def __init__(self, dim: int, n_layers: int = N_LAYERS):
        super().__init__()
        orders = [torch.arange(dim), torch.arange(dim).flip(0)]
        self.layers = nn.ModuleList(MAFLayer(dim, orders[k % 2]) for k in range(n_layers))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, step = layer(x)
            log_det = log_det + step
        return -0.5 * (x.pow(2).sum(-1) + x.shape[-1] * math.log(2 * math.pi)) + log_det

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            u = layer.inverse(u)
        return u


class MAFSampler:
    """A fitted MAF over codes: ``log_density(codes)`` and ``sample(n, seed)``."""

    def __init__(self, flow: MAF, mean: np.ndarray, scale: np.ndarray):
        self.flow, self.mean, self.scale = flow.eval(), mean, scale

    @classmethod
    def fit(cls, codes: np.ndarray, seed: int = 0) -> "MAFSampler":
        codes = np.asarray(codes, dtype=np.float64)
        mean = codes.mean(0)
        scale = np.maximum(codes.std(0), 1e-6 * np.maximum(1.0, np.abs(mean)))   # constant axes stay finite
        x = torch.from_numpy((codes - mean) / scale).float()
        with torch.random.fork_rng(devices=[]):     # fixed initial weights; the caller's RNG untouched
            torch.manual_seed(seed)
            flow = MAF(x.shape[1])
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(x), generator=gen)
        n_val = max(1, len(x) // 10)
        val, train = x[perm[:n_val]], x[perm[n_val:]]
        opt = torch.optim.Adam(flow.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        best, best_state, stale, steps = math.inf, copy.deepcopy(flow.state_dict()), 0, 0
        for _ in range(MAX_EPOCHS):
            flow.train()
            for batch in torch.randperm(len(train), generator=gen).split(BATCH_SIZE):
                loss = -flow.log_prob(train[batch]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
            flow.eval()
            with torch.no_grad():
                held_out = float(-flow.log_prob(val).mean())
            if held_out < best - 1e-4:
                best, best_state, stale = held_out, copy.deepcopy(flow.state_dict()), 0
            else:
                stale += 1
            if stale >= PATIENCE or steps >= MAX_STEPS or not math.isfinite(held_out):
                break
        flow.load_state_dict(best_state)
        return cls(flow, mean, scale)

    @torch.no_grad()
    def log_density(self, codes: np.ndarray) -> np.ndarray:
        """log p(c) per row under the fitted flow, in the codes' own units."""
        x = torch.from_numpy((np.asarray(codes, dtype=np.float64) - self.mean) / self.scale).float()
        return self.flow.log_prob(x).double().numpy() - np.log(self.scale).sum()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        u = np.random.default_rng(seed).standard_normal((n, len(self.mean)))
        x = self.flow.inverse(torch.from_numpy(u).float()).double().numpy()
        return self.mean + x * self.scale
