"""Normalising flows: planar, radial and IAF posteriors (models.flows, planar_vae, radial_vae,
iaf_vae) and the MAF code sampler (estimator.flow_sampler).

The references are independent of the code under test: log|det J| against the slog-determinant of
the Jacobian autograd computes, MADE's autoregressive property read off that Jacobian, the MAF's
density against SciPy's Gaussian and a numerical integral."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.autograd.functional import jacobian

from latentforge import Autoencoder
from latentforge.estimator.flow_sampler import MAFLayer, MAFSampler
from latentforge.models import build_model
from latentforge.models.flows import MADE, PlanarFlow, RadialFlow
from latentforge.models.iaf_vae import IAFStep
from latentforge.models.vae import VAE

FLOW_MODELS = ("planar_vae", "radial_vae", "iaf_vae")


def _randomise(module: torch.nn.Module, scale: float = 0.7, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn at random (the zero-initialised outputs would hide the structure);
    weight matrices scaled by 1/√fan-in so deep stacks stay in a sane range."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = scale / p.shape[1] ** 0.5 if p.dim() == 2 else scale
            p.copy_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _autograd_log_det(f, z: torch.Tensor) -> torch.Tensor:
    """log|det ∂f/∂z| row by row, from the full Jacobian."""
    return torch.stack([torch.linalg.slogdet(jacobian(f, row))[1] for row in z])


@pytest.mark.parametrize("layer_class", [PlanarFlow, RadialFlow])
def test_planar_and_radial_log_det_equals_autograd_slogdet(layer_class):
    torch.manual_seed(0)
    for seed in range(3):
        layer = _randomise(layer_class(4), scale=1.5, seed=seed).double()
        z = torch.randn(6, 4, dtype=torch.float64) * 2
        out, log_det = layer(z)
        assert out.shape == z.shape and log_det.shape == (6,)
        reference = _autograd_log_det(lambda v: layer(v[None])[0][0], z)
        torch.testing.assert_close(log_det, reference, rtol=1e-9, atol=1e-9)


def test_radial_log_det_at_the_contracting_limit():
    """β close to its bound −α: the layer nearly collapses space onto the centre but stays invertible."""
    layer = RadialFlow(3).double()
    with torch.no_grad():
        layer.alpha_raw.fill_(0.3)
        layer.beta_raw.fill_(-6.0)             # β = −α + softplus(−6) ≈ −α
    alpha, beta = (float(t.detach()) for t in layer.alpha_beta())
    assert -alpha <= beta < -0.99 * alpha
    z = torch.randn(5, 3, dtype=torch.float64)
    reference = _autograd_log_det(lambda v: layer(v[None])[0][0], z)
    torch.testing.assert_close(layer(z)[1], reference, rtol=1e-8, atol=1e-8)


def test_planar_constraint_keeps_w_dot_u_hat_above_minus_one():
    gen = torch.Generator().manual_seed(1)
    layer = PlanarFlow(5).double()
    for trial in range(200):
        w = torch.randn(5, generator=gen, dtype=torch.float64) * 3
        # half the trials point u against w, where the unconstrained layer is not invertible
        u = -torch.rand((), generator=gen, dtype=torch.float64) * 20 * w if trial % 2 else torch.randn(
            5, generator=gen, dtype=torch.float64) * 3
        with torch.no_grad():
            layer.w.copy_(w)
            layer.u.copy_(u)
        u_hat = layer.u_hat().detach()
        assert float(w @ u_hat) >= -1.0 - 1e-9          # > −1 exactly; rounding where softplus ≈ 0
        # û − u is parallel to w: only the component along w is moved
        delta = u_hat - u
        torch.testing.assert_close(delta - (delta @ w) / (w @ w) * w, torch.zeros(5, dtype=torch.float64),
                                   rtol=0, atol=1e-9)
        # and the planar map then has a positive Jacobian determinant everywhere we look
        z = torch.randn(20, 5, generator=gen, dtype=torch.float64) * 3
        assert torch.isfinite(layer(z)[1]).all()


@pytest.mark.parametrize("context_dim", [0, 3])
def test_made_is_autoregressive_in_its_order(context_dim):
    dim = 5
    order = torch.tensor([3, 0, 4, 1, 2])
    made = _randomise(MADE(dim, hidden=16, n_hidden=2, context_dim=context_dim, order=order)).double()
    context = torch.randn(context_dim, dtype=torch.float64) if context_dim else None
    strictly_lower = torch.tril(torch.ones(dim, dim, dtype=torch.bool), -1)
    for output in (0, 1):                       # shift and log-scale
        seen = torch.zeros(dim, dim, dtype=torch.bool)
        for _ in range(8):                      # ReLUs switch units off at some points, not at all
            x = torch.randn(dim, dtype=torch.float64)
            J = jacobian(lambda v: made(v[None], None if context is None else context[None])[output][0], x)
            J_ordered = J[order][:, order]      # rows and columns in the autoregressive order
            assert torch.equal(torch.triu(J_ordered), torch.zeros_like(J_ordered)), "depends on a later input"
            seen |= J_ordered != 0
        assert torch.equal(seen, strictly_lower), "a permitted dependence is masked away"
    if context_dim:                             # the context reaches every output, the first included
        J_context = jacobian(lambda c: made(torch.zeros(1, dim, dtype=torch.float64), c[None])[0][0], context)
        assert (J_context.abs().sum(1) > 0).all()


def test_iaf_step_log_det_equals_autograd_slogdet_and_jacobian_is_triangular():
    step = _randomise(IAFStep(4, hidden=12, n_hidden=2, context_dim=3, order=torch.arange(4).flip(0))).double()
    z, h = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    _, log_det = step(z, h)
    for i in range(5):
        J = jacobian(lambda v: step(v[None], h[i:i + 1])[0][0], z[i])
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(J)[1], rtol=1e-9, atol=1e-9)
        flipped = J.flip(0).flip(1)             # order 3, 2, 1, 0: lower-triangular there
        assert torch.equal(torch.triu(flipped, 1), torch.zeros_like(flipped))


def test_maf_layer_log_det_equals_autograd_slogdet_and_inverse_inverts():
    layer = _randomise(MAFLayer(4, torch.tensor([2, 0, 3, 1])), scale=0.5).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    u, log_det = layer(x)
    torch.testing.assert_close(log_det, _autograd_log_det(lambda v: layer(v[None])[0][0], x), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(layer.inverse(u), x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", FLOW_MODELS)
def test_posterior_log_density_is_the_change_of_variables_of_the_whole_flow(name):
    """log q_K(z_K|x) from posterior_draws = log q₀(z₀|x) − log|det ∂z_K/∂z₀| with the Jacobian of
    the composed flow from autograd (the flow parameters randomised so the flow is far from identity)."""
    torch.manual_seed(0)
    model = build_model(name, (10,), [("gaussian", 0, 10)], 3, {"hidden": (16,)}).double()
    flow_part = model.flows if name != "iaf_vae" else model.steps
    _randomise(flow_part, scale=0.8)
    x = torch.randn(4, 10, dtype=torch.float64)
    q = model.base_posterior(x)
    torch.manual_seed(1)
    z, log_q = model.posterior_draws(q, 2)
    torch.manual_seed(1)
    z0, log_q0 = VAE.posterior_draws(model, q, 2)        # the same base draws
    assert z.shape == (2, 4, 3) and log_q.shape == (2, 4)
    for k in range(2):
        for i in range(4):
            qi = {key: value[i:i + 1] for key, value in q.items()}
            flow = lambda v: model.flow(v[None], qi)[0][0]     # noqa: E731
            torch.testing.assert_close(z[k, i], flow(z0[k, i]))
            reference = log_q0[k, i] - torch.linalg.slogdet(jacobian(flow, z0[k, i]))[1]
            torch.testing.assert_close(log_q[k, i], reference, rtol=1e-9, atol=1e-9)
    # the embedding is the flow applied to the base posterior's mean
    torch.testing.assert_close(model.encode(x)["z"], model.flow(q["mu"], q)[0])


@pytest.mark.parametrize("name", FLOW_MODELS)
def test_one_sample_log_likelihood_is_minus_the_loss_on_the_same_draw(name):
    """The loss and log_likelihood reach q_K by different paths; on the same draw the one-sample
    importance weight equals −(reconstruction + KL) row by row."""
    torch.manual_seed(0)
    model = build_model(name, (10,), [("gaussian", 0, 10)], 3, {"hidden": (16,)}).eval()
    _randomise(model.flows if name != "iaf_vae" else model.steps, scale=0.5)
    x = torch.randn(1, 10)
    torch.manual_seed(3)
    loss = model.loss(x)
    torch.manual_seed(3)
    ll = model.log_likelihood(x, 1)
    torch.testing.assert_close(ll[0], -loss["total"].detach(), rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def correlated_gaussian():
    rng = np.random.default_rng(0)
    mean, cov = np.array([1.0, -2.0]), np.array([[1.0, 1.8], [1.8, 4.0]])     # correlation 0.9
    X = rng.multivariate_normal(mean, cov, 3000)
    return mean, cov, X[:2000], X[2000:], MAFSampler.fit(X[:2000], seed=0)


def test_maf_matches_a_correlated_gaussian(correlated_gaussian):
    mean, cov, train, test, maf = correlated_gaussian
    true = multivariate_normal(mean, cov).logpdf(test).mean()
    diagonal = multivariate_normal(train.mean(0), np.diag(train.var(0))).logpdf(test).mean()
    fitted = maf.log_density(test).mean()
    assert abs(fitted - true) < 0.05, (fitted, true)
    assert fitted > diagonal + 0.6                 # the true gap is −½·log(1 − 0.81) = 0.83 nats
    samples = maf.sample(4000, seed=1)
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.12)
    np.testing.assert_allclose(np.cov(samples.T), cov, rtol=0.1, atol=0.05)


def test_maf_density_integrates_to_one(correlated_gaussian):
    mean, cov, _, _, maf = correlated_gaussian
    sd = np.sqrt(np.diag(cov))
    a = np.linspace(mean[0] - 7 * sd[0], mean[0] + 7 * sd[0], 281)
    b = np.linspace(mean[1] - 7 * sd[1], mean[1] + 7 * sd[1], 281)
    grid = np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
    mass = np.exp(maf.log_density(grid)).sum() * (a[1] - a[0]) * (b[1] - b[0])
    assert abs(mass - 1.0) < 0.01, mass


def test_maf_fit_is_deterministic_and_leaves_the_global_rng_alone(correlated_gaussian):
    _, _, train, _, maf = correlated_gaussian
    state = torch.get_rng_state()
    again = MAFSampler.fit(train[:500], seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(again.sample(50, seed=0), MAFSampler.fit(train[:500], seed=3).sample(50, seed=0))
    assert not np.array_equal(again.sample(50, seed=0), again.sample(50, seed=1))
    assert not np.array_equal(again.sample(50, seed=0), MAFSampler.fit(train[:500], seed=4).sample(50, seed=0))


def test_maf_sampler_survives_save_and_load(tmp_path):
    from latentforge.data import load_builtin

    X = load_builtin("digits").X[:300]
    est = Autoencoder("ae", 3, epochs=2, hidden=(32,), sampler="maf", val_fraction=0.0, verbose=False).fit(X)
    before = est.sample_codes(20, seed=0)
    images = est.sample(4, seed=0)
    est.save(tmp_path / "m")
    loaded = Autoencoder.load(tmp_path / "m")            # refits the flow from the saved codes
    assert loaded.sampler_kind_ == "maf"
    np.testing.assert_array_equal(loaded.sample_codes(20, seed=0), before)
    np.testing.assert_array_equal(loaded.sample(4, seed=0, sampler="maf"), images)
    assert images.shape == (4, 1, 8, 8)
