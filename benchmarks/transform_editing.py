"""Attribute editing: Matrix Subspace Projection and affine steering, judged by independent classifiers.

- ``shapes`` (5,000 sprites; the first 4,000 train, the last 1,000 test): change ``scale`` (6
  levels), keep position. An ``ae`` (MLP, latent ``--shapes-dim``) is trained on the training
  sprites and an Editor is fitted on their codes and scale labels. Judges, trained on the raw
  training pixels (never on codes): a small CNN for shape, x and y; scale from the area given the
  shape (``ShapesJudge``). Each of ``--n-edit`` test sprites is edited to every other scale level;
  reported: share the judge reads as the requested scale (``success``), share it read as that
  scale before editing (``before``), and for x and y the share of edits whose predicted position
  equals that of the sprite's plain reconstruction (``retention``), and ``diversity`` (see
  ``diversity`` below: 0 when every edit yields the same image, 1 when edits vary as much as the inputs).
- ``digits`` (``--dataset``; ``mnist5k`` = the first 5,000 MNIST images, needs the mnist extra;
  ``train_test_split(test_size=0.2, stratify=y, random_state=0)``): change the class.
  An ``ae`` (latent ``--digits-dim``) and a ``LogisticRegression(max_iter=2000)`` judge on raw
  pixels; every test digit is edited to each of the 9 other classes. ``--no-shapes`` skips the
  shapes part.

    .venv/bin/python benchmarks/transform_editing.py [--epochs 30] [--dataset digits] [--no-shapes]
        [--plot-prefix docs/img/transform_editing]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from torch import nn

from latentforge import Autoencoder
from latentforge.data import load_builtin
from latentforge.transform import Editor, evaluate_edit


class ShapesJudge:
    """Independent judges for sprites, trained on raw training pixels (never on codes).

    A small CNN (three conv-BN-ReLU-maxpool blocks, one head per factor) predicts shape, x and y.
    Scale is read from the sprite's area given its shape: a logistic regression on
    [one-hot shape, one-hot shape · log(pixel sum)], the shape coming from the CNN at prediction
    time (a CNN head alone reaches only ~0.8 on scale after a short training).
    """

    HEADS = {"shape": 3, "x": 8, "y": 8}

    def __init__(self, epochs: int = 8, seed: int = 0):
        torch.manual_seed(seed)

        def block(i: int, o: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(i, o, 3, 1, 1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        self.net = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.Flatten(), nn.Linear(64 * 4 * 4, 256),
                                 nn.ReLU(), nn.Linear(256, sum(self.HEADS.values())))
        self.epochs, self.seed = epochs, seed

    def _features(self, X: np.ndarray, shape: np.ndarray) -> np.ndarray:
        onehot = np.eye(3)[shape]
        log_area = np.log(np.asarray(X).reshape(len(X), -1).sum(1) + 1.0)
        return np.hstack([onehot, onehot * log_area[:, None]])

    def fit(self, X: np.ndarray, factors: np.ndarray) -> "ShapesJudge":
        x = torch.from_numpy(X.reshape(-1, 1, 32, 32).astype(np.float32))
        targets = torch.from_numpy(factors[:, [0, 3, 4]].astype(np.int64))
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(self.seed)
        self.net.train()
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x), generator=g).split(64):
                outs = self.net(x[idx]).split(list(self.HEADS.values()), 1)
                loss = sum(nn.functional.cross_entropy(o, targets[idx, j]) for j, o in enumerate(outs))
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net.eval()
        self.scale = LogisticRegression(C=100.0, max_iter=5000).fit(self._features(X, factors[:, 0]), factors[:, 1])
        return self

    @torch.no_grad()
    def _heads(self, X: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.net(torch.from_numpy(np.asarray(X, np.float32).reshape(-1, 1, 32, 32)))
        return {k: o.argmax(1).numpy() for k, o in zip(self.HEADS, outs.split(list(self.HEADS.values()), 1))}

    def predict(self, X: np.ndarray, factor: str) -> np.ndarray:
        heads = self._heads(X)
        return self.scale.predict(self._features(X, heads["shape"])) if factor == "scale" else heads[factor]

    def judge(self, factor: str) -> "FactorJudge":
        """An object with ``predict(X)`` for one factor, as ``evaluate_edit`` expects."""
        return FactorJudge(self, factor)


class FactorJudge:
    def __init__(self, judge: ShapesJudge, factor: str):
        self.judge, self.factor = judge, factor

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.judge.predict(X, self.factor)


def diversity(editor: Editor, model: Autoencoder, X: np.ndarray, labels: np.ndarray, attribute: str) -> float:
    """How much of the inputs' variety survives editing: pixel variance across the rows edited to
    one value over the variance of the same rows' plain reconstructions, averaged over values
    (1 = as varied as before, 0 = every edit gives the same image)."""
    recon = np.asarray(model.reconstruct(X)).reshape(len(X), -1)
    ratios = []
    for v in np.unique(labels):
        rows = labels != v
        edited = np.asarray(editor.edit(X[rows], attribute, v)).reshape(int(rows.sum()), -1)
        ratios.append(edited.var(0).mean() / recon[rows].var(0).mean())
    return float(np.mean(ratios))


def _row(name: str, r: dict, kept_variety: float) -> str:
    keep = "  ".join(f"retention {k} {v:.3f}" for k, v in r["retention"].items())
    return (f"{name:<32} success {r['success']:.3f}  before {r['before']:.3f}  chance {r['chance']:.3f}  "
            f"diversity {kept_variety:.3f}  {keep}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--shapes-dim", type=int, default=10)
    parser.add_argument("--digits-dim", type=int, default=16)
    parser.add_argument("--n-edit", type=int, default=300)
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist5k"),
                        help="mnist5k: the first 5,000 MNIST images (needs the mnist extra), same split rule")
    parser.add_argument("--no-shapes", action="store_true", help="skip the shapes (scale) part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot-prefix", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)                        # BLAS threads too: scikit-learn probes on a loaded machine
    started = time.perf_counter()
    print(f"# {platform.machine()} torch {torch.__version__}, {args.threads} thread(s); ae, {args.epochs} epochs max, seed 0")
    editors = {"msp": dict(method="msp"), "affine (mean+cov)": dict(method="affine"),
               "affine (mean only)": dict(method="affine", match="mean")}

    # -- shapes: change scale, keep position --------------------------------------------------
    panels = []
    if not args.no_shapes:
        ae, shape_editors, shape_inputs = _shapes(args, editors)
        panels.append(("shapes", ae, shape_editors, shape_inputs, "scale", list(range(6))))
    _digits(args, editors, started, panels)


def _shapes(args: argparse.Namespace, editors: dict) -> tuple:
    ds = load_builtin("shapes")
    flat = ds.X.reshape(len(ds.X), -1)
    F = ds.factors
    train, test = np.arange(4000), np.arange(4000, 4000 + args.n_edit)
    judge = ShapesJudge().fit(flat[train], F[train])
    held = np.arange(4000, 5000)
    print("shapes: judge accuracy on the 1,000 held-out sprites: " + ", ".join(
        f"{name} {np.mean(judge.predict(flat[held], name) == F[held, j]):.3f}"
        for name, j in (("shape", 0), ("scale", 1), ("x", 3), ("y", 4))))
    ae = Autoencoder("ae", args.shapes_dim, epochs=args.epochs, architecture="mlp", verbose=False, device="cpu")
    ae.fit(ds.X[train])
    print(f"shapes: ae latent {args.shapes_dim} (MLP), test reconstruction MSE {ae.score_samples(ds.X[held]).mean():.4f}")
    shape_editors = {}
    for name, options in editors.items():
        editor = Editor(**options).fit(ae, ds.X[train], {"scale": F[train, 1]})
        shape_editors[name] = editor
        r = evaluate_edit(editor, ds.X[test], "scale", F[test, 1], judge.judge("scale"),
                          keep={"x": judge.judge("x"), "y": judge.judge("y")})
        print(_row(f"shapes scale, {name}", r, diversity(editor, ae, ds.X[test], F[test, 1], "scale")))
    return ae, shape_editors, ds.X[test[:3]]


def _digits(args: argparse.Namespace, editors: dict, started: float, panels: list) -> None:
    # -- digits (or mnist5k): change class -----------------------------------------------------
    data = args.dataset
    dg = load_builtin(data)
    Xtr, Xte, ytr, yte = train_test_split(dg.X, dg.y, test_size=0.2, stratify=dg.y, random_state=0)
    digit_judge = LogisticRegression(max_iter=2000).fit(Xtr.reshape(len(Xtr), -1), ytr)
    print(f"{data}: judge (logistic regression on pixels) test accuracy "
          f"{digit_judge.score(Xte.reshape(len(Xte), -1), yte):.3f}")
    dae = Autoencoder("ae", args.digits_dim, epochs=args.epochs, verbose=False, device="cpu").fit(Xtr, ytr)
    digit_editors = {}
    for name, options in editors.items():
        editor = Editor(**options).fit(dae, Xtr, {"digit": ytr})
        digit_editors[name] = editor
        print(_row(f"{data} class, {name}", evaluate_edit(editor, Xte, "digit", yte, digit_judge),
                   diversity(editor, dae, Xte, yte, "digit")))
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if args.plot_prefix:
        _plots(args.plot_prefix, panels + [(data, dae, digit_editors, Xte[:3], "digit", list(range(10)))])


def _plots(prefix: str, panels: list) -> None:
    """Per dataset: 3 inputs edited by affine steering (top rows) and by MSP (bottom rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, model, editors, X, attribute, values in panels:
        rows = [("affine", editors["affine (mean+cov)"]), ("MSP", editors["msp"])]
        fig, axes = plt.subplots(2 * len(X), len(values) + 2, figsize=(0.7 * (len(values) + 2), 0.7 * 2 * len(X)))
        recon = model.reconstruct(X)
        for block, (label, editor) in enumerate(rows):
            edited = [editor.edit(X, attribute, v) for v in values]
            for i in range(len(X)):
                r = block * len(X) + i
                for j, img in enumerate([X[i, 0], recon[i, 0]] + [e[i, 0] for e in edited]):
                    ax = axes[r, j]
                    ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if r == 0:
                        ax.set_title(["input", "recon"][j] if j < 2 else f"{attribute} {values[j - 2]}", fontsize=6)
                axes[r, 0].set_ylabel(label, fontsize=6)
        fig.tight_layout(pad=0.1)
        fig.savefig(f"{prefix}_{name}.png", dpi=70)
        plt.close(fig)

if __name__ == "__main__":
    main()
