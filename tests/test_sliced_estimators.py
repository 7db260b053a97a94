"""Sliced estimators: control variates, max/distributional SW, vMF, Riesz MMD, reservoir, test, loss."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.stats
import torch
from scipy.special import ive
from scipy.spatial.distance import cdist

from latentforge.errors import InputError
from latentforge.sliced import (
    DirectionReservoir,
    SlicedLoss,
    distributional_sliced_wasserstein,
    max_sliced_wasserstein,
    projections,
    sample_vmf,
    sliced_loss,
    sliced_mmd_riesz,
    sliced_two_sample_test,
    sliced_wasserstein,
    sliced_wasserstein_cv,
    sliced_wasserstein_power,
)


def _mixtures(seed: int, d: int, n: int = 150, m: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means_x, means_y = rng.normal(size=(3, d)) * 2, rng.normal(size=(2, d)) * 2 + 0.5
    X = means_x[rng.integers(3, size=n)] + rng.normal(size=(n, d)) * 0.7
    Y = means_y[rng.integers(2, size=m)] + rng.normal(size=(m, d)) * np.linspace(0.3, 1.5, d)
    return X, Y


def _reference_power(X: np.ndarray, Y: np.ndarray, n_dirs: int = 100_000, p: float = 2) -> tuple[float, float]:
    """SW_p^p of uniform empirical measures by plain NumPy quantile matching on many random
    directions (both quantile functions are constant between the levels i/n and j/m), and the
    standard error of that Monte Carlo reference."""
    rng = np.random.default_rng(99)
    theta = rng.normal(size=(n_dirs, X.shape[1]))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    n, m = len(X), len(Y)
    breaks = np.unique(np.concatenate([np.arange(1, n + 1) / n, np.arange(1, m + 1) / m]))
    widths = np.diff(breaks, prepend=0.0)
    mids = breaks - widths / 2
    ix, iy = (mids * n).astype(int), (mids * m).astype(int)
    per = np.concatenate([(np.abs(np.sort(c @ X.T, axis=1)[:, ix] - np.sort(c @ Y.T, axis=1)[:, iy]) ** p) @ widths
                          for c in np.array_split(theta, 50)])
    return float(per.mean()), float(per.std() / math.sqrt(n_dirs))


# -- control variates ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["lower", "upper"])
def test_control_variates_reduce_variance_and_stay_on_target(variant):
    X, Y = _mixtures(0, 10, 60, 50)
    reference, ref_se = _reference_power(X, Y)
    cv = np.array([sliced_wasserstein_cv(X, Y, n_projections=30, seed=s, variant=variant, root=False)
                   for s in range(150)])
    mc = np.array([sliced_wasserstein_power(X, Y, n_projections=30, seed=s) for s in range(150)])
    assert cv.var() < 0.5 * mc.var()
    # the estimated slope biases the estimate by O(1/L): allow 0.5% on top of the noise
    assert abs(cv.mean() - reference) < 4 * math.hypot(cv.std() / math.sqrt(len(cv)), ref_se) + 0.005 * reference
    # many directions: the control-variate estimate converges to SW_2
    assert sliced_wasserstein_cv(X, Y, n_projections=20000, seed=1, variant=variant) == pytest.approx(
        math.sqrt(reference), rel=5e-3)


def test_control_variate_expectations_match_monte_carlo():
    """The closed-form E[G] is checked through the estimator: with G itself as the cost (p = 2,
    Gaussian data) γ = 1 and the estimate equals E[G] up to the non-Gaussian remainder; here we
    check the formula E[(θ·v)²] = |v|²/d and E[θᵀΣθ] = tr Σ/d directly."""
    rng = np.random.default_rng(1)
    d = 6
    v, A = rng.normal(size=d), rng.normal(size=(d, d))
    S = A @ A.T
    theta = projections(d, 400_000, seed=0, dtype=torch.float64).numpy()
    assert np.mean((theta @ v) ** 2) == pytest.approx(v @ v / d, rel=0.01)
    assert np.mean(np.einsum("ij,jk,ik->i", theta, S, theta)) == pytest.approx(np.trace(S) / d, rel=0.01)


def test_control_variates_are_exact_for_shifted_measures():
    """Y = X + v: W_2^2(θ) = (θ·v)^2 = G_lower(θ), so the lower control variate is exact."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 4))
    v = np.array([1.0, -2.0, 0.5, 0.0])
    value = sliced_wasserstein_cv(X, X + v, n_projections=7, seed=3, variant="lower", root=False)
    assert value == pytest.approx(v @ v / 4, rel=1e-10)


def test_control_variate_gradients_flow():
    X = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(30, 3, dtype=torch.float64) + 1
    sliced_wasserstein_cv(X, Y, seed=0).backward()
    assert X.grad is not None and torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0


