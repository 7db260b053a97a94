"""The command line's surface (issue 13): every training option is a flag, every option is
described with its default, one error line for a missing option on every command, --param read
like a config file, --split val, plain progress lines off a terminal, and a start that imports
neither PyTorch nor scikit-learn."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import typer

from latentforge.cli import app, main
from latentforge.config import TrainConfig
from latentforge.train import progress as progress_module
from latentforge.train.progress import ProgressDisplay, lines_when_piped

TINY = ["--epochs", "2", "--hidden", "8", "--latent-dim", "2", "--model", "ae"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _commands():
    """(name, click command) of every command, sub-commands as 'sae fit'."""
    group = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


COMMANDS = dict(_commands())


def _flags(command: str) -> set[str]:
    return {opt for p in COMMANDS[command].params for opt in getattr(p, "opts", [])}


# -- start-up ----------------------------------------------------------------------------------
def test_importing_the_cli_imports_no_heavy_library():
    """A property, not a timing: `import latentforge.cli` (what `latentforge --help` runs) leaves
    torch, scikit-learn, matplotlib and pandas unimported; `import latentforge` too."""
    code = ("import sys, latentforge, latentforge.cli; "
            "print(','.join(m for m in ('torch', 'sklearn', 'matplotlib', 'pandas', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported at start: {done.stdout.strip()}"


def test_listing_datasets_imports_no_heavy_library_nor_pydantic():
    """`latentforge datasets` runs without NumPy, torch or pydantic (typer's option adapter, which
    it used to build for `--help` alone): a property behind the ≤ 0.5 s start-up target."""
    code = ("import sys; from latentforge.cli import main; status = main(['datasets']); "
            "print('|' + ','.join(m for m in ('torch', 'numpy', 'pandas', 'pydantic') if m in sys.modules), status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "digits" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "| 0", f"imported: {done.stdout.strip().splitlines()[-1]}"


def test_public_names_are_still_importable_from_the_package():
    import latentforge
    from latentforge import AnomalyDetector, Autoencoder, TrainConfig as TC, load
    from latentforge.estimator import Autoencoder as Direct

    assert Autoencoder is Direct and TC is TrainConfig and callable(load) and AnomalyDetector is not None
    assert set(latentforge.__all__) <= set(dir(latentforge))
    assert latentforge.data.load_builtin is not None  # a subpackage reached as an attribute, as before
    with pytest.raises(AttributeError):
        latentforge.no_such_name  # noqa: B018


# -- flags and help ------------------------------------------------------------------------------
def test_every_training_option_is_a_flag_of_fit_and_compare():
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    fit_missing = [n for n in names if f"--{n.replace('_', '-')}" not in _flags("fit")]
    assert not fit_missing
    # compare: seed is per run (--seeds); its runs are not checkpointed (they resume by finished run)
    not_shared = {"seed", "checkpoint_every", "keep_checkpoints"}
    compare_missing = [n for n in names if n not in not_shared and f"--{n.replace('_', '-')}" not in _flags("compare")]
    assert not compare_missing
    for command in ("fit", "compare", "evaluate"):
        assert {"--label", "--id-column", "--column-type"} <= _flags(command), command
    assert {"--split"} <= _flags("evaluate") & _flags("score")
    assert "--mlflow-uri" in _flags("fit") & _flags("compare")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_is_described_with_its_default(command):
    for p in COMMANDS[command].params:
        if not getattr(p, "opts", None) or p.name == "help":
            continue
        text = p.help or ""
        assert text.strip(), f"{command} {p.opts[0]} has no description"
        if getattr(p, "is_flag", False):
            assert p.default is False, f"{command} {p.opts[0]} is a flag that is on by default"
            continue
        if p.param_type_name == "argument":
            continue
        shows = p.required or p.default is not None or "[default:" in text
        assert shows, f"{command} {p.opts[0]}: no default shown and not required"


@pytest.mark.parametrize("command", sorted(c for c in COMMANDS if "--quiet" in _flags(c)))
def test_quiet_is_a_real_flag(command):
    quiet = next(p for p in COMMANDS[command].params if "--quiet" in getattr(p, "opts", []))
    assert quiet.is_flag


def test_help_shows_defaults_required_and_flags(capsys):
    code, out, _ = run(["fit", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "[default: auto]" in text and "[default: 0.1]" in text and "[required]" in text
    assert "--quiet" in text and "<bool>" not in text and "╭" not in text


MISSING = {  # command line without one required piece → what the error names
    "fit": (["fit", "digits"], "option --out"),
    "embed": (["embed", "m"], "argument DATA"),
    "embed out": (["embed", "m", "digits"], "option --out"),
    "reconstruct": (["reconstruct", "m", "digits"], "option --out"),
    "generate": (["generate", "m"], "option --out"),
    "score": (["score", "m", "digits"], "option --out"),
    "evaluate": (["evaluate", "m"], "argument DATA"),
    "align": (["align", "a", "b", "digits"], "option --out"),
    "activations": (["activations", "hf", "--out", "acts"], "option --layer"),
    "sae fit": (["sae", "fit", "acts"], "option --out"),
    "sae inspect": (["sae", "inspect", "s", "acts"], "option --out"),
}


@pytest.mark.parametrize("case", sorted(MISSING))
def test_a_missing_option_is_one_line_in_the_same_words_everywhere(case, capsys):
    args, what = MISSING[case]
    code, _, err = run(args, capsys)
    command = "latentforge " + case.removesuffix(" out")
    assert code == 2
    assert err == f"error: {command}: missing {what}; see '{command} --help'.\n"


def test_fit_without_data_says_so_in_the_same_words(capsys, tmp_path):
    code, _, err = run(["fit", "--out", tmp_path / "m"], capsys)
    assert code == 2 and err.startswith("error: latentforge fit: missing argument DATA") and err.count("\n") == 1
    code, _, err = run(["fit", "digits", "--epochs", "many", "--out", tmp_path / "m"], capsys)
    assert code == 2 and err.startswith("error: latentforge fit: invalid value for '--epochs'") and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


# -- --param, training flags, progress lines -----------------------------------------------------
def test_param_and_training_flags_are_read_like_a_config_file(capsys, tmp_path):
    code, _, err = run(["fit", "wine", *TINY, "--param", "patience=5", "--param", "lr=2e-3", "--grad-clip", "none",
                        "--schedule", "constant", "--warmup-steps", "3", "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    train = json.loads((tmp_path / "m" / "model.json").read_text())["train"]
    assert (train["patience"], train["lr"], train["grad_clip"], train["schedule"], train["warmup_steps"]) == \
        (5, 0.002, None, "constant", 3)
    # stderr is not a terminal here: one plain line per task at least, with the model and epochs
    lines = [line for line in err.splitlines() if line.startswith("ae: epoch")]
    assert lines and lines[-1].startswith("ae: epoch 2/2") and "total=" in lines[-1]
    code, _, err = run(["fit", "wine", *TINY, "--param", "patience=soon", "--out", tmp_path / "n", "--quiet"], capsys)
    assert code == 2 and "patience" in err and "'soon'" in err and err.count("\n") == 1
    assert not (tmp_path / "n").exists()
    code, _, err = run(["fit", "wine", *TINY, "--param", "id_columns=a", "--out", tmp_path / "n"], capsys)
    assert code == 2 and "--id-column" in err


def test_quiet_silences_the_progress_lines(capsys, tmp_path):
    code, _, err = run(["fit", "wine", *TINY, "--epochs", "1", "--quiet", "--out", tmp_path / "m"], capsys)
    assert code == 0 and "epoch" not in err.replace("1 epochs", "")
    assert err.startswith("saved ae to ")


def test_compare_takes_the_table_options_and_shared_training_flags(capsys, tmp_path, monkeypatch):
    """The flags reach the comparison's config (the comparison itself is tested in test_compare.py)."""
    import latentforge.workflows as workflows

    seen = {}

    def fake_run_compare(config, out, jobs=1, progress=None, **kwargs):
        seen.update(config=config, progress=progress, kwargs=kwargs)
        return pd.DataFrame({"model": ["ae"], "runs_failed": [0], "errors": [""]})
    monkeypatch.setattr(workflows, "run_compare", fake_run_compare)
    table = tmp_path / "t.csv"
    pd.DataFrame({"key": range(20), "x": np.arange(20.0), "kind": ["a", "b"] * 10, "y": [0, 1] * 10}).to_csv(table)
    code, out, err = run(["compare", "--dataset", table, "--models", "ae", "--label", "y", "--id-column", "key",
                        "--column-type", "kind=categorical", "--patience", "none", "--epochs", "3",
                        "--param", "hidden=16", "--test-fraction", "0.25", "--quiet", "--out", tmp_path / "c"], capsys)
    assert code == 0, err
    config = seen["config"]
    assert (config.label, config.id_columns, config.test_fraction) == ("y", ["key"], 0.25)
    assert config.shared == {"epochs": 3, "patience": "none", "hidden": "16", "column_types": {"kind": "categorical"}}
    assert seen["progress"] is False and seen["kwargs"] == {}
    assert f"report: {tmp_path / 'c' / 'report.html'}" in out and f"{tmp_path / 'c' / 'leaderboard.csv'}" in err


