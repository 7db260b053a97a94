"""Property tests for the variational family and the MMD-regularised models: beta_vae, iwae, miwae,
piwae, ciwae, info_vae, wae_mmd, ard_vae (and the shared MMD estimator)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from torch import distributions as D

from conftest import FAST, pixel_model
from latentforge import Autoencoder
from latentforge.errors import InputError
from latentforge.models import Architecture, build_model
from latentforge.models.iwae import iwae_bound, miwae_bound
from latentforge.models.mmd import imq_kernel, mmd_to_standard_normal, mmd_unbiased, rbf_kernel
from latentforge.models.vae import gaussian_kl

VAE_TYPE = ["vae", "beta_vae", "iwae", "miwae", "piwae", "ciwae", "info_vae", "ard_vae"]


# -- MMD ----------------------------------------------------------------------------------------

def _slow_mmd(x: np.ndarray, y: np.ndarray, kernel: str, scale: float) -> float:
    """Unbiased MMD² by explicit double loops over the kernel's textbook formula."""
    c = 2.0 * x.shape[1] * scale**2

    def k(a, b):
        sq = float(((a - b) ** 2).sum())
        return c / (c + sq) if kernel == "imq" else math.exp(-sq / c)

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_mmd_matches_a_double_loop_reference(kernel, scale):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(13, 3)), rng.normal(0.7, 1.5, size=(9, 3))
    got = mmd_unbiased(torch.from_numpy(x), torch.from_numpy(y), kernel, scale)
    assert float(got) == pytest.approx(_slow_mmd(x, y, kernel, scale), rel=1e-10, abs=1e-12)
    gram = (imq_kernel if kernel == "imq" else rbf_kernel)(torch.from_numpy(x), torch.from_numpy(y), scale)
    assert gram.shape == (13, 9) and bool(((gram > 0) & (gram <= 1)).all())


def test_mmd_estimator_is_unbiased_where_the_plug_in_one_is_not():
    """For P = Q, MMD² = 0: the U-statistic averages to 0; the V-statistic (with i = j) to ≈ 2(1 − E k)/n > 0."""
    torch.manual_seed(0)
    n, reps = 16, 2000
    x, y = torch.randn(reps, n, 2, dtype=torch.float64), torch.randn(reps, n, 2, dtype=torch.float64)
    u = torch.stack([mmd_unbiased(a, b) for a, b in zip(x, y)])
    v = torch.stack([imq_kernel(a, a).mean() + imq_kernel(b, b).mean() - 2 * imq_kernel(a, b).mean()
                     for a, b in zip(x, y)])
    se = float(u.std()) / math.sqrt(reps)
    assert abs(float(u.mean())) < 3 * se
    assert float(v.mean()) > 10 * se
    assert float(mmd_unbiased(torch.randn(200, 2), torch.randn(200, 2) + 1.0)) > 0.05  # a shift is seen


def test_mmd_gradient_is_finite_for_coincident_points_and_small_batches_are_handled():
    x = torch.zeros(4, 3, requires_grad=True)  # all codes equal: distances exactly 0
    mmd_unbiased(x, torch.randn(5, 3)).backward()
    assert torch.isfinite(x.grad).all()
    assert float(mmd_to_standard_normal(torch.randn(1, 3))) == 0.0  # one code: nothing to compare
    with pytest.raises(InputError, match="did you mean 'rbf'"):
        mmd_unbiased(torch.randn(3, 2), torch.randn(3, 2), kernel="rfb")
    with pytest.raises(InputError, match="at least 2 points"):
        mmd_unbiased(torch.randn(1, 2), torch.randn(3, 2))


# -- β-VAE --------------------------------------------------------------------------------------

def test_plain_beta_vae_is_the_vae_with_that_beta(pixels):
    beta_vae = pixel_model("beta_vae", capacity_max=0.0, beta=3.0)
    vae = pixel_model("vae", beta=3.0)
    vae.load_state_dict({k: v for k, v in beta_vae.state_dict().items() if k != "step"})
    x = pixels[:32]
    torch.manual_seed(1)
    ours = beta_vae.loss(x)["total"]
    torch.manual_seed(1)
    theirs = vae.loss(x)["total"]
    torch.testing.assert_close(ours, theirs)


