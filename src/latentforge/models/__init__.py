"""Model registry: adding a model is one file plus one line in MODELS.

Models never import the stages above them (train, estimator, workflows, cli); optional
capabilities are class attributes and methods with defaults on :class:`BaseAutoencoder`.
"""

from __future__ import annotations

from typing import Any

from ..errors import unknown_name_error
from .ae import AE
from .ard_vae import ARDVAE
from .bae import BAE
from .base import BaseAutoencoder
from .beta_tc_vae import BetaTCVAE
from .beta_vae import BetaVAE
from .blocks import Architecture
from .cae import CAE
from .dae import DAE
from .factor_vae import FactorVAE
from .iaf_vae import IAFVAE
from .info_vae import InfoVAE
from .iwae import CIWAE, IWAE, MIWAE, PIWAE
from .lorae import LoRAE
from .matryoshka_ae import MatryoshkaAE
from .planar_vae import PlanarVAE
from .qlae import QLAE
from .radial_vae import RadialVAE
from .rae import RAE
from .svae import SVAE
from .swae import SWAE
from .topk_ae import TopKAE
from .vae import VAE
from .vamp import VAMP
from .vq_vae import VQVAE
from .wae_mmd import WAEMMD

MODELS: dict[str, type[BaseAutoencoder]] = {
    "ae": AE, "dae": DAE, "cae": CAE, "lorae": LoRAE, "topk_ae": TopKAE, "matryoshka_ae": MatryoshkaAE,
    "vae": VAE, "beta_vae": BetaVAE, "iwae": IWAE, "miwae": MIWAE, "piwae": PIWAE, "ciwae": CIWAE,
    "info_vae": InfoVAE, "wae_mmd": WAEMMD, "ard_vae": ARDVAE,
    "beta_tc_vae": BetaTCVAE, "factor_vae": FactorVAE, "vamp": VAMP,
    "planar_vae": PlanarVAE, "radial_vae": RadialVAE, "iaf_vae": IAFVAE, "swae": SWAE, "vq_vae": VQVAE, "qlae": QLAE,
    "bae": BAE,
    "rae": RAE, "svae": SVAE,
}


def get_model_class(name: str) -> type[BaseAutoencoder]:
    if name not in MODELS:
        raise unknown_name_error("model", name, MODELS)
    return MODELS[name]


def build_model(
    name: str, input_shape: tuple[int, ...], layout: list[tuple[str, int, int]], latent_dim: int,
    architecture: Architecture | dict[str, Any] | None = None, hyperparameters: dict[str, Any] | None = None,
) -> BaseAutoencoder:
    arch = Architecture(**architecture) if isinstance(architecture, dict) else architecture
    return get_model_class(name)(input_shape, layout, latent_dim, arch, **(hyperparameters or {}))


__all__ = ["AE", "MODELS", "SWAE", "VAE", "Architecture", "BaseAutoencoder", "build_model", "get_model_class"]