# -- --split val and the label carried by embed --------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model fitted on a CSV (streamed: the hash split) and one on a built-in (in memory: row indices)."""
    root = tmp_path_factory.mktemp("surface")
    rng = np.random.default_rng(0)
    pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200),
                  "y": rng.integers(0, 2, 200)}).to_csv(root / "t.csv", index=False)
    assert main(["fit", str(root / "t.csv"), "--label", "y", *TINY, "--quiet", "--out", str(root / "csv")]) == 0
    assert main(["fit", "wine", *TINY, "--quiet", "--out", str(root / "wine")]) == 0
    return root


@pytest.mark.parametrize("kind", ["csv", "wine"])
def test_evaluate_split_val_uses_the_rows_fit_held_out(fitted, kind, capsys):
    data = fitted / "t.csv" if kind == "csv" else "wine"
    code, out, err = run(["evaluate", fitted / kind, data, "--split", "val"], capsys)
    assert code == 0, err
    metrics = json.loads(out)
    saved = json.loads((fitted / kind / "metrics.json").read_text())
    # the validation MSE fit measured is the reconstruction MSE on exactly those rows
    assert metrics["split"] == "val" and metrics["n"] == saved["n_val"]
    assert metrics["recon_mse"] == pytest.approx(saved["val_reconstruction_mse"], rel=1e-5)
    if kind == "wine":  # the default stays every row of DATA
        code, out, _ = run(["evaluate", fitted / kind, data], capsys)
        assert code == 0 and json.loads(out)["n"] == saved["n_train"] + saved["n_val"]


