"""Deterministic zoo (dae, cae, lorae, topk_ae, matryoshka_ae): each model's defining property,
checked against an independent reference (autograd Jacobians, closed forms, obvious loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from latentforge import Autoencoder
from latentforge.errors import InputError
from latentforge.models import Architecture, build_model
from latentforge.models.cae import jacobian_frobenius_sq
from latentforge.evaluate import effective_rank
from latentforge.models.matryoshka_ae import nested_dropout_probabilities, parse_prefix_sizes

from conftest import FAST


@pytest.fixture(scope="module")
def digits_split():
    from latentforge.data import load_builtin

    ds = load_builtin("digits")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds.X))
    return ds.X[order[:1200]], ds.X[order[1200:1500]]


def _flat(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1))


# -- dae ----------------------------------------------------------------------------------
def test_dae_noise_kinds_have_their_defining_statistics():
    torch.manual_seed(0)
    layout = [("gaussian", 0, 3), ("categorical", 3, 7)]
    x = torch.cat([torch.randn(4000, 3), torch.nn.functional.one_hot(torch.randint(0, 4, (4000,)), 4).float()], 1)
    gauss = build_model("dae", (7,), layout, 2, Architecture(hidden=(8,)), {"noise": "gaussian", "noise_level": 0.3})
    assert (gauss.corrupt(x) - x).std().item() == pytest.approx(0.3, rel=0.03)
    mask = build_model("dae", (7,), layout, 2, Architecture(hidden=(8,)), {"noise": "mask", "noise_level": 0.25})
    masked = mask.corrupt(x)
    group_zero = masked[:, 3:].sum(1) == 0                      # a one-hot group is masked as one unit
    assert group_zero.float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert torch.all((masked[:, :3] == 0) | (masked[:, :3] == x[:, :3]))
    swap = build_model("dae", (7,), layout, 2, Architecture(hidden=(8,)), {"noise": "swap", "noise_level": 0.5})
    swapped = swap.corrupt(x)
    assert torch.all(swapped[:, 3:].sum(1) == 1)                 # swapped groups stay valid one-hots
    column = set(x[:, 0].tolist())
    assert all(v in column for v in swapped[:, 0].tolist())      # values come from the same column
    assert (swapped[:, 0] != x[:, 0]).float().mean().item() == pytest.approx(0.5, abs=0.04)
    with pytest.raises(InputError, match="at most 1"):
        build_model("dae", (7,), layout, 2, None, {"noise": "mask", "noise_level": 1.5})


def test_dae_corrupts_only_while_training():
    torch.manual_seed(0)
    model = build_model("dae", (6,), [("gaussian", 0, 6)], 2, Architecture(hidden=(8,)), {"noise_level": 0.9})
    x = torch.randn(10, 6)
    model.eval()
    clean = model.likelihood.nll(model.decode(model.encode(x)["z"]), x).mean()
    assert model.loss(x)["total"].item() == pytest.approx(clean.item())
    model.train()
    assert model.loss(x)["total"].item() != pytest.approx(clean.item())


def test_dae_reconstructs_corrupted_inputs_better_than_an_ae_trained_on_clean_data(digits_split):
    train, test = digits_split
    options = dict(FAST, epochs=15, hidden=(64,), lr=3e-3, val_fraction=0.0, seed=0)
    ae = Autoencoder("ae", 8, **options).fit(train)
    dae = Autoencoder("dae", 8, noise="mask", noise_level=0.5, **options).fit(train)
    clean = _flat(test)
    torch.manual_seed(1)
    corrupted = dae.model_.corrupt(clean)                       # the same corrupted copy for both
    def error(est):
        with torch.no_grad():
            return (est.model_.reconstruct(corrupted) - clean).pow(2).mean().item()
    assert error(dae) < 0.85 * error(ae)        # about 0.7 over seeds 0-2


# -- cae ----------------------------------------------------------------------------------
def _per_sample_jacobian_sq(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([jacobian(lambda v: fn(v.unsqueeze(0)).reshape(-1), xi, create_graph=True).pow(2).sum()
                        for xi in x])


def _dense_layers(seq: torch.nn.Sequential) -> list[torch.nn.Sequential]:
    layers: list[list[torch.nn.Module]] = []
    for module in seq:
        if isinstance(module, torch.nn.Linear) or not layers:
            layers.append([])
        layers[-1].append(module)
    return [torch.nn.Sequential(*layer) for layer in layers]


@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_cae_exact_penalties_match_autograd_jacobians(norm, activation):
    torch.manual_seed(0)
    arch = Architecture(hidden=(6, 5), norm=norm, activation=activation)
    model = build_model("cae", (7,), [("gaussian", 0, 7)], 3, arch, {"jacobian": "exact"}).double().eval()
    with torch.no_grad():                       # non-trivial norm parameters and running statistics
        for module in model.encoder.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                module.weight.uniform_(0.5, 2.0)
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(5, 7, dtype=torch.float64)
    whole = _per_sample_jacobian_sq(model.encoder, x)
    torch.testing.assert_close(model.contractive_penalty(x), whole)
    # gradients with respect to the weights agree too (what training uses)
    first = model.encoder[0].weight
    (g_ours,) = torch.autograd.grad(model.contractive_penalty(x).sum(), first)
    (g_ref,) = torch.autograd.grad(whole.sum(), first)
    torch.testing.assert_close(g_ours, g_ref)
    # stacked: the sum over layers of each layer's Jacobian with respect to its own input
    model.hp["penalty"] = "stacked"
    h, stacked = x, torch.zeros(5, dtype=torch.float64)
    for layer in _dense_layers(model.encoder):
        stacked = stacked + _per_sample_jacobian_sq(layer, h)
        h = layer(h)
    torch.testing.assert_close(model.contractive_penalty(x), stacked)


def test_cae_exact_penalties_on_a_conv_encoder():
    torch.manual_seed(0)
    arch = Architecture(kind="conv", hidden=(6,), channels=(2, 3))
    model = build_model("cae", (1, 8, 8), [("bernoulli", 0, 64)], 3, arch, {"jacobian": "exact"}).double().eval()
    x = torch.rand(3, 64, dtype=torch.float64)
    torch.testing.assert_close(model.contractive_penalty(x), _per_sample_jacobian_sq(model.encoder, x))
    model.hp["penalty"] = "stacked"
    enc = model.encoder
    h, stacked = x.view(-1, 1, 8, 8), torch.zeros(3, dtype=torch.float64)
    layers = [enc.features[0:3], enc.features[3:6], torch.nn.Flatten(), *_dense_layers(enc.head)]
    for layer in layers:
        if not isinstance(layer, torch.nn.Flatten):
            stacked = stacked + _per_sample_jacobian_sq(lambda v, f=layer, s=h.shape[1:]: f(v.view(-1, *s)),
                                                        h.reshape(len(h), -1))
        h = layer(h)
    torch.testing.assert_close(model.contractive_penalty(x), stacked)


def test_cae_hutchinson_estimator_is_unbiased():
    torch.manual_seed(0)
    model = build_model("cae", (12,), [("gaussian", 0, 12)], 5, Architecture(hidden=(16,), activation="tanh"),
                        {"jacobian": "hutchinson", "n_projections": 1}).double()
    x = torch.randn(4, 12, dtype=torch.float64)
    exact = _per_sample_jacobian_sq(model.encoder, x).detach()
    draws = torch.stack([model.contractive_penalty(x).detach() for _ in range(3000)])    # (draws, N)
    standard_error = draws.std(0) / math.sqrt(len(draws))
    assert torch.all(standard_error > 0)                          # a real estimator, not the exact value
    assert torch.all((draws.mean(0) - exact).abs() < 4 * standard_error)
    # also the helper alone, many projections at once: the mean converges to the exact value
    xr = x.clone().requires_grad_(True)
    many = jacobian_frobenius_sq(model.encoder(xr), xr, "hutchinson", n_projections=20000, create_graph=False)
    torch.testing.assert_close(many, exact, rtol=0.03, atol=0.0)


def test_cae_auto_switches_to_the_estimator_for_large_inputs_and_validates_without_grad():
    small = build_model("cae", (1, 8, 8), [("bernoulli", 0, 64)], 2, Architecture(hidden=(8,)))
    large = build_model("cae", (1, 28, 28), [("bernoulli", 0, 784)], 2, Architecture(hidden=(8,), channels=(2, 2)))
    assert small.jacobian_method() == "exact" and large.jacobian_method() == "hutchinson"
    x = torch.rand(6, 64)
    small.eval()
    with torch.no_grad():                                          # how the trainer validates
        terms = small.loss(x)
    torch.testing.assert_close(terms["contractive"], small.contractive_penalty(x).mean().detach())
    assert terms["total"].item() == pytest.approx(terms["reconstruction"].item() + 0.01 * terms["contractive"].item())


# -- lorae --------------------------------------------------------------------------------
def test_effective_rank_matches_the_entropy_formula():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    u, v = q[:, :4], np.linalg.qr(rng.normal(size=(4, 4)))[0]
    sigma = np.array([4.0, 2.0, 1.0, 1.0])
    p = sigma / sigma.sum()
    assert effective_rank(u @ np.diag(sigma) @ v, center=False) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert effective_rank(np.ones((10, 3)) * 5.0) == 0.0            # centred constant codes: no direction
    assert effective_rank(u[:, :3] * 7.0, center=False) == pytest.approx(3.0)


def test_lorae_effective_rank_falls_as_the_nuclear_weight_rises(digits_split):
    train, _ = digits_split
    options = dict(FAST, epochs=12, hidden=(64,), lr=3e-3, val_fraction=0.0, seed=0)
    ranks = [effective_rank(Autoencoder("lorae", 8, nuclear_weight=w, **options).fit(train).transform(train))
             for w in (0.0, 1.0, 100.0)]
    assert ranks[0] > ranks[1] > ranks[2], ranks


def test_lorae_penalty_is_the_nuclear_norm_and_skips_weight_decay():
    model = build_model("lorae", (6,), [("gaussian", 0, 6)], 3, Architecture(hidden=(8,)), {"nuclear_weight": 2.0})
    sigma = torch.linalg.svdvals(model.low_rank.weight.detach())
    x = torch.randn(5, 6)
    terms = model.loss(x)
    assert terms["nuclear"].item() == pytest.approx(sigma.sum().item(), rel=1e-5)
    assert terms["total"].item() == pytest.approx(terms["reconstruction"].item() + 2.0 * sigma.sum().item(), rel=1e-5)
    groups = model.parameter_groups(0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0] and groups[1]["params"] == [model.low_rank.weight]
    assert sum(len(g["params"]) for g in groups) == len([p for p in model.parameters() if p.requires_grad])


# -- topk_ae ------------------------------------------------------------------------------
def test_topk_codes_have_exactly_k_nonzeros_the_k_largest(digits_split):
    train, test = digits_split
    est = Autoencoder("topk_ae", 8, k=3, **dict(FAST, val_fraction=0.0)).fit(train[:300])
    for Z in (est.transform(test), est.transform(train[:300])):
        assert np.all((Z != 0).sum(1) == 3)
    model = est.model_
    x = _flat(test[:50])
    with torch.no_grad():
        pre = model.encoder(x)
        z = model.encode(x)["z"]
    for row_pre, row_z in zip(pre, z):                              # an obvious per-row reference
        keep = sorted(range(8), key=lambda i: -row_pre[i].item())[:3]
        expected = torch.zeros(8)
        expected[keep] = row_pre[keep]
        torch.testing.assert_close(row_z, expected)
    # while training, the kept count anneals linearly from latent_dim (step 0) down to k
    model.train()
    model.begin_training(total_steps=5000, batch_size=64)  # the default anneals over a tenth of the run
    assert model.anneal_steps == 500
    for step, kept in ((0, 8), (200, 6), (500, 3), (10**6, 3)):
        model.step.fill_(step)
        assert torch.all((model.encode(x)["z"] != 0).sum(1) == kept)


def test_topk_default_annealing_ends_within_a_short_run(digits_split):
    train, _ = digits_split
    est = Autoencoder("topk_ae", 8, k=3, **dict(FAST, val_fraction=0.0)).fit(train[:300])
    steps = int(est.model_.step)
    assert 0 < est.model_.anneal_steps <= steps // 10 + 1  # annealing is over long before the end
    explicit = build_model("topk_ae", (6,), [("gaussian", 0, 6)], 8, Architecture(hidden=(8,)), {"k_anneal_steps": 70})
    explicit.begin_training(total_steps=10, batch_size=4)
    assert explicit.anneal_steps == 70  # an explicit length is kept


def test_topk_k_is_checked_and_defaults_to_half_the_code():
    arch = Architecture(hidden=(8,))
    with pytest.raises(InputError, match="k=9 must be at most latent_dim=8"):
        build_model("topk_ae", (6,), [("gaussian", 0, 6)], 8, arch, {"k": 9})
    assert build_model("topk_ae", (6,), [("gaussian", 0, 6)], 5, arch).k == 3
    assert build_model("topk_ae", (6,), [("gaussian", 0, 6)], 5, arch, {"k": 5}).k == 5


# -- matryoshka_ae ------------------------------------------------------------------------
def test_matryoshka_prefix_sizes_are_parsed_clipped_and_checked():
    assert parse_prefix_sizes("2,4,8", 8) == [2, 4, 8]
    assert parse_prefix_sizes("4, 2, 16", 8) == [2, 4, 8]
    assert parse_prefix_sizes("2,4,8", 3) == [2, 3]
    for bad in ("2;4", "0,2", "two"):
        with pytest.raises(InputError, match="prefix_sizes"):
            parse_prefix_sizes(bad, 8)


def test_matryoshka_loss_sums_zero_filled_prefix_reconstructions():
    torch.manual_seed(0)
    model = build_model("matryoshka_ae", (6,), [("gaussian", 0, 6)], 5, Architecture(hidden=(8,)),
                        {"prefix_sizes": "1,3", "prefix_decoder": "shared", "weighting": "uniform"})
    x = torch.randn(4, 6)
    z = model.encode(x)["z"]
    expected = 0.0
    for m in (1, 3, 5):
        zero_filled = z.clone()
        zero_filled[:, m:] = 0.0
        expected = expected + model.likelihood.nll(model.decode(zero_filled), x).mean()
    terms = model.loss(x)
    assert set(terms) == {"reconstruction_1", "reconstruction_3", "reconstruction", "total"}
    torch.testing.assert_close(terms["total"], expected)
    torch.testing.assert_close(model.decode_prefix(z[:, :3]), model.decode(torch.cat([z[:, :3], torch.zeros(4, 2)], 1)))
    with pytest.raises(InputError, match="between 1 and 5"):
        model.decode_prefix(torch.zeros(4, 6))


def test_matryoshka_size_weighting_scales_each_term_by_its_share_of_the_code():
    torch.manual_seed(0)
    model = build_model("matryoshka_ae", (6,), [("gaussian", 0, 6)], 8, Architecture(hidden=(8,)),
                        {"prefix_sizes": "2,4", "prefix_decoder": "shared", "weighting": "size"})
    x = torch.randn(5, 6)
    terms = model.loss(x)
    expected = 0.25 * terms["reconstruction_2"] + 0.5 * terms["reconstruction_4"] + terms["reconstruction"]
    torch.testing.assert_close(terms["total"], expected)
    model.hp["weighting"] = "sqrt_size"
    terms = model.loss(x)
    expected = 0.5 * terms["reconstruction_2"] + 0.5 ** 0.5 * terms["reconstruction_4"] + terms["reconstruction"]
    torch.testing.assert_close(terms["total"], expected)


def _mlp_from(first: torch.nn.Module, rest: torch.nn.Sequential, z: torch.Tensor) -> torch.Tensor:
    """An obvious forward pass: one first layer, then the remaining layers in order."""
    h = first(z)
    for layer in rest:
        h = layer(h)
    return h


@pytest.mark.parametrize("kind", ["first_layer", "separate"])
def test_matryoshka_per_size_decoders_read_only_their_prefix(kind):
    torch.manual_seed(0)
    model = build_model("matryoshka_ae", (6,), [("gaussian", 0, 6)], 6, Architecture(hidden=(8,)),
                        {"prefix_sizes": "2,4", "prefix_decoder": kind})
    z = torch.randn(7, 6)
    pad = torch.nn.functional.pad
    # an unlisted m: the largest listed size below it (extra units ignored), or the smallest one, zero-filled
    for m, listed, i in ((1, 2, 0), (2, 2, 0), (3, 2, 0), (4, 4, 1), (5, 4, 1)):
        zm = pad(z[:, :m], (0, listed - m))[:, :listed]
        if kind == "first_layer":   # its own first layer (reading `listed` units), the shared layers after it
            expected = _mlp_from(model.prefix_first_layers[i], model.decoder[1:], zm)
        else:                       # a whole decoder of its own
            expected = model.prefix_decoders[i](zm)
        torch.testing.assert_close(model.decode_prefix(z[:, :m]), expected)
    torch.testing.assert_close(model.decode_prefix(z), model.decoder(z))        # the full code: the main decoder
    moved = z.clone()
    moved[:, 2:] += 5.0                        # units after the listed size 2 do not reach its part
    torch.testing.assert_close(model.decode_prefix(moved[:, :3]), model.decode_prefix(z[:, :3]))
    # changing the main decoder's first layer moves the full code's output, never a prefix's
    before = {m: model.decode_prefix(z[:, :m]).detach() for m in (2, 3, 6)}
    with torch.no_grad():
        model.decoder[0].weight.add_(1.0)
        model.decoder[0].bias.add_(1.0)
    for m in (2, 3):
        torch.testing.assert_close(model.decode_prefix(z[:, :m]), before[m])
    assert not torch.allclose(model.decode_prefix(z), before[6])
    # a prefix term's gradient reaches its own part and not the main decoder's first layer
    x = torch.randn(7, 6)
    model.zero_grad()
    model.likelihood.nll(model.decode_prefix(model.encode(x)["z"][:, :2]), x).mean().backward()
    own = model.prefix_first_layers[0] if kind == "first_layer" else model.prefix_decoders[0]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters())
    assert model.decoder[0].weight.grad is None or model.decoder[0].weight.grad.abs().sum() == 0
    shared_later = model.decoder[-1].weight.grad          # the shared layers after the first: only for first_layer
    assert (shared_later is not None and shared_later.abs().sum() > 0) == (kind == "first_layer")


def test_matryoshka_truncation_distributions_match_their_definitions():
    from scipy import stats

    d, rho = 6, 0.7
    p = nested_dropout_probabilities(d, rho).numpy()
    b = np.arange(1, d + 1)
    np.testing.assert_allclose(p[:-1], stats.geom.pmf(b[:-1], 1 - rho), rtol=1e-12)  # ρ^(b−1)(1−ρ)
    assert p[-1] == pytest.approx(stats.geom.sf(d - 1, 1 - rho), rel=1e-12)           # the tail, on b = d
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    arch = Architecture(hidden=(8,))
    torch.manual_seed(0)
    n = 60_000
    for truncation, expected in (("nested", p), ("ordered", np.full(d, 1 / d))):
        model = build_model("matryoshka_ae", (6,), [("gaussian", 0, 6)], d, arch,
                            {"truncation": truncation, "nested_rho": rho})
        counts = np.bincount(model.sample_truncation(n).numpy(), minlength=d + 1)
        assert counts[0] == 0 and counts.sum() == n                      # lengths are 1…d
        assert stats.chisquare(counts[1:], expected * n).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["shared", "separate"])
def test_matryoshka_random_truncation_loss_is_the_mean_over_samples_of_their_own_prefix(kind, monkeypatch):
    torch.manual_seed(0)
    model = build_model("matryoshka_ae", (6,), [("gaussian", 0, 6)], 6, Architecture(hidden=(8,)),
                        {"prefix_sizes": "2,4", "prefix_decoder": kind, "truncation": "nested"})
    b = torch.tensor([1, 2, 3, 4, 5, 6, 2, 6])     # listed, unlisted, below the smallest listed size
    monkeypatch.setattr(model, "sample_truncation", lambda n: b)
    x = torch.randn(8, 6)
    model.train()
    terms = model.loss(x)
    z = model.encode(x)["z"]
    slow = torch.stack([model.likelihood.nll(model.decode_prefix(z[i:i + 1, :int(b[i])]), x[i:i + 1])[0]
                        for i in range(8)]).mean()
    torch.testing.assert_close(terms["total"], slow)
    model.eval()                                           # validation: the deterministic fixed-list loss
    assert set(model.loss(x)) == {"reconstruction_2", "reconstruction_4", "reconstruction", "total"}


def test_matryoshka_every_prefix_decodes_and_quality_is_monotone(digits_split):
    train, test = digits_split
    est = Autoencoder("matryoshka_ae", 8, prefix_sizes="1,2,4", **dict(FAST, epochs=10, hidden=(64,), lr=3e-3,
                                                                        val_fraction=0.0)).fit(train)
    model, x = est.model_, _flat(test)
    assert model.prefix_sizes == [1, 2, 4, 8]
    errors = []
    with torch.no_grad():
        for m in model.prefix_sizes:
            recon = model.reconstruct_prefix(x, m)
            assert recon.shape == x.shape and torch.isfinite(recon).all()
            errors.append((recon - x).pow(2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] == pytest.approx(float(est.score_samples(test).mean()), rel=1e-5)


def test_overcomplete_topk_is_not_warned_about_copying_and_the_cli_builds_it_linear(tmp_path, recwarn):
    import warnings

    from latentforge.cli import main

    X = np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overcomplete sparse code is the point of the model
        Autoencoder("topk_ae", 12, k=3, **dict(FAST, val_fraction=0.0, hidden=())).fit(X)
    with pytest.warns(UserWarning, match="can copy its input"):  # a dense one is still warned about
        Autoencoder("ae", 12, **dict(FAST, val_fraction=0.0, hidden=())).fit(X)
    np.save(tmp_path / "x.npy", X)
    for hidden in ("", "none", "0"):
        out = tmp_path / f"m{len(hidden)}"
        assert main(["fit", str(tmp_path / "x.npy"), "--model", "topk_ae", "--latent-dim", "12", "--hidden", hidden,
                     "--param", "k=3", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
        est = Autoencoder.load(out)
        assert [type(m).__name__ for m in est.model_.encoder] == ["Linear"]  # one linear map each way
        assert [type(m).__name__ for m in est.model_.decoder] == ["Linear"]
