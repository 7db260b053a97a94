"""Shared fixtures: small data and fast training settings so the suite stays quick on 2 cores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

FAST = dict(epochs=3, batch_size=32, hidden=(32,), verbose=False)
#: the feature layout of digits pixels, for models built directly (without an estimator)
PIXELS = [("bernoulli", 0, 64)]


def pixel_model(name: str, latent: int = 3, **hp):
    """A small registered model on 8x8 digits pixels, seeded, built without an estimator."""
    from latentforge.models import Architecture, build_model

    torch.manual_seed(0)
    return build_model(name, (1, 8, 8), PIXELS, latent, Architecture(hidden=(16,)), hp)


@pytest.fixture(autouse=True)
def _threads():
    # Small models and small scikit-learn fits: one thread is fastest, keeps results identical,
    # and avoids BLAS oversubscription when the machine is busy.
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def digits():
    from latentforge.data import load_builtin

    return load_builtin("digits")


@pytest.fixture
def pixels(digits) -> torch.Tensor:
    return torch.from_numpy(digits.X.reshape(len(digits.X), -1))


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """A small table with every column role: numeric (with gaps), categorical, boolean, id, label."""
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in range(n)],
        "age": rng.normal(40, 10, n).round(1),
        "income": rng.lognormal(10, 0.5, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "member": rng.choice([True, False], n),
        "churn": rng.integers(0, 2, n),
    })
    frame.loc[[3, 17, 40], "income"] = np.nan
    return frame
