"""latentforge.sae: architectures, the training recipe, the estimator, metrics and saving.

References: synthetic superposition data with a known dictionary (recovery), direct NumPy
formulas for the metrics, a dense matmul for the sparse decoder, scipy for the geometric median,
autograd-free formulas for the straight-through estimators, and an uninterrupted run for resume.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from latentforge.errors import InputError
from latentforge.sae import ARCHITECTURES, SparseAutoencoder, build_sae, fraction_of_variance_unexplained
from latentforge.sae.architectures import SparseCodes, geometric_median
from latentforge.sae.metrics import SAEStatistics, density_histogram, feature_density, l0

FAST = dict(batch_size=256, threads=1, verbose=False)


def superposition(n=12_000, n_true=48, d=16, active=3, noise=0.01, seed=0):
    """n rows mixing ``active`` (on average) of ``n_true`` unit-norm directions in d < n_true dimensions."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_true, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    on = rng.random((n, n_true)) < active / n_true
    codes = on * rng.uniform(0.5, 2.0, (n, n_true))
    X = codes @ D + noise * rng.standard_normal((n, d))
    return X.astype(np.float32), D, on


def recovery(D_true: np.ndarray, components: np.ndarray) -> float:
    """Mean over true directions of the best cosine with a learned row."""
    return float(np.abs(D_true @ components.T).max(1).mean())


@pytest.fixture(scope="module")
def data():
    return superposition()


@pytest.fixture(scope="module")
def topk_sae(data):
    X, _, _ = data
    return SparseAutoencoder("topk", n_features=96, k=3, epochs=8, lr=1e-2, **FAST).fit(X)


# -- ground truth ------------------------------------------------------------------------------
def test_topk_recovers_the_generating_dictionary(data, topk_sae):
    X, D, on = data
    assert recovery(D, topk_sae.components_) >= 0.9
    assert topk_sae.metrics_["l0"] == pytest.approx(on.sum(1).mean(), rel=0.1)  # near the generating sparsity
    assert topk_sae.metrics_["fvu"] < 0.35


@pytest.mark.parametrize("architecture, settings", [("batchtopk", {}), ("matryoshka", {"prefixes": (24, 48, 96)})])
def test_batch_architectures_recover_the_dictionary(data, architecture, settings):
    X, D, on = data
    sae = SparseAutoencoder(architecture, n_features=96, k=3, epochs=8, lr=1e-2, **settings, **FAST).fit(X)
    assert recovery(D, sae.components_) >= 0.8
    assert sae.metrics_["l0"] == pytest.approx(3, rel=0.35)  # the threshold gives k on average at inference


# -- architecture properties ----------------------------------------------------------------
def test_topk_codes_have_at_most_k_nonzeros_the_k_largest(data, topk_sae):
    X, _, _ = data
    codes = topk_sae.transform(X[:500])
    assert codes.shape == (500, 96) and ((codes != 0).sum(1) <= 3).all()
    module = topk_sae.module_
    with torch.no_grad():
        pre = module.pre_activation(torch.from_numpy(X[:50]) * module.scale)
    for row_pre, row_code in zip(pre.numpy(), codes[:50]):  # an obvious per-row reference
        keep = np.argsort(-row_pre)[:3]
        expected = np.zeros(96, np.float32)
        expected[keep] = np.maximum(row_pre[keep], 0)
        np.testing.assert_allclose(row_code, expected, rtol=1e-5, atol=1e-6)


def test_batchtopk_keeps_n_times_k_per_batch_in_training():
    module = build_sae("batchtopk", 8, 32, k=4)
    module.initialize(torch.randn(256, 8))
    module.train()
    pre = module.pre_activation(torch.randn(64, 8) * module.scale)
    codes = module.activate(pre)
    per_token = torch.diff(codes.offsets, append=torch.tensor([len(codes.values)]))
    assert len(codes.values) == 64 * 4 and per_token.float().mean() == 4 and per_token.max() > per_token.min()
    flat = pre.flatten()
    assert float(codes.values.detach().min()) == pytest.approx(float(flat.detach().topk(64 * 4).values[-1].clamp_min(0)))
    torch.testing.assert_close(codes.dense(), torch.where(pre >= flat.topk(256).values[-1], pre, 0).relu())
    assert float(module.threshold) == pytest.approx(float(codes.values.detach().min()))  # first batch sets the threshold


