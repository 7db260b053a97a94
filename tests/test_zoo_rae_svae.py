"""RAE (decoder Jacobian penalty, decoder-only weight decay), S-VAE (vMF sampler, KL to the
uniform prior, Bessel functions) and the two-stage VAE code sampler, each against an independent
reference: torch.autograd.functional.jacobian, torch.optim.AdamW, scipy.special / scipy.stats /
mpmath, and sliced Wasserstein distances."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import special, stats

from latentforge import Autoencoder
from latentforge.estimator.samplers import GaussianMixtureSampler, fit_code_sampler
from latentforge.estimator.two_stage_sampler import TwoStageVAESampler
from latentforge.models import Architecture, build_model
from latentforge.models.rae import decoder_jacobian_sq_norm
from latentforge.models.svae import (
    log_bessel_iv,
    rejection_correction,
    sample_vmf,
    vmf_mean_resultant_length,
    vmf_uniform_kl,
)
from latentforge.sliced import sliced_wasserstein, sliced_wasserstein_sphere_unif

LAYOUT6 = [("gaussian", 0, 6)]


# -- RAE -------------------------------------------------------------------------------------------
def _rae(regularisation: str, **hp):
    torch.manual_seed(0)
    return build_model("rae", (6,), LAYOUT6, 3, Architecture(hidden=(8, 5)),
                       {"regularisation": regularisation, **hp})


def _slow_penalty(decoder, z: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ‖∂decoder(z_i)/∂z_i‖²_F, one full Jacobian per row."""
    norms = [torch.autograd.functional.jacobian(lambda zi: decoder(zi[None])[0], row, create_graph=True)
             .pow(2).sum() for row in z]
    return torch.stack(norms).mean()


@pytest.mark.parametrize("kind", ["mlp", "conv"])  # layer norm / group norm in the decoder
def test_gradient_penalty_is_the_per_sample_decoder_jacobian_norm_and_its_gradient(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        model = build_model("rae", (6,), LAYOUT6, 3, Architecture(hidden=(8, 5)),
                            {"regularisation": "gradient_penalty", "reg_weight": 0.5})
        x = torch.randn(4, 6)
    else:
        model = build_model("rae", (1, 8, 8), [("bernoulli", 0, 64)], 3,
                            Architecture(kind="conv", hidden=(8,), channels=(2, 3)),
                            {"regularisation": "gradient_penalty", "reg_weight": 0.5})
        x = torch.rand(4, 64)
    z = torch.randn(5, 3)
    fast = decoder_jacobian_sq_norm(model.decoder, z).mean()
    slow = _slow_penalty(model.decoder, z)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-7)
    # the gradient in the decoder's weights too (the last bias moves the output, not its Jacobian)
    weights = list(model.decoder.parameters())
    g_fast = torch.autograd.grad(fast, weights, allow_unused=True, materialize_grads=True)
    g_slow = torch.autograd.grad(slow, weights, allow_unused=True, materialize_grads=True)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert g_fast[0].abs().sum() > 0
    # in the loss: at the encoder's codes, weighted by reg_weight, with a gradient into the encoder
    terms = model.loss(x)
    z_x = model.encode(x)["z"]
    torch.testing.assert_close(terms["gradient_penalty"], _slow_penalty(model.decoder, z_x), rtol=1e-5, atol=1e-7)
    rest = terms["reconstruction"] + 1e-4 * terms["embedding"]
    torch.testing.assert_close(terms["total"], rest + 0.5 * terms["gradient_penalty"])
    enc = list(model.encoder.parameters())
    assert any(g.abs().sum() > 0 for g in torch.autograd.grad(terms["gradient_penalty"], enc, allow_unused=True,
                                                               materialize_grads=True))
    with torch.no_grad():  # validation passes get the value too
        torch.testing.assert_close(model.loss(x)["gradient_penalty"], terms["gradient_penalty"].detach())


def test_embedding_term_is_half_the_squared_code_norm():
    model = _rae("l2", embedding_weight=0.3)
    x = torch.randn(4, 6)
    terms = model.loss(x)
    z = model.encode(x)["z"]
    torch.testing.assert_close(terms["embedding"], 0.5 * (z ** 2).sum(1).mean())
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + 0.3 * terms["embedding"])
    assert "gradient_penalty" not in terms


