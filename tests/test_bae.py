"""Bayesian autoencoder (``bae``): the SGHMC sampler on posteriors known in closed form, prior
selection by DSWD, posterior samples through save/load, predictive uncertainty, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentforge import Autoencoder
from latentforge.cli import main
from latentforge.errors import InputError, TrainingDivergedError
from latentforge.models import Architecture, build_model
from latentforge.train import collection_steps, sample_sghmc, select_prior

# Tiny networks and short runs: the file must stay well under a minute and a half on 2 cores.
TINY = dict(hidden=(16,), batch_size=32, val_fraction=0.0, verbose=False)
QUICK = dict(posterior_samples=6, dswd_steps=8, dswd_batch=16, dswd_prior_draws=4, dswd_projections=20,
             dswd_inner_steps=2, pretrain_steps=100)


def _check_moments(draws: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, chains: int, slack: float) -> None:
    """Compare sample moments with the analytic ones.

    Tolerance: every chain starts independently and its kept draws, after a burn-in of many
    relaxation times, are draws from the target; the average over one chain's draws is never
    noisier than a single draw (Var of a mean of identically distributed, correlated variables is
    at most their common variance). So with ``chains`` independent chains the standard error of
    a mean coordinate is at most sqrt(Σ_ii / chains), and that of a covariance entry at most
    sqrt((Σ_ii Σ_jj + Σ_ij²) / chains) (the Gaussian variance of a sample covariance). We allow
    4 such standard errors (a false alarm below 1e-4 per entry), plus ``slack`` × the scale of
    the entry for the sampler's O(step size) bias.
    """
    diag = torch.diagonal(cov)
    mean_tol = 4 * torch.sqrt(diag / chains) + slack * diag.sqrt()
    assert torch.all((draws.mean(0) - mean).abs() <= mean_tol), (draws.mean(0), mean, mean_tol)
    emp = torch.cov(draws.T)
    scale = torch.outer(diag, diag) + cov**2
    cov_tol = 4 * torch.sqrt(scale / chains) + slack * torch.sqrt(torch.outer(diag, diag))
    assert torch.all((emp - cov).abs() <= cov_tol), (emp, cov, cov_tol)


@pytest.mark.parametrize("precondition", [False, True])
def test_sghmc_samples_a_correlated_gaussian(precondition):
    # Target N(μ, Σ) with correlation 0.8 and scales 1 and 0.5; 2000 independent chains are the
    # rows of one (2000, 2) tensor whose potential is the sum of the chains' potentials.
    torch.manual_seed(0)
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.4], [0.4, 0.25]], dtype=torch.float64)
    precision = torch.linalg.inv(cov)
    chains = 2000
    theta = torch.zeros(chains, 2, dtype=torch.float64, requires_grad=True)

    def potential(t: int) -> torch.Tensor:
        d = theta - mean
        return 0.5 * ((d @ precision) * d).sum()

    # η = 1e-3 (2e-3 preconditioned, where M⁻¹ ≈ 0.5): physical step ≈ 0.03, about a tenth of the
    # stiffest period over 2π, so the discretisation bias on the variances is well under 1%.
    samples = sample_sghmc([theta], potential, n_samples=5, burn_in=800, window=1000, thinning=200,
                           step_size=2e-3 if precondition else 1e-3, friction=0.05, precondition=precondition,
                           seed=1)
    draws = samples.view(5, chains, 2).reshape(-1, 2)
    _check_moments(draws, mean, cov, chains, slack=0.02)


def test_sghmc_samples_the_bayesian_linear_regression_posterior_from_minibatches():
    # y = X w + ε, ε ~ N(0, σ²), prior w ~ N(0, τ² I): the posterior is N(m, S) with
    # S = (XᵀX/σ² + I/τ²)⁻¹ and m = S Xᵀy / σ². Each of 500 chains draws its own minibatches of
    # 30 of the 60 rows, scaled by N/B: the stochastic gradients SGHMC is meant for.
    gen = torch.Generator().manual_seed(0)
    N, d, B, sigma2, tau2 = 60, 2, 30, 0.25, 1.0
    X = torch.randn(N, d, generator=gen, dtype=torch.float64)
    y = X @ torch.tensor([0.5, -1.0], dtype=torch.float64) + sigma2**0.5 * torch.randn(N, generator=gen,
                                                                                    dtype=torch.float64)
    S = torch.linalg.inv(X.T @ X / sigma2 + torch.eye(d, dtype=torch.float64) / tau2)
    m = S @ X.T @ y / sigma2
    chains = 500
    w = torch.zeros(chains, d, dtype=torch.float64, requires_grad=True)

    def potential(t: int) -> torch.Tensor:
        idx = torch.randint(0, N, (chains, B), generator=gen)
        resid = y[idx] - (X[idx] * w[:, None, :]).sum(-1)                     # (chains, B)
        return (N / B) * (resid**2).sum() / (2 * sigma2) + (w**2).sum() / (2 * tau2)

    # Posterior precisions are ≈ 220 and 290; η = 2e-6 (physical step 1.4e-3) with α = 0.05 is
    # close to critical damping, relaxing in ≈ 50 steps: 500 burn-in steps forget the start
    # (w = 0, 18 posterior sds away) and kept draws are 150 steps apart. Uncorrected minibatch
    # noise (β̂ = 0, gradient-noise variance V ≈ 210-280) raises the temperature by η·V/(2α) ≈ 0.5%.
    samples = sample_sghmc([w], potential, n_samples=4, burn_in=500, window=600, thinning=150,
                           step_size=2e-6, friction=0.05, seed=2)
    draws = samples.view(4, chains, d).reshape(-1, d)
    _check_moments(draws, m, S, chains, slack=0.02)


def test_sghmc_chains_branch_from_the_burned_in_state_and_split_the_samples():
    theta = torch.zeros(3, requires_grad=True)
    seen = []
    samples = sample_sghmc([theta], lambda t: 0.5 * (theta**2).sum(), n_samples=5, burn_in=10, window=20, chains=2,
                           step_size=1e-2, callback=lambda info: seen.append((info["chain"], info["burn_in"])))
    assert samples.shape == (5, 3)
    assert seen.count((0, True)) == 10 and seen.count((0, False)) == 20 and seen.count((1, False)) == 20
    assert collection_steps(20, 3) == [7, 13, 19] and collection_steps(20, 3, thinning=2) == [15, 17, 19]
    with pytest.raises(InputError, match="needs 41 SGHMC steps"):
        collection_steps(20, 5, thinning=10)


def test_sghmc_divergence_restores_the_start_and_suggests_a_smaller_step():
    theta = torch.ones(2, requires_grad=True)
    with pytest.raises(TrainingDivergedError, match="smaller step size"):
        sample_sghmc([theta], lambda t: (theta**4).sum() * 1e6, n_samples=1, burn_in=50, window=1, step_size=10.0)
    assert torch.equal(theta.detach(), torch.ones(2))


@pytest.fixture(scope="module")
def digits_flat():
    from latentforge.data import load_builtin

    ds = load_builtin("digits")
    return torch.from_numpy(ds.X[:200].reshape(200, -1))


def _tiny_bae(**hp):
    torch.manual_seed(0)
    return build_model("bae", (1, 8, 8), [("bernoulli", 0, 64)], 4, Architecture(hidden=(16,)),
                       {"dswd_steps": 25, "dswd_batch": 32, "dswd_prior_draws": 4, "dswd_projections": 30,
                        "dswd_inner_steps": 2, **hp})


def test_prior_selection_lowers_the_dswd_and_is_reproducible(digits_flat):
    model = _tiny_bae()

    def dswd() -> float:
        # The same weight draws and directions before and after (common random numbers), 3 x 16 draws:
        # the paired difference is far less noisy than either value.
        return float(np.mean([model.prior_predictive_dswd(digits_flat[:64], seed=100 + s, draws=16) for s in range(3)]))

    before = dswd()
    trace = select_prior(model, digits_flat, seed=0)
    after = dswd()
    assert len(trace) == 25 and np.isfinite(trace).all()
    assert after < before
    start, end = model.prior_dswd.tolist()
    assert end < start
    again = _tiny_bae()
    select_prior(again, digits_flat, seed=0)
    assert torch.equal(again.prior_log_var, model.prior_log_var)
    other = _tiny_bae()
    select_prior(other, digits_flat, seed=1)
    assert not torch.equal(other.prior_log_var, model.prior_log_var)


def test_decoder_only_model_has_priors_on_the_decoder_alone(digits_flat):
    full, dec = _tiny_bae(prior_scale="tensor"), _tiny_bae(prior_scale="tensor", bayesian="decoder")
    n_decoder = len(list(dec.decoder.parameters()))
    assert dec.prior_log_var.shape == (n_decoder,)
    assert full.prior_log_var.shape == (n_decoder + len(list(full.encoder.parameters())),)
    per_weight = _tiny_bae(bayesian="decoder")  # the default: one variance and one mean per weight
    n_weights = sum(p.numel() for p in per_weight.decoder.parameters())
    assert per_weight.prior_log_var.shape == per_weight.prior_loc.shape == (n_weights,)


@pytest.fixture(scope="module")
def fitted(digits):
    X = digits.X[:300]
    est = Autoencoder("bae", 4, epochs=30, sampler="dpmm", **TINY, **QUICK).fit(X)
    return est, X


def test_fit_keeps_every_posterior_sample_and_reports_both_phases(fitted):
    est, X = fitted
    model = est.model_
    samples = model.posterior_weights()
    assert len(samples) == 6 and int(model.n_collected) == 6
    assert all(not torch.equal(samples[0], s) for s in samples[1:])  # distinct states of the chain
    assert np.isfinite(model.prior_dswd.numpy()).all()
    hist = est.history_
    assert len(hist) == 30 and [h["epoch"] for h in hist] == list(range(1, 31))
    assert sum(h["burn_in"] for h in hist) == 15 and hist[-1]["samples"] == 6
    assert hist[-1]["train_reconstruction"] < hist[0]["train_reconstruction"]
    assert 0 <= hist[-1]["grad_noise"] <= 1


def test_save_load_keeps_every_posterior_sample_and_predictions(fitted, tmp_path):
    est, X = fitted
    est.save(tmp_path / "bae")
    loaded = Autoencoder.load(tmp_path / "bae")
    for a, b in zip(est.model_.posterior_weights(), loaded.model_.posterior_weights(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(loaded.model_.prior_log_var, est.model_.prior_log_var)
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    for a, b in zip(loaded.transform(X, return_std=True), est.transform(X, return_std=True)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.reconstruct(X, return_std=True), est.reconstruct(X, return_std=True)):
        np.testing.assert_array_equal(a, b)
    for kind in ("recon", "expected_recon", "predictive_variance"):
        np.testing.assert_array_equal(loaded.score_samples(X, kind=kind), est.score_samples(X, kind=kind))
    np.testing.assert_array_equal(loaded.sample(5, seed=3), est.sample(5, seed=3))


def test_uncertainty_shapes_and_out_of_distribution_variance(fitted):
    est, X = fitted
    mean, std = est.transform(X[:20], return_std=True)
    assert mean.shape == std.shape == (20, 4) and (std > 0).all()
    np.testing.assert_allclose(mean, est.transform(X[:20]), rtol=1e-6, atol=1e-6)
    rmean, rstd = est.reconstruct(X[:20], return_std=True)
    assert rmean.shape == rstd.shape == (20, 1, 8, 8) and (rstd >= 0).all() and rstd.mean() > 0
    np.testing.assert_allclose(rmean, est.reconstruct(X[:20]), rtol=1e-5, atol=1e-6)
    # E_s error = error of the mean + mean predictive variance (per row, averaged over pixels)
    flat = est.features(X[:20])
    expected = est.score_samples(X[:20], kind="expected_recon")
    variance = est.score_samples(X[:20], kind="predictive_variance")
    np.testing.assert_allclose(expected, est.score_samples(X[:20]) + variance, rtol=1e-4, atol=1e-6)
    assert flat.shape == (20, 64)
    noise = np.random.default_rng(0).random((100, 1, 8, 8)).astype(np.float32)
    assert est.score_samples(noise, kind="predictive_variance").mean() > variance.mean()
    with pytest.raises(InputError, match="predictive_variance"):
        est.score_samples(X[:5], kind="variance")
    assert est.sample(4, seed=0).shape == (4, 1, 8, 8)


def test_other_models_refuse_return_std(digits):
    est = Autoencoder("ae", 2, epochs=1, **TINY).fit(digits.X[:64])
    with pytest.raises(InputError, match="bae"):
        est.transform(digits.X[:4], return_std=True)


def test_several_chains_and_decoder_only_fit(digits):
    X = digits.X[:128]
    est = Autoencoder("bae", 3, epochs=6, chains=2, bayesian="decoder", prior_selection="none", prior_mean="zero",
                      prior_scale="tensor", prior_variance=1.0, **TINY, posterior_samples=4).fit(X)
    hist = est.history_
    assert [int(h["chain"]) for h in hist] == [0] * 6 + [1] * 3  # 3 shared burn-in epochs, then 3 per chain
    assert [h["burn_in"] for h in hist] == [1.0] * 3 + [0.0] * 6
    assert int(est.model_.n_collected) == 4
    assert torch.equal(est.model_.prior_log_var, torch.zeros_like(est.model_.prior_log_var))  # N(0, 1) kept
    assert np.isfinite(est.transform(X)).all()


@pytest.mark.parametrize("params,message", [
    (dict(posterior_samples=0), "posterior_samples"),
    (dict(burn_in=1.0), "longer than the run"),
    (dict(chains=3, posterior_samples=2), "chains=3"),
    (dict(bayesian="encoder"), "bayesian"),
    (dict(posterior_samples=50), "posterior samples"),           # 3 epochs x 2 steps cannot hold 50
    (dict(dswd_batch=100), "dswd_batch=100"),                     # 64 rows cannot fill one batch
])
def test_bad_settings_are_clear_input_errors(digits, params, message):
    with pytest.raises(InputError, match=message):
        Autoencoder("bae", 2, epochs=6, **{**TINY, **QUICK, **params}).fit(digits.X[:64])


def test_batch_norm_is_refused():
    with pytest.raises(InputError, match="norm='layer'"):
        build_model("bae", (4,), [("gaussian", 0, 4)], 2, Architecture(hidden=(8,), norm="batch"))


@pytest.mark.parametrize("precondition", [False, True])
def test_unstable_step_size_stops_with_advice(digits, precondition):
    est = Autoencoder("bae", 2, epochs=4, step_size=1e6, precondition=precondition, prior_selection="none",
                      posterior_samples=2, pretrain_steps=20, **TINY)
    with pytest.raises(TrainingDivergedError, match="smaller step size, e.g. step_size=100000"):
        est.fit(digits.X[:64])


def test_cli_fits_a_bae(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "digits", "--model", "bae", "--epochs", "4", "--hidden", "16", "--quiet",
            "--param", "prior_selection=dswd", "--param", "posterior_samples=4", "--param", "dswd_steps=3",
            "--param", "precondition=true", "--param", "step_size=2e-4", "--param", "pretrain_steps=50",
            "--out", "runs/bae"]
    assert main(args) == 0
    loaded = Autoencoder.load(tmp_path / "runs" / "bae")
    assert int(loaded.model_.n_collected) == 4 and loaded.model_.hp["step_size"] == 2e-4


# -- the paper's prior: per-weight means and variances, means from a pretrained autoencoder ----------------------

def test_per_weight_prior_energy_is_the_gaussian_negative_log_density():
    # Reference: torch.distributions.Normal, whose log-density minus its normalising constant
    # (−½ log 2π − log σ per weight) is −(θ − μ)²/(2σ²).
    model = _tiny_bae(prior_mean="learned", prior_scale="weight", bayesian="decoder")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.prior_loc.copy_(torch.randn(model.n_bayesian, generator=gen))
        model.prior_log_var.copy_(torch.randn(model.n_bayesian, generator=gen))
    theta = model.bayesian_weights()
    sd = torch.exp(0.5 * model.prior_log_var)
    ref = torch.distributions.Normal(model.prior_loc, sd).log_prob(theta)
    expected = -(ref + 0.5 * np.log(2 * np.pi) + torch.log(sd)).sum()
    assert model.prior_log_var.shape == model.prior_loc.shape == (sum(p.numel() for p in model.decoder.parameters()),)
    torch.testing.assert_close(model.prior_energy(), expected, rtol=1e-4, atol=1e-3)


def test_dswd_selection_of_means_and_variances_recovers_a_known_output_distribution():
    # Data N(m, diag s²) in 3 dimensions. With a Gaussian likelihood the prior-predictive output is
    # W₂h + b₂; with small weight variances it is ≈ b₂ ~ N(μ_b, σ_b²), so the DSWD optimum is
    # known: output means m and standard deviations s. Learned per-weight means must get there;
    # zero-mean priors (the old variance-only selection) cannot move the output mean off 0 (its
    # last layer is symmetric about 0), which is the paper's reason for learning the means too.
    gen = torch.Generator().manual_seed(0)
    m, s = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([0.5, 1.0, 0.3])
    X = m + s * torch.randn(512, 3, generator=gen)
    torch.manual_seed(0)
    model = build_model("bae", (3,), [("gaussian", 0, 3)], 2, Architecture(hidden=(8,), norm="none"),
                        {"prior_mean": "learned", "prior_scale": "weight", "prior_variance": 1e-2, "dswd_steps": 60,
                         "dswd_lr": 0.2, "dswd_mean_lr": 0.2, "dswd_batch": 16, "dswd_prior_draws": 8,
                         "dswd_projections": 20, "dswd_inner_steps": 1})
    before = model.prior_loc.clone()
    select_prior(model, X, seed=0)
    with torch.no_grad():
        out = model.prior_outputs(X, model.prior_log_var, 8, torch.Generator().manual_seed(5))
    assert not torch.equal(model.prior_loc, before)
    # 60 noisy steps (20 directions, 8 draws) do not converge fully: over data seeds 0-3 the worst
    # mean was 0.33 off and the worst standard deviation 1.8x off, hence the tolerances; from the
    # start (output means 0, deviations ≈ 0.1) both are violated by a wide margin.
    assert torch.all((out.mean(0) - m).abs() < 0.4), out.mean(0)
    ratio = out.std(0) / s
    assert torch.all((ratio > 0.4) & (ratio < 2.5)), out.std(0)
    start, end = model.prior_dswd.tolist()
    assert end < 0.5 * start


def test_pretrained_prior_means_fit_save_and_load(digits, tmp_path):
    from latentforge.train.posterior import pretrain

    X = torch.from_numpy(digits.X[:128].reshape(128, -1))
    model = _tiny_bae(prior_mean="pretrained", pretrain_steps=60, pretrain_lr=3e-3)
    nll = lambda: float(model.likelihood.nll(model.decoder(model.encoder(X)), X).mean().detach())  # noqa: E731
    first = nll()
    trace = pretrain(model, X, seed=0, batch_size=32)
    assert len(trace) == 60 and nll() < 0.9 * first
    with pytest.raises(InputError, match="prior_mean='pretrained'"):
        _tiny_bae(chain_start="prior_mean", prior_mean="zero")
    est = Autoencoder("bae", 4, epochs=4, prior_mean="pretrained", prior_scale="weight", prior_variance=1e-2,
                      chain_start="prior_mean", pretrain_steps=30, prior_selection="none", posterior_samples=2,
                      **TINY).fit(digits.X[:128])
    loc = est.model_.prior_loc
    assert loc.shape == (est.model_.n_bayesian,) and loc.abs().sum() > 0  # the pretrained weights, not zeros
    est.save(tmp_path / "bae")
    loaded = Autoencoder.load(tmp_path / "bae")
    assert torch.equal(loaded.model_.prior_loc, loc)
    assert torch.equal(loaded.model_.prior_log_var, est.model_.prior_log_var)
    np.testing.assert_array_equal(loaded.sample(3, seed=1), est.sample(3, seed=1))
