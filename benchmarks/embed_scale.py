"""Bounded-memory inference: peak RSS of `latentforge embed` at growing row counts.

Writes a Parquet table of 32 float32 columns (row groups of 65,536 rows) at each size into a
temporary folder, trains a small model on 20,000 rows of the same distribution, then runs
``latentforge embed MODEL TABLE --out emb.parquet`` in a fresh subprocess per size. Each child
reports its peak RSS (VmHWM) and the embedding throughput (rows per second of the embed command,
imports excluded, model loading included). Target: the peak RSS at the largest size is at most
1.2x the peak RSS at the smallest.

    .venv/bin/python benchmarks/embed_scale.py [--rows 1000000,10000000] [--columns 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROW_GROUP = 65_536


def write_table(path: Path, rows: int, columns: int, seed: int) -> None:
    """A Parquet file of ``rows`` standard-normal float32 rows, one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    names = [f"c{j}" for j in range(columns)]
    schema = pa.schema([(n, pa.float32()) for n in names])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            block = rng.standard_normal((min(ROW_GROUP, rows - start), columns), dtype=np.float32)
            writer.write_table(pa.Table.from_arrays(list(block.T), schema=schema))


def train_model(path: Path, columns: int) -> None:
    import pandas as pd

    from latentforge import Autoencoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((20_000, columns), dtype=np.float32),
                         columns=[f"c{j}" for j in range(columns)])
    Autoencoder("ae", latent_dim=8, hidden=(64,), epochs=2, verbose=False).fit(frame).save(path)


def peak_rss_kib() -> int:
    """This process's peak resident set, KiB: VmHWM on Linux, which (unlike ``ru_maxrss``) does not
    start from the parent's peak at fork."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(model: str, data: str, out: str) -> None:
    """Run the embed command in this process and print its figures as JSON."""
    import pyarrow.dataset  # noqa: F401  (imported before the clock starts, as torch is)
    import pyarrow.parquet  # noqa: F401

    import latentforge.estimator.streaming  # noqa: F401
    from latentforge.cli import main

    before = peak_rss_kib()
    start = time.perf_counter()
    code = main(["embed", model, data, "--out", out])
    seconds = time.perf_counter() - start
    print(json.dumps({"code": code, "seconds": seconds, "rss_before_kib": before, "rss_peak_kib": peak_rss_kib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts, smallest first")
    parser.add_argument("--columns", type=int, default=32)
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(v) for v in args.rows.split(",") if v.strip()]
    import torch

    print(f"{platform.machine()}, {platform.python_version()}, torch {torch.__version__}, "
          f"{args.columns} float32 columns, row groups of {ROW_GROUP:,}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_model(tmp / "model", args.columns)
        for rows in sizes:
            table = tmp / f"table-{rows}.parquet"
            write_table(table, rows, args.columns, seed=rows)
            run = subprocess.run([sys.executable, __file__, "--child", str(tmp / "model"), str(table),
                                  str(tmp / "emb.parquet")], capture_output=True, text=True, check=True)
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            if figures["code"] != 0:
                sys.exit(f"embed failed at {rows:,} rows: {run.stderr.strip()}")
            results.append((rows, figures))
            print(f"{rows:>12,} rows: peak RSS {figures['rss_peak_kib'] / 1024:7.1f} MiB "
                  f"(after imports {figures['rss_before_kib'] / 1024:6.1f} MiB), "
                  f"{rows / figures['seconds']:,.0f} rows/s ({figures['seconds']:.1f} s)", flush=True)
            table.unlink()
            (tmp / "emb.parquet").unlink()
    if len(results) > 1:
        (small, a), (large, b) = results[0], results[-1]
        ratio = b["rss_peak_kib"] / a["rss_peak_kib"]
        print(f"peak RSS at {large:,} / at {small:,} rows: {ratio:.3f} (target <= 1.2: "
              f"{'met' if ratio <= 1.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