def test_l2_variant_decays_the_decoder_weights_only():
    model = _rae("l2")
    groups = model.parameter_groups(0.05)
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.05 for p in g["params"]}
    listed = [id(p) for g in groups for p in g["params"]]
    assert len(listed) == len(set(listed)) == sum(p.requires_grad for p in model.parameters())
    assert decayed == {id(p) for p in model.decoder.parameters()}
    assert all(g["weight_decay"] == 0.0 for g in groups if g["weight_decay"] != 0.05)
    # what the trainer's AdamW does with them: with zero gradients only the decay acts
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(groups, lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        expected = before[n] * (1 - 0.1 * 0.05) if n.startswith("decoder.") else before[n]
        torch.testing.assert_close(p.detach(), expected)
    # the gradient-penalty variant keeps the trainer's decay on everything, as other models do
    gp = _rae("gradient_penalty").parameter_groups(0.05)
    assert [g["weight_decay"] for g in gp] == [0.05]


def test_rae_gradient_penalty_trains_through_the_estimator(digits):
    X = digits.X[:128]
    est = Autoencoder("rae", 3, epochs=3, batch_size=32, hidden=(16,), verbose=False, val_fraction=0.0,
                      regularisation="gradient_penalty", reg_weight=1e-3).fit(X)
    hist = est.history_
    assert "train_gradient_penalty" in hist[-1] and hist[-1]["train_total"] < hist[0]["train_total"]
    assert est.sampler_kind_ == "gmm"  # no prior: the paper's ex-post density, a mixture on the codes


# -- S-VAE: the von Mises-Fisher distribution ------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 5, 10])
def test_vmf_samples_are_unit_vectors_with_the_closed_form_mean_resultant_length(d):
    torch.manual_seed(d)
    n = 20_000
    for kappa in (1.0, 5.0, 50.0):
        mu = torch.nn.functional.normalize(torch.randn(1, d), dim=1).expand(n, d)
        z = sample_vmf(mu, torch.full((n,), kappa))
        torch.testing.assert_close(z.norm(dim=1), torch.ones(n), atol=1e-5, rtol=0)
        a_ref = special.iv(d / 2, kappa) / special.iv(d / 2 - 1, kappa)
        # E[z] = A_d(κ) μ: checks the length along μ and that the reflection puts the mode at μ
        err = (z.double().mean(0) - a_ref * mu[0].double()).norm()
        assert err < 4.0 * math.sqrt(d / n), (kappa, err)
        got = vmf_mean_resultant_length(torch.tensor([kappa], dtype=torch.float64), d)
        assert abs(float(got) - a_ref) < 1e-10


@pytest.mark.parametrize("d,kappa", [(3, 2.0), (5, 10.0), (10, 30.0)])
def test_vmf_samples_follow_scipys_von_mises_fisher(d, kappa):
    torch.manual_seed(0)
    mu = np.zeros(d)
    mu[-1] = 1.0
    ours = sample_vmf(torch.tensor(mu, dtype=torch.float32).expand(4000, d), torch.full((4000,), kappa))
    theirs = stats.vonmises_fisher(mu, kappa).rvs(4000, random_state=np.random.default_rng(0))
    # the distribution of the cosine to the mode, a two-sample Kolmogorov-Smirnov test
    assert stats.ks_2samp(ours.double().numpy() @ mu, theirs @ mu).pvalue > 1e-3


@pytest.mark.parametrize("d,kappa", [(2, 1.0), (3, 1.0), (10, 10.0)])
def test_pathwise_plus_correction_gradient_is_the_derivative_of_the_mean(d, kappa):
    """d/dκ E[μ^T z] = A_d'(κ): the pathwise term alone is biased here, with g_cor it is not."""
    torch.manual_seed(0)
    n = 100_000
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    mu = torch.zeros(n, d, dtype=torch.float64)
    mu[:, 0] = 1.0
    z, log_ratio = sample_vmf(mu, k, with_log_ratio=True)
    f = z[:, 0]
    (grad,) = torch.autograd.grad(f.mean() + rejection_correction(f, log_ratio), k)

    def a_d(x):
        return special.ive(d / 2, x) / special.ive(d / 2 - 1, x)

    h = 1e-5 * kappa
    ref = (a_d(kappa + h) - a_d(kappa - h)) / (2 * h)
    assert abs(float(grad.sum()) - ref) < 0.02 * ref, (float(grad.sum()), ref)


@pytest.mark.parametrize("d,kappa", [(3, 2.0), (5, 10.0), (16, 40.0)])
def test_kl_to_the_uniform_prior_matches_a_monte_carlo_estimate(d, kappa):
    mu = np.eye(d)[0]
    vmf = stats.vonmises_fisher(mu, kappa)
    z = vmf.rvs(40_000, random_state=np.random.default_rng(1))
    log_uniform = -(math.log(2.0) + 0.5 * d * math.log(math.pi) - special.gammaln(0.5 * d))
    log_ratio = vmf.logpdf(z) - log_uniform
    mc, se = log_ratio.mean(), log_ratio.std() / math.sqrt(len(z))
    ours = float(vmf_uniform_kl(torch.tensor([kappa], dtype=torch.float64), d))
    assert abs(ours - mc) < 4 * se + 1e-6, (ours, mc, se)


@pytest.mark.parametrize("v,kappa", [(0.0, 0.5), (1.5, 3.0), (4.0, 80.0), (0.5, 2000.0), (7.0, 1e5), (400.0, 1.0)])
def test_log_bessel_matches_mpmath_and_its_derivative_is_the_known_relation(v, kappa):
    ref = float(mpmath.log(mpmath.besseli(v, kappa)))
    k = torch.tensor([kappa], dtype=torch.float64, requires_grad=True)
    out = log_bessel_iv(v, k)
    value = float(out.detach())
    # exact where SciPy's scaled ive is representable; the Debye term (last case) to O(1/v)
    assert abs(value - ref) <= (1e-3 if v > 100 else 1e-9 * max(1.0, abs(ref))), (value, ref)
    (grad,) = torch.autograd.grad(out.sum(), k)
    slope = float(mpmath.besseli(v + 1, kappa) / mpmath.besseli(v, kappa)) + v / kappa
    assert abs(float(grad) - slope) <= (1e-3 if v > 100 else 1e-8 * max(1.0, slope))


def test_svae_loss_has_finite_gradients_and_the_ssw_term_regularises():
    torch.manual_seed(0)
    x = torch.randn(32, 6)
    plain = build_model("svae", (6,), LAYOUT6, 3, Architecture(hidden=(8,)), {})
    terms = plain.loss(x)
    assert not terms["uniformity"].requires_grad          # monitored only at the default weight 0
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + terms["kl"])
    terms["total"].backward()
    grads = [p.grad for p in plain.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert plain.encoder[-1].weight.grad.abs().sum() > 0   # through μ and κ (pathwise)
    torch.manual_seed(0)
    reg = build_model("svae", (6,), LAYOUT6, 3, Architecture(hidden=(8,)), {"ssw_weight": 2.0})
    torch.manual_seed(1)
    terms = reg.loss(x)
    assert terms["uniformity"].requires_grad and terms["uniformity"] > 0
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + terms["kl"] + 2.0 * terms["uniformity"])
    (g,) = torch.autograd.grad(terms["uniformity"], [reg.encoder[-1].weight])
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    emb = reg.embed(x)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(32))


