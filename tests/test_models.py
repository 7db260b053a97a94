"""Models: the shared interface, likelihoods and KL against torch.distributions, priors, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import distributions as D

from latentforge.errors import InputError
from latentforge.estimator.samplers import fit_code_sampler
from latentforge.models import MODELS, Architecture, build_model, get_model_class
from latentforge.models.likelihoods import ReconstructionLikelihood
from latentforge.models.priors import make_prior
from latentforge.models.vae import gaussian_kl

LAYOUT = [("gaussian", 0, 3), ("bernoulli", 3, 5), ("categorical", 5, 9)]


def test_likelihood_nll_matches_torch_distributions():
    torch.manual_seed(0)
    lik = ReconstructionLikelihood(LAYOUT, learn_scale=True)
    with torch.no_grad():
        lik.log_scale.copy_(torch.tensor([0.1, -0.3, 0.5]))
    out = torch.randn(6, 9)
    x = torch.cat([torch.randn(6, 3), torch.randint(0, 2, (6, 2)).float(),
                   torch.nn.functional.one_hot(torch.randint(0, 4, (6,)), 4).float()], 1)
    ref = (-D.Normal(out[:, :3], lik.log_scale.exp()).log_prob(x[:, :3]).sum(1)
           - D.Bernoulli(logits=out[:, 3:5]).log_prob(x[:, 3:5]).sum(1)
           - D.Categorical(logits=out[:, 5:]).log_prob(x[:, 5:].argmax(1)))
    torch.testing.assert_close(lik.nll(out, x), ref)
    mean = lik.mean(out)
    torch.testing.assert_close(mean[:, 3:5], torch.sigmoid(out[:, 3:5]))
    torch.testing.assert_close(mean[:, 5:].sum(1), torch.ones(6))


def test_adjacent_blocks_are_scored_together_with_the_same_likelihood():
    # a table's layout: numbers column by column, one-hot groups of widths 3, 3, 2, 3, a missing flag
    layout = [("gaussian", 0, 1), ("gaussian", 1, 3), ("categorical", 3, 6), ("categorical", 6, 9),
              ("categorical", 9, 11), ("categorical", 11, 14), ("bernoulli", 14, 15), ("bernoulli", 15, 16)]
    lik = ReconstructionLikelihood(layout, learn_scale=True)
    assert lik.runs == [("gaussian", 0, 3, 1), ("categorical", 3, 9, 3), ("categorical", 9, 11, 2),
                        ("categorical", 11, 14, 3), ("bernoulli", 14, 16, 1)]
    torch.manual_seed(1)
    with torch.no_grad():
        lik.log_scale.copy_(torch.tensor([0.2, -0.4, 0.0]))
    n = 7
    out = torch.randn(n, 16, requires_grad=True)
    onehot = lambda k: torch.nn.functional.one_hot(torch.randint(0, k, (n,)), k).float()  # noqa: E731
    x = torch.cat([torch.randn(n, 3), onehot(3), onehot(3), onehot(2), onehot(3), torch.randint(0, 2, (n, 2)).float()], 1)
    # block by block with torch.distributions: the obvious, slow way
    ref = -D.Normal(out[:, :3], lik.log_scale.exp()).log_prob(x[:, :3]).sum(1)
    for a, b in [(3, 6), (6, 9), (9, 11), (11, 14)]:
        ref = ref - D.Categorical(logits=out[:, a:b]).log_prob(x[:, a:b].argmax(1))
    ref = ref - D.Bernoulli(logits=out[:, 14:]).log_prob(x[:, 14:]).sum(1)
    got = lik.nll(out, x)
    torch.testing.assert_close(got, ref)
    grad_got, = torch.autograd.grad(got.sum(), out, retain_graph=True)
    grad_ref, = torch.autograd.grad(ref.sum(), out)
    torch.testing.assert_close(grad_got, grad_ref)


def test_gaussian_kl_matches_torch():
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    ref = D.kl_divergence(D.Normal(mu, (0.5 * logvar).exp()), D.Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), ref)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape,arch", [((20,), "mlp"), ((1, 8, 8), "mlp"), ((1, 8, 8), "conv"), ((1, 28, 28), "auto")])
def test_interface_shapes_and_loss(name, shape, arch):
    torch.manual_seed(0)
    d = int(np.prod(shape))
    layout = [("gaussian", 0, d)] if len(shape) == 1 else [("bernoulli", 0, d)]
    model = build_model(name, shape, layout, 4, Architecture(kind=arch, hidden=(16,), channels=(4, 8)))
    x = torch.rand(7, d)
    enc = model.encode(x)
    assert enc["z"].shape == (7, 4)
    assert model.decode(enc["z"]).shape == (7, d)
    terms = model.loss(x)
    assert "total" in terms and terms["total"].ndim == 0 and torch.isfinite(terms["total"])
    terms["total"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    if model.has_prior:
        assert model.sample(5).shape == (5, d)
    else:
        with pytest.raises(NotImplementedError):
            model.sample(5)


def test_vae_loss_is_the_negative_elbo():
    torch.manual_seed(0)
    model = build_model("vae", (6,), [("gaussian", 0, 6)], 2, Architecture(hidden=(8,)), {"beta": 3.0})
    x = torch.randn(4, 6)
    torch.manual_seed(1)
    terms = model.loss(x)
    torch.manual_seed(1)
    q = model.encode(x)
    z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
    nll = model.likelihood.nll(model.decode(z), x).mean()
    kl = D.kl_divergence(D.Normal(q["mu"], (0.5 * q["logvar"]).exp()), D.Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(terms["total"], nll + 3.0 * kl)


def test_swae_regulariser_is_the_sliced_wasserstein_to_prior_samples():
    ot = pytest.importorskip("ot")
    model = build_model("swae", (6,), [("gaussian", 0, 6)], 3, Architecture(hidden=(8,)), {"n_projections": 50})
    x = torch.randn(30, 6)
    torch.manual_seed(5)
    sw = model.loss(x)["sw"]
    torch.manual_seed(5)
    z = model.encode(x)["z"].detach().double().numpy()
    target = model.prior(30).double().numpy()
    theta = torch.randn(50, 3, dtype=torch.float64)
    theta = (theta / theta.norm(dim=1, keepdim=True)).numpy()
    ref = ot.sliced_wasserstein_distance(z, target, projections=theta.T, p=2) ** 2
    assert float(sw.detach()) == pytest.approx(ref, rel=1e-4)


def test_priors_have_their_defining_support_and_moments():
    torch.manual_seed(0)
    n = 20000
    ball = make_prior("ball", 3)(n)
    assert ball.norm(dim=1).max() <= 1 + 1e-6
    # uniform in the unit 3-ball: P(r < 1/2) = 1/8
    assert abs((ball.norm(dim=1) < 0.5).float().mean().item() - 0.125) < 0.01
    cube = make_prior("cube", 4)(n)
    assert cube.abs().max() <= 1 and abs(cube.var().item() - 1 / 3) < 0.01
    normal = make_prior("normal", 2)(n)
    assert abs(normal.mean().item()) < 0.03 and abs(normal.std().item() - 1) < 0.03
    gmm = make_prior("gmm", 2)(n)
    assert gmm.shape == (n, 2)
    with pytest.raises(InputError, match="did you mean 'ball'"):
        make_prior("bal", 2)
    with pytest.raises(InputError, match=r"\(n, 2\)"):
        make_prior(lambda n: torch.zeros(n, 3), 2)


def test_registry_and_hyperparameter_validation():
    assert get_model_class("vae").name == "vae"
    with pytest.raises(InputError, match="did you mean 'vae'"):
        get_model_class("vea")
    with pytest.raises(InputError, match="did you mean 'beta'"):
        get_model_class("vae").resolve_hyperparameters({"betta": 2})
    with pytest.raises(InputError, match="must be a float"):
        get_model_class("vae").resolve_hyperparameters({"beta": "lots"})
    assert get_model_class("vae").resolve_hyperparameters({"beta": "4"})["beta"] == 4.0
    with pytest.raises(InputError, match="takes no hyper-parameters"):
        get_model_class("ae").resolve_hyperparameters({"beta": 1})


def test_code_samplers():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-3, 0.5, (500, 2)), rng.normal(3, 0.5, (500, 2))])
    gmm = fit_code_sampler("gmm", codes, seed=0, n_components=2)
    s = gmm.sample(20000, seed=1)
    np.testing.assert_allclose(s.mean(0), codes.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(s.T), np.cov(codes.T), rtol=0.05, atol=0.05)
    np.testing.assert_array_equal(gmm.sample(10, seed=2), gmm.sample(10, seed=2))
    # the Dirichlet-process mixture switches off the components two clusters do not need
    dpmm = fit_code_sampler("dpmm", codes, seed=0, n_components=10)
    assert (dpmm.weights > 0.05).sum() == 2
    assert abs((dpmm.sample(4000, seed=0)[:, 0] > 0).mean() - 0.5) < 0.05
    emp = fit_code_sampler("empirical", codes[:7], seed=0)
    drawn = emp.sample(50, seed=0)
    assert all(any(np.array_equal(d, c) for c in codes[:7]) for d in drawn)
    with pytest.raises(InputError, match="did you mean 'dpmm'"):
        fit_code_sampler("dpm", codes)


def test_vae_importance_weights_agree_with_the_elbo_and_bound_it():
    torch.manual_seed(0)
    model = build_model("vae", (1, 8, 8), [("bernoulli", 0, 64)], 3, Architecture(hidden=(16,)))
    x = torch.rand(20, 64).round()
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 4000)               # (K, N)
        q = model.encode(x)
        # ELBO two ways: Monte Carlo mean of log w vs the loss's analytic-KL form (many draws)
        terms = [model.loss(x) for _ in range(400)]
        elbo = -torch.stack([t["total"] for t in terms]).mean()
        assert log_w.mean().item() == pytest.approx(elbo.item(), rel=0.01)
        assert gaussian_kl(q["mu"], q["logvar"]).sum(1).mean() > 0
        # importance sampling with K > 1 is a tighter bound than the ELBO
        assert model.log_likelihood(x, 50).mean() > elbo


@pytest.mark.parametrize("name", sorted(MODELS))
def test_declared_capabilities_match_what_the_model_does(name):
    """Each optional capability declared on the class works, and an undeclared one refuses clearly."""
    import torch

    cls = get_model_class(name)
    torch.manual_seed(0)
    layout = [("gaussian", 0, 6)]
    net = build_model(name, (6,), layout, 2, Architecture(hidden=(8,)), {})
    x = torch.randn(5, 6)
    if cls.has_log_likelihood:
        ll = net.log_likelihood(x, 4)
        assert ll.shape == (5,) and torch.isfinite(ll).all()
    else:
        with pytest.raises(NotImplementedError):
            net.log_likelihood(x, 4)
    if cls.has_uncertainty:
        mean, std = net.embed_with_std(x)
        assert mean.shape == std.shape == (5, 2) and (std >= 0).all()
    else:
        with pytest.raises(NotImplementedError):
            net.embed_with_std(x)
    for kind in cls.anomaly_kinds:
        assert net.anomaly_score(x, kind).shape == (5,)
    size = net.codebook_size()
    assert (size is None) == (cls.code_kind == "continuous")
    if size is not None:
        assert isinstance(size, int) and size >= 2
    if cls.has_prior:
        assert net.sample_prior(3).shape == (3, 2)
    assert cls.fit_method in ("gradient", "posterior")
    assert (cls.fit_method == "posterior") == (len(net.posterior_weights()) > 0 or name == "bae")
