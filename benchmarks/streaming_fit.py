"""Streaming fit: peak memory does not grow with the rows, and streaming keeps up with memory.

Writes float32 Parquet tables of ``--rows`` (default 5,000,000 and 500,000) × ``--cols`` (32)
in row groups of 100,000 (in a temporary folder), then runs each fit in its own subprocess and
reads its peak RSS (``VmHWM``):

- ``stream N``: ``Autoencoder("ae", 8, hidden=(64,), epochs=1, batch_size=1024).fit(path)``;
- ``memory N`` (smallest size only): the same fit on ``pd.read_parquet(path)``.

Targets (docs/scale.md): peak RSS of the largest streamed fit ≤ 1.5 GiB and ≤ 1.2× the smallest
streamed fit; streaming throughput (training rows/s of the epoch, from history.csv's seconds)
≥ 0.8× the in-memory fit on the smallest file.

    .venv/bin/python benchmarks/streaming_fit.py [--rows 5000000,500000] [--cols 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHILD = textwrap.dedent("""
    import json, sys, time
    import pandas as pd
    from latentforge import Autoencoder
    def peak_rss_mib():  # VmHWM: this process's own peak (ru_maxrss can carry the parent's over exec)
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    path, mode, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = pd.read_parquet(path) if mode == "memory" else path
    started = time.perf_counter()
    est = Autoencoder("ae", 8, hidden=(64,), epochs=1, batch_size=1024, val_fraction=0.01, threads=threads,
                      verbose=False).fit(data)
    total = time.perf_counter() - started
    epoch = est.history_[0]["seconds"]
    print(json.dumps({"rows": est.metrics_["n_train"], "epoch_s": epoch, "fit_s": total,
                      "rss_mib": peak_rss_mib()}))
""")


def write_table(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    """A low-rank float32 table written one row group at a time (the writer never holds it whole)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(8, cols)).astype(np.float32)
    schema = pa.schema([(f"c{i}", pa.float32()) for i in range(cols)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            block = rng.normal(size=(n, 8)).astype(np.float32) @ mixing
            block += 0.1 * rng.normal(size=block.shape).astype(np.float32)
            writer.write_table(pa.Table.from_arrays([pa.array(block[:, i]) for i in range(cols)], schema=schema))


def run(path: Path, mode: str, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(threads)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000000,500000")
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sizes = sorted(int(r) for r in args.rows.split(","))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: Path(tmp) / f"t{n}.parquet" for n in sizes}
        for n, path in paths.items():
            write_table(path, n, args.cols)
        small, large = sizes[0], sizes[-1]
        results[f"memory {small}"] = run(paths[small], "memory", args.threads)
        for n in sizes:
            results[f"stream {n}"] = run(paths[n], "stream", args.threads)
    print(f"machine: {platform.machine()}, {args.threads} thread(s), {args.cols} float32 columns, 1 epoch, "
          f"ae 8, hidden 64, batch 1024")
    print(f"{'run':<18}{'train rows':>12}{'epoch s':>10}{'rows/s':>12}{'fit s':>9}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<18}{r['rows']:>12,}{r['epoch_s']:>10.1f}{r['rows'] / r['epoch_s']:>12,.0f}"
              f"{r['fit_s']:>9.1f}{r['rss_mib']:>14.0f}")
    rss_large, rss_small = results[f"stream {large}"]["rss_mib"], results[f"stream {small}"]["rss_mib"]
    speed = lambda r: r["rows"] / r["epoch_s"]  # noqa: E731
    ratio = speed(results[f"stream {small}"]) / speed(results[f"memory {small}"])
    print(f"peak RSS at {large:,} rows: {rss_large:.0f} MiB (target ≤ 1536), {rss_large / rss_small:.2f}× "
          f"{small:,} rows (target ≤ 1.2)")
    print(f"streaming / in-memory throughput at {small:,} rows: {ratio:.2f} (target ≥ 0.8)")


if __name__ == "__main__":
    main()
