"""The command line: every command end to end, and every kind of bad input → exit 2, one sentence,
no partial output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentforge.cli import main

FIT_FAST = ["--epochs", "3", "--hidden", "32", "--quiet"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """A model fitted through the CLI on a CSV with an id and a label column."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(90)], "x1": rng.normal(size=90),
                          "x2": rng.normal(size=90), "kind": rng.choice(["a", "b", "c"], 90),
                          "y": rng.integers(0, 2, 90)})
    frame.to_csv(root / "train.csv", index=False)
    assert main(["fit", str(root / "train.csv"), "--model", "ae", "--latent-dim", "2", "--id-column", "id",
                 "--label", "y", "--out", str(root / "model"), *FIT_FAST]) == 0
    return root, frame


def test_fit_embed_reconstruct_generate_score_evaluate(table_model, capsys, tmp_path):
    root, frame = table_model
    model = root / "model"
    code, _, err = run(["embed", model, root / "train.csv", "--out", tmp_path / "emb.parquet"], capsys)
    assert code == 0, err
    emb = pd.read_parquet(tmp_path / "emb.parquet")
    # ids first, the fit's --label column last, both carried from the input row for row
    assert list(emb.columns) == ["id", "z0", "z1", "y"] and emb["id"].tolist() == frame["id"].tolist()
    assert emb["y"].tolist() == frame["y"].tolist()
    assert run(["embed", model, root / "train.csv", "--out", tmp_path / "emb.npy"], capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), emb[["z0", "z1"]].to_numpy())
    assert run(["reconstruct", model, root / "train.csv", "--out", tmp_path / "rec.csv"], capsys)[0] == 0
    rec = pd.read_csv(tmp_path / "rec.csv")
    assert list(rec.columns) == ["id", "x1", "x2", "kind"]
    assert run(["generate", model, "--n", 5, "--out", tmp_path / "gen.parquet"], capsys)[0] == 0
    assert len(pd.read_parquet(tmp_path / "gen.parquet")) == 5
    assert run(["score", model, root / "train.csv", "--score", "recon", "--out", tmp_path / "s.parquet"],
               capsys)[0] == 0
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert list(scores.columns) == ["id", "score", "is_outlier"] and (scores["score"] >= 0).all()
    assert 0.03 < scores["is_outlier"].mean() < 0.2  # contamination 0.1 on the training rows
    code, out, _ = run(["evaluate", model, root / "train.csv", "--out", tmp_path / "m.json"], capsys)
    assert code == 0
    metrics = json.loads(out)
    assert metrics == json.loads((tmp_path / "m.json").read_text())
    # the same metric set as compare (workflows.evaluate_estimator), with the cross-validated probe
    assert {"recon_mse", "gen_sw", "probe_cv_acc", "effective_rank"} <= set(metrics)
    assert metrics["recon_mse"] == pytest.approx(float(scores["score"].mean()), rel=1e-5)


def test_images_builtin_and_datasets_listing(capsys, tmp_path):
    code, _, err = run(["fit", "digits", "--model", "vae", "--latent-dim", "4", "--out", tmp_path / "m",
                        *FIT_FAST], capsys)
    assert code == 0, err
    assert run(["generate", tmp_path / "m", "--n", 3, "--out", tmp_path / "g.npy"], capsys)[0] == 0
    assert np.load(tmp_path / "g.npy").shape == (3, 1, 8, 8)
    code, _, err = run(["generate", tmp_path / "m", "--n", 3, "--out", tmp_path / "g.csv"], capsys)
    assert code == 2 and "must end in .npy" in err and not (tmp_path / "g.csv").exists()
    code, out, _ = run(["datasets"], capsys)
    assert code == 0 and "digits" in out and "shapes" in out and "mnist5k" in out


def test_help_everywhere(capsys):
    for cmd in ([], ["fit"], ["embed"], ["reconstruct"], ["generate"], ["score"], ["evaluate"], ["demo"], ["datasets"]):
        code, out, _ = run([*cmd, "--help"], capsys)
        assert code == 0 and "Usage" in out