def test_batchtopk_settles_its_threshold_so_the_sample_keeps_n_times_k():
    module = build_sae("batchtopk", 8, 32, k=4)
    module.initialize(torch.randn(256, 8))
    module.threshold.fill_(5.0)  # a stale running mean
    sample = torch.randn(3000, 8)  # more than one calibration chunk
    module.finish_training(sample)
    pre = module.pre_activation(sample * module.scale).detach()
    # the direct rule on the whole sample at once: the n·k-th largest pre-activation
    assert float(module.threshold) == pytest.approx(float(pre.flatten().topk(3000 * 4).values[-1]))
    module.eval()
    assert float((module.activate(pre) > 0).sum(1).float().mean()) == pytest.approx(4, abs=1e-3)


def test_sparse_codes_decode_like_a_dense_matmul():
    torch.manual_seed(0)
    W = torch.randn(20, 5)
    values, indices = torch.rand(7, 3), torch.randint(0, 20, (7, 3))
    codes = SparseCodes.per_row(values, indices, 20)
    dense = torch.zeros(7, 20).index_put_((torch.arange(7)[:, None].expand(7, 3), indices), values, accumulate=True)
    torch.testing.assert_close(codes.dense(), dense)
    torch.testing.assert_close(codes.decode(W), dense @ W)
    assert codes.fired().tolist() == (dense > 0).any(0).tolist()


def test_jumprelu_straight_through_gradients_match_the_rectangle_kernel():
    module = build_sae("jumprelu", 3, 4, bandwidth=0.5, initial_threshold=0.4, l0_coefficient=1.0)
    pre = torch.tensor([[0.2, 0.5, 0.9, -1.0], [0.41, 0.1, 0.3, 0.7]], requires_grad=True)
    codes = module.activate(pre)
    torch.testing.assert_close(codes, torch.where(pre > 0.4, pre, 0.0).detach())
    codes.sum().backward()
    inside = ((pre - 0.4).abs() < 0.25).float()  # K((z − θ)/ε) with ε = 0.5
    torch.testing.assert_close(module.threshold.grad, (-(0.4 / 0.5) * inside).sum(0).detach())
    torch.testing.assert_close(pre.grad, (pre > 0.4).float())
    module.threshold.grad = None
    l0 = module.sparsity_terms(pre.detach(), None)["l0"]  # L0 = mean Σ H(z − θ): ∂/∂θ = −K/ε per token
    l0.backward()
    torch.testing.assert_close(module.threshold.grad, (-(1 / 0.5) * inside).mean(0).detach())


def test_jumprelu_l0_responds_to_its_coefficient(data):
    X, _, _ = data
    l0s = [SparseAutoencoder("jumprelu", n_features=48, l0_coefficient=c, epochs=3, lr=1e-2,
                             **FAST).fit(X[:6000]).metrics_["l0"] for c in (0.1, 3.0)]
    assert l0s[1] < 0.7 * l0s[0]


def test_relu_l1_penalty_is_weighted_by_decoder_norms():
    module = build_sae("relu", 4, 6, l1_coefficient=2.0)
    module.initialize(torch.randn(100, 4))
    with torch.no_grad():
        module.W_dec.mul_(torch.arange(1, 7, dtype=torch.float32)[:, None])  # rows of norm 1..6
    x = torch.randn(10, 4)
    terms = module.loss(x)
    codes = module.pre_activation(x * module.scale).relu()
    assert float(terms["l1"]) == pytest.approx(float(2.0 * (codes * torch.arange(1, 7)).sum(1).mean()), rel=1e-5)