# -- max-sliced -----------------------------------------------------------------------------------
def _single_direction_sw(X, Y, theta):
    """W_2 on each row of theta, by POT's 1-D solver (an independent implementation)."""
    return np.sqrt(ot.wasserstein_1d(X @ theta.T, Y @ theta.T, p=2))


def test_max_sliced_finds_the_best_direction_in_2d():
    X, Y = _mixtures(3, 2, 80, 60)
    angles = np.linspace(0, np.pi, 7200, endpoint=False)
    best_grid = _single_direction_sw(X, Y, np.stack([np.cos(angles), np.sin(angles)], 1)).max()
    value, theta = max_sliced_wasserstein(X, Y, seed=0, return_direction=True)
    assert best_grid * (1 - 1e-3) <= value <= best_grid * (1 + 1e-3)
    assert np.linalg.norm(theta) == pytest.approx(1.0)
    assert _single_direction_sw(X, Y, theta[None])[0] == pytest.approx(value, rel=1e-10)


def test_max_sliced_beats_every_direction_tried():
    X, Y = _mixtures(4, 8)
    theta = projections(8, 300, seed=1, dtype=torch.float64).numpy()
    singles = _single_direction_sw(X, Y, theta)
    assert max_sliced_wasserstein(X, Y, seed=2) >= singles.max()
    start = theta[int(np.argmin(singles))]  # from the worst direction, ascent keeps the best iterate
    assert max_sliced_wasserstein(X, Y, init=start, n_iter=20) >= singles.min()
    assert max_sliced_wasserstein(X, Y, init=start, n_iter=0) == pytest.approx(singles.min(), rel=1e-10)


def test_max_sliced_gradients_flow_to_both_inputs():
    X = torch.randn(30, 4, dtype=torch.float64, requires_grad=True)
    Y = (torch.randn(25, 4, dtype=torch.float64) * 2).requires_grad_(True)
    max_sliced_wasserstein(X, Y, seed=0, n_iter=10).backward()
    assert X.grad.abs().sum() > 0 and Y.grad.abs().sum() > 0


# -- von Mises-Fisher and distributional SW --------------------------------------------------------
@pytest.mark.parametrize("d, kappa", [(3, 1.0), (3, 20.0), (10, 5.0), (10, 50.0)])
def test_vmf_mean_resultant_length(d, kappa):
    location = torch.zeros(d, dtype=torch.float64)
    location[1] = 1.0
    samples = sample_vmf(location, kappa, 20000, generator=0)
    np.testing.assert_allclose(samples.norm(dim=1).numpy(), 1.0, atol=1e-12)
    cosines = (samples @ location).numpy()
    expected = ive(d / 2, kappa) / ive(d / 2 - 1, kappa)  # A_d(κ) = I_{d/2}(κ) / I_{d/2-1}(κ)
    assert abs(cosines.mean() - expected) < 4 * cosines.std() / math.sqrt(len(cosines))
    # the tangential part is isotropic: its mean vanishes
    tangent = samples.numpy() - cosines[:, None] * location.numpy()
    assert np.abs(tangent.mean(0)).max() < 4 * tangent.std(0).max() / math.sqrt(len(cosines)) + 1e-12


def test_vmf_samples_are_differentiable_in_the_location():
    location = torch.tensor([0.6, 0.8, 0.0], dtype=torch.float64, requires_grad=True)
    samples = sample_vmf(location, 5.0, 100, generator=1)
    (samples @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).sum().backward()
    assert location.grad is not None and location.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["vmf", "network"])
def test_distributional_sw_between_sw_and_max_sw_with_gradients(family):
    X0, Y0 = _mixtures(5, 5, 80, 70)
    X = torch.tensor(X0, requires_grad=True)
    Y = torch.tensor(Y0, requires_grad=True)
    value, theta = distributional_sliced_wasserstein(X, Y, family=family, seed=0, n_iter=30, return_directions=True)
    assert theta.shape == (100, 5)
    np.testing.assert_allclose(theta.norm(dim=1).numpy(), 1.0, atol=1e-12)
    plain = sliced_wasserstein(X0, Y0, n_projections=5000, seed=1)
    assert plain < value.item() <= max_sliced_wasserstein(X0, Y0, seed=0) * (1 + 1e-6)
    value.backward()
    assert X.grad.abs().sum() > 0 and Y.grad.abs().sum() > 0


def test_vmf_dsw_with_zero_concentration_is_plain_sw():
    X, Y = _mixtures(6, 4)
    dsw = distributional_sliced_wasserstein(X, Y, kappa=0.0, n_projections=8000, n_iter=0, seed=0)
    assert dsw == pytest.approx(math.sqrt(_reference_power(X, Y, 20_000)[0]), rel=0.015)