def test_split_val_needs_the_data_the_model_was_fitted_on(fitted, capsys, tmp_path):
    pd.read_csv(fitted / "t.csv").iloc[:150].to_csv(tmp_path / "fewer.csv", index=False)
    code, _, err = run(["evaluate", fitted / "csv", tmp_path / "fewer.csv", "--split", "val"], capsys)
    assert code == 2 and "fitted on 200 rows" in err and "150" in err and err.count("\n") == 1
    code, _, err = run(["score", fitted / "wine", "wine", "--split", "test", "--out", tmp_path / "s.csv"], capsys)
    assert code == 2 and "--split must be all or val" in err and not (tmp_path / "s.csv").exists()


def test_score_split_val_scores_only_those_rows(fitted, capsys, tmp_path):
    code, _, err = run(["score", fitted / "wine", "wine", "--split", "val", "--out", tmp_path / "s.csv"], capsys)
    assert code == 0, err
    n_val = json.loads((fitted / "wine" / "metrics.json").read_text())["n_val"]
    assert len(pd.read_csv(tmp_path / "s.csv")) == n_val and f"to {tmp_path / 's.csv'}" in err


def test_embed_carries_the_label_of_a_table_without_ids(fitted, capsys, tmp_path):
    code, _, err = run(["embed", fitted / "csv", fitted / "t.csv", "--out", tmp_path / "e.parquet"], capsys)
    assert code == 0, err
    emb = pd.read_parquet(tmp_path / "e.parquet")
    assert list(emb.columns) == ["z0", "z1", "y"]
    assert emb["y"].tolist() == pd.read_csv(fitted / "t.csv")["y"].tolist()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow (the optional extra) is not installed")
