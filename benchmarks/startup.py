"""Start-up cost of the command line, as CPU time against ``import torch`` (issue 13, point 4).

Each command runs in a fresh interpreter; its cost is the CPU time (user + sys) of that child
process, read from ``os.wait4``'s resource usage, so other load on the machine changes it far less
than wall-clock time. The commands are run interleaved (A B C D, A B C D, ...) ``--repeats`` times
and the median of each is reported, with its ratio to ``python -c "import torch"``.

Targets: ``latentforge --help`` and ``latentforge datasets`` ≤ 0.5 s CPU; any command ≤ 1.2× the
cost of ``import torch`` plus its own work.

    python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

#: what is measured: label → arguments after the interpreter
COMMANDS = {
    'python -c "import torch"': ["-c", "import torch"],
    "latentforge --help": ["-m", "latentforge", "--help"],
    "latentforge datasets": ["-m", "latentforge", "datasets"],
    "latentforge fit --help": ["-m", "latentforge", "fit", "--help"],
    'python -c "pass"': ["-c", "pass"],  # the interpreter alone, for reference
}
BASELINE = 'python -c "import torch"'


def child_seconds(args: list[str]) -> tuple[float, float]:
    """(wall, user + sys CPU) seconds of one child ``python args...`` (output discarded)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        child = subprocess.Popen([sys.executable, *args], stdout=null, stderr=null)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(args)} exited with {code}")
    return wall, usage.ru_utime + usage.ru_stime


def cpu_seconds(args: list[str]) -> float:
    """User + sys CPU seconds of one child ``python args...`` (output discarded)."""
    return child_seconds(args)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    repeats = parser.parse_args().repeats
    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for label, args in COMMANDS.items():  # one warm-up round: the first run fills the page cache
        cpu_seconds(args)
    for _ in range(repeats):
        for label, args in COMMANDS.items():
            times[label].append(cpu_seconds(args))
    base = statistics.median(times[BASELINE])
    print(f"CPU seconds (user+sys), median of {repeats} interleaved runs; ratio to {BASELINE}")
    print(f"{'command':<28} {'median':>8} {'min':>8} {'max':>8} {'ratio':>7}")
    for label, values in times.items():
        med = statistics.median(values)
        print(f"{label:<28} {med:8.3f} {min(values):8.3f} {max(values):8.3f} {med / base:7.2f}")


if __name__ == "__main__":
    main()
