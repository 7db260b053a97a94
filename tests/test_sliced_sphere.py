"""Spherical sliced Wasserstein and the circle's Wasserstein distance, against POT itself on the
same data and projections, against exact references (the transport LP with the geodesic cost,
cyclic-shift matchings) and for their properties (zero, rotation invariance, gradients, inputs)."""

from __future__ import annotations

import itertools

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from latentforge.errors import InputError
from latentforge.sliced import sliced_wasserstein_sphere, sliced_wasserstein_sphere_unif, wasserstein_circle
from latentforge.sliced.sphere import circle_coordinates, sphere_projections, uniform_circle_rows


def on_sphere(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    X = rng.normal(size=(n, d))
    X[:, 0] += shift
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return on_sphere(rng, 60, 4), on_sphere(rng, 45, 4, shift=1.0), rng.random(60), rng.random(45)


@pytest.fixture(scope="module")
def U():
    return sphere_projections(4, 40, seed=1).numpy()


def geodesic_lp(u, v, a, b, p):
    """Exact W_p^p on the circle: the transport LP with the geodesic cost min(|s - t|, 1 - |s - t|)^p."""
    D = np.abs(np.asarray(u)[:, None] - np.asarray(v)[None, :]) % 1
    return ot.emd2(a, b, np.minimum(D, 1 - D) ** p)


# -- values against POT -------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("sizes", ["equal", "unequal"])
def test_values_match_pot_on_the_same_projections(samples, U, p, sizes):
    X, Y, _, _ = samples
    Y = np.vstack([Y, Y[:15]]) if sizes == "equal" else Y
    ours = sliced_wasserstein_sphere(X, Y, p=p, projections=U)
    pot = ot.sliced_wasserstein_sphere(X, Y, p=p, projections=U, n_projections=len(U))
    # POT's binary search stops at a tolerance (rel. differences up to ~1e-10 for p = 3 here); ours
    # is the exact minimum over rotations, hence never above POT's value.
    assert ours == pytest.approx(pot, rel=1e-12 if p < 3 else 1e-8)
    assert ours <= pot * (1 + 1e-13)


def test_weighted_values_match_pot(samples, U):
    X, Y, a, b = samples
    ours = sliced_wasserstein_sphere(X, Y, a, b, projections=U)
    pot = ot.sliced_wasserstein_sphere(X, Y, a / a.sum(), b / b.sum(), projections=U, n_projections=len(U))
    assert ours == pytest.approx(pot, rel=1e-8) and ours <= pot * (1 + 1e-13)


def test_uniform_version_matches_pot(samples, U):
    X, _, _, _ = samples
    ours = sliced_wasserstein_sphere_unif(X, projections=U)
    assert ours == pytest.approx(ot.sliced_wasserstein_sphere_unif(X, projections=U, n_projections=len(U)), rel=1e-12)


def test_uniform_closed_form_matches_pot_and_a_fine_grid():
    """Weighted: POT's ``semidiscrete_wasserstein2_unif_circle`` sorts the values but not their
    weights, so it is compared on pre-sorted values; a uniform grid of 2000 atoms checks ours."""
    rng = np.random.default_rng(3)
    x, a = np.sort(rng.random(7)), rng.random(7)
    a /= a.sum()
    ours = float(uniform_circle_rows(torch.tensor(x)[None], torch.tensor(a))[0])
    assert ours == pytest.approx(ot.semidiscrete_wasserstein2_unif_circle(x[:, None], a[:, None])[0], rel=1e-12)
    grid = (np.arange(2000) + 0.5) / 2000
    assert ours == pytest.approx(wasserstein_circle(x, grid, a, p=2), abs=1e-7)
    shuffled = rng.permutation(7)                      # ours sorts the weights with the values
    again = uniform_circle_rows(torch.tensor(x[shuffled])[None], torch.tensor(a[shuffled]))[0]
    assert float(again) == pytest.approx(ours)


def test_weighted_uniform_version_against_the_circle_solver(samples):
    X, _, a, _ = samples
    U = sphere_projections(4, 5, seed=4)
    grid_angles = 2 * np.pi * (np.arange(4000) + 0.5) / 4000
    coords = circle_coordinates(torch.tensor(X), U).numpy()          # (5, 60) in turns
    reference = np.mean([wasserstein_circle(c, grid_angles / (2 * np.pi), a, p=2) for c in coords])
    assert sliced_wasserstein_sphere_unif(X, a, projections=U, root=False) == pytest.approx(reference, abs=1e-7)


# -- the circle ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
def test_circle_matches_pot_and_the_exact_lp(p):
    rng = np.random.default_rng(5)
    u, v = rng.random((12, 30)), rng.random((9, 30))
    a, b = rng.random(12) + 0.1, rng.random(9) + 0.1
    a, b = a / a.sum(), b / b.sum()
    ours = wasserstein_circle(u, v, a, b, p=p)
    assert ours.shape == (30,)
    np.testing.assert_allclose(ours, ot.wasserstein_circle(u, v, a, b, p=p), rtol=1e-7, atol=1e-15)
    exact = np.array([geodesic_lp(u[:, k], v[:, k], a, b, p) for k in range(30)])
    np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_circle_equal_sizes_is_the_best_cyclic_shift(p):
    """Equal-size uniform samples on the circle: for a convex cost of the geodesic distance an
    optimal matching pairs the sorted samples up to a cyclic shift (Rabin, Delon & Gousseau,
    "Transportation distances on the circle", 2011); Hungarian assignment as a second reference."""
    rng = np.random.default_rng(6)
    for _ in range(5):
        x, y = np.sort(rng.random(7)), np.sort(rng.random(7))
        D = np.abs(x[:, None] - y[None, :])
        C = np.minimum(D, 1 - D) ** p
        shifts = min(C[np.arange(7), (np.arange(7) + k) % 7].mean() for k in range(7))
        rows, cols = linear_sum_assignment(C)
        assert C[rows, cols].mean() == pytest.approx(shifts, rel=1e-12)
        assert wasserstein_circle(rng.permutation(x), y, p=p) == pytest.approx(shifts, rel=1e-12, abs=1e-16)


def test_circle_brute_force_over_all_matchings():
    x, y = np.array([0.05, 0.3, 0.62, 0.9]), np.array([0.97, 0.2, 0.4, 0.7])
    for p in (1, 2, 3):
        def dist(s, t):
            return min(abs(s - t), 1 - abs(s - t)) ** p
        brute = min(np.mean([dist(x[i], y[j]) for i, j in enumerate(perm)])
                    for perm in itertools.permutations(range(4)))
        assert wasserstein_circle(x, y, p=p) == pytest.approx(brute, rel=1e-12)


def test_circle_values_are_taken_mod_one_and_columns_are_independent():
    rng = np.random.default_rng(7)
    u, v = rng.random((10, 4)), rng.random((6, 4))
    together = wasserstein_circle(u, v, p=2)
    assert np.allclose(together, [wasserstein_circle(u[:, k], v[:, k], p=2) for k in range(4)], rtol=1e-13)
    assert np.allclose(wasserstein_circle(u + 3.0, v - 2.0, p=2), together, rtol=1e-10)
    assert wasserstein_circle(u[:, 0], u[:, 0], p=3) == 0.0
    assert wasserstein_circle([0.9], [0.1], p=1) == pytest.approx(0.2)


def level_median_w1(u, v):
    """W_1 on the circle by the level median (Hundrieser, Klatt & Munk 2022):
    min over α of ∫_0^1 |F_μ(t) - F_ν(t) - α| dt, α a median of F_μ - F_ν under Lebesgue measure."""
    points = np.sort(np.concatenate([u, v]))
    edges = np.concatenate([[0.0], points, [1.0]])
    lengths = np.diff(edges)                         # the intervals [0, t_1), [t_1, t_2), ..., [t_k, 1)
    g = np.array([np.mean(u <= t) - np.mean(v <= t) for t in edges[:-1]])
    order = np.argsort(g)
    median = g[order][np.searchsorted(np.cumsum(lengths[order]), 0.5)]
    return float(lengths @ np.abs(g - median))


def test_circle_p1_matches_the_level_median_closed_form():
    """(POT's ``ot.lp.solver_circle.wasserstein1_circle`` leaves out the interval before the first
    atom, so its values fall below the LP's when the level median is not 0; POT's public
    ``ot.wasserstein_circle`` uses the binary search instead, which agrees.)"""
    rng = np.random.default_rng(8)
    u, v = rng.random((15, 10)), rng.random((11, 10))
    ours = wasserstein_circle(u, v, p=1)
    np.testing.assert_allclose(ours, [level_median_w1(u[:, k], v[:, k]) for k in range(10)], rtol=1e-12)


def test_circle_zero_weights_and_ties():
    a = np.array([0.5, 0.0, 0.5])
    u, v = np.array([0.1, 0.5, 0.6]), np.array([0.1, 0.6])
    assert wasserstein_circle(u, v, a, p=2) == pytest.approx(0.0, abs=1e-16)
    assert wasserstein_circle([0.2, 0.2, 0.7], [0.2, 0.7, 0.7], p=1) == pytest.approx(geodesic_lp(
        np.array([0.2, 0.2, 0.7]), np.array([0.2, 0.7, 0.7]), np.full(3, 1 / 3), np.full(3, 1 / 3), 1))


# -- properties ---------------------------------------------------------------------------------
def test_zero_for_identical_samples_with_finite_gradients(samples):
    X, _, _, _ = samples
    assert sliced_wasserstein_sphere(X, X, seed=0) == 0.0
    Xt = torch.tensor(X, requires_grad=True)
    value = sliced_wasserstein_sphere(Xt, torch.tensor(X), seed=0)
    value.backward()
    assert float(value.detach()) == 0.0 and torch.isfinite(Xt.grad).all()


def test_rotation_invariance(samples):
    X, Y, _, _ = samples
    R = np.linalg.qr(np.random.default_rng(9).normal(size=(4, 4)))[0]
    U = sphere_projections(4, 30, seed=2).numpy()
    rotated_U = np.einsum("ij,ljk->lik", R, U)           # (R U)^T (R x) = U^T x: exact
    for p in (1, 2):
        base = sliced_wasserstein_sphere(X, Y, p=p, projections=U)
        assert sliced_wasserstein_sphere(X @ R.T, Y @ R.T, p=p, projections=rotated_U) == pytest.approx(base, rel=1e-10)
    # With fresh uniform projections only the expectation is invariant.
    # (400 projections: a relative standard deviation of about 1% here.)
    many = [sliced_wasserstein_sphere(Z, W, n_projections=400, seed=3) for Z, W in ((X, Y), (X @ R.T, Y @ R.T))]
    assert many[0] == pytest.approx(many[1], rel=0.05)


def test_two_dimensions_is_the_circle_itself():
    rng = np.random.default_rng(10)
    s, t = rng.random(20), rng.random(15)

    def ring(c):
        return np.stack([np.cos(2 * np.pi * c), np.sin(2 * np.pi * c)], 1)

    exact = wasserstein_circle(s, t, p=2) ** 0.5
    for seed in (0, 1):
        assert sliced_wasserstein_sphere(ring(s), ring(t), n_projections=3, seed=seed) == pytest.approx(exact, rel=1e-9)
    assert sliced_wasserstein_sphere_unif([[1.0, 0.0]], seed=0, root=False) == pytest.approx(1 / 12)


def test_root_false_is_the_power(samples, U):
    X, Y, _, _ = samples
    for p in (1, 2, 3):
        assert sliced_wasserstein_sphere(X, Y, p=p, projections=U, root=False) == pytest.approx(
            sliced_wasserstein_sphere(X, Y, p=p, projections=U) ** p, rel=1e-12)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_gradients_match_pots_torch_backend(samples, p):
    X, Y, a, b = (t[:30] for t in samples)             # POT's torch binary search is slow
    U = sphere_projections(4, 5, seed=5)
    grads = []
    for fn in (sliced_wasserstein_sphere, ot.sliced_wasserstein_sphere):
        Xt, Yt = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
        extra = {"n_projections": 5} if fn is ot.sliced_wasserstein_sphere else {}
        fn(Xt, Yt, torch.tensor(a / a.sum()), torch.tensor(b / b.sum()), p=p, projections=U, **extra).backward()
        grads.append((Xt.grad, Yt.grad))
    for ours, pot in zip(grads[0], grads[1]):
        assert torch.isfinite(ours).all()
        # POT stops its search near the best rotation, not at it: up to ~2e-9 apart for p = 2, 3
        # (on gradients of ~1e-2); p = 1 agrees to 1e-16.
        torch.testing.assert_close(ours, pot, rtol=1e-5, atol=1e-8)


def test_uniform_version_gradient_matches_pot(samples):
    X, _, _, _ = samples
    U = sphere_projections(4, 20, seed=6)
    grads = []
    for fn in (sliced_wasserstein_sphere_unif, ot.sliced_wasserstein_sphere_unif):
        Xt = torch.tensor(X, requires_grad=True)
        extra = {"n_projections": 20} if fn is ot.sliced_wasserstein_sphere_unif else {}
        fn(Xt, projections=U, **extra).backward()
        grads.append(Xt.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


def test_circle_gradient_against_finite_differences():
    rng = np.random.default_rng(11)
    u = torch.tensor(rng.random((8, 3)), requires_grad=True)
    v = torch.tensor(rng.random((5, 3)))
    wasserstein_circle(u, v, p=2).sum().backward()
    step = 1e-7
    for i, k in ((0, 0), (3, 1), (7, 2)):
        bumped = u.detach().clone()
        bumped[i, k] += step
        numeric = (wasserstein_circle(bumped, v, p=2) - wasserstein_circle(u.detach(), v, p=2)).sum() / step
        assert float(u.grad[i, k]) == pytest.approx(float(numeric), abs=1e-5)


def test_gradients_reach_the_projections(samples):
    X, Y, _, _ = samples
    U = sphere_projections(4, 10, seed=7).requires_grad_(True)
    sliced_wasserstein_sphere(torch.tensor(X), torch.tensor(Y), projections=U).backward()
    assert torch.isfinite(U.grad).all() and U.grad.abs().sum() > 0


# -- dtypes and seeds ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_inputs_keep_their_float_dtype(samples, U, dtype):
    X, Y, _, _ = samples
    ours = sliced_wasserstein_sphere(X.astype(dtype), Y.astype(dtype), projections=U.astype(dtype))
    unif = sliced_wasserstein_sphere_unif(X.astype(dtype), seed=0)
    assert isinstance(ours, np.floating) and ours.dtype == dtype and unif.dtype == dtype
    assert wasserstein_circle(np.array([0.1, 0.2], dtype), np.array([0.3], dtype)).dtype == dtype
    assert ours == pytest.approx(sliced_wasserstein_sphere(X, Y, projections=U), rel=1e-5)


def test_tensor_inputs_give_tensors_of_their_dtype(samples):
    X, Y, _, _ = samples
    X32, Y32 = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    value = sliced_wasserstein_sphere(X32, Y32, seed=0)
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float32 and value.ndim == 0
    circle = wasserstein_circle(torch.rand(5, 3), torch.rand(4, 3))
    assert isinstance(circle, torch.Tensor) and circle.shape == (3,)


def test_seeds(samples):
    X, Y, _, _ = samples
    assert sliced_wasserstein_sphere(X, Y, seed=4) == sliced_wasserstein_sphere(X, Y, seed=4)
    assert sliced_wasserstein_sphere(X, Y, seed=4) != sliced_wasserstein_sphere(X, Y, seed=5)
    assert sliced_wasserstein_sphere(X, Y, seed=np.random.RandomState(0)) == sliced_wasserstein_sphere(
        X, Y, seed=np.random.RandomState(0))
    assert np.isfinite(sliced_wasserstein_sphere(X, Y, seed=np.random.default_rng(0)))
    torch.manual_seed(0)
    first = sliced_wasserstein_sphere_unif(X)
    torch.manual_seed(0)
    assert sliced_wasserstein_sphere_unif(X) == first
    for bad in (3.7, "1", True):
        with pytest.raises(InputError, match="seed"):
            sliced_wasserstein_sphere(X, Y, seed=bad)


def test_drawn_projections_are_uniform_on_the_stiefel_manifold():
    U = sphere_projections(5, 4000, seed=0)
    gram = U.transpose(1, 2) @ U
    torch.testing.assert_close(gram, torch.eye(2, dtype=torch.float64).expand_as(gram))
    # E[U U^T] = (2/d) I for U uniform on V_{d,2}
    second_moment = (U @ U.transpose(1, 2)).mean(0)
    torch.testing.assert_close(second_moment, 0.4 * torch.eye(5, dtype=torch.float64), atol=0.02, rtol=0)


# -- bad inputs ---------------------------------------------------------------------------------
def test_bad_inputs_raise_input_errors(samples, U):
    X, Y, a, _ = samples
    cases = [
        (lambda: sliced_wasserstein_sphere(X * 1.01, Y, seed=0), "X must lie on the unit sphere"),
        (lambda: sliced_wasserstein_sphere(X, Y * 0.5, seed=0), "Y must lie on the unit sphere"),
        (lambda: sliced_wasserstein_sphere_unif(X * 2, seed=0), "X must lie on the unit sphere"),
        (lambda: sliced_wasserstein_sphere([[1.0], [-1.0]], [[1.0]], seed=0), "d >= 2"),
        (lambda: sliced_wasserstein_sphere(X, Y[:, :3], seed=0), "features"),
        (lambda: sliced_wasserstein_sphere(X[0], Y, seed=0), "2-D"),
        (lambda: sliced_wasserstein_sphere(X, Y, projections=U[:, :3]), r"\(L, 4, 2\)"),
        (lambda: sliced_wasserstein_sphere(X, Y, projections=U[0]), r"\(L, 4, 2\)"),
        (lambda: sliced_wasserstein_sphere(X, Y, projections=U * np.nan), "NaN"),
        (lambda: sliced_wasserstein_sphere(X, Y, p=0.5, seed=0), "p must"),
        (lambda: sliced_wasserstein_sphere(X, Y, n_projections=0), "n_projections"),
        (lambda: sliced_wasserstein_sphere(X, Y, -a, seed=0), "non-negative"),
        (lambda: sliced_wasserstein_sphere(X, Y, a[:10], seed=0), "length 60"),
        (lambda: sliced_wasserstein_sphere_unif(np.vstack([X, [[np.nan] * 4]]), seed=0), "NaN"),
        (lambda: sliced_wasserstein_sphere_unif(X[0], seed=0), "2-D"),
        (lambda: wasserstein_circle(np.zeros((3, 2)), np.zeros((3, 4))), "same number of circles"),
        (lambda: wasserstein_circle(np.zeros((3, 2, 1)), np.zeros(3)), "shaped"),
        (lambda: wasserstein_circle([], [0.1]), "at least one point"),
        (lambda: wasserstein_circle([np.inf], [0.1]), "u contains NaN"),
        (lambda: wasserstein_circle([0.1], [0.2], p=0), "p must"),
        (lambda: wasserstein_circle([0.1, 0.2], [0.2], a=[0.0, 0.0]), "sum to zero"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()