def test_matryoshka_prefix_losses_match_masked_dense_reconstructions():
    torch.manual_seed(0)
    module = build_sae("matryoshka", 6, 12, k=3, prefixes=(3, 6, 12))
    assert build_sae("matryoshka", 8, 64, k=3).prefixes == (4, 8, 16, 32, 64)  # the default: F/16 … F
    module.initialize(torch.randn(200, 6))
    module.train()
    x = torch.randn(16, 6)
    terms = module.loss(x)
    xs = x * module.scale
    dense = module.activate(module.pre_activation(xs)).dense()
    expected = [((dense[:, :m] @ module.W_dec[:m] + module.b_dec - xs) ** 2).sum(1).mean() for m in (3, 6, 12)]
    assert float(terms["mse"]) == pytest.approx(float(expected[2]), rel=1e-5)
    assert float(terms["prefix_mse"]) == pytest.approx(float(expected[0] + expected[1]), rel=1e-5)
    with pytest.raises(InputError, match="prefixes"):
        build_sae("matryoshka", 6, 12, k=3, prefixes=(6, 3, 12))


def test_decoder_rows_have_unit_norm_after_every_step(data, monkeypatch):
    X, _, _ = data
    norms, parallel = [], []
    cls = ARCHITECTURES["topk"]
    before, after = cls.before_optimizer_step, cls.after_optimizer_step

    def check_before(self):
        before(self)
        parallel.append(float((self.W_dec.grad * self.W_dec).sum(1).abs().max()))

    def check_after(self):
        after(self)
        norms.append(self.W_dec.detach().norm(dim=1))
    monkeypatch.setattr(cls, "before_optimizer_step", check_before)
    monkeypatch.setattr(cls, "after_optimizer_step", check_after)
    SparseAutoencoder("topk", n_features=32, k=2, **FAST).fit(X[:3000])
    assert len(norms) == len(parallel) > 5
    assert max(parallel) < 1e-5  # the gradient component along each row was removed
    torch.testing.assert_close(torch.stack(norms), torch.ones(len(norms), 32))


def test_auxk_revives_dead_latents(data):
    X, _, _ = data

    def revived(aux_coefficient: float) -> float:
        module = build_sae("topk", 16, 64, k=3, aux_coefficient=aux_coefficient, dead_tokens=256)
        module.initialize(torch.from_numpy(X[:2000]))
        with torch.no_grad():  # contrived: half the latents can never win the top-k, so they are dead
            module.W_enc[:, :32] *= 0.01
            module.b_enc[:32] = 0.01
        from latentforge.config import TrainConfig
        from latentforge.train import train_model
        train_model(module, torch.from_numpy(X[:6000]), None,
                    TrainConfig(epochs=3, batch_size=256, lr=3e-3, weight_decay=0.0, val_fraction=0.0,
                                grad_clip=None, threads=1), progress=False)
        density = feature_density(module.encode(torch.from_numpy(X[6000:9000])).detach().numpy())
        return float((density[:32] > 0).mean())
    assert revived(0.0) == 0.0
    assert revived(1 / 32) >= 0.5


@pytest.mark.parametrize("n_dead", [0, 5, 40])  # none, fewer than aux_k, more than aux_k
def test_auxk_loss_is_the_dead_latents_top_k_reconstructing_the_residual(n_dead):
    module = build_sae("topk", 8, 48, k=3, aux_k=12)
    module.initialize(torch.randn(256, 8))
    dead = torch.zeros(48, dtype=torch.bool)
    dead[torch.randperm(48, generator=torch.Generator().manual_seed(n_dead))[:n_dead]] = True
    module.tokens_since_fired.copy_(torch.where(dead, module.dead_tokens, 0))
    pre, residual = torch.randn(32, 48), torch.randn(32, 8)
    loss = module.auxk_loss(residual, pre)
    # the slow obvious version: per token, keep the aux_k largest dead pre-activations (ReLU'd)
    codes = torch.zeros(32, 48)
    for i in range(32):
        order = [j for j in torch.argsort(pre[i], descending=True).tolist() if dead[j]][:12]
        codes[i, order] = pre[i, order].clamp_min(0)
    weight = (1 / 32) * min(1.0, n_dead / 12)
    expected = weight * (codes @ module.W_dec.detach() - residual).pow(2).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5, abs=1e-7)


