"""Data parallelism: 1 process vs 2 torchrun processes (gloo on CPU; NCCL when GPUs are present).

Writes a ``--rows`` × 32 float32 Parquet table (low-rank plus noise), then fits the same model
with ``latentforge fit`` at the same global batch: once in one process (``--threads`` threads),
once under ``torchrun --standalone --nproc-per-node 2`` (``threads // 2`` threads each, so both
use the same cores). Prints training rows per second of the epochs (from history.csv) and the
final reconstruction error of each model on the whole table; runs are interleaved ``--repeats``
times and the medians compared.

    .venv/bin/python benchmarks/ddp.py [--rows 200000] [--epochs 2] [--threads 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streaming_fit import write_table  # noqa: E402

from latentforge import Autoencoder  # noqa: E402


def fit(data: Path, out: Path, epochs: int, threads: int, processes: int) -> float:
    args = ["fit", str(data), "--model", "ae", "--latent-dim", "8", "--hidden", "64", "--epochs", str(epochs),
            "--batch-size", "1024", "--threads", str(threads), "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if processes == 1:
        cmd = [sys.executable, "-m", "latentforge", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
               "-m", "latentforge", *args]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    history = pd.read_csv(out / "history.csv")
    rows = Autoencoder.load(out).metrics_["n_train"]
    return rows * len(history) / history["seconds"].sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    speeds: dict[str, list[float]] = {"1 process": [], "2 processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "t.parquet"
        write_table(data, args.rows, 32)
        frame = pd.read_parquet(data)
        for r in range(args.repeats):
            speeds["1 process"].append(fit(data, Path(tmp) / f"one{r}", args.epochs, args.threads, 1))
            speeds["2 processes"].append(fit(data, Path(tmp) / f"two{r}", args.epochs, max(1, args.threads // 2), 2))
        errors = {name: float(Autoencoder.load(Path(tmp) / f"{tag}0").score_samples(frame).mean())
                  for name, tag in (("1 process", "one"), ("2 processes", "two"))}
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads in all, backend {backend}, "
          f"{args.rows:,} rows × 32, {args.epochs} epochs, global batch 1024")
    print(f"{'run':<14}{'rows/s (median)':>18}{'recon. MSE':>12}")
    for name, values in speeds.items():
        print(f"{name:<14}{statistics.median(values):>18,.0f}{errors[name]:>12.5f}")
    ratio = statistics.median(speeds["2 processes"]) / statistics.median(speeds["1 process"])
    print(f"throughput 2 / 1 processes: {ratio:.2f}; recon. MSE ratio {errors['2 processes'] / errors['1 process']:.3f}")


if __name__ == "__main__":
    main()
