"""The properties POT's own sliced-Wasserstein tests check, asserted against POT itself: values on
the same projections (equal and unequal sizes, weights), dtypes, seeds and gradients."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from latentforge.errors import InputError
from latentforge.sliced import SlicedLoss, max_sliced_wasserstein, projections, sliced_wasserstein


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 4)), rng.normal(loc=0.5, size=(45, 4)), rng.random(60), rng.random(45)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("sizes", ["equal", "unequal"])
def test_values_match_pot_on_the_same_projections(samples, p, sizes):
    X, Y, _, _ = samples
    Y = np.vstack([Y, Y[:15]]) if sizes == "equal" else Y  # 60 rows like X, or 45
    theta = projections(4, 40, seed=1, dtype=torch.float64).numpy()
    ours = sliced_wasserstein(X, Y, p=p, projections=theta)
    assert ours == pytest.approx(ot.sliced_wasserstein_distance(X, Y, p=p, projections=theta.T), rel=1e-9)


def test_weighted_values_match_pot(samples):
    X, Y, a, b = samples
    theta = projections(4, 40, seed=2, dtype=torch.float64).numpy()
    ours = sliced_wasserstein(X, Y, a, b, projections=theta)
    reference = ot.sliced_wasserstein_distance(X, Y, a / a.sum(), b / b.sum(), projections=theta.T)
    assert ours == pytest.approx(reference, rel=1e-9)


def test_max_over_given_directions_is_below_the_optimised_max(samples):
    X, Y, _, _ = samples
    theta = projections(4, 200, seed=3, dtype=torch.float64).numpy()
    best_given = ot.max_sliced_wasserstein_distance(X, Y, projections=theta.T)
    assert max_sliced_wasserstein(X, Y, seed=0) >= best_given * (1 - 1e-6)  # optimised ≥ best of 200


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_inputs_keep_their_float_dtype(samples, dtype):
    X, Y, _, _ = samples
    theta = projections(4, 20, seed=0, dtype=torch.float64).numpy().astype(dtype)
    X, Y = X.astype(dtype), Y.astype(dtype)
    ours = sliced_wasserstein(X, Y, projections=theta)
    reference = ot.sliced_wasserstein_distance(X, Y, projections=theta.T)  # POT keeps the dtype here
    assert ours.dtype == dtype == reference.dtype
    assert sliced_wasserstein(X, Y, seed=0).dtype == dtype  # and with drawn directions (POT: float64)
    assert ours == pytest.approx(reference, rel=1e-5 if dtype == np.float32 else 1e-9)


def test_tensor_inputs_keep_their_dtype(samples):
    X, Y, _, _ = samples
    value = sliced_wasserstein(torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32), seed=0)
    assert value.dtype == torch.float32


@pytest.mark.parametrize("make", [lambda: np.random.RandomState(0), lambda: np.random.default_rng(0)])
def test_numpy_random_states_are_accepted_as_seeds(samples, make):
    X, Y, _, _ = samples
    first, second = sliced_wasserstein(X, Y, seed=make()), sliced_wasserstein(X, Y, seed=make())
    assert first == second  # the same state gives the same directions
    state = make()
    assert sliced_wasserstein(X, Y, seed=state) != sliced_wasserstein(X, Y, seed=state)  # it advances


@pytest.mark.parametrize("seed", [3.7, "1", True, [0]])
def test_other_seeds_are_refused(samples, seed):
    X, Y, _, _ = samples
    with pytest.raises(InputError, match="seed must be an integer"):
        sliced_wasserstein(X, Y, seed=seed)


@pytest.mark.parametrize("distance", [
    lambda X, Y: sliced_wasserstein(X, Y, seed=0),
    lambda X, Y: SlicedLoss(root=True, seed=0)(X, Y),
    lambda X, Y: max_sliced_wasserstein(X, Y, n_iter=5, seed=0),
])
def test_gradient_between_identical_samples_is_finite(samples, distance):
    X, _, _, _ = samples
    Xt = torch.tensor(X, requires_grad=True)
    value = distance(Xt, Xt.detach().clone())
    value.backward()
    assert float(value.detach()) == pytest.approx(0, abs=1e-7)
    assert torch.isfinite(Xt.grad).all() and float(Xt.grad.abs().max()) == 0.0  # POT's is all NaN here


def test_gradient_elsewhere_matches_pot(samples):
    X, Y, _, _ = samples
    theta = projections(4, 30, seed=4, dtype=torch.float64)
    ours, theirs = torch.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    sliced_wasserstein(ours, torch.tensor(Y), projections=theta).backward()
    ot.sliced_wasserstein_distance(theirs, torch.tensor(Y), projections=theta.T).backward()
    torch.testing.assert_close(ours.grad, theirs.grad)
