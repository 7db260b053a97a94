"""ReLU SAE with an L1 penalty weighted by the decoder norms (Bricken et al., "Towards
Monosemanticity", 2023; the norm weighting of Anthropic's April 2024 update).

codes = ReLU(pre); loss = ‖x_s − x̂_s‖² + λ Σ_i codes_i ‖W_dec,i‖, with λ (``l1_coefficient``)
warmed up linearly over the first 5% of the steps. The dictionary rows are unit-norm, so the
weighting is 1 here; it is kept so the penalty means the same if the constraint is lifted.
"""

from __future__ import annotations

import torch

from .base import Codes, SparseAutoencoderModule


class ReluSAE(SparseAutoencoderModule):
    name = "relu"
    description = "ReLU codes with an L1 penalty weighted by the decoder norms"
    hyperparameters = {"l1_coefficient": 1.0}

    def activate(self, pre: torch.Tensor) -> Codes:
        return pre.relu()

    def sparsity_terms(self, pre: torch.Tensor, codes: Codes) -> dict[str, torch.Tensor]:
        l1 = (codes * self.W_dec.norm(dim=1)).sum(1).mean()
        return {"l1": self.sparsity_coefficient(self.hp["l1_coefficient"]) * l1}
