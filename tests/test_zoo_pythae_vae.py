"""Property tests for three models from pythae's zoo: beta_tc_vae (and its KL-decomposition
estimator), factor_vae and vamp."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import distributions as D

from conftest import pixel_model
from latentforge.models import Architecture, build_model
from latentforge.models.beta_tc_vae import kl_decomposition
from latentforge.models.factor_vae import permute_dims



def assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    # numpy's check: torch.testing's first call imports the distributed stack (seconds)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)


def posterior_draws(mean_cov: np.ndarray, n: int, std: float, seed: int = 0):
    """Rows x_i with posterior N(mu_i, std² I), mu_i ~ N(0, mean_cov), and one draw z_i each: the
    aggregate posterior of infinitely many rows is N(0, mean_cov + std² I)."""
    g = torch.Generator().manual_seed(seed)
    d = len(mean_cov)
    chol = torch.linalg.cholesky(torch.as_tensor(mean_cov, dtype=torch.float64))
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) @ chol.T
    logvar = torch.full_like(mu, 2 * math.log(std))
    z = mu + std * torch.randn(n, d, generator=g, dtype=torch.float64)
    return z, mu, logvar


# -- the β-TC-VAE estimator ---------------------------------------------------------------------

def _slow_decomposition(z, mu, logvar, n_data: int, mss: bool):
    """The three parts per row from explicit loops: weights written out from their definitions,
    densities from torch.distributions, sums of exponentials in float64."""
    b, d = z.shape
    std = (0.5 * logvar).exp()
    out = {"mi": [], "tc": [], "dim_kl": []}
    for i in range(b):
        def weight(j):
            if not mss:
                return 1.0 / (n_data * b)
            return 1.0 / n_data if j == i else (n_data - 1) / (n_data * (b - 1))

        joint = sum(weight(j) * math.exp(float(D.Normal(mu[j], std[j]).log_prob(z[i]).sum())) for j in range(b))
        marginals = [sum(weight(j) * math.exp(float(D.Normal(mu[j, k], std[j, k]).log_prob(z[i, k])))
                         for j in range(b)) for k in range(d)]
        log_cond = float(D.Normal(mu[i], std[i]).log_prob(z[i]).sum())
        log_prior = float(D.Normal(0.0, 1.0).log_prob(z[i]).sum())
        log_prod = sum(math.log(m) for m in marginals)
        out["mi"].append(log_cond - math.log(joint))
        out["tc"].append(math.log(joint) - log_prod)
        out["dim_kl"].append(log_prod - log_prior)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("mss", [True, False])
@pytest.mark.parametrize("n_data", [0, 50])
def test_kl_decomposition_matches_an_explicit_loop_and_sums_to_the_one_sample_kl(mss, n_data):
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(7, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(7, 3, generator=g, dtype=torch.float64) * 0.5 - 0.5
    z = mu + (0.5 * logvar).exp() * torch.randn(7, 3, generator=g, dtype=torch.float64)
    got = kl_decomposition(z, mu, logvar, n_data, use_mss=mss)
    want = _slow_decomposition(z, mu, logvar, n_data or 7, mss)
    for key in ("mi", "tc", "dim_kl"):
        np.testing.assert_allclose(got[key].numpy(), want[key], rtol=1e-9, atol=1e-9)
    one_sample_kl = (D.Normal(mu, (0.5 * logvar).exp()).log_prob(z) - D.Normal(0.0, 1.0).log_prob(z)).sum(1)
    np.testing.assert_allclose((got["mi"] + got["tc"] + got["dim_kl"]).numpy(), one_sample_kl.numpy(), rtol=1e-9)


def test_identical_posteriors_carry_no_information_and_no_total_correlation():
    # every row has the same posterior, so q(z) is that posterior: MI = TC = 0 exactly under MSS
    # (its weights sum to 1); MWS's weights sum to 1/N, so its MI reads log N.
    mu = torch.full((40, 3), 0.3, dtype=torch.float64)
    logvar = torch.full((40, 3), -0.7, dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * torch.randn(40, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mss = kl_decomposition(z, mu, logvar, 1000, use_mss=True)
    assert mss["mi"].abs().max() < 1e-10 and mss["tc"].abs().max() < 1e-10
    mws = kl_decomposition(z, mu, logvar, 1000, use_mss=False)
    np.testing.assert_allclose(mws["mi"].numpy(), math.log(1000), rtol=1e-10)


def test_total_correlation_estimate_is_near_zero_for_factorised_codes_and_the_gaussian_tc_for_correlated():
    std, n = 0.5, 1500
    # factorised: independent axes of different scales
    z, mu, logvar = posterior_draws(np.diag([1.0, 2.0, 0.5]), n, std)
    parts = {k: float(v.mean()) for k, v in kl_decomposition(z, mu, logvar, 10**9).items()}
    # The log of an unbiased density estimate is biased low, more for the joint (d axes) than for
    # the marginals, so the estimate sits a little below the truth, by about 1/B: over seeds 0-3,
    # -0.004 to -0.021 nats at B = 500 and -0.010 to -0.015 at B = 1500 for these codes (-0.05 to
    # -0.06 with std = 0.3 at B = 1500, where the posteriors overlap less).
    assert abs(parts["tc"]) < 0.04
    # correlated: axes 0 and 1 with correlation 0.9 in the means (0.72 in the aggregate posterior)
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    z, mu, logvar = posterior_draws(cov, n, std)
    parts = {k: float(v.mean()) for k, v in kl_decomposition(z, mu, logvar, 10**9).items()}
    agg = cov + std**2 * np.eye(3)                      # the aggregate posterior's covariance
    corr = agg / np.sqrt(np.outer(np.diag(agg), np.diag(agg)))
    tc_true = -0.5 * np.log(np.linalg.det(corr))        # 0.365 nats
    dim_kl_true = 0.5 * (np.diag(agg) - 1 - np.log(np.diag(agg))).sum()
    # the same bias, and a seed-to-seed spread of about ±0.02 nats (0.345-0.381 over seeds 0-3)
    assert parts["tc"] > 0.25
    assert parts["tc"] == pytest.approx(tc_true, abs=0.06)
    assert parts["dim_kl"] == pytest.approx(dim_kl_true, abs=0.06)


def test_beta_tc_vae_loss_weights_the_three_parts_and_the_estimator_only_redistributes(pixels):
    x = pixels[:64]
    totals = []
    for mss, n_data in [(True, 0), (True, 5000), (False, 5000)]:
        model = pixel_model("beta_tc_vae", alpha=1.0, beta=1.0, gamma=1.0, use_mss=mss, dataset_size=n_data)
        torch.manual_seed(3)
        with torch.no_grad():
            terms = model.loss(x)
        totals.append(float(terms["total"].detach()))
        assert float(terms["total"]) == pytest.approx(
            float(terms["reconstruction"] + terms["mi"] + terms["tc"] + terms["dim_kl"]), rel=1e-6)
    # with α = β = γ = 1 the parts telescope to the one-sample KL, whichever weights estimate them
    assert totals[1] == pytest.approx(totals[0], rel=1e-5) and totals[2] == pytest.approx(totals[0], rel=1e-5)
    model = pixel_model("beta_tc_vae", alpha=0.5, beta=7.0, gamma=2.0)
    torch.manual_seed(3)
    with torch.no_grad():
        t = model.loss(x)
    assert float(t["total"]) == pytest.approx(
        float(t["reconstruction"] + 0.5 * t["mi"] + 7.0 * t["tc"] + 2.0 * t["dim_kl"]), rel=1e-6)


# -- FactorVAE ---------------------------------------------------------------------------------

def test_permute_dims_keeps_every_marginal_and_breaks_the_dependence():
    z, _, _ = posterior_draws(np.array([[1.0, 0.95], [0.95, 1.0]]), 3000, 0.1)
    torch.manual_seed(0)
    p = permute_dims(z)
    for k in range(2):
        assert torch.equal(p[:, k].sort().values, z[:, k].sort().values)   # the same values per axis
    assert np.corrcoef(z.T.numpy())[0, 1] > 0.9
    assert abs(np.corrcoef(p.T.numpy())[0, 1]) < 0.06                     # 3 standard errors of 0 at n = 3000
    assert not torch.equal(p[:, 0], z[:, 0]) and not torch.equal(p[:, 1], z[:, 1])


def test_factor_vae_each_part_gets_gradient_only_from_its_own_objective(pixels):
    model = pixel_model("factor_vae", gamma=3.0, discriminator_width=32)
    disc = list(model.discriminator.parameters())
    own = {id(p) for p in disc}
    vae = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    terms = model.loss(pixels[:32])

    def grads(term, params):
        got = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(got, params)]

    def norm(gs):
        return float(sum(g.pow(2).sum() for g in gs))

    for name in ("reconstruction", "kl", "tc"):
        assert norm(grads(terms[name], disc)) == 0.0, name
        assert norm(grads(terms[name], vae)) > 0.0, name
    assert norm(grads(terms["discriminator"], vae)) == 0.0
    assert norm(grads(terms["discriminator"], disc)) > 0.0
    # the total's gradient is the sum of the parts': ELBO + γ·TC on the VAE, the cross-entropy on D
    vae_part = terms["reconstruction"] + terms["kl"] + 3.0 * terms["tc"]
    for got, want in zip(grads(terms["total"], vae), grads(vae_part, vae)):
        assert_close(got, want)
    for got, want in zip(grads(terms["total"], disc), grads(terms["discriminator"], disc)):
        assert_close(got, want)
    # the trainer's optimiser: every parameter once; the discriminator without weight decay
    groups = model.parameter_groups(0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    assert groups[1]["weight_decay"] == 0.0 and {id(p) for p in groups[1]["params"]} == own


def test_factor_vae_discriminator_learns_the_total_correlation_through_the_one_optimiser():
    """Trained by the trainer's single optimiser on ``total``, the discriminator tells correlated
    codes from permuted ones and its TC estimate approaches the closed form. The encoder is fixed
    to z ≈ x (a linear map, posterior std 0.05), so the codes keep the data's correlation: a
    trained VAE's own KL whitens a Gaussian aggregate posterior within a few hundred steps
    (measured MSS TC after 10 epochs on such data: 0.19, 0.18 and 0.007 nats for seeds 0-2)."""
    from latentforge.config import TrainConfig
    from latentforge.train import train_model

    r = 0.9
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g) @ torch.tensor([[1.0, 0.0], [r, math.sqrt(1 - r * r)]]).T
    torch.manual_seed(0)
    model = build_model("factor_vae", (2,), [("gaussian", 0, 2)], 2, Architecture(hidden=(16,)),
                        {"gamma": 0.0, "discriminator_width": 64, "discriminator_depth": 2})
    encoder = torch.nn.Linear(2, 4)                       # outputs (mu, logvar) = (x, log 0.05²)
    with torch.no_grad():
        encoder.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
        encoder.bias.copy_(torch.tensor([0.0, 0.0, 2 * math.log(0.05), 2 * math.log(0.05)]))
    model.encoder = encoder.requires_grad_(False)
    train_model(model, x[:1000], None, TrainConfig(epochs=10, batch_size=100, lr=3e-3, seed=0, device="cpu"),
                progress=False)
    with torch.no_grad():
        q = model.encode(x[1000:])
        z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
        joint, product = model.discriminator(z).squeeze(1), model.discriminator(permute_dims(z)).squeeze(1)
    accuracy = 0.5 * float((joint > 0).float().mean() + (product <= 0).float().mean())
    assert accuracy > 0.65                    # chance is 0.5; its standard error with 1000 + 1000 codes 0.011
    r_codes = r / (1 + 0.05**2)               # the codes' correlation, after the posterior noise
    tc_true = -0.5 * math.log(1 - r_codes**2)  # 0.82 nats
    # measured 0.79-0.81 over seeds 0-2: a density ratio from 100 steps of a small MLP
    assert float(joint.mean()) == pytest.approx(tc_true, abs=0.15)


# -- VampPrior ---------------------------------------------------------------------------------

def _slow_mixture(model) -> D.MixtureSameFamily:
    mu, logvar = model.prior_components()
    k = mu.shape[0]
    return D.MixtureSameFamily(D.Categorical(torch.ones(k)), D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1))


def test_vamp_prior_density_is_the_mixture_of_pseudo_input_posteriors(pixels):
    model = pixel_model("vamp", latent=3, n_components=7)
    model.eval()
    z = torch.randn(5, 11, 3) * 2
    with torch.no_grad():
        assert_close(model.prior_log_density(z), _slow_mixture(model).log_prob(z))
        # importance-sampled log p(x) uses it: the same draws scored by hand
        x, n = pixels[:4], 6
        torch.manual_seed(5)
        got = model.log_likelihood(x, n)
        torch.manual_seed(5)
        q = model.encode(x)
        post = D.Independent(D.Normal(q["mu"], (0.5 * q["logvar"]).exp()), 1)
        draws = q["mu"] + (0.5 * q["logvar"]).exp() * torch.randn(n, *q["mu"].shape)
        log_px = torch.stack([-model.likelihood.nll(model.decode(zk), x) for zk in draws])
        log_w = log_px + _slow_mixture(model).log_prob(draws) - post.log_prob(draws)
        assert_close(got, torch.logsumexp(log_w, 0) - math.log(n))


def test_vamp_pseudo_inputs_are_valid_inputs_for_each_feature_kind():
    layout = [("gaussian", 0, 2), ("bernoulli", 2, 4), ("categorical", 4, 7)]
    torch.manual_seed(0)
    model = build_model("vamp", (7,), layout, 2, Architecture(hidden=(8,)), {"n_components": 30})
    with torch.no_grad():
        model.pseudo_raw.mul_(20)                          # far out: the mappings must still hold
        u = model.pseudo_inputs()
    assert torch.equal(u[:, :2], model.pseudo_raw[:, :2])  # standardised columns: unconstrained
    assert ((u[:, 2:4] >= 0) & (u[:, 2:4] <= 1)).all()
    assert (u[:, 4:] >= 0).all()
    assert_close(u[:, 4:].sum(1), torch.ones(30))


def test_vamp_samples_come_from_the_mixture():
    torch.manual_seed(0)
    one = pixel_model("vamp", latent=2, n_components=1)
    with torch.no_grad():
        mu, logvar = (t[0] for t in one.prior_components())
        z = one.sample_prior(4000)
    for k in range(2):    # with one component the prior is exactly that pseudo-input's posterior
        assert stats.kstest(z[:, k].numpy(), "norm", args=(float(mu[k]), float((0.5 * logvar[k]).exp()))).pvalue > 1e-3
    many = pixel_model("vamp", latent=2, n_components=4)
    with torch.no_grad():
        many.pseudo_raw.mul_(5)                            # spread the components apart
        z = many.sample_prior(20000).double()
        mix = _slow_mixture(many)
        mean, cov = mix.mean.double(), mix.variance.double()
    # moments of 20,000 draws against the mixture's, within 4 standard errors (the variance's
    # from the draws' fourth central moment: a mixture is not Gaussian)
    assert ((z.mean(0) - mean).abs() < 4 * (cov / len(z)).sqrt()).all()
    m4 = ((z - z.mean(0)) ** 4).mean(0)
    assert ((z.var(0) - cov).abs() < 4 * ((m4 - cov**2) / len(z)).sqrt()).all()