# -- sliced MMD with the Riesz kernel ---------------------------------------------------------------
def _energy_distance(X, Y, a=None, b=None):
    a = np.full(len(X), 1 / len(X)) if a is None else a / a.sum()
    b = np.full(len(Y), 1 / len(Y)) if b is None else b / b.sum()
    return 2 * a @ cdist(X, Y) @ b - a @ cdist(X, X) @ a - b @ cdist(Y, Y) @ b


def test_riesz_mmd_is_exact_in_one_dimension_with_weights():
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(40, 1)), rng.exponential(size=(25, 1))
    a, b = rng.random(40), rng.random(25)
    assert sliced_mmd_riesz(X, Y, a, b, n_projections=3) == pytest.approx(_energy_distance(X, Y, a, b), rel=1e-10)
    assert sliced_mmd_riesz(X, Y, squared=False, n_projections=1) == pytest.approx(
        math.sqrt(_energy_distance(X, Y)), rel=1e-10)


def test_riesz_mmd_per_direction_and_in_many_dimensions():
    X, Y = _mixtures(8, 6, 90, 70)
    theta = projections(6, 1, seed=0, dtype=torch.float64).numpy()
    c6 = math.gamma(3) / (math.sqrt(math.pi) * math.gamma(3.5))
    projected = _energy_distance(X @ theta.T, Y @ theta.T)
    assert sliced_mmd_riesz(X, Y, projections=theta) == pytest.approx(projected / c6, rel=1e-10)
    assert sliced_mmd_riesz(X, Y, n_projections=20000, seed=1) == pytest.approx(_energy_distance(X, Y), rel=0.02)


def test_riesz_mmd_rejects_other_exponents_and_is_differentiable():
    X = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(InputError, match="r = 1"):
        sliced_mmd_riesz(X, X, r=1.5)
    sliced_mmd_riesz(X, torch.randn(15, 3, dtype=torch.float64), seed=0).backward()
    assert X.grad.abs().sum() > 0


# -- two-sample test ---------------------------------------------------------------------------------
@pytest.mark.parametrize("statistic", ["sw", "mmd"])
def test_two_sample_test_is_calibrated_and_powerful(statistic):
    rng = np.random.default_rng(12)
    reps, alpha = 200, 0.05
    rejections = 0
    for r in range(reps):
        X, Y = rng.normal(size=(20, 2)), rng.normal(size=(25, 2))
        rejections += sliced_two_sample_test(X, Y, 99, statistic=statistic, n_projections=10, seed=r).pvalue <= alpha
    low, high = scipy.stats.binom.ppf(0.001, reps, alpha), scipy.stats.binom.isf(0.001, reps, alpha)
    assert low <= rejections <= high
    power = np.mean([sliced_two_sample_test(rng.normal(size=(20, 2)), rng.normal(size=(25, 2)) + [1.5, 0],
                                            99, statistic=statistic, n_projections=10, seed=r).pvalue <= alpha
                     for r in range(20)])
    assert power >= 0.8


def test_two_sample_test_is_reproducible_and_reports_sw():
    X, Y = _mixtures(9, 3, 30, 40)
    first = sliced_two_sample_test(X, Y, 50, seed=3, n_projections=20)
    assert first == sliced_two_sample_test(X, Y, 50, seed=3, n_projections=20)
    assert first.statistic > 0
    assert 1 / 51 <= first.pvalue <= 1


# -- reservoir ------------------------------------------------------------------------------------
def test_reservoir_is_unbiased_and_reduces_variance_on_fixed_measures():
    X0, Y0 = _mixtures(10, 4, 60, 50)
    X, Y = torch.tensor(X0), torch.tensor(Y0)
    reference, ref_se = _reference_power(X0, Y0)
    runs, steps = 150, 6
    last = np.empty(runs)
    for r in range(runs):
        reservoir = DirectionReservoir(4, 32, n_new=8, seed=r)
        for _ in range(steps):
            last[r] = reservoir.sliced_wasserstein_power(X, Y).item()
    mc = np.array([sliced_wasserstein_power(X0, Y0, n_projections=32, seed=1000 + r) for r in range(runs)])
    assert abs(last.mean() - reference) < 4 * math.hypot(last.std() / math.sqrt(runs), ref_se)
    assert last.std() < 0.92 * mc.std()


def test_reservoir_directions_and_weights():
    reservoir = DirectionReservoir(5, 16, n_new=4, seed=0)
    theta, weights = reservoir.directions()
    assert theta.shape == (16, 5) and torch.allclose(weights, torch.full((16,), 1 / 16, dtype=torch.float64))
    again, _ = reservoir.directions()
    assert torch.equal(theta, again)
    reservoir.update(torch.arange(16, dtype=torch.float64))
    theta2, weights2 = reservoir.directions()
    np.testing.assert_allclose(theta2.norm(dim=1).numpy(), 1.0, atol=1e-12)
    assert (weights2 > 0).all() and torch.equal(weights2[12:], torch.full((4,), 1 / 16, dtype=torch.float64))
    # kept directions come from the previous pool
    assert all(any(torch.equal(row, old) for old in theta) for row in theta2[:12])
    with pytest.raises(InputError, match="16 finite non-negative"):
        reservoir.update(-torch.ones(16))
    with pytest.raises(InputError, match="randomised"):
        DirectionReservoir(3, 8, method="spiral")


