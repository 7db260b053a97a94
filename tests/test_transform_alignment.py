"""Backward-compatible alignment: known maps are recovered, artifacts round-trip, wrong models are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FAST
from threadpoolctl import threadpool_limits
from scipy.stats import ortho_group

from latentforge import Autoencoder
from latentforge.errors import ArtifactError, InputError
from latentforge.transform import (
    CompatibilityLoss,
    align_models,
    compatible_embedding,
    fit_alignment,
    load_alignment,
    model_fingerprint,
)


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 5)) @ np.diag([3.0, 2.0, 1.0, 0.7, 0.3]) + 1.0


@pytest.fixture(scope="module")
def models(digits):
    torch.set_num_threads(1)                                # module fixtures run before conftest limits threads
    with threadpool_limits(limits=1):
        X = digits.X[:600]
        old = Autoencoder("ae", 4, seed=0, **FAST).fit(X)
        new = Autoencoder("ae", 6, seed=1, **FAST).fit(X)
        return X, old, new


def test_procrustes_recovers_a_known_rotation_scale_and_shift_exactly(codes):
    R = ortho_group.rvs(5, random_state=3)
    new = 0.5 * codes @ R.T - 2.0                        # new = old rotated, shrunk and shifted
    alignment = fit_alignment(codes, new, "orthogonal")
    assert alignment.scale == pytest.approx(2.0)
    np.testing.assert_allclose(alignment.W, R, atol=1e-10)
    np.testing.assert_allclose(alignment.transform(new), codes, atol=1e-10)
    assert alignment.fit_error == pytest.approx(0.0, abs=1e-20)


def test_without_centring_and_scaling_the_map_is_a_pure_rotation(codes):
    R = ortho_group.rvs(5, random_state=4)
    alignment = fit_alignment(codes, codes @ R.T, "orthogonal", center=False, scale=False)
    assert alignment.scale == 1.0 and np.allclose(alignment.mean_new, 0) and np.allclose(alignment.offset, 0)
    np.testing.assert_allclose(alignment.transform(codes @ R.T), codes, atol=1e-10)


def test_alignment_of_codes_with_themselves_is_the_identity(codes):
    for method in ("orthogonal", "linear", "extension"):
        alignment = fit_alignment(codes, codes, method)
        np.testing.assert_allclose(alignment.transform(codes), codes, atol=1e-9)
        assert alignment.fit_error == pytest.approx(0.0, abs=1e-12)


def test_linear_matches_ridge_regression(codes):
    from sklearn.linear_model import LinearRegression, Ridge

    rng = np.random.default_rng(1)
    new = np.hstack([codes, rng.standard_normal((len(codes), 2))]) @ rng.standard_normal((7, 7))
    for ridge, reference in ((0.0, LinearRegression()), (5.0, Ridge(alpha=5.0))):
        alignment = fit_alignment(codes, new, "linear", ridge=ridge)
        np.testing.assert_allclose(alignment.transform(new), reference.fit(new, codes).predict(new), atol=1e-8)


def test_extension_is_lossless_and_its_old_part_is_the_procrustes_map(codes):
    rng = np.random.default_rng(2)
    old = codes[:, :3]
    new = codes @ ortho_group.rvs(5, random_state=5) + 0.1 * rng.standard_normal(codes.shape)
    ext, ortho = fit_alignment(old, new, "extension"), fit_alignment(old, new, "orthogonal")
    out = ext.transform(new)
    assert out.shape == (len(new), 5) and ext.d_out == 5 and ext.d_old == 3
    np.testing.assert_allclose(out[:, :3], ortho.transform(new), atol=1e-10)
    np.testing.assert_allclose(ext.transform(new, old_space_only=True), out[:, :3])
    # a similarity transform of the new code: every pairwise distance scaled by the same factor
    d_new = np.linalg.norm(new[:50, None] - new[None, :50], axis=-1)
    d_out = np.linalg.norm(out[:50, None] - out[None, :50], axis=-1)
    np.testing.assert_allclose(d_out, ext.scale * d_new, rtol=1e-9, atol=1e-9)
    extra = out[:, 3:].var(0)
    assert extra[0] >= extra[1]                            # extra directions ordered by variance
    assert fit_alignment(old, new, "extension", extra_dims=1).d_out == 4
    with pytest.raises(InputError, match="extra_dims"):
        fit_alignment(old, new, "extension", extra_dims=3)


def test_narrower_new_codes_map_into_the_old_space(codes):
    alignment = fit_alignment(codes, codes[:, :2], "orthogonal")
    out = alignment.transform(codes[:, :2])
    assert out.shape == (len(codes), 5)
    assert 0 < alignment.fit_error < 1


def test_bad_input_is_refused_with_one_sentence(codes):
    with pytest.raises(InputError, match="rows"):
        fit_alignment(codes, codes[:-1])
    with pytest.raises(InputError, match="unknown alignment method 'procrustes'"):
        fit_alignment(codes, codes, "procrustes")
    with pytest.raises(InputError, match="ridge"):
        fit_alignment(codes, codes, "linear", ridge=-1)
    with pytest.raises(InputError, match="columns"):
        fit_alignment(codes, codes).transform(codes[:, :3])
    with pytest.raises(InputError, match="NaN"):
        fit_alignment(codes, np.full_like(codes, np.nan))


def test_save_load_round_trip_and_corruption(codes, tmp_path):
    alignment = fit_alignment(codes[:, :3], codes, "extension")
    path = alignment.save(tmp_path / "align")
    loaded = load_alignment(path)
    np.testing.assert_array_equal(loaded.transform(codes), alignment.transform(codes))
    assert (loaded.method, loaded.d_old, loaded.d_out) == ("extension", 3, 5)
    assert sorted(p.name for p in path.iterdir()) == ["alignment.json", "alignment.safetensors"]
    alignment.save(path)                                   # an existing alignment directory is replaced
    weights = path / "alignment.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="corrupted"):
        load_alignment(path)
    with pytest.raises(ArtifactError, match="no alignment directory"):
        load_alignment(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="non-empty"):
        alignment.save(tmp_path / "other")


def test_align_models_records_fingerprints_and_refuses_the_wrong_model(models, tmp_path):
    X, old, new = models
    old.save(tmp_path / "old")
    new.save(tmp_path / "new")
    alignment = align_models(tmp_path / "old", tmp_path / "new", X, method="extension")
    assert alignment.old_fingerprint == model_fingerprint(old) != alignment.new_fingerprint
    assert model_fingerprint(Autoencoder.load(tmp_path / "new")) == model_fingerprint(new)   # survives save/load
    alignment.save(tmp_path / "align")
    config = json.loads((tmp_path / "align" / "alignment.json").read_text())
    assert config["new_fingerprint"] == model_fingerprint(new) and config["info"]["old_path"].endswith("old")
    Z = compatible_embedding(tmp_path / "new", X[:20], tmp_path / "align", old_model=tmp_path / "old",
                             old_space_only=True)
    np.testing.assert_allclose(Z, alignment.transform(new.transform(X[:20]), old_space_only=True), atol=1e-5)
    with pytest.raises(InputError, match="new model is not the one"):
        compatible_embedding(old, X[:20], tmp_path / "align")
    with pytest.raises(InputError, match="old model is not the one"):
        alignment.apply(new, X[:20], old_model=new)
    with pytest.raises(InputError, match="raw codes"):
        fit_alignment(old.transform(X), new.transform(X)).apply(new, X[:5])
    with pytest.raises(ArtifactError, match="model directory, not an alignment"):
        load_alignment(tmp_path / "old")


def test_fingerprint_changes_with_any_weight(models):
    _, old, _ = models
    before = model_fingerprint(old)
    with torch.no_grad():
        p = next(old.model_.parameters())
        p[0, 0] += 1e-3
        assert model_fingerprint(old) != before
        p[0, 0] -= 1e-3
    with pytest.raises(InputError, match="fitted latentforge.Autoencoder"):
        model_fingerprint(Autoencoder("ae", 2))


def test_compatibility_loss_pulls_the_new_code_onto_the_old_one(models):
    X, old, _ = models
    Z_old = old.transform(X)
    common = dict(FAST, epochs=6)
    free = Autoencoder("ae", 6, seed=1, **common).fit(X)
    tied = Autoencoder("ae", 6, seed=1, regularizers=(CompatibilityLoss(old, weight=10.0),), **common).fit(X)
    assert "train_compatibility" in tied.history_[-1]
    gap = lambda est: float(((est.transform(X)[:, :4] - Z_old) ** 2).sum(1).mean())  # noqa: E731
    assert gap(tied) < 0.5 * gap(free)
    with pytest.raises(InputError, match="at least the old model's"):
        Autoencoder("ae", 2, regularizers=(CompatibilityLoss(old),), **FAST).fit(X[:50])
    with pytest.raises(InputError, match="weight"):
        CompatibilityLoss(old, weight=-1)


def test_compatibility_loss_on_a_one_row_batch_is_zero(models):
    _, old, new = models
    assert float(CompatibilityLoss(old)(new.model_, torch.rand(1, 64))["compatibility"]) == 0
