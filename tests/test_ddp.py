"""Data-parallel training under torchrun: 2 CPU processes with gloo against 1 process on the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from latentforge import Autoencoder
from latentforge.data import hash_split, open_source, rows_per_rank
from latentforge.train import TensorBatches

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FIT = ["--model", "ae", "--latent-dim", "3", "--hidden", "32", "--epochs", "8", "--batch-size", "64",
       "--threads", "1", "--quiet"]


def _torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 3))
    frame = pd.DataFrame(z @ rng.normal(size=(3, 8)) + 0.05 * rng.normal(size=(3000, 8)),
                         columns=[f"c{i}" for i in range(8)])
    frame.to_parquet(root / "t.parquet", row_group_size=250)
    return root, frame


def test_two_gloo_processes_reach_the_error_of_one(table):
    root, frame = table
    single = subprocess.run([sys.executable, "-m", "latentforge", "fit", str(root / "t.parquet"), *FIT,
                             "--out", str(root / "single")], env=ENV, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = _torchrun("-m", "latentforge", "fit", str(root / "t.parquet"), *FIT, "--out", str(root / "ddp"))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stderr.count("saved ae to") == 1                     # only rank 0 reports and writes
    errors = {name: float(Autoencoder.load(root / name).score_samples(frame).mean()) for name in ("single", "ddp")}
    assert abs(errors["ddp"] - errors["single"]) <= 0.05 * errors["single"], errors
    history = pd.read_csv(root / "ddp" / "history.csv")
    assert len(history) == 8 and np.isfinite(history["val_total"]).all()
    assert not (root / "ddp.checkpoint").exists()


SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np, torch
    from latentforge import Autoencoder
    X = np.random.default_rng(0).normal(size=(800, 6)).astype("float32")
    est = Autoencoder("vae", 2, epochs=3, hidden=(16,), batch_size=64, threads=1, verbose=False).fit(X)
    rank = int(os.environ["RANK"])
    flat = [v.flatten() for v in est.model_.state_dict().values()]
    np.save(sys.argv[1] + f"/weights-{rank}.npy", torch.cat(flat).numpy())
    est.save(sys.argv[1] + "/model")
""")


def test_the_api_under_torchrun_keeps_the_ranks_in_step(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    done = _torchrun(str(script), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    w0, w1 = np.load(tmp_path / "weights-0.npy"), np.load(tmp_path / "weights-1.npy")
    np.testing.assert_array_equal(w0, w1)                           # DDP kept both replicas identical
    assert (tmp_path / "model" / "model.json").is_file()
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["epochs_run"] == 3


def test_rank_shares_are_disjoint_and_cover_every_batch():
    X = torch.arange(100, dtype=torch.float32)[:, None]
    shares = [TensorBatches(X, 16, seed=0, device=torch.device("cpu"), rank=r, world_size=2) for r in (0, 1)]
    full = TensorBatches(X, 16, seed=0, device=torch.device("cpu"))
    for a, b, whole in zip(shares[0].epoch(1), shares[1].epoch(1), full.epoch(1)):
        assert set(a[:, 0].tolist()).isdisjoint(b[:, 0].tolist())
        assert sorted(a[:, 0].tolist() + b[:, 0].tolist()) == sorted(whole[:, 0].tolist())


def test_rows_per_rank_counts_what_each_rank_reads(table):
    root, _ = table
    source = open_source(root / "t.parquet")
    keep = lambda r: ~hash_split(r, 0.1, 0)  # noqa: E731
    counts = rows_per_rank(source, epoch=2, seed=0, world_size=2, row_filter=keep)
    from latentforge.data import iter_chunks

    seen = [sum(len(c.rows) for c in iter_chunks(source, epoch=2, seed=0, rank=r, world_size=2, row_filter=keep))
            for r in (0, 1)]
    assert counts == seen and sum(counts) == int(keep(np.arange(3000)).sum())


def test_embed_under_torchrun_writes_one_part_per_rank_and_a_manifest(table):
    root, frame = table
    frame.assign(key=np.arange(len(frame))).to_parquet(root / "keyed.parquet", row_group_size=250)
    model = root / "keyed-model"
    fitted = subprocess.run([sys.executable, "-m", "latentforge", "fit", str(root / "keyed.parquet"), *FIT,
                             "--id-column", "key", "--out", str(model)], env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert fitted.returncode == 0, fitted.stderr
    done = _torchrun("-m", "latentforge", "embed", str(model), str(root / "keyed.parquet"), "--out",
                     str(root / "parts"))
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((root / "parts" / "_manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["rows"] == len(frame)
    assert sorted(p.name for p in (root / "parts").glob("part-*.parquet")) == ["part-00000.parquet",
                                                                               "part-00001.parquet"]
    together = pd.read_parquet(root / "parts")                     # the folder reads back as one table
    assert sorted(together["key"]) == list(range(len(frame)))     # every row once, across the ranks
    expected = Autoencoder.load(model).transform(frame.assign(key=np.arange(len(frame))))
    np.testing.assert_allclose(together.sort_values("key")[["z0", "z1", "z2"]].to_numpy(), expected, rtol=1e-5,
                               atol=1e-6)
    refused = _torchrun("-m", "latentforge", "embed", str(model), str(root / "keyed.parquet"), "--out",
                        str(root / "one.parquet"))
    assert refused.returncode != 0 and "give a folder" in refused.stderr


def test_sae_fit_under_torchrun_on_a_single_fragment_source(tmp_path):
    """A one-fragment .npy cannot be dealt out by fragment: ranks share rows of each global batch
    instead (a rank left without data would hang the others at the first all-reduce)."""
    from latentforge.data import NpySource
    from latentforge.sae import SparseAutoencoder

    rng = np.random.default_rng(0)
    D = rng.standard_normal((24, 8))
    X = ((rng.random((4000, 24)) < 0.1) * rng.uniform(0.5, 2, (4000, 24)) @ D).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    assert NpySource(tmp_path / "x.npy").n_fragments == 1
    fit = ["sae", "fit", str(tmp_path / "x.npy"), "--n-features", "48", "--k", "3", "--epochs", "3",
           "--batch-size", "256", "--lr", "1e-2", "--threads", "1", "--quiet"]
    single = subprocess.run([sys.executable, "-m", "latentforge", *fit, "--out", str(tmp_path / "one")], env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = _torchrun("-m", "latentforge", *fit, "--out", str(tmp_path / "two"), timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stderr.count("saved a topk SAE") == 1
    fvu = {name: SparseAutoencoder.load(tmp_path / name).evaluate(X)["fvu"] for name in ("one", "two")}
    assert abs(fvu["two"] - fvu["one"]) <= 0.05 * fvu["one"] + 0.005, fvu