# -- losses -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["mc", "rqmc", "orthogonal", "cv", "cv_lower", "max", "dsw", "reservoir"])
def test_sliced_loss_module_returns_differentiable_power(method):
    torch.manual_seed(0)
    X = torch.randn(32, 3, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(32, 3, dtype=torch.float64) + 1
    options = {"n_iter": 5} if method in ("max", "dsw") else {}
    loss = SlicedLoss(method, n_projections=20, **options)
    value = loss(X, Y)
    value.backward()
    assert value.ndim == 0 and value.item() > 0 and X.grad.abs().sum() > 0
    root = SlicedLoss(method, n_projections=20, root=True, **options)(X.detach(), Y)
    assert 0.3 < root.item() ** 2 / value.item() < 3


def test_sliced_loss_default_is_plain_sliced_wasserstein_power():
    X, Y = torch.randn(20, 4), torch.randn(20, 4)
    assert sliced_loss(X, Y, seed=5).item() == sliced_wasserstein_power(X, Y, seed=5).item()
    with pytest.raises(InputError, match="did you mean"):
        SlicedLoss("cvv")
    with pytest.raises(InputError, match="SlicedLoss"):
        sliced_loss(X, Y, method="reservoir")


def test_swae_trains_with_a_control_variate_loss():
    from latentforge import Autoencoder

    rng = np.random.default_rng(0)
    data = rng.random((64, 10)).astype(np.float32)
    model = Autoencoder("swae", 2, epochs=2, batch_size=32, hidden=(16,), verbose=False,
                        projection_method="cv", n_projections=10).fit(data)
    assert np.isfinite(model.transform(data)).all()


# -- bad input for the estimators ------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda X, Y: sliced_wasserstein_cv(X, Y),
    lambda X, Y: max_sliced_wasserstein(X, Y),
    lambda X, Y: distributional_sliced_wasserstein(X, Y),
    lambda X, Y: sliced_mmd_riesz(X, Y),
    lambda X, Y: sliced_two_sample_test(X, Y, 10),
])
def test_estimators_reject_bad_input(call):
    good = np.zeros((4, 2))
    for X, Y, fragment in [(np.full((4, 2), np.nan), good, "NaN"), (good, np.zeros((4, 3)), "features"),
                           (np.zeros((0, 2)), good, "at least one sample")]:
        with pytest.raises(InputError, match=fragment):
            call(X, Y)


def test_estimator_specific_arguments_are_checked():
    X, Y = np.zeros((4, 2)), np.ones((4, 2))
    with pytest.raises(InputError, match="did you mean 'upper'"):
        sliced_wasserstein_cv(X, Y, variant="uper")
    with pytest.raises(InputError, match="DSW family"):
        distributional_sliced_wasserstein(X, Y, family="vmff")
    with pytest.raises(InputError, match="kappa"):
        distributional_sliced_wasserstein(X, Y, kappa=-1.0)
    with pytest.raises(InputError, match="n_permutations"):
        sliced_two_sample_test(X, Y, 0)
    with pytest.raises(InputError, match="n_iter"):
        max_sliced_wasserstein(X, Y, n_iter=-1)


@pytest.mark.parametrize("method", ["mc", "orthogonal", "rqmc", "qmc", "cv", "cv_upper"])
def test_the_training_loss_is_the_checked_loss_without_the_checks(method):
    from latentforge.sliced import sliced_loss, sliced_training_loss

    X = torch.randn(50, 4, requires_grad=True)
    Y = torch.randn(50, 4) * 2 + 1
    torch.manual_seed(3)
    checked = sliced_loss(X, Y, method=method, n_projections=32)
    torch.manual_seed(3)
    unchecked = sliced_training_loss(X, Y, method=method, n_projections=32)
    assert torch.equal(checked, unchecked)  # same directions from the same random state, same arithmetic
    g1, = torch.autograd.grad(checked, X)
    g2, = torch.autograd.grad(unchecked, X)
    assert torch.equal(g1, g2)
    if method not in ("cv", "cv_upper"):  # no check: a NaN reaches the loss (the trainer names the term)
        bad = X.detach().clone()
        bad[0, 0] = float("nan")
        with pytest.raises(InputError):
            sliced_loss(bad, Y, method=method)
        assert torch.isnan(sliced_training_loss(bad, Y, method=method))