def test_beta_vae_kl_tracks_the_annealed_capacity(pixels):
    model = pixel_model("beta_vae", latent=4, capacity_max=8.0, capacity_steps=300, gamma=20.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batches = torch.Generator().manual_seed(0)
    kl, cap = [], []
    model.train()
    for _ in range(400):
        terms = model.loss(pixels[:512][torch.randint(0, 512, (64,), generator=batches)])
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        kl.append(float(terms["kl"].detach()))
        cap.append(float(terms["capacity"]))
    kl, cap = np.array(kl), np.array(cap)
    assert cap[0] == 0.0 and cap[150] == pytest.approx(4.0) and cap[-1] == 8.0   # C(t) = 8 · min(1, t/300)
    checkpoints = [100, 150, 200, 250, 300, 399]
    means = [kl[t - 20:t + 1].mean() for t in checkpoints]
    for t, m in zip(checkpoints, means):
        assert abs(m - cap[t]) < 0.6, (t, m, cap[t])
    assert all(b > a + 0.5 for a, b in zip(means[:5], means[1:5]))               # KL rises with C
    # the schedule advances in training mode only, and the counter is part of the saved state
    assert int(model.step) == 400
    model.eval()
    model.loss(pixels[:8])
    assert int(model.step) == 400 and "step" in model.state_dict()


# -- importance-weighted bounds -----------------------------------------------------------------

def test_iwae_bound_is_the_elbo_at_one_sample_and_exceeds_it_for_more(pixels):
    x = pixels[:24]
    model = pixel_model("iwae", n_samples=1)
    torch.manual_seed(3)
    loss = model.loss(x)["total"]
    # reference single-sample ELBO from torch.distributions with the same draw
    torch.manual_seed(3)
    q = model.encode(x)
    std = (0.5 * q["logvar"]).exp()
    z = q["mu"] + std * torch.randn(1, *q["mu"].shape)[0]
    pixels_given_z = D.Bernoulli(logits=model.decode(z), validate_args=False)   # grey pixels: −BCE
    elbo = (pixels_given_z.log_prob(x).sum(1) + D.Normal(0.0, 1.0).log_prob(z).sum(1)
            - D.Normal(q["mu"], std).log_prob(z).sum(1))
    torch.testing.assert_close(loss, -elbo.mean())

    with torch.no_grad():
        log_w = model.log_importance_weights(x, 20)              # the same draws for both bounds
        assert bool((iwae_bound(log_w) >= log_w.mean(0) - 1e-6).all())       # Jensen, per data point
        assert float((iwae_bound(log_w) - log_w.mean(0)).mean()) > 0.01
        # in expectation the bound rises with K, starting from the ELBO (analytic KL) at K = 1
        torch.manual_seed(4)
        means = {k: float(torch.stack([iwae_bound(model.log_importance_weights(x, k)) for _ in range(400 // k)]).mean())
                 for k in (1, 5, 50)}
        out = model.decode(q["mu"] + std * torch.randn(4000, *q["mu"].shape)).view(4000, *x.shape)
        analytic = float((-model.likelihood.nll(out.view(-1, 64), x.repeat(4000, 1)).mean()
                          - gaussian_kl(q["mu"], q["logvar"]).sum(1).mean()))
    assert means[1] == pytest.approx(analytic, abs=0.3)
    assert analytic < means[5] - 0.1 < means[50] - 0.2


def test_miwae_and_ciwae_bounds_match_slow_references(pixels):
    rng = np.random.default_rng(0)
    log_w = rng.normal(-30, 4, size=(12, 5))                  # M·K = 3·4 draws for 5 data points
    ref_iwae = logsumexp(log_w, axis=0) - math.log(12)
    ref_miwae = np.mean([logsumexp(log_w[m * 4:(m + 1) * 4], axis=0) - math.log(4) for m in range(3)], axis=0)
    t = torch.from_numpy(log_w)
    np.testing.assert_allclose(iwae_bound(t).numpy(), ref_iwae, rtol=1e-12)
    np.testing.assert_allclose(miwae_bound(t, 3).numpy(), ref_miwae, rtol=1e-12)
    np.testing.assert_allclose(miwae_bound(t, 1).numpy(), ref_iwae, rtol=1e-12)            # M = 1: IWAE
    np.testing.assert_allclose(miwae_bound(t, 12).numpy(), log_w.mean(0), rtol=1e-12)     # K = 1: ELBO

    x = pixels[:16]
    for name, hp in [("miwae", {"n_groups": 3, "n_samples": 4}), ("ciwae", {"n_samples": 6, "beta": 0.3})]:
        model = pixel_model(name, **hp)
        torch.manual_seed(5)
        total = model.loss(x)["total"]
        torch.manual_seed(5)
        lw = model.log_importance_weights(x, 12 if name == "miwae" else 6).detach().double().numpy()
        if name == "miwae":
            ref = np.mean([logsumexp(lw[m * 4:(m + 1) * 4], axis=0) - math.log(4) for m in range(3)], axis=0)
        else:
            ref = 0.3 * lw.mean(0) + 0.7 * (logsumexp(lw, axis=0) - math.log(6))
        assert float(total.detach()) == pytest.approx(-ref.mean(), rel=1e-5)


def test_piwae_encoder_follows_miwae_and_decoder_follows_iwae():
    torch.manual_seed(0)
    # Gaussian features, so the learned likelihood scale (a generative parameter) is in play too
    model = build_model("piwae", (10,), [("gaussian", 0, 10)], 3, Architecture(hidden=(16,)),
                        {"n_groups": 2, "n_samples": 3})
    x = torch.randn(16, 10)
    enc = list(model.encoder.parameters())
    gen = list(model.decoder.parameters()) + [model.likelihood.log_scale]
    torch.manual_seed(7)
    terms = model.loss(x)
    g_enc = torch.autograd.grad(terms["total"], enc, retain_graph=True)
    g_gen = torch.autograd.grad(terms["total"], gen)
    # reference: both bounds on one ordinary pass with the same draws, full gradients of each
    torch.manual_seed(7)
    log_w = model.log_importance_weights(x, 6)
    iwae, miwae = iwae_bound(log_w).mean(), miwae_bound(log_w, 2).mean()
    ref_enc = torch.autograd.grad(-miwae, enc, retain_graph=True)
    ref_gen = torch.autograd.grad(-iwae, gen, retain_graph=True)
    wrong_enc = torch.autograd.grad(-iwae, enc)
    for a, b in zip(g_enc + g_gen, ref_enc + ref_gen):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert float(terms["total"].detach()) == pytest.approx(float(-iwae.detach()), rel=1e-6)
    assert not all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(g_enc, wrong_enc))


@pytest.mark.parametrize("name", VAE_TYPE)
def test_log_likelihood_works_for_every_vae_type_model(name, digits):
    ae = Autoencoder(model=name, latent_dim=3, **FAST).fit(digits.X[:200])
    ll = ae.log_likelihood(digits.X[:30], n_samples=50)
    assert ll.shape == (30,) and np.isfinite(ll).all() and (ll < 0).all()   # Bernoulli pixels: p(x) ≤ 1
    # the K-sample estimate is ≥ the mean single-draw ELBO on the same draws, and stable in K
    x = torch.from_numpy(ae.features(digits.X[:30]))
    with torch.no_grad():
        torch.manual_seed(0)
        lw = ae.model_.log_importance_weights(x, 50)
        torch.manual_seed(0)
        est = ae.model_.log_likelihood(x, 50)
    torch.testing.assert_close(est, torch.logsumexp(lw, 0) - math.log(50))
    assert bool((est >= lw.mean(0) - 1e-5).all())


# -- InfoVAE and WAE-MMD ------------------------------------------------------------------------

def test_info_vae_terms_and_its_vae_special_case(pixels):
    x = pixels[:32]
    model = pixel_model("info_vae", alpha=0.3, lam=5.0, kernel="rbf", kernel_scale=0.7)
    torch.manual_seed(2)
    terms = model.loss(x)
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + 0.7 * terms["kl"] + 4.3 * terms["mmd"])
    torch.manual_seed(2)
    q = model.encode(x)
    z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
    torch.testing.assert_close(terms["mmd"], mmd_unbiased(z, torch.randn_like(z), "rbf", 0.7))
    # α = 0, λ = 1 is the VAE: same weights, same draw, same loss
    info = pixel_model("info_vae", alpha=0.0, lam=1.0)
    vae = pixel_model("vae")
    vae.load_state_dict(info.state_dict())
    torch.manual_seed(3)
    ours = info.loss(x)["total"]
    torch.manual_seed(3)
    torch.testing.assert_close(ours, vae.loss(x)["total"])
    with pytest.raises(InputError, match="alpha \\+ lam"):
        pixel_model("info_vae", alpha=-1.0, lam=1.5)


def test_wae_mmd_codes_are_deterministic_and_pulled_to_the_prior(digits, pixels):
    model = pixel_model("wae_mmd", mmd_weight=7.0)
    x = pixels[:32]
    model.train()
    torch.testing.assert_close(model.encode(x)["z"], model.encode(x)["z"])
    torch.manual_seed(4)
    terms = model.loss(x)
    torch.manual_seed(4)
    z = model.encode(x)["z"]
    torch.testing.assert_close(terms["total"], terms["reconstruction"] + 7.0 * mmd_unbiased(z, torch.randn_like(z)))
    assert model.sample(5).shape == (5, 64)

    def code_mmd(weight: float) -> float:
        ae = Autoencoder(model="wae_mmd", latent_dim=2, mmd_weight=weight, **{**FAST, "epochs": 10}).fit(digits.X[:600])
        torch.manual_seed(0)
        z = torch.from_numpy(ae.transform(digits.X[:600]))
        return float(mmd_unbiased(z, torch.randn_like(z)))

    assert code_mmd(100.0) < 0.5 * code_mmd(0.0)


# -- ARD-VAE ------------------------------------------------------------------------------------

def test_ard_prior_variance_is_the_gamma_posterior_estimate_and_moves_only_in_training():
    from scipy import stats

    model = pixel_model("ard_vae", prior_shape=2.0, prior_rate=0.5)
    mu, logvar = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    post = [stats.gamma(2.0 + 5.0, scale=1.0 / (0.5 + 0.5 * float((mu[:, l] ** 2 + logvar[:, l].exp()).sum())))
            for l in range(3)]
    np.testing.assert_allclose(model.estimate_prior_variance(mu, logvar).numpy(), [1 / p.mean() for p in post])
    x = torch.rand(16, 64)
    model.eval()
    model.loss(x)
    assert torch.equal(model.prior_variance, torch.ones(3))
    model.train()
    model.loss(x)
    assert not torch.equal(model.prior_variance, torch.ones(3))
    # its importance weights use N(0, diag(v)) as the prior
    with torch.no_grad():
        model.prior_variance.copy_(torch.tensor([0.5, 2.0, 0.1]))
        torch.manual_seed(0)
        lw = model.log_importance_weights(x, 4)
        torch.manual_seed(0)
        q = model.encode(x)
        std = (0.5 * q["logvar"]).exp()
        z = q["mu"] + std * torch.randn(4, *q["mu"].shape)
        log_px = D.Bernoulli(logits=model.decode(z.view(-1, 3)), validate_args=False).log_prob(x.repeat(4, 1))
        ref = (log_px.sum(1).view(4, -1) + D.Normal(0.0, model.prior_variance.sqrt()).log_prob(z).sum(-1)
               - D.Normal(q["mu"], std).log_prob(z).sum(-1))
    torch.testing.assert_close(lw, ref)


@pytest.mark.parametrize("k", [2, 3])
def test_ard_vae_finds_the_number_of_true_factors(k):
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(600, k))
    mix = factors @ rng.normal(size=(k, 20))
    X = (np.tanh(mix) @ rng.normal(size=(20, 20)) / np.sqrt(20) + 0.5 * mix
         + 0.05 * rng.normal(size=(600, 20))).astype(np.float32)
    ae = Autoencoder(model="ard_vae", latent_dim=8, epochs=100, batch_size=64, patience=30, hidden=(32, 32), lr=3e-3,
                     verbose=False).fit(X)
    x = torch.from_numpy(ae.features(X))
    relevance = ae.model_.relevance(x)
    mask = ae.model_.relevant_dimensions(x)
    assert int(mask.sum()) == k, relevance
    # a clear gap, not a threshold artefact: the weakest kept axis dwarfs the strongest dropped one
    assert float(relevance[mask].min()) > 20 * float(relevance[~mask].max())
