"""Generate by sampling codes: mixtures fitted on training codes, or the codes themselves.

``gmm``: scikit-learn ``GaussianMixture`` (full covariance). ``dpmm``: ``BayesianGaussianMixture``
with a Dirichlet-process prior on the weights (it switches off unneeded components).
``empirical``: resample training codes (for quantised models, whose codes are discrete).
``two_stage``: a second small VAE fitted on the codes, sampled by decoding N(0, I) through it
(Dai & Wipf 2019; see ``two_stage_sampler``).
``maf``: a masked autoregressive flow fitted by maximum likelihood on the standardised codes
(Papamakarios et al. 2017; see ``flow_sampler``).
Samplers are fitted from the training codes saved in the artifact, so nothing but arrays is stored.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, unknown_name_error

CODE_SAMPLERS = ("gmm", "dpmm", "empirical", "two_stage", "maf")


class GaussianMixtureSampler:
    def __init__(self, weights: np.ndarray, means: np.ndarray, chol: np.ndarray):
        self.weights, self.means, self.chol = weights, means, chol

    @classmethod
    def fit(cls, codes: np.ndarray, n_components: int = 10, seed: int = 0,
            dirichlet_process: bool = False) -> "GaussianMixtureSampler":
        from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

        k = max(1, min(n_components, len(codes) // 2))
        if dirichlet_process:
            gm = BayesianGaussianMixture(n_components=k, covariance_type="full", reg_covar=1e-5,
                                         weight_concentration_prior_type="dirichlet_process",
                                         max_iter=500, random_state=seed).fit(codes)
        else:
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-5, random_state=seed).fit(codes)
        return cls(gm.weights_, gm.means_, np.linalg.cholesky(gm.covariances_))

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        which = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        eps = rng.standard_normal((n, self.means.shape[1]))
        return self.means[which] + np.einsum("nij,nj->ni", self.chol[which], eps)


class EmpiricalCodeSampler:
    """Draw training codes uniformly with replacement: the codes' empirical distribution."""

    def __init__(self, codes: np.ndarray):
        self.codes = codes

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        return self.codes[np.random.default_rng(seed).integers(0, len(self.codes), n)]


def fit_code_sampler(kind: str, codes: np.ndarray, seed: int = 0, n_components: int = 10):
    """A fitted sampler of the given kind (see CODE_SAMPLERS)."""
    if kind not in CODE_SAMPLERS:
        raise unknown_name_error("code sampler", kind, CODE_SAMPLERS)
    codes = np.asarray(codes, dtype=np.float64)
    if len(codes) < 2:
        raise InputError("fitting a code sampler needs at least 2 training codes.")
    if kind == "empirical":
        return EmpiricalCodeSampler(codes)
    if kind == "two_stage":
        from .two_stage_sampler import TwoStageVAESampler

        return TwoStageVAESampler.fit(codes, seed)
    if kind == "maf":
        from .flow_sampler import MAFSampler

        return MAFSampler.fit(codes, seed)
    return GaussianMixtureSampler.fit(codes, n_components, seed, dirichlet_process=kind == "dpmm")