def _csv(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_FIT = {
    "missing file": (lambda t: t / "absent.csv", "file not found"),
    "empty file": (lambda t: _csv(t, "empty.csv", ""), "is empty"),
    "header only": (lambda t: _csv(t, "h.csv", "a,b\n"), "header but no rows"),
    "junk in numeric": (lambda t: _csv(t, "j.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(30)) + "5,oops\n"),
                        "'b' is numeric but holds the non-numeric value 'oops'"),
    "all-NaN column": (lambda t: _csv(t, "n.csv", "a,b\n" + "".join(f"{i},\n" for i in range(30))), "'b' has no values"),
    "inf": (lambda t: _csv(t, "i.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(30)) + "1,-inf\n"), "infinite"),
    "single row": (lambda t: _csv(t, "s.csv", "a,b\n1,2\n"), "at least 2 rows"),
    "unknown dataset": (lambda t: "digitz", "did you mean 'digits'"),
    "wrong image shape": (lambda t: (np.save(t / "x.npy", np.zeros((3, 2, 2, 4, 4))), t / "x.npy")[1], "shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIT))
def test_bad_input_to_fit_exits_2_with_one_sentence_and_writes_nothing(case, capsys, tmp_path):
    make, match = BAD_FIT[case]
    out = tmp_path / "model"
    code, _, err = run(["fit", make(tmp_path), "--out", out, *FIT_FAST], capsys)
    assert code == 2
    assert match in err and err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists()


def test_unknown_model_and_bad_options(capsys, tmp_path):
    code, _, err = run(["fit", "digits", "--model", "swea", "--out", tmp_path / "m", *FIT_FAST], capsys)
    assert code == 2 and "did you mean 'swae'" in err and not (tmp_path / "m").exists()
    code, _, err = run(["fit", "digits", "--param", "beta", "--out", tmp_path / "m", *FIT_FAST], capsys)
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = run(["fit", "digits", "--epochs", "many", "--out", tmp_path / "m"], capsys)
    assert code == 2  # typer's own usage error


def test_latent_dim_not_smaller_than_input_is_allowed_with_a_warning(capsys, tmp_path):
    path = _csv(tmp_path, "t.csv", "a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(30)))
    code, _, err = run(["fit", path, "--latent-dim", "3", "--model", "ae", "--out", tmp_path / "m", *FIT_FAST], capsys)
    assert code == 0 and "warning: latent_dim=3 is not smaller" in err


def test_schema_mismatch_at_embed_time(table_model, capsys, tmp_path):
    root, frame = table_model
    frame.drop(columns=["x2"]).assign(extra=1).to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run(["embed", root / "model", tmp_path / "new.csv", "--out", tmp_path / "e.parquet"], capsys)
    assert code == 2 and "missing column(s) 'x2'" in err and "unexpected column(s) 'extra'" in err
    assert not (tmp_path / "e.parquet").exists()


def test_damaged_models(table_model, capsys, tmp_path):
    root, _ = table_model
    bad = tmp_path / "bad"
    shutil.copytree(root / "model", bad)
    w = bad / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    code, _, err = run(["embed", bad, root / "train.csv", "--out", tmp_path / "e.parquet"], capsys)
    assert code == 2 and "corrupted or truncated" in err
    shutil.rmtree(bad)
    shutil.copytree(root / "model", bad)
    config = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**config, "format_version": 99}))
    code, _, err = run(["embed", bad, root / "train.csv", "--out", tmp_path / "e.parquet"], capsys)
    assert code == 2 and "format version 99" in err
    assert not (tmp_path / "e.parquet").exists()


def test_output_checks_happen_before_work(table_model, capsys, tmp_path):
    root, _ = table_model
    code, _, err = run(["embed", root / "model", root / "train.csv", "--out", tmp_path / "e.txt"], capsys)
    assert code == 2 and ".parquet, .csv, .npy" in err
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "a.txt").write_text("x")
    code, _, err = run(["fit", "digits", "--out", tmp_path / "keep", *FIT_FAST], capsys)
    assert code == 2 and "not a latentforge output" in err


def test_debug_shows_the_traceback(capsys, tmp_path):
    with pytest.raises(Exception, match="file not found"):
        main(["--debug", "fit", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "m")])


def test_installed_entry_point_exit_codes(tmp_path):
    exe = Path(sys.executable).parent / "latentforge"
    if not exe.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    ok = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "fit" in ok.stdout
    bad = subprocess.run([exe, "embed", tmp_path / "nomodel", "digits", "--out", tmp_path / "e.npy"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: no model directory at {tmp_path / 'nomodel'}."


def test_python_m_latentforge_exit_code(tmp_path):
    # python -m latentforge runs the console script's entry point: the status survives its gc.freeze
    module = subprocess.run([sys.executable, "-m", "latentforge", "embed", tmp_path / "nomodel", "digits", "--out",
                             tmp_path / "e.npy"], capture_output=True, text=True)
    assert module.returncode == 2 and module.stderr.strip() == f"error: no model directory at {tmp_path / 'nomodel'}."


def test_config_file_with_flags_overriding_it(capsys, tmp_path):
    (tmp_path / "vae.yaml").write_text(
        "data: digits\nmodel: vae\nlatent_dim: 3\nepochs: 2\nhidden: [16]\nhyperparameters:\n  beta: 4.0\n")
    code, _, err = run(["fit", "--config", tmp_path / "vae.yaml", "--latent-dim", "5", "--out", tmp_path / "m",
                        "--quiet"], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "m" / "model.json").read_text())
    assert saved["model"]["name"] == "vae" and saved["model"]["latent_dim"] == 5   # the flag wins
    assert saved["model"]["hyperparameters"]["beta"] == 4.0 and saved["train"]["epochs"] == 2
    (tmp_path / "bad.json").write_text(json.dumps({"model": "vae", "epoch": 3}))
    code, _, err = run(["fit", "digits", "--config", tmp_path / "bad.json", "--out", tmp_path / "m2"], capsys)
    assert code == 2 and "'epoch'" in err and "did you mean 'epochs'" in err and not (tmp_path / "m2").exists()
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    code, _, err = run(["fit", "digits", "--config", tmp_path / "bad.yaml", "--out", tmp_path / "m2"], capsys)
    assert code == 2 and "not valid YAML" in err
    code, _, err = run(["fit", "digits", "--param", "beta=-1", "--model", "vae", "--out", tmp_path / "m2",
                        *FIT_FAST], capsys)
    assert code == 2 and "'beta' of model 'vae' must be at least 0.0" in err


def test_models_listing_and_generate_with_a_named_sampler(capsys, tmp_path):
    code, out, _ = run(["models"], capsys)
    assert code == 0 and "vae" in out and "beta=1.0" in out and "sw_weight=10.0" in out
    assert run(["fit", "digits", "--model", "ae", "--latent-dim", "3", "--out", tmp_path / "m", *FIT_FAST],
               capsys)[0] == 0
    code, _, err = run(["generate", tmp_path / "m", "--sampler", "dpmm", "-n", "6", "--out", tmp_path / "g.npy"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "g.npy").shape == (6, 1, 8, 8)
    code, _, err = run(["generate", tmp_path / "m", "--sampler", "prior", "--out", tmp_path / "h.npy"], capsys)
    assert code == 2 and "has no prior" in err and not (tmp_path / "h.npy").exists()


def test_bae_flags_map_to_hyperparameters(capsys, tmp_path):
    code, _, err = run(["fit", "digits", "--model", "bae", "--prior-selection", "none", "--posterior-samples", "3",
                        "--latent-dim", "3", "--out", tmp_path / "m", *FIT_FAST], capsys)
    assert code == 0, err
    hp = json.loads((tmp_path / "m" / "model.json").read_text())["model"]["hyperparameters"]
    assert (hp["prior_selection"], hp["posterior_samples"]) == ("none", 3)
    code, _, err = run(["fit", "digits", "--model", "bae", "--posterior-samples", "0", "--out", tmp_path / "n",
                        *FIT_FAST], capsys)
    assert code == 2 and "posterior_samples" in err and not (tmp_path / "n").exists()


@pytest.mark.parametrize("command", ["embed", "reconstruct", "generate", "score"])
def test_commands_that_load_a_model_honour_device(command, table_model, capsys, tmp_path, monkeypatch):
    """--device reaches the loader: 'cpu' works, and the device asked for is the one the model is put on."""
    import latentforge.estimator.autoencoder as autoencoder_module

    root, _ = table_model
    data = [] if command == "generate" else [root / "train.csv"]
    asked = []
    real = autoencoder_module.resolve_device
    monkeypatch.setattr(autoencoder_module, "resolve_device", lambda d: asked.append(d) or real("cpu"))
    code, _, err = run([command, root / "model", *data, "--out", tmp_path / "out.csv", "--device", "meta-test"],
                       capsys)
    assert code == 0, err
    assert asked == ["meta-test"]
    monkeypatch.undo()
    code, _, err = run([command, root / "model", *data, "--out", tmp_path / "out2.csv", "--device", "cuda:7"],
                       capsys)
    import torch

    if not torch.cuda.is_available():
        assert code == 2 and "cuda:7" in err and not (tmp_path / "out2.csv").exists()
