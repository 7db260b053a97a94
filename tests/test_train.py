"""The training loop: learning, determinism, early stopping, best checkpoint, divergence."""

from __future__ import annotations

import math

import pytest
import torch

from latentforge.config import TrainConfig
from latentforge.errors import InputError, TrainingDivergedError
from latentforge.models import Architecture, build_model
from latentforge.train import train_model


def data(n=200, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(2, d, generator=g)
    return torch.randn(n, 2, generator=g) @ basis + 0.05 * torch.randn(n, d, generator=g)


def model(name="ae", seed=0, **hp):
    torch.manual_seed(seed)
    return build_model(name, (10,), [("gaussian", 0, 10)], 2, Architecture(hidden=(32,)), hp)


def weights(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_loss_falls_and_history_is_complete():
    X = data()
    m = model()
    hist = train_model(m, X[:160], X[160:], TrainConfig(epochs=15, seed=0, lr=1e-2, batch_size=32), progress=False)
    assert len(hist) == 15
    # unit-variance Gaussian NLL = 0.5·SSE + 0.5·log(2π) per feature: compare the SSE part
    const = 0.5 * math.log(2 * math.pi) * 10
    assert hist[-1]["train_total"] - const < 0.5 * (hist[0]["train_total"] - const)
    history_columns = {"epoch", "lr", "train_reconstruction", "val_total", "seconds"}  # per-epoch record keys
    assert history_columns <= set(hist[0])
    # cosine schedule decays the learning rate towards zero
    assert hist[-1]["lr"] < 0.05 * hist[0]["lr"]


def test_same_seed_same_weights_other_seed_differs():
    X = data()
    runs = []
    for seed in (3, 3, 4):
        m = model("swae", seed=0)
        train_model(m, X, None, TrainConfig(epochs=3, seed=seed), progress=False)
        runs.append(weights(m))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_best_checkpoint_is_kept_and_early_stopping_stops():
    X = data(120)
    m = model()
    # a huge LR makes validation worse after a while; patience 2 must stop and restore the best epoch
    hist = train_model(m, X[:100], X[100:], TrainConfig(epochs=60, lr=0.05, patience=2, schedule="constant"),
                       progress=False)
    best = min(h["val_total"] for h in hist)
    best_epoch = next(h["epoch"] for h in hist if h["val_total"] == best)
    assert len(hist) == best_epoch + 2 and len(hist) < 60
    from latentforge.train.loop import evaluate_loss

    assert evaluate_loss(m, X[100:])["total"] == pytest.approx(best, rel=1e-5)


def test_plateau_schedule_runs():
    X = data()
    hist = train_model(model(), X[:160], X[160:], TrainConfig(epochs=4, schedule="plateau"), progress=False)
    assert len(hist) == 4


def test_non_finite_loss_names_epoch_step_and_term_and_keeps_last_good_weights():
    X = data()
    m = model()

    calls = {"n": 0}
    original = m.loss

    def poisoned(x):
        calls["n"] += 1
        terms = original(x)
        if calls["n"] == 10:  # epoch 3 (4 steps per epoch with 100 rows, batch 32), step 2
            terms["reconstruction"] = terms["reconstruction"] * float("nan")
            terms["total"] = terms["reconstruction"]
        return terms

    m.loss = poisoned
    seen = {}
    with pytest.raises(TrainingDivergedError, match=r"'reconstruction' became nan at epoch 3, step 2") as info:
        train_model(m, X[:100], None, TrainConfig(epochs=5, batch_size=32), progress=False,
                    on_epoch=lambda rec: seen.update({rec["epoch"]: weights(m).clone()}))
    assert (info.value.epoch, info.value.step, info.value.term) == (3, 2, "reconstruction")
    assert torch.equal(weights(m), seen[2])  # the last good checkpoint: end of epoch 2


def test_config_is_validated():
    with pytest.raises(InputError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(InputError, match="did you mean 'cosine'"):
        TrainConfig(schedule="cosin")
    with pytest.raises(InputError, match="did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(InputError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)


def test_cuda_requested_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    with pytest.raises(InputError, match="no CUDA GPU"):
        train_model(model(), data(), None, TrainConfig(epochs=1, device="cuda"), progress=False)


def test_clip_grad_norm_matches_torch():
    from latentforge.train.loop import clip_grad_norm

    torch.manual_seed(0)
    grads = [torch.randn(5, 3) * 10, torch.randn(7)]
    ref = [g.clone().requires_grad_() for g in grads]
    for r, g in zip(ref, grads):
        r.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(ref, 2.0)
    ours = [g.clone() for g in grads]
    clip_grad_norm(ours, 2.0)
    for r, o in zip(ref, ours):
        torch.testing.assert_close(o, r.grad)
    small = [torch.full((3,), 0.1)]
    clip_grad_norm(small, 2.0)
    torch.testing.assert_close(small[0], torch.full((3,), 0.1))  # under the limit: untouched


def test_regularizers_add_named_terms_to_the_loss():
    X = data()
    m = model()
    calls = []

    def shrink_codes(net, x):
        calls.append(len(x))
        return {"code_l2": 0.1 * net.encode(x)["z"].pow(2).sum(1).mean()}

    hist = train_model(m, X[:160], X[160:], TrainConfig(epochs=2, batch_size=40), progress=False,
                       regularizers=[shrink_codes])
    assert calls[:4] == [40, 40, 40, 40]                      # called on every training batch
    rec = hist[0]
    assert rec["train_total"] == pytest.approx(rec["train_reconstruction"] + rec["train_code_l2"], rel=1e-5)
    assert "val_code_l2" not in rec                            # validation reports the model's own loss


def test_warmup_and_linear_decay_follow_their_closed_form():
    from latentforge.train.loop import make_scheduler

    def lrs(schedule: str, warmup: int, total: int = 50) -> list[float]:
        param = torch.nn.Parameter(torch.zeros(()))
        optimizer = torch.optim.SGD([param], lr=2.0)
        scheduler = make_scheduler(optimizer, TrainConfig(schedule=schedule, warmup_steps=warmup, lr=2.0), total)
        out = []
        for _ in range(total):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        return out
    got = lrs("linear_decay", 10)
    for step, lr in enumerate(got):  # ramp over 10 steps, constant, then linear to 0 over the last fifth of 40
        t = (step - 10) / 40
        expected = 2.0 * (step + 1) / 10 if step < 10 else 2.0 * min(1.0, (1 - t) / 0.2)
        assert lr == pytest.approx(expected)
    cosine = lrs("cosine", 5)
    assert cosine[4] == pytest.approx(2.0) and cosine[5] == pytest.approx(2.0)
    assert cosine[30] == pytest.approx(1.0 + math.cos(math.pi * 25 / 45))
    plain = lrs("cosine", 0)  # without warm-up: PyTorch's CosineAnnealingLR, as before
    assert plain[25] == pytest.approx(1.0 + math.cos(math.pi * 25 / 50))
    with pytest.raises(InputError, match="plateau"):
        TrainConfig(schedule="plateau", warmup_steps=3)
