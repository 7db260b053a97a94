"""The main job and its report, including a look at the rendered page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentforge import Autoencoder
from latentforge.data import load_builtin, split_dataset
from latentforge.report import html as report_html
from latentforge.report.run_report import report_figures
from latentforge.workflows import run_demo

RUNS = ("ae-seed0", "vae-seed0", "swae-seed0")
PAGE = 1280  # the window width the report is read at

#: appended to a copy of a report: after load, the layout as JSON in <pre id="layout">
_MEASURE = """<script>
window.addEventListener("load", () => {
  const wrapped = [];
  document.querySelectorAll("#metrics td:not(.text)").forEach(td => {  // .text: an error message may wrap
    const range = document.createRange(); range.selectNodeContents(td);
    const rects = Array.from(range.getClientRects()).filter(r => r.width > 0);
    if (rects.length && rects.some(r => r.top >= rects[0].bottom - 1)) wrapped.push(td.textContent);
  });
  const table = document.querySelector("#metrics");
  const images = Array.from(document.querySelectorAll("img")).map(
    i => ({alt: i.alt, natural: i.naturalWidth, shown: i.getBoundingClientRect().width}));
  const pre = document.createElement("pre"); pre.id = "layout";
  pre.textContent = JSON.stringify({page: document.documentElement.scrollWidth, table: table.scrollWidth,
                                    box: table.parentElement.clientWidth, wrapped: wrapped, images: images});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _chromium_args(browser: str, profile: Path) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]


def rendered_layout(report: Path, tmp_path: Path, width: int = PAGE) -> dict:
    """The report as Chromium lays it out at ``width`` px: the page's and the leaderboard's widths,
    the leaderboard cells that take more than one line, each image's natural and shown width."""
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium when run as root)")
    probe = tmp_path / "layout.html"
    probe.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
    dom = subprocess.run([*_chromium_args(browser, tmp_path / "profile-dom"), f"--window-size={width},2000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"Chromium laid out no page: {dom.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def assert_reads_at_page_width(layout: dict, width: int = PAGE) -> None:
    """Nothing runs past the page, no leaderboard cell wraps, no figure is shrunk (its text would be)."""
    assert layout["page"] <= width, f"the page is {layout['page']} px wide at a {width} px window"
    assert layout["table"] <= layout["box"], "the leaderboard is wider than the page column"
    assert layout["wrapped"] == [], f"leaderboard cells on more than one line: {layout['wrapped']}"
    shrunk = [i["alt"] for i in layout["images"] if i["shown"] < i["natural"] - 1]
    assert not shrunk, f"figures scaled down to fit (their labels would shrink below 9 px): {shrunk}"


def read_runs(out: Path, names: list[str]) -> dict[str, dict]:
    """What the report pictures, read back from a run folder (each model's ``NAME-seed0`` run)."""
    runs = {}
    for name in names:
        run_dir = out / "runs" / f"{name}-seed0"
        nested: dict = {"history": json.loads((out / "runs" / f"{name}-seed0.json").read_text())["history"]}
        with np.load(run_dir / "details.npz", allow_pickle=False) as z:
            for key in z.files:
                top, _, sub = key.partition("/")
                if sub:
                    nested.setdefault(top, {})[sub] = z[key]
                else:
                    nested[top] = z[key]
        emb = pd.read_parquet(run_dir / "embeddings.parquet")
        nested["Z_test"] = emb[[c for c in emb.columns if re.fullmatch(r"z\d+", c)]].to_numpy()
        runs[name] = nested
    return runs


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures the report builds, in order, kept open instead of encoded."""
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(report_html, "_encode", lambda fig: figures.append(fig) or "")
    yield figures
    for fig in figures:
        plt.close(fig)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    board = run_demo("digits", out, epochs=4, verbose=False)
    return out, board


def test_run_folder_has_models_embeddings_metrics_and_report(demo_run):
    out, board = demo_run
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "leaderboard.csv", "leaderboard.json",
                                                     "report.html", "runs"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted([*RUNS, *(f"{r}.json" for r in RUNS)])
    metrics = pd.read_csv(out / "leaderboard.csv")
    assert metrics["model"].tolist() == ["ae", "vae", "swae"] == board["model"].tolist()
    assert [r["model"] for r in json.loads((out / "leaderboard.json").read_text())] == ["ae", "vae", "swae"]
    np.testing.assert_allclose(metrics["recon_mse"], board["recon_mse"])
    # the demo is a preset of compare: one seed, the split seeded like the estimator, defaults untouched
    config = json.loads((out / "compare.json").read_text())
    assert config["seeds"] == [0] and config["split_seed"] == 0 and config["shared"] == {"epochs": 4}
    _, _, test = split_dataset(load_builtin("digits"), 0.2, 0.0, seed=0)
    for run in RUNS:
        model = Autoencoder.load(out / "runs" / run / "model")
        assert model.latent_dim == 8 and len(model.history_) == 4  # the estimator's default latent size
        emb = pd.read_parquet(out / "runs" / run / "embeddings.parquet")
        assert len(emb) == 360 and list(emb.columns) == [*(f"z{i}" for i in range(8)), "digit"]
        # the saved embeddings are the model's own test-set codes
        np.testing.assert_allclose(emb[[f"z{i}" for i in range(8)]].to_numpy(), model.transform(test.X), rtol=1e-5)
        np.testing.assert_array_equal(emb["digit"], test.y)
    row = board.set_index("model").loc["ae"]
    assert 0 < row["recon_mse"] < 0.1 and 0.1 < row["probe_acc"] <= 1 and row["epochs_run"] == 4
    assert {"gen_sw", "train_seconds"} <= set(board.columns)


def test_demo_figures_follow_the_first_release_protocol(demo_run):
    """The figures README.md quotes: recomputed by hand from the saved model on the same split."""
    from latentforge.evaluate import generation_sw, linear_probe_accuracy

    out, board = demo_run
    train, _, test = split_dataset(load_builtin("digits"), 0.2, 0.0, seed=0)
    model = Autoencoder.load(out / "runs" / "vae-seed0" / "model")
    row = board.set_index("model").loc["vae"]
    assert row["recon_mse"] == pytest.approx(float(model.score_samples(test.X).mean()), rel=1e-5)
    probe = linear_probe_accuracy(model.transform(train.X), train.y, model.transform(test.X), test.y)
    assert row["probe_acc"] == pytest.approx(probe)
    generated = model.features(model.sample(len(test), seed=0))
    assert row["gen_sw"] == pytest.approx(generation_sw(generated, model.features(test.X)), rel=1e-5)


def _metric_cells(html: str) -> list[str]:
    body = html.split('<table id="metrics">', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    return re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)


def test_report_is_self_contained(demo_run):
    out, board = demo_run
    html = (out / "report.html").read_text()
    # curves, reconstructions, samples, embeddings, latent dimensions
    assert html.count("data:image/png;base64,") == 5
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    assert f"{board.loc[0, 'recon_mse']:.4g}" in html and "latentforge demo: digits" in html


def test_one_seed_shows_no_spread_and_every_cell_is_one_line(demo_run):
    """One seed: '± –', not '± 0'; a value and its spread sit in one cell that may not wrap."""
    out, board = demo_run
    html = (out / "report.html").read_text()
    cells = _metric_cells(html)
    assert len(cells) % len(board) == 0 and not any("<br" in c or "\n" in c for c in cells)
    spreads = re.findall(r'<span class="sd">(.*?)</span>', html)
    assert spreads and set(spreads) == {"± –"}
    assert f'<span class="v">{board.loc[0, "recon_mse"]:.4g}</span><span class="sd">± –</span>' in html
    assert re.search(r"#metrics td \{[^}]*white-space: nowrap", html)


def test_best_is_marked_only_where_it_beats_another_model():
    cols = [("model", "model", ""), ("recall", "recall ↑", "max"), ("mse", "MSE ↓", "min"),
            ("acc", "acc ↑", "max")]
    rows = [{"model": "a", "recall": 0.0, "mse": 0.5, "acc": 0.9},
            {"model": "b", "recall": 0.0, "mse": 0.25, "acc": 0.9},
            {"model": "c", "recall": 0.0, "mse": 0.250000001, "acc": 0.8}]  # c ties b as shown (4 digits)
    _, out = report_html.metrics_table(rows, cols)
    assert [r["best"] for r in out] == [
        {"mse": False, "acc": True}, {"mse": True, "acc": True}, {"mse": True, "acc": False}]
    assert all("recall" not in r["best"] for r in out)  # everyone has recall 0: nothing is best
    # and in the page: no cell of a column where all models tie is green
    assert report_html.metrics_table(rows[:1], cols)[1][0]["best"] == {}


def test_figures_draw_no_empty_panel_and_label_the_map(demo_run, drawn):
    out, board = demo_run
    runs = read_runs(out, ["ae", "vae", "swae"])
    probe = board.set_index("model")["probe_acc"]
    built = [report_html.latent_dimension_bars({n: r["bars"] for n, r in runs.items()}),
             report_html.embedding_map({n: r["Z_test"] for n, r in runs.items()}, load_test_labels(), dict(probe))]
    sections = {f.title: (f, fig) for f, fig in zip(built, drawn)}
    latent, fig = sections["Latent dimensions"]
    # activity for all three, KL only for the VAE: no frame without bars, and one line saying why
    assert latent.panels == ["ae: activity (variance of the code)", "vae: activity (variance of the mean)",
                             "swae: activity (variance of the code)", "vae: KL per dimension (nats)"]
    assert len(fig.axes) == 4 and all(len(ax.patches) == 8 for ax in fig.axes)
    assert "KL per dimension is drawn for vae only: the others have deterministic codes" in latent.note
    emb_title = next(t for t in sections if t.startswith("Embeddings"))
    emb, fig = sections[emb_title]
    assert emb_title == "Embeddings (2-D PCA of the test-set codes)" and emb.values["method"] == "pca"
    assert [ax.get_xlabel()[:6] for ax in fig.axes] == ["PC 1 ("] * 3 and all("% var.)" in ax.get_ylabel()
                                                                             for ax in fig.axes)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1  # one legend, beside the axes
    assert fig.legends[0].get_bbox_to_anchor().x0 >= max(ax.get_position().x1 for ax in fig.axes) * fig.bbox.width - 1
    assert "2-D projection can hide a separation that the linear probe" in emb.note
    assert fig.axes[0].get_title() == f"ae (linear probe {probe['ae']:.2f})"
    for f, figure in sections.values():  # readable ticks: 8 pt is 12 px at 110 dpi, shown unscaled
        for ax in figure.axes:
            assert all(t.get_fontsize() >= 8 for t in ax.get_xticklabels() + ax.get_yticklabels()), f.title


def load_test_labels() -> np.ndarray:
    _, _, test = split_dataset(load_builtin("digits"), 0.2, 0.0, seed=0)
    return np.asarray(test.y)


def test_embedding_map_uses_umap_when_installed_and_warns_nothing(monkeypatch, drawn):
    Z = {"a": np.random.default_rng(0).normal(size=(40, 4)), "b": np.random.default_rng(1).normal(size=(40, 4))}
    fake = types.SimpleNamespace(UMAP=lambda **kw: types.SimpleNamespace(fit_transform=lambda X: X[:, :2] * 2))
    monkeypatch.setitem(sys.modules, "umap", fake)
    fig = report_html.embedding_map(Z, np.arange(40) % 3)
    assert fig.title == "Embeddings (2-D UMAP of the test-set codes)" and "UMAP (umap-learn" in fig.note
    np.testing.assert_allclose(drawn[-1].axes[0].collections[0].get_offsets(), Z["a"][:, :2] * 2)
    assert drawn[-1].axes[0].get_xlabel() == "UMAP 1"
    monkeypatch.setitem(sys.modules, "umap", None)  # not installed: PCA, and the note says how to get UMAP
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no labels (a table without a label column) used to warn about 'cmap'
        fig = report_html.embedding_map(Z, None)
        report_html.embedding_map(Z, np.linspace(0, 1, 40))  # a continuous label: a colour bar
    assert fig.values["method"] == "pca" and "pip install 'latentforge[umap]'" in fig.note
    assert len(drawn[-1].axes) == 3 and drawn[-1].axes[-1].get_ylabel() == "label"  # two maps and the colour bar


def test_column_error_chart_has_a_panel_per_kind_on_its_own_scale(drawn):
    numeric = {"a": {"income": 0.5, "age": 1.2}, "b": {"income": 0.25, "age": 0.9}}
    categorical = {"a": {"city": 0.75}, "b": {"city": 0.5}}
    fig = report_html.column_error_chart(numeric, categorical)
    assert fig.panels == ["numeric columns: RMSE / standard deviation of the column", "categorical columns: accuracy"]
    num_ax, cat_ax = drawn[-1].axes
    assert cat_ax.get_xlim() == (0, 1) and "standard deviations" in num_ax.get_xlabel()
    assert sorted(round(b.get_width(), 6) for b in num_ax.patches) == [0.25, 0.5, 0.9, 1.2]
    assert [t.get_text() for t in num_ax.get_yticklabels()] == ["income", "age"]
    from latentforge.report.run_report import normalised_column_errors

    # with the test columns' standard deviations the RMSE in the column's units is divided by them
    run = {"column_errors": {"RMSE income": 3000.0, "accuracy city": 0.5}, "column_std": {"income": np.array(6000.0)}}
    assert normalised_column_errors(run) == ({"income": 0.5}, {"city": 0.5})


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium when run as root)")
    out, _ = demo_run
    shot = tmp_path / "shot.png"
    subprocess.run([*_chromium_args(browser, tmp_path / "profile"), f"--screenshot={shot}",
                    f"--window-size={PAGE},2400", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, PAGE)
    dark = (pixels < 128).mean()
    assert 0.02 < dark < 0.9 and pixels.std() > 20  # text, tables and figures, not a blank page
    layout = rendered_layout(out / "report.html", tmp_path)
    assert_reads_at_page_width(layout)
    assert [i["alt"] for i in layout["images"]] == ["Training curves", "Reconstructions", "Samples",
                                                    "Embeddings (2-D PCA of the test-set codes)", "Latent dimensions"]


def test_table_dataset_demo(tmp_path, drawn):
    board = run_demo("wine", tmp_path / "wine", epochs=3, verbose=False, hidden=(32,))
    assert len(board) == 3 and (board["runs_ok"] == 1).all()
    # curves, per-column errors, reconstruction and sample scatters, embeddings, latent dimensions
    html = (tmp_path / "wine" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "Per-column reconstruction error" in html
    emb = pd.read_parquet(tmp_path / "wine" / "runs" / "ae-seed0" / "embeddings.parquet")
    assert list(emb.columns)[-1] == "target" and len(emb) == 36
    # the per-column chart is in standard deviations of each column: recomputed by hand
    _, _, test = split_dataset(load_builtin("wine"), 0.2, 0.0, seed=0)
    model = Autoencoder.load(tmp_path / "wine" / "runs" / "ae-seed0" / "model")
    original, rebuilt = test.X, model.reconstruct(test.X)
    expected = {c: float(np.sqrt(np.mean((original[c] - rebuilt[c]) ** 2)) / original[c].std(ddof=0))
                for c in original.columns}
    drawn.clear()
    sections = report_figures(read_runs(tmp_path / "wine", ["ae", "vae", "swae"]), None, np.asarray(test.y), board)
    chart = next(f for f in sections if f.title == "Per-column reconstruction error")
    assert chart.panels == ["numeric columns: RMSE / standard deviation of the column"]  # wine has no categories
    values = chart.values[chart.panels[0]]
    assert list(values) == ["ae", "vae", "swae"] and list(values["ae"]) == list(original.columns)
    np.testing.assert_allclose([values["ae"][c] for c in expected], list(expected.values()), rtol=1e-3)
    assert 0.05 < min(expected.values()) and max(expected.values()) < 3  # proline (hundreds) no longer dwarfs the rest


@pytest.mark.slow
def test_default_ae_beats_pca_on_the_digits_protocol():
    """Out-of-the-box defaults must give a useful model: better than PCA with as many components."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.2, stratify=d.target, random_state=0)
    pca = PCA(8).fit(Xtr)
    pca_mse = np.mean((pca.inverse_transform(pca.transform(Xte)) - Xte) ** 2)
    pca_probe = LogisticRegression(max_iter=2000).fit(pca.transform(Xtr), ytr).score(pca.transform(Xte), yte)
    est = Autoencoder("ae", 8, verbose=False).fit(Xtr.reshape(-1, 1, 8, 8), ytr)
    imgs = Xte.reshape(-1, 1, 8, 8)
    ae_mse = np.mean((est.reconstruct(imgs) - imgs) ** 2)
    ae_probe = LogisticRegression(max_iter=2000).fit(est.transform(Xtr.reshape(-1, 1, 8, 8)), ytr).score(
        est.transform(imgs), yte)
    assert ae_mse < 0.6 * pca_mse
    assert ae_probe > pca_probe