def test_unknown_architecture_and_settings_that_do_not_apply():
    X = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    with pytest.raises(InputError, match="unknown SAE architecture 'topkk'"):
        SparseAutoencoder("topkk").fit(X)
    with pytest.raises(InputError, match="l1_coefficient does not apply to SAE architecture 'topk'"):
        SparseAutoencoder("topk", l1_coefficient=1.0).fit(X)
    with pytest.raises(InputError, match="k must lie in"):
        SparseAutoencoder("topk", n_features=8, k=9, **FAST).fit(X)
    with pytest.raises(InputError, match="2-D"):
        SparseAutoencoder(**FAST).fit(X[:, :, None])
    with pytest.raises(InputError, match="NaN"):
        SparseAutoencoder(**FAST).fit(np.full((10, 4), np.nan))


# -- the recipe ------------------------------------------------------------------------------
def test_geometric_median_matches_scipy():
    X = torch.from_numpy(np.random.default_rng(1).standard_normal((300, 3)) ** 3)
    result = minimize(lambda y: np.linalg.norm(X.numpy() - y, axis=1).sum(), X.mean(0).numpy(), method="Nelder-Mead",
                      options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 10_000})
    np.testing.assert_allclose(geometric_median(X).numpy(), result.x, atol=1e-4)


def test_initialisation_scales_inputs_and_ties_encoder_to_decoder(data):
    X, _, _ = data
    module = build_sae("topk", 16, 40, k=3)
    sample = torch.from_numpy(X[:4000]) * 7.0
    module.initialize(sample)
    assert float((sample * module.scale).pow(2).sum(1).mean()) == pytest.approx(16, rel=1e-4)
    torch.testing.assert_close(module.W_enc.detach(), 0.1 * module.W_dec.detach().T)  # top-k family: a small tied start
    torch.testing.assert_close(module.b_dec.detach(), geometric_median(sample * module.scale))


