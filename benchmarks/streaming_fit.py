"""Streaming fit: peak memory does not grow with the rows, and streaming keeps up with memory.

Writes float32 Parquet tables of ``--rows`` (default 5,000,000 and 500,000) × ``--cols`` (32)
in row groups of 100,000 (in a temporary folder), then runs each fit in its own subprocess and
reads its peak RSS (``VmHWM``):

- ``stream N``: ``Autoencoder("ae", 8, hidden=(64,), epochs=1, batch_size=1024).fit(path)``;
- ``memory N`` (smallest size only): the same fit on ``pd.read_parquet(path)``;
- ``pandas N`` (smallest size, ``--pandas-path``): the streamed fit with the columnar fast path
  switched off (every fragment through ``TabularPreprocessor.transform``), for comparison.

Targets (docs/scale.md): peak RSS of the largest streamed fit ≤ 1.5 GiB and ≤ 1.2× the smallest
streamed fit; streaming throughput (training rows/s of the epoch, from history.csv's seconds)
≥ 0.8× the in-memory fit on the smallest file.

Besides the epoch, each row shows the whole cost: ``read s`` (``pd.read_parquet`` of the
in-memory path; a streamed fit reads inside ``fit``), ``fit s`` (the whole ``fit`` call: the
statistics pass, the epoch, the kept sample, the final metrics) and ``other %`` (CPU that other
processes used during the run, from /proc/stat, in % of one core: above a few % the machine was
shared and the figures are suspect). ``--repeat N`` runs the smallest size's fits N times,
interleaved, and reports medians; ``--wait-idle S`` waits up to S seconds before each run for
the machine to be idle.

    .venv/bin/python benchmarks/streaming_fit.py [--rows 5000000,500000] [--cols 32] [--threads 2]
        [--repeat 1] [--wait-idle 0] [--pandas-path]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
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
    if mode == "pandas":  # the streamed fit without the columnar fast path
        import latentforge.estimator.autoencoder as autoencoder
        autoencoder.numeric_view = lambda source, preprocessor: None
    started = time.perf_counter()
    data = pd.read_parquet(path) if mode == "memory" else path
    read = time.perf_counter() - started
    started = time.perf_counter()
    est = Autoencoder("ae", 8, hidden=(64,), epochs=1, batch_size=1024, val_fraction=0.01, threads=threads,
                      verbose=False).fit(data)
    total = time.perf_counter() - started
    epoch = est.history_[0]["seconds"]
    print(json.dumps({"rows": est.metrics_["n_train"], "epoch_s": epoch, "read_s": read, "fit_s": total,
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


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting on I/O), from /proc/stat."""
    try:
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    except OSError:
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _wait_idle(limit_s: float) -> None:
    """Wait (up to ``limit_s``) until the machine spends under 10% of a core busy over 2 s."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        before = _busy_seconds()
        time.sleep(2)
        if (_busy_seconds() - before) / 2 < 0.1:
            return


def run(path: Path, mode: str, threads: int, wait_idle: float = 0.0) -> dict:
    if wait_idle:
        _wait_idle(wait_idle)
    usage, busy, started = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds(), time.time()
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(threads)], capture_output=True,
                          text=True, check=True)
    wall, after = time.time() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["other_pct"] = 100 * max(0.0, _busy_seconds() - busy - mine) / wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000000,500000")
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of the smallest size's fits (medians reported)")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="seconds to wait for an idle machine per run")
    parser.add_argument("--pandas-path", action="store_true", help="also stream without the columnar fast path")
    args = parser.parse_args()
    sizes = sorted(int(r) for r in args.rows.split(","))
    small, large = sizes[0], sizes[-1]
    modes = ["memory", "stream", *(["pandas"] if args.pandas_path else [])]
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: Path(tmp) / f"t{n}.parquet" for n in sizes}
        for n, path in paths.items():
            write_table(path, n, args.cols)
        for _ in range(args.repeat):  # interleaved, so that a busy spell hits every mode alike
            for mode in modes:
                runs.setdefault(f"{mode} {small}", []).append(run(paths[small], mode, args.threads, args.wait_idle))
        for n in sizes[1:]:
            runs[f"stream {n}"] = [run(paths[n], "stream", args.threads, args.wait_idle)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s), {args.cols} float32 "
          f"columns, 1 epoch, ae 8, hidden 64, batch 1024")
    print(f"{'run':<18}{'train rows':>12}{'epoch s':>10}{'rows/s':>12}{'read s':>8}{'fit s':>8}{'read+fit':>10}"
          f"{'peak RSS MiB':>14}{'other %':>9}")
    speed = lambda r: r["rows"] / r["epoch_s"]  # noqa: E731
    for name, rs in runs.items():
        for r in rs:
            print(f"{name:<18}{r['rows']:>12,}{r['epoch_s']:>10.2f}{speed(r):>12,.0f}{r['read_s']:>8.2f}"
                  f"{r['fit_s']:>8.2f}{r['read_s'] + r['fit_s']:>10.2f}{r['rss_mib']:>14.0f}{r['other_pct']:>9.0f}")
    median = {name: statistics.median(speed(r) for r in rs) for name, rs in runs.items()}
    total = {name: statistics.median(r["read_s"] + r["fit_s"] for r in rs) for name, rs in runs.items()}
    if args.repeat > 1:
        for name in runs:
            print(f"median {name:<11} {median[name]:>10,.0f} rows/s, read + fit {total[name]:.2f} s")
    rss_large = max(r["rss_mib"] for r in runs[f"stream {large}"])
    rss_small = max(r["rss_mib"] for r in runs[f"stream {small}"])
    ratio = median[f"stream {small}"] / median[f"memory {small}"]
    print(f"peak RSS at {large:,} rows: {rss_large:.0f} MiB (target ≤ 1536), {rss_large / rss_small:.2f}× "
          f"{small:,} rows (target ≤ 1.2)")
    print(f"streaming / in-memory throughput at {small:,} rows: {ratio:.2f} (target ≥ 0.8)"
          + (f"; without the columnar path {median[f'pandas {small}'] / median[f'memory {small}']:.2f}"
             if args.pandas_path else ""))
    print(f"end to end (read + fit) at {small:,} rows: stream {total[f'stream {small}']:.2f} s, "
          f"memory {total[f'memory {small}']:.2f} s")


if __name__ == "__main__":
    main()