def test_fit_logs_to_mlflow(capsys, tmp_path):
    code, _, err = run(["fit", "wine", *TINY, "--epochs", "1", "--quiet", "--mlflow-uri", f"file:{tmp_path / 'mlruns'}",
                        "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    assert any((tmp_path / "mlruns").rglob("meta.yaml"))  # MLflow's file store holds a run


# -- the progress display --------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _display(enabled, clock, **kw):
    stream = io.StringIO()  # not a terminal
    return ProgressDisplay(enabled, stream=stream, clock=clock, **kw), stream


def test_plain_lines_are_rate_limited_with_first_and_last_epoch():
    clock = Clock()
    display, stream = _display(True, clock, interval=5.0)
    with display:
        task = display.add("swae", 100)
        for epoch in range(1, 101):
            clock.now = epoch * 0.2  # 20 s in all
            display.update(task, advance=1, terms=f"total={1 / epoch:.3g}")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("swae: epoch 1/100  total=1  elapsed 0:00  ETA")
    assert lines[-1].startswith("swae: epoch 100/100  total=0.01  elapsed 0:20") and "ETA" not in lines[-1]
    assert 4 <= len(lines) <= 2 + 20 / 5  # first, one per 5 s, last
    epochs = [int(re.search(r"epoch (\d+)/", line).group(1)) for line in lines]
    assert epochs == sorted(epochs)


def test_a_queued_task_counts_its_time_from_its_own_start():
    """compare adds every run up front (no total yet); a run that starts after 60 s of others must
    not report those 60 s as its own elapsed time, nor an ETA inflated by them."""
    clock = Clock()
    display, stream = _display(True, clock, interval=0.0)
    with display:
        task = display.add("  vae-seed0", None)
        clock.now = 60.0
        display.update(task, completed=0, total=10)  # the run starts: no line for epoch 0
        clock.now = 62.0
        display.update(task, completed=1, total=10)
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("vae-seed0: epoch 1/10") and "elapsed 0:02" in line and "ETA 0:18" in line


def test_an_early_stop_prints_the_last_epoch_reached():
    clock = Clock()
    display, stream = _display(True, clock)
    with display:
        task = display.add("vae", 100)
        for epoch in range(1, 38):
            clock.now = epoch * 0.01
            display.update(task, advance=1)
    assert stream.getvalue().splitlines()[-1].startswith("vae: epoch 37/100")


def test_none_is_silent_off_a_terminal_unless_the_cli_asks_for_lines(monkeypatch):
    clock = Clock()
    display, stream = _display(None, clock)
    with display:
        display.update(display.add("ae", 3), advance=3)
    assert stream.getvalue() == ""
    with lines_when_piped():
        display, stream = _display(None, clock)
        off, off_stream = _display(False, clock)
    with display, off:
        display.update(display.add("ae", 3), advance=3)
        off.update(off.add("ae", 3), advance=3)
    assert stream.getvalue().startswith("ae: epoch 3/3") and off_stream.getvalue() == ""
    assert progress_module._piped_lines is False  # the block restored the default
    monkeypatch.setenv("RANK", "1")  # under torchrun only rank 0 writes lines
    with lines_when_piped():
        display, stream = _display(None, clock)
    assert not display.enabled


def test_compare_style_tasks_print_runs_and_hidden_runs_their_last_state():
    clock = Clock()
    display, stream = _display(True, clock)
    with display:
        overall = display.add("all runs", total=2)
        run = display.add("  ae-seed0", total=None)
        display.update(run, completed=1, total=10)
        clock.now = 1.0
        display.update(run, completed=7, total=10)   # within the interval: not printed yet
        display.update(run, visible=False)            # finished (early): its last state is printed
        display.update(overall, advance=1)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("ae-seed0: epoch 1/10") and lines[1].startswith("ae-seed0: epoch 7/10")
    assert lines[2].startswith("all runs: 1/2")
