"""Checkpoints and resume: a killed run continues to the weights an uninterrupted run reaches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from latentforge import Autoencoder
from latentforge.config import TrainConfig
from latentforge.errors import InputError
from latentforge.models import Architecture, build_model
from latentforge.train import train_model


def _data(n: int = 120, d: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32))


def _model(name: str = "vae") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, (6,), [("gaussian", 0, 6)], 2, Architecture(hidden=(16,)), {})


class Interrupt(Exception):
    pass


def _stop_at(step: int):
    """A regularizer that adds nothing and interrupts the run at its ``step``-th batch."""
    seen = {"n": 0}

    def regularizer(model, x):
        seen["n"] += 1
        if seen["n"] == step:
            raise Interrupt
        return {}
    return regularizer


@pytest.mark.parametrize("name,every,stop", [("vae", None, 23), ("ae", 3, 17), ("vae", 4, 9)])
def test_resumed_weights_equal_an_uninterrupted_run_bit_for_bit(tmp_path, name, every, stop):
    X, V = _data(), _data(30, seed=1)
    config = TrainConfig(epochs=4, batch_size=16, threads=1, checkpoint_every=every, seed=3)
    reference = _model(name)
    history = train_model(reference, X, V, config, progress=False)
    ckpt = tmp_path / "ckpt"
    interrupted = _model(name)
    with pytest.raises(Interrupt):
        train_model(interrupted, X, V, config, progress=False, regularizers=[_stop_at(stop)], checkpoint=ckpt)
    assert (ckpt / "checkpoint.json").is_file()
    position = json.loads((ckpt / "checkpoint.json").read_text())["position"]
    assert (position["epoch"], position["step"]) != (1, 0)          # it really saved progress
    resumed = _model(name)
    history2 = train_model(resumed, X, V, config, progress=False, checkpoint=ckpt, resume=True)
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["train_total"] for h in history] == [h["train_total"] for h in history2]
    assert not ckpt.exists()                                         # a finished run removes its checkpoint


@pytest.mark.parametrize("step_seconds, expected", [(0.0, [2, 6]), (30.0, [2, 3, 4, 5, 6])])
def test_epoch_end_checkpoints_cost_at_most_a_twentieth_of_the_run(tmp_path, monkeypatch, step_seconds, expected):
    import latentforge.train.loop as loop

    # a fake clock: each reading is a millisecond on, a save takes 10 s and a step step_seconds
    clock = {"now": 0.0}
    save_seconds = 10.0

    class FakeTime:
        @staticmethod
        def perf_counter():
            clock["now"] += 0.001
            return clock["now"]
    written = []
    real_save = loop.save_checkpoint

    def timed_save(path, state, *args):
        written.append(state.epoch)
        clock["now"] += save_seconds
        return real_save(path, state, *args)
    monkeypatch.setattr(loop, "time", FakeTime)
    monkeypatch.setattr(loop, "save_checkpoint", timed_save)
    config = TrainConfig(epochs=5, batch_size=16, threads=1, seed=3, keep_checkpoints=True)
    step = lambda model, x: clock.__setitem__("now", clock["now"] + step_seconds) or {}  # noqa: E731
    train_model(_model("ae"), _data(), None, config, progress=False, checkpoint=tmp_path / "ckpt", regularizers=[step])
    # the state after epoch 1, then none until training outlasted that save 20 times (an epoch of 8
    # steps of 30 s does: every epoch); the finished state always
    assert written == expected
    position = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())["position"]
    assert position == {"epoch": 6, "step": 0}  # a kept checkpoint is the finished run


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    X = _data()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        train_model(_model(), X, None, TrainConfig(epochs=3, batch_size=16), progress=False,
                    regularizers=[_stop_at(10)], checkpoint=ckpt)
    with pytest.raises(InputError, match="different run.*train"):
        train_model(_model(), X, None, TrainConfig(epochs=3, batch_size=32), progress=False, checkpoint=ckpt,
                    resume=True)
    with pytest.raises(InputError, match="needs a checkpoint"):
        train_model(_model(), X, None, TrainConfig(epochs=3), progress=False, resume=True)


def test_keep_checkpoints_and_resume_after_the_end(tmp_path):
    X = _data()
    ckpt = tmp_path / "ckpt"
    config = TrainConfig(epochs=2, batch_size=16, keep_checkpoints=True)
    first = _model()
    train_model(first, X, None, config, progress=False, checkpoint=ckpt)
    assert (ckpt / "checkpoint.json").is_file()
    again = _model()
    history = train_model(again, X, None, config, progress=False, checkpoint=ckpt, resume=True)
    assert len(history) == 2          # nothing left to train: the finished state comes back
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from latentforge import Autoencoder
    out, mode = sys.argv[1], sys.argv[2]
    X = np.random.default_rng(0).normal(size=(300, 5)).astype("float32")
    def die(record):
        if mode == "kill" and record["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)   # as kill -9: no clean-up of any kind
    est = Autoencoder("vae", 2, epochs=4, hidden=(16,), batch_size=32, threads=1, verbose=False, seed=1)
    est.fit(X, on_epoch=die, checkpoint=None if mode == "plain" else out + ".checkpoint", resume=mode == "resume")
    est.save(out)
""")


