"""The "auto" training plan (docs/data.md): tables get a budget and a network from their size,
images keep the digits-protocol defaults, and a value the user gives is never replaced."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from latentforge import Autoencoder
from latentforge.config import auto_plan
from latentforge.data import load_builtin


def _nearest_pow2(x: float) -> int:
    """Written out independently of the library: the power of two closest to x in log scale."""
    candidates = [2 ** k for k in range(0, 20)]
    return min(candidates, key=lambda c: abs(math.log2(c) - math.log2(max(x, 1.0))))


def _table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 5, n).astype(float),
                         "kind": rng.choice(["x", "y", "z"], n)})


@pytest.mark.parametrize("n_rows, n_features", [(180, 9), (270, 17), (3_700, 30), (50_000, 300), (5_000_000, 12)])
def test_the_table_rule_is_the_documented_formula(n_rows, n_features):
    plan = auto_plan(n_rows, n_features, image=False)
    batch = min(256, max(32, _nearest_pow2(n_rows / 32)))
    epochs = min(200, max(5, math.ceil(1000 / math.ceil(n_rows / batch))))
    width = min(512, max(64, _nearest_pow2(2 * n_features)))
    hidden = (width,) if n_rows < 2000 else (min(512, 2 * width), width) if n_rows < 20_000 else (512, 256)
    assert plan == {"batch_size": batch, "epochs": epochs, "lr": 2e-3, "hidden": hidden,
                    "patience": max(30, math.ceil(epochs / 2)), "threads": 1}
    # the budget: about 1,000 steps unless a bound binds
    steps = epochs * math.ceil(n_rows / batch)
    assert steps >= 1000 or epochs == 200
    assert steps < 1000 + math.ceil(n_rows / batch) or epochs == 5


def test_an_explicit_batch_size_sets_the_epochs_of_the_budget():
    plan = auto_plan(3_000, 10, image=False, batch_size=128)
    assert plan["batch_size"] == 128 and plan["epochs"] == math.ceil(1000 / math.ceil(3000 / 128))


def test_fit_on_a_small_table_uses_the_plan_and_records_it(tmp_path):
    df = _table()
    est = Autoencoder("ae", 2, verbose=False, threads=1, patience=2).fit(df)
    n_train = 300 - len(est.held_out_["rows"])
    expected = auto_plan(n_train, est.preprocessor_.n_features, image=False)
    plan = est.training_plan_
    assert plan["auto"] == ["epochs", "batch_size", "lr", "hidden"]  # patience and threads were given
    assert plan["lr"] == 2e-3 and est.get_params()["lr"] == "auto"
    assert plan["threads"] == 1 and est.get_params()["threads"] == 1
    assert (plan["epochs"], plan["batch_size"], plan["patience"]) == (expected["epochs"], expected["batch_size"], 2)
    assert tuple(est.model_.architecture.hidden) == expected["hidden"] == tuple(plan["hidden"])
    assert est.get_params()["epochs"] == "auto"  # the parameter stays what the user set
    est.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "model.json").read_text())
    assert saved["train"]["epochs"] == expected["epochs"] and saved["train"]["batch_size"] == expected["batch_size"]
    assert saved["train"]["lr"] == 2e-3  # what the run used
    assert saved["fitted"]["training_plan"] == plan
    loaded = Autoencoder.load(tmp_path / "m")
    assert loaded.training_plan_ == plan
    np.testing.assert_array_equal(loaded.transform(df), est.transform(df))


def test_explicit_settings_are_never_replaced():
    est = Autoencoder("ae", 2, epochs=3, batch_size=8, lr=5e-4, hidden=(16,), patience=None, threads=2,
                      verbose=False).fit(_table(120))
    assert est.training_plan_ == {"epochs": 3, "batch_size": 8, "lr": 5e-4, "patience": None, "hidden": [16],
                                  "threads": 2, "auto": []}
    assert tuple(est.model_.architecture.hidden) == (16,) and len(est.history_) == 3


def test_a_table_trains_on_one_thread_and_leaves_the_process_setting_alone():
    import torch

    seen = []
    before = torch.get_num_threads()
    est = Autoencoder("ae", 2, epochs=2, verbose=False).fit(_table(120), on_epoch=lambda record: seen.append(
        torch.get_num_threads()))
    assert est.training_plan_["threads"] == 1 and "threads" in est.training_plan_["auto"]
    assert seen == [1, 1] and torch.get_num_threads() == before  # set for the training only


def test_images_keep_the_digits_protocol_defaults():
    digits = load_builtin("digits")
    est = Autoencoder("ae", 2, epochs=1, verbose=False).fit(digits.X[:200])
    assert est.training_plan_["batch_size"] == 64 and est.training_plan_["patience"] == 30
    assert est.training_plan_["threads"] is None  # PyTorch's default for the conv and 512-256 nets
    assert est.training_plan_["lr"] == 1e-3
    assert tuple(est.model_.architecture.hidden) == (512, 256)
    assert auto_plan(1_437, 64, image=True)["epochs"] == 100


def test_a_refit_plans_again_for_the_new_data():
    est = Autoencoder("ae", 2, epochs=1, verbose=False)
    first = est.fit(_table(120)).training_plan_["hidden"]
    wide = pd.DataFrame(np.random.default_rng(1).normal(size=(120, 60)), columns=[f"f{i}" for i in range(60)])
    second = est.fit(wide).training_plan_["hidden"]
    assert first == [64] and second == [128]