def test_fit_does_not_depend_on_the_inputs_scale(data):
    X, _, _ = data
    a = SparseAutoencoder("topk", n_features=32, k=3, **FAST).fit(X[:3000])
    b = SparseAutoencoder("topk", n_features=32, k=3, **FAST).fit(X[:3000] * 1000)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-3)
    assert b.scale_ == pytest.approx(a.scale_ / 1000, rel=1e-5)  # codes live in the scaled space
    np.testing.assert_allclose(a.transform(X[:20]), b.transform(X[:20] * 1000), rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(b.reconstruct(X[:20] * 1000) / 1000, a.reconstruct(X[:20]), rtol=1e-2, atol=1e-3)


def test_default_schedule_warms_up_then_decays(data):
    X, _, _ = data
    sae = SparseAutoencoder("topk", n_features=32, k=3, epochs=4, **FAST).fit(X[:4000])
    config = sae.train_config_
    steps = 4 * int(np.ceil(sae.metrics_["n_train"] / 256))
    assert config["schedule"] == "linear_decay" and config["warmup_steps"] == steps // 20
    lrs = [row["lr"] for row in sae.history_]
    assert lrs[0] == pytest.approx(config["lr"]) and lrs[-1] == pytest.approx(0.0, abs=1e-12)


# -- using, measuring and saving the SAE -----------------------------------------------------
def test_inverse_transform_of_transform_is_reconstruct(data, topk_sae):
    X, _, _ = data
    np.testing.assert_allclose(topk_sae.inverse_transform(topk_sae.transform(X[:64])), topk_sae.reconstruct(X[:64]),
                               rtol=1e-4, atol=1e-5)
    x = torch.from_numpy(X[:12]).reshape(3, 4, 16)  # any leading shape
    assert topk_sae.reconstruct_torch(x).shape == (3, 4, 16) and topk_sae.encode_torch(x).shape == (3, 4, 96)
    with pytest.raises(InputError, match="16"):
        topk_sae.transform(X[:5, :8])


def test_evaluate_matches_direct_formulas(data, topk_sae):
    X, _, _ = data
    held = X[-3000:]
    result = topk_sae.evaluate(held)
    codes, recon = topk_sae.transform(held), topk_sae.reconstruct(held)
    assert result["fvu"] == pytest.approx(fraction_of_variance_unexplained(held, recon), rel=1e-6)
    assert result["l0"] == pytest.approx(l0(codes))
    density = feature_density(codes)
    assert result["dead_fraction"] == pytest.approx(float((density == 0).mean()))
    assert result["density_histogram"] == density_histogram(density)
    assert sum(result["density_histogram"]["counts"]) + result["density_histogram"]["dead"] == 96
    assert topk_sae.evaluate(held, max_tokens=1000)["tokens"] == 1000
    assert topk_sae.score(held) == pytest.approx(1 - result["fvu"])


def test_statistics_accumulate_like_one_batch():
    rng = np.random.default_rng(0)
    x, x_hat = rng.standard_normal((500, 6)) + 3.0, rng.standard_normal((500, 6))
    codes = np.maximum(rng.standard_normal((500, 10)), 0)
    stats = SAEStatistics(10)
    for i in range(0, 500, 64):
        stats.update(x[i:i + 64], x_hat[i:i + 64], codes[i:i + 64])
    result = stats.result()
    assert result["fvu"] == pytest.approx(fraction_of_variance_unexplained(x, x_hat), rel=1e-9)
    assert result["mse"] == pytest.approx(((x - x_hat) ** 2).mean(), rel=1e-9)
    assert result["l0"] == pytest.approx(l0(codes))


def test_save_load_round_trip_and_size(tmp_path, data, topk_sae):
    X, _, _ = data
    path = topk_sae.save(tmp_path / "sae")
    loaded = SparseAutoencoder.load(path)
    np.testing.assert_array_equal(loaded.transform(X[:50]), topk_sae.transform(X[:50]))
    np.testing.assert_array_equal(loaded.components_, topk_sae.components_)
    assert loaded.metrics_["fvu"] == pytest.approx(topk_sae.metrics_["fvu"]) and len(loaded.history_) == 8
    params = sum(p.numel() for p in topk_sae.module_.parameters()) * 4
    size = (path / "weights.safetensors").stat().st_size
    assert params <= size < params * 1.1 + 4096  # parameters and a few buffers, no training codes
    from latentforge.errors import ArtifactError
    with pytest.raises(ArtifactError, match="not a latentforge sae"):
        SparseAutoencoder.load(tmp_path)


def test_streamed_safetensors_fit_matches_the_in_memory_split(tmp_path, data):
    from safetensors.numpy import save_file

    X, D, _ = data
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, start in enumerate(range(0, len(X), 5000)):
        save_file({"x": X[start:start + 5000]}, str(folder / f"part-{i:02d}.safetensors"))
    streamed = SparseAutoencoder("topk", n_features=96, k=3, epochs=8, lr=1e-2, **FAST).fit(folder)
    memory = SparseAutoencoder("topk", n_features=96, k=3, epochs=1, **FAST).fit(X)
    assert streamed.metrics_["n_val"] == memory.metrics_["n_val"] > 0  # the same seeded hash split
    assert recovery(D, streamed.components_) >= 0.9
    np.testing.assert_array_equal(streamed.transform(folder)[:10], streamed.transform(X[:10]))


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(tmp_path, data, monkeypatch):
    X, _, _ = data
    settings = dict(n_features=32, k=3, epochs=2, checkpoint_every=5, **FAST)
    reference = SparseAutoencoder("topk", **settings).fit(X[:4000])
    cls = ARCHITECTURES["topk"]
    after = cls.after_optimizer_step
    calls = [0]

    def interrupt(self):
        after(self)
        calls[0] += 1
        if calls[0] == 22:
            raise KeyboardInterrupt
    monkeypatch.setattr(cls, "after_optimizer_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        SparseAutoencoder("topk", **settings).fit(X[:4000], checkpoint=tmp_path / "ckpt")
    monkeypatch.setattr(cls, "after_optimizer_step", after)
    resumed = SparseAutoencoder("topk", **settings).fit(X[:4000], checkpoint=tmp_path / "ckpt", resume=True)
    for name, value in reference.module_.state_dict().items():
        torch.testing.assert_close(resumed.module_.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert not (tmp_path / "ckpt").exists()  # a finished run removes its checkpoint