def test_kill_minus_nine_then_resume_through_the_api(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda out, mode: subprocess.run([sys.executable, str(script), str(tmp_path / out), mode],  # noqa: E731
                                           env=env, capture_output=True, text=True, timeout=300)
    killed = run("model", "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "model.checkpoint" / "checkpoint.json").is_file() and not (tmp_path / "model").exists()
    resumed = run("model", "resume")
    assert resumed.returncode == 0, resumed.stderr
    plain = run("plain", "plain")
    assert plain.returncode == 0, plain.stderr
    a, b = Autoencoder.load(tmp_path / "model"), Autoencoder.load(tmp_path / "plain")
    for (k, x), y in zip(a.model_.state_dict().items(), b.model_.state_dict().values()):
        assert torch.equal(x, y), k
    assert not (tmp_path / "model.checkpoint").exists()


def test_bf16_autocast_trains_close_to_fp32():
    X = _data(200)
    losses = {}
    for precision in ("fp32", "bf16", "fp16"):
        model = _model("ae")
        history = train_model(model, X, None, TrainConfig(epochs=5, batch_size=32, precision=precision),
                              progress=False)
        losses[precision] = history[-1]["train_total"]
        assert np.isfinite(losses[precision])
    assert abs(losses["bf16"] - losses["fp32"]) < 0.1 * abs(losses["fp32"]) + 0.05
    assert abs(losses["fp16"] - losses["fp32"]) < 0.1 * abs(losses["fp32"]) + 0.05


def test_the_same_seed_and_threads_give_identical_weights():
    X = _data()
    weights = []
    for _ in range(2):
        model = _model()
        train_model(model, X, None, TrainConfig(epochs=2, batch_size=16, threads=2), progress=False)
        weights.append([v.clone() for v in model.state_dict().values()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))
    assert torch.get_num_threads() >= 1   # the caller's thread setting is restored afterwards


def test_cli_fit_killed_then_resumed_equals_an_uninterrupted_fit(tmp_path):
    import time

    import pandas as pd

    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(600, 5)), columns=list("abcde")).to_parquet(tmp_path / "t.parquet")
    args = ["fit", str(tmp_path / "t.parquet"), "--model", "vae", "--latent-dim", "2", "--hidden", "16",
            "--epochs", "12", "--batch-size", "32", "--threads", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "latentforge"]
    proc = subprocess.Popen([*cli, *args, "--out", str(tmp_path / "m")], env=env, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "m.checkpoint" / "checkpoint.json"
    deadline = time.time() + 240
    while not checkpoint.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "m").exists()
    done = subprocess.run([*cli, *args, "--out", str(tmp_path / "m"), "--resume"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    plain = subprocess.run([*cli, *args, "--out", str(tmp_path / "p")], env=env, capture_output=True, text=True,
                           timeout=300)
    assert plain.returncode == 0, plain.stderr
    a, b = Autoencoder.load(tmp_path / "m"), Autoencoder.load(tmp_path / "p")
    for (k, x), y in zip(a.model_.state_dict().items(), b.model_.state_dict().values()):
        assert torch.equal(x, y), k
    assert not (tmp_path / "m.checkpoint").exists() and not (tmp_path / "p.checkpoint").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary leftovers
    missing = subprocess.run([*cli, *args, "--out", str(tmp_path / "q"), "--resume"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr


def test_a_killed_save_leaves_a_temporary_folder_that_the_next_write_removes(tmp_path):
    from latentforge.fsutil import atomic_directory

    stale = tmp_path / ".out.tmp-abc123"
    stale.mkdir()
    (stale / "model.json").write_text("{}")
    other = tmp_path / ".other.tmp-x"        # belongs to another output: left alone
    other.mkdir()
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "model.json").write_text("{}")
    assert not stale.exists() and other.exists() and (tmp_path / "out" / "model.json").is_file()


def _nan_at(step: int):
    """A regularizer whose term becomes NaN at the ``step``-th batch (1-based)."""
    seen = {"n": 0}

    def regularizer(model, x):
        seen["n"] += 1
        value = torch.tensor(float("nan")) if seen["n"] == step else torch.zeros(())
        return {"injected": value}
    return regularizer


@pytest.mark.parametrize("sync", [1, 4, 0])
def test_the_deferred_non_finite_check_still_names_the_exact_step(monkeypatch, sync):
    """On a GPU the flag is read every SYNC_EVERY steps (0: at the epoch's end, as under DDP); the error
    must name the same step and term as the per-step check does on CPU."""
    import latentforge.train.loop as loop
    from latentforge.errors import TrainingDivergedError

    monkeypatch.setattr(loop, "_sync_every", lambda device, ctx: sync)
    X = _data(160)
    model = _model("ae")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TrainingDivergedError, match="'injected' became nan at epoch 2, step 3") as err:
        train_model(model, X, None, TrainConfig(epochs=3, batch_size=16), progress=False, regularizers=[_nan_at(13)])
    assert (err.value.epoch, err.value.step, err.value.term) == (2, 3, "injected")
    after = model.state_dict()   # the model is back at its last good weights (the end of epoch 1), all finite
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (this machine has none)")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda_matches_cpu_closely(precision):
    X = _data(400)
    losses = {}
    for device in ("cpu", "cuda"):
        model = _model("ae")
        history = train_model(model, X, None, TrainConfig(epochs=3, batch_size=32, device=device,
                                                           precision=precision if device == "cuda" else "fp32"),
                              progress=False)
        losses[device] = history[-1]["train_total"]
    assert abs(losses["cuda"] - losses["cpu"]) < 0.05 * abs(losses["cpu"]) + 0.05