def test_svae_prior_is_uniform_on_the_sphere():
    torch.manual_seed(0)
    model = build_model("svae", (6,), LAYOUT6, 4, Architecture(hidden=(8,)), {})
    z = model.sample_prior(4000)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4000))
    assert z.mean(0).norm() < 4 * math.sqrt(1 / 4000)
    torch.testing.assert_close(z.T @ z / 4000, torch.eye(4) / 4, atol=0.03, rtol=0)  # E[zz^T] = I/d
    mu = torch.nn.functional.normalize(torch.ones(1, 4), dim=1).expand(4000, 4)
    concentrated = sample_vmf(mu, torch.full((4000,), 5.0))
    ssw_prior = sliced_wasserstein_sphere_unif(z.double().numpy(), seed=0)
    assert ssw_prior < 0.2 * sliced_wasserstein_sphere_unif(concentrated.double().numpy(), seed=0)


# -- two-stage VAE code sampler --------------------------------------------------------------------
def _ring(n: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0, 2 * np.pi, n)
    r = 3.0 + 0.1 * rng.standard_normal(n)
    return np.c_[r * np.cos(t), r * np.sin(t)] + np.array([5.0, -2.0])


def test_two_stage_sampler_fits_a_ring_about_as_well_as_a_mixture():
    rng = np.random.default_rng(0)
    train, held_out = _ring(4000, rng), _ring(2000, rng)
    two_stage = fit_code_sampler("two_stage", train, seed=0)
    assert isinstance(two_stage, TwoStageVAESampler)

    def sw(X):
        return sliced_wasserstein(X, held_out, n_projections=200, seed=0)

    ours = sw(two_stage.sample(2000, seed=1))
    standard = sw(rng.standard_normal((2000, 2)))
    matched = sw(train.mean(0) + train.std(0) * rng.standard_normal((2000, 2)))  # a moment-matched Gaussian
    gmm = sw(GaussianMixtureSampler.fit(train, 10, 0).sample(2000, seed=1))
    assert ours < 0.1 * standard and ours < 0.5 * matched and ours < 3.0 * gmm, (ours, standard, matched, gmm)


def test_two_stage_fit_is_deterministic_given_the_seed():
    codes = _ring(500, np.random.default_rng(3))
    a = TwoStageVAESampler.fit(codes, seed=4, steps=40).sample(50, seed=2)
    b = TwoStageVAESampler.fit(codes, seed=4, steps=40).sample(50, seed=2)
    c = TwoStageVAESampler.fit(codes, seed=5, steps=40).sample(50, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_two_stage_sampler_survives_save_and_load(digits, tmp_path):
    X = digits.X[:200]
    est = Autoencoder("ae", 2, epochs=1, batch_size=64, hidden=(16,), verbose=False, val_fraction=0.0,
                      sampler="two_stage").fit(X)
    assert est.sampler_kind_ == "two_stage"
    first = est.sample(5, seed=3)
    est.save(tmp_path / "m")
    loaded = Autoencoder.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.sample(5, seed=3), first)
