"""latentforge compare: config validation, resumability, failures kept, parallel jobs, report."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from latentforge import Autoencoder
from latentforge.cli import main
from latentforge.data import load_dataset, split_dataset
from latentforge.workflows import run_compare
from latentforge.errors import InputError

SMALL = {"dataset": "digits", "seeds": [0, 1], "two_sample_permutations": 20, "shared": {"latent_dim": 3, "epochs": 2, "hidden": [16]},
         "models": [{"model": "ae"}, {"model": "vae", "name": "vae-b2", "beta": 2.0}]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "run"
    board = run_compare(SMALL, out, progress=False)
    return out, board


def test_leaderboard_is_mean_and_std_over_seeds(finished):
    out, board = finished
    assert board["model"].tolist() == ["ae", "vae-b2"] and (board["runs_ok"] == 2).all()
    runs = {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert set(runs) == {"ae-seed0", "ae-seed1", "vae-b2-seed0", "vae-b2-seed1"}
    mse = [runs[f"ae-seed{s}"]["metrics"]["recon_mse"] for s in (0, 1)]
    row = board.set_index("model").loc["ae"]
    assert row["recon_mse"] == pytest.approx(np.mean(mse)) and row["recon_mse_std"] == pytest.approx(np.std(mse))
    assert pd.read_csv(out / "leaderboard.csv")["model"].tolist() == ["ae", "vae-b2"]
    assert json.loads((out / "leaderboard.json").read_text())[0]["model"] == "ae"
    # labels exist: downstream metrics ran; no factors: disentanglement skipped with a reason
    assert 0 <= row["probe_acc"] <= 1 and "no ground-truth factors" in row["skipped"]
    assert "kl_total" in board.columns  # the VAE reports its KL
    assert row["epochs_run"] == 2 and runs["ae-seed0"]["metrics"]["epochs_run"] == 2


def test_run_folder_layout(finished):
    out, _ = finished
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "leaderboard.csv", "leaderboard.json",
                                                     "report.html", "runs"]
    assert json.loads((out / "compare.json").read_text())["seeds"] == [0, 1]
    for run in ("ae-seed0", "ae-seed1", "vae-b2-seed0", "vae-b2-seed1"):
        assert sorted(p.name for p in (out / "runs" / run).iterdir()) == ["details.npz", "embeddings.parquet", "model"]


def test_resume_redoes_only_missing_runs(finished, tmp_path):
    out, board = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "runs" / "ae-seed1.json").unlink()          # as if interrupted during that run
    kept = (copy / "runs" / "vae-b2-seed0.json").stat().st_mtime_ns
    again = run_compare(SMALL, copy, progress=False)
    assert (copy / "runs" / "vae-b2-seed0.json").stat().st_mtime_ns == kept
    assert (copy / "runs" / "ae-seed1.json").exists()
    pd.testing.assert_frame_equal(again.drop(columns=["train_seconds"]), board.drop(columns=["train_seconds"]))
    # a changed setting invalidates the affected runs only
    changed = {**SMALL, "models": [SMALL["models"][0], {"model": "vae", "name": "vae-b2", "beta": 3.0}]}
    run_compare(changed, copy, progress=False)
    assert (copy / "runs" / "ae-seed0.json").stat().st_mtime_ns <= (copy / "runs" / "vae-b2-seed0.json").stat().st_mtime_ns
    assert json.loads((copy / "runs" / "vae-b2-seed0.json").read_text())["key"] != json.loads(
        (out / "runs" / "vae-b2-seed0.json").read_text())["key"]


def test_failed_runs_are_reported_not_dropped(tmp_path):
    config = {**SMALL, "seeds": [0], "models": [{"model": "ae"}, {"model": "vae", "name": "diverges", "lr": 1e6}]}
    board = run_compare(config, tmp_path / "run", progress=False).set_index("model")
    assert board.loc["ae", "runs_ok"] == 1
    assert board.loc["diverges", "runs_failed"] == 1 and "TrainingDivergedError" in board.loc["diverges", "errors"]
    assert "diverges" in (tmp_path / "run" / "report.html").read_text()


def test_parallel_jobs_give_the_same_results(finished, tmp_path):
    _, board = finished
    parallel = run_compare(SMALL, tmp_path / "par", jobs=2, progress=False)
    cols = ["recon_mse", "probe_acc", "gen_sw"]
    np.testing.assert_allclose(parallel[cols].to_numpy(), board[cols].to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("config,match", [
    ({**SMALL, "epochs": 3}, "put it under 'shared:'"),
    ({**SMALL, "dataset_name": "x"}, "unknown config key 'dataset_name'"),
    ({**SMALL, "models": [{"model": "vea"}]}, "did you mean 'vae'"),
    ({**SMALL, "models": [{"model": "vae", "betta": 1}]}, "did you mean 'beta'"),
    ({**SMALL, "models": [{"model": "ae"}, {"model": "ae"}]}, "unique"),
    ({**SMALL, "shared": {"epochz": 2}}, "did you mean 'epochs'"),
    ({**SMALL, "test_fraction": 1.5}, "test_fraction"),
    ({**SMALL, "seeds": []}, "seeds"),
])
def test_bad_configs_fail_before_any_run(config, match, tmp_path):
    with pytest.raises(InputError, match=match):
        run_compare(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "runs").exists()


def test_cli_compare_with_flags_and_yaml(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: wine\nseeds: [0]\nshared: {latent_dim: 2, epochs: 2, hidden: [8]}\n"
                                     "models:\n  - model: ae\n  - model: swae\n")
    assert main(["compare", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "w"), "--quiet"]) == 0
    board = pd.read_csv(tmp_path / "w" / "leaderboard.csv")
    assert board["model"].tolist() == ["ae", "swae"] and "mean_numeric_rmse" in board.columns
    assert main(["compare", "--dataset", "digits", "--models", "ae", "--seeds", "0", "--epochs", "1",
                 "--latent-dim", "2", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", "--models", "nope", "--out", str(tmp_path / "e"), "--quiet"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_report_has_a_sortable_leaderboard_and_renders(finished, tmp_path):
    import re

    from test_demo_report import assert_reads_at_page_width, chromium, rendered_layout

    out, board = finished
    html = (out / "report.html").read_text()
    assert '<table id="metrics">' in html and "sortTable(" in html and "ae" in html
    assert html.count("data:image/png;base64,") >= 4
    # two seeds: every value carries its spread, on the value's line
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [re.findall(r'<td class="([^"]*)"[^>]*>(.*?)</td>', tr, re.S)
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    assert len(rows) == 2 and len({len(r) for r in rows}) == 1
    spreads = re.findall(r'<span class="sd">(.*?)</span>', body)
    assert spreads and all(re.fullmatch(r"± \d[\d.e+-]*", sd) for sd in spreads)
    row = board.set_index("model").loc["ae"]
    assert f'{row["recon_mse"]:.4g}</span><span class="sd">± {row["recon_mse_std"]:.2g}</span>' in body
    # a column where both models show the same value marks neither as best
    for (cls_a, cell_a), (cls_b, cell_b) in zip(*rows):
        if re.sub(r"<[^>]+>", "", cell_a).split("±")[0] == re.sub(r"<[^>]+>", "", cell_b).split("±")[0]:
            assert cls_a == cls_b == "", cell_a
    if chromium() is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium when run as root)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'p'}", f"--screenshot={shot}", "--window-size=1280,1600",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=False)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 20 and 0.02 < (pixels < 128).mean() < 0.9
    # the widest table (mean ± std in every cell) fits the page at 1280 px, each cell on one line
    assert_reads_at_page_width(rendered_layout(out / "report.html", tmp_path))


def test_text_labels_are_stored_without_pickle_and_ids_come_first(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"row": [f"r{i}" for i in range(60)], "a": rng.normal(size=60), "b": rng.normal(size=60),
                          "c": rng.normal(size=60), "kind": rng.choice(["cat", "dog"], 60)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = {"dataset": str(tmp_path / "t.csv"), "label": "kind", "id_columns": ["row"], "seeds": [0],
              "two_sample_permutations": 10, "shared": {"latent_dim": 2, "epochs": 2, "hidden": [8]},
              "models": [{"model": "ae"}]}
    board = run_compare(config, tmp_path / "run", progress=False)
    assert board.loc[0, "runs_ok"] == 1
    run = tmp_path / "run" / "runs" / "ae-seed0"
    with np.load(run / "details.npz", allow_pickle=False) as z:
        assert all(z[k].dtype.kind == "f" for k in z.files) and "reconstructions" in z.files
    emb = pd.read_parquet(run / "embeddings.parquet")
    assert list(emb.columns) == ["row", "z0", "z1", "kind"] and set(emb["kind"]) == {"cat", "dog"}
    # the test split, rebuilt independently: ids, labels and codes line up row by row
    _, _, test = split_dataset(load_dataset(tmp_path / "t.csv", label="kind", id_columns=["row"]), 0.2, 0.0, seed=0)
    assert emb["row"].tolist() == test.ids["row"].tolist() and emb["kind"].tolist() == list(test.y)
    np.testing.assert_allclose(emb[["z0", "z1"]].to_numpy(), Autoencoder.load(run / "model").transform(test.X),
                               rtol=1e-5, atol=1e-6)
    assert "data:image/png;base64," in (tmp_path / "run" / "report.html").read_text()
