"""The main job and its report, including a look at the rendered page in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from latentforge import Autoencoder
from latentforge.data import load_builtin, split_dataset
from latentforge.workflows import run_demo

RUNS = ("ae-seed0", "vae-seed0", "swae-seed0")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    board = run_demo("digits", out, epochs=4, verbose=False)
    return out, board


def test_run_folder_has_models_embeddings_metrics_and_report(demo_run):
    out, board = demo_run
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "leaderboard.csv", "leaderboard.json",
                                                     "report.html", "runs"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted([*RUNS, *(f"{r}.json" for r in RUNS)])
    metrics = pd.read_csv(out / "leaderboard.csv")
    assert metrics["model"].tolist() == ["ae", "vae", "swae"] == board["model"].tolist()
    assert [r["model"] for r in json.loads((out / "leaderboard.json").read_text())] == ["ae", "vae", "swae"]
    np.testing.assert_allclose(metrics["recon_mse"], board["recon_mse"])
    # the demo is a preset of compare: one seed, the split seeded like the estimator, defaults untouched
    config = json.loads((out / "compare.json").read_text())
    assert config["seeds"] == [0] and config["split_seed"] == 0 and config["shared"] == {"epochs": 4}
    _, _, test = split_dataset(load_builtin("digits"), 0.2, 0.0, seed=0)
    for run in RUNS:
        model = Autoencoder.load(out / "runs" / run / "model")
        assert model.latent_dim == 8 and len(model.history_) == 4  # the estimator's default latent size
        emb = pd.read_parquet(out / "runs" / run / "embeddings.parquet")
        assert len(emb) == 360 and list(emb.columns) == [*(f"z{i}" for i in range(8)), "digit"]
        # the saved embeddings are the model's own test-set codes
        np.testing.assert_allclose(emb[[f"z{i}" for i in range(8)]].to_numpy(), model.transform(test.X), rtol=1e-5)
        np.testing.assert_array_equal(emb["digit"], test.y)
    row = board.set_index("model").loc["ae"]
    assert 0 < row["recon_mse"] < 0.1 and 0.1 < row["probe_acc"] <= 1 and row["epochs_run"] == 4
    assert {"gen_sw", "train_seconds"} <= set(board.columns)


def test_demo_figures_follow_the_first_release_protocol(demo_run):
    """The figures README.md quotes: recomputed by hand from the saved model on the same split."""
    from latentforge.evaluate import generation_sw, linear_probe_accuracy

    out, board = demo_run
    train, _, test = split_dataset(load_builtin("digits"), 0.2, 0.0, seed=0)
    model = Autoencoder.load(out / "runs" / "vae-seed0" / "model")
    row = board.set_index("model").loc["vae"]
    assert row["recon_mse"] == pytest.approx(float(model.score_samples(test.X).mean()), rel=1e-5)
    probe = linear_probe_accuracy(model.transform(train.X), train.y, model.transform(test.X), test.y)
    assert row["probe_acc"] == pytest.approx(probe)
    generated = model.features(model.sample(len(test), seed=0))
    assert row["gen_sw"] == pytest.approx(generation_sw(generated, model.features(test.X)), rel=1e-5)


def test_report_is_self_contained(demo_run):
    out, board = demo_run
    html = (out / "report.html").read_text()
    # curves, reconstructions, samples, embeddings, latent dimensions
    assert html.count("data:image/png;base64,") == 5
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    assert f"{board.loc[0, 'recon_mse']:.4g}" in html and "latentforge demo: digits" in html


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium when run as root)")
    out, _ = demo_run
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1200)
    dark = (pixels < 128).mean()
    assert 0.02 < dark < 0.9 and pixels.std() > 20  # text, tables and figures, not a blank page


def test_table_dataset_demo(tmp_path):
    board = run_demo("wine", tmp_path / "wine", epochs=3, verbose=False, hidden=(32,))
    assert len(board) == 3 and (board["runs_ok"] == 1).all()
    # curves, per-column errors, reconstruction and sample scatters, embeddings, latent dimensions
    html = (tmp_path / "wine" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "Per-column reconstruction error" in html
    emb = pd.read_parquet(tmp_path / "wine" / "runs" / "ae-seed0" / "embeddings.parquet")
    assert list(emb.columns)[-1] == "target" and len(emb) == 36


@pytest.mark.slow
def test_default_ae_beats_pca_on_the_digits_protocol():
    """Out-of-the-box defaults must give a useful model: better than PCA with as many components."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.2, stratify=d.target, random_state=0)
    pca = PCA(8).fit(Xtr)
    pca_mse = np.mean((pca.inverse_transform(pca.transform(Xte)) - Xte) ** 2)
    pca_probe = LogisticRegression(max_iter=2000).fit(pca.transform(Xtr), ytr).score(pca.transform(Xte), yte)
    est = Autoencoder("ae", 8, verbose=False).fit(Xtr.reshape(-1, 1, 8, 8), ytr)
    imgs = Xte.reshape(-1, 1, 8, 8)
    ae_mse = np.mean((est.reconstruct(imgs) - imgs) ** 2)
    ae_probe = LogisticRegression(max_iter=2000).fit(est.transform(Xtr.reshape(-1, 1, 8, 8)), ytr).score(
        est.transform(imgs), yte)
    assert ae_mse < 0.6 * pca_mse
    assert ae_probe > pca_probe
