"""The SAE feature browser: statistics checked against numpy on the full code matrix, the
streaming pass against fragment size, the page against hostile token strings, and the rendered
page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from latentforge.data import ArraySource
from latentforge.sae.browser import write_feature_browser

EVIL = "</script><img src=x onerror=alert(1)>"


class FakeStore:
    """The ActivationStore reader API (docs: /work/sae_spec.md) over in-memory arrays."""

    def __init__(self, activations, token_ids, sequences, vocab, *, fragment_rows=None, manifest=None):
        self.activations = np.asarray(activations, dtype=np.float32)
        self.token_ids = np.asarray(token_ids, dtype=np.int64)
        self.sequences = np.asarray(sequences, dtype=np.int64)
        self.positions = np.concatenate([np.arange(c) for c in np.bincount(self.sequences)]).astype(np.int64)
        self.vocab = vocab
        self.fragment_rows = fragment_rows
        self.n_tokens, self.d = self.activations.shape
        self.manifest = manifest or {"kind": "activations", "format": 1, "model": "tiny-bert",
                                     "model_class": "BertModel", "layer": "encoder.layer.1", "d": self.d,
                                     "n_tokens": self.n_tokens}
        self.context_calls = 0

    def source(self, fragment_rows=None):
        return ArraySource(self.activations, fragment_rows=fragment_rows or self.fragment_rows)

    def read(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        return {"activations": self.activations[rows], "token_ids": self.token_ids[rows],
                "sequences": self.sequences[rows], "positions": self.positions[rows]}

    def token_strings(self, token_ids):
        return [self.vocab[int(t)] for t in token_ids]

    def contexts(self, rows, before=8, after=4):
        self.context_calls += len(rows)
        return [self.context(row, before, after) for row in rows]

    def context(self, row, before=8, after=4):
        seq = self.sequences[row]
        lo, hi = max(0, row - before), min(self.n_tokens, row + after + 1)
        window = np.arange(lo, hi)[self.sequences[lo:hi] == seq]
        return self.token_strings(self.token_ids[window]), int(np.flatnonzero(window == row)[0])


def make_example(n=600, d=8, F=24, n_dead=3, seed=0, vocab_size=40):
    """Activations, a ReLU encoder with ``n_dead`` features that never fire, and its decoder rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    E = rng.normal(size=(d, F)).astype(np.float32)
    bias = rng.uniform(-2.5, -0.5, F).astype(np.float32)
    bias[:n_dead] = -1e4  # dead: never above zero
    bias[F - 1] = 1.5  # dense: fires on most tokens
    W = rng.normal(size=(F, d)).astype(np.float32)
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    vocab = {i: f"tok{i}" for i in range(vocab_size)}
    vocab[7] = EVIL
    vocab[8] = "a&b \"q\" 'x' <b>"
    tokens = rng.integers(0, vocab_size, n)
    sequences = np.repeat(np.arange(n // 20 + 1), 20)[:n]

    def encode(x):
        return np.maximum(np.asarray(x, dtype=np.float32) @ E + bias, 0).astype(np.float32)

    return X, tokens, sequences, vocab, encode, W


def page_data(path: Path) -> dict:
    html = path.read_text(encoding="utf-8")
    found = re.findall(r'<script type="application/json" id="sae-data">(.*?)</script>', html, re.S)
    assert len(found) == 1
    return json.loads(found[0])


@pytest.fixture(scope="module")
def example():
    return make_example()


@pytest.fixture(scope="module")
def page(example, tmp_path_factory):
    X, tokens, sequences, vocab, encode, W = example
    store = FakeStore(X, tokens, sequences, vocab, fragment_rows=53)
    out = write_feature_browser(tmp_path_factory.mktemp("browser") / "sub" / "features.html", encode=encode,
                                components=W, store=store, top_contexts=6, title="Tiny <SAE> & co")
    return out, page_data(out), encode(X), store


def test_densities_and_maxima_equal_numpy_on_the_full_code_matrix(page):
    out, data, C, _ = page
    assert out.name == "features.html" and out.exists()
    np.testing.assert_array_equal(data["count"], (C > 0).sum(0))
    np.testing.assert_allclose(data["max"], C.max(0), rtol=1e-3)
    fires = C > 0
    mean = np.where(fires.any(0), (C * fires).sum(0) / np.maximum(fires.sum(0), 1), 0)
    np.testing.assert_allclose(data["mean"], mean, rtol=1e-3)
    meta = data["meta"]
    assert meta["tokens"] == len(C) and meta["F"] == C.shape[1] and meta["d"] == 8
    assert meta["dead"] == pytest.approx((C.max(0) <= 0).mean())
    assert meta["dense"] == pytest.approx(((C > 0).mean(0) > 0.1).mean())


def test_top_contexts_are_the_strongest_rows(page, example):
    _, data, C, store = page
    _, tokens, _, vocab, _, _ = example
    for f in range(C.shape[1]):
        firing = np.flatnonzero(C[:, f] > 0)
        if not len(firing):
            assert str(f) not in data["detail"]
            continue
        expected = firing[np.argsort(-C[firing, f], kind="stable")][:6]
        ctx = data["detail"][str(f)]["ctx"]
        rows = [data["contexts"][c][2] for c, _ in ctx]
        assert rows == expected.tolist()
        np.testing.assert_allclose([v for _, v in ctx], C[expected, f], rtol=1e-3)
        for c, _ in ctx:  # the highlighted token is the row's own token, within its sequence
            ids, at, row = data["contexts"][c]
            assert data["tokens"][ids[at]] == vocab[int(tokens[row])]
            assert (ids, at) == tuple(store_context_ids(store, row, data["tokens"]))
    # a row shared by several features' tops is stored once
    assert len({c[2] for c in data["contexts"]}) == len(data["contexts"])


def store_context_ids(store, row, table):
    strings, at = store.context(row)
    return [table.index(s) for s in strings], at


def test_histograms_count_every_firing_token_in_equal_bins(page):
    _, data, C, _ = page
    for f, det in data["detail"].items():
        values = C[:, int(f)][C[:, int(f)] > 0]
        hist, width = det["hist"], det["width"]
        assert sum(hist) == len(values)
        assert 19 <= len(hist) <= 24 and hist[-1] > 0  # the last bin holds the maximum
        assert (len(hist) - 1) * width <= values.max() < len(hist) * width
        ref, _ = np.histogram(values, bins=len(hist), range=(0, len(hist) * width))
        assert hist == ref.tolist()


def test_nearest_features_equal_brute_force_cosines(page, example):
    _, data, _, _ = page
    W = example[5]
    S = W @ W.T
    np.fill_diagonal(S, -np.inf)
    expected = np.argsort(-S, axis=1, kind="stable")[:, :5]
    assert data["nn"] == expected.tolist()
    np.testing.assert_allclose(data["nn_cos"], np.take_along_axis(S, expected, 1), atol=1e-3)


def test_fragments_do_not_change_the_results(example, tmp_path):
    X, tokens, sequences, vocab, encode, W = example
    pages = []
    for i, rows in enumerate([7, 10_000]):
        store = FakeStore(X, tokens, sequences, vocab, fragment_rows=rows)
        assert store.source().n_fragments == (86 if rows == 7 else 1)
        pages.append(page_data(write_feature_browser(tmp_path / f"p{i}.html", encode=encode, components=W,
                                                     store=store, top_contexts=6)))
    assert pages[0] == pages[1]


def test_small_encode_batches_give_the_same_results(example, tmp_path, monkeypatch):
    """Batches smaller than top_contexts, and histogram ranges that double many times."""
    import latentforge.sae.browser as browser

    X, tokens, sequences, vocab, encode, W = example
    # growing values: many range doublings, and one jump of 10,000x (more than the 128 fine bins)
    scale = (np.where(np.arange(len(X)) < 300, 1e-3, 10.0) * np.geomspace(1, 8, len(X))).astype(np.float32)[:, None]
    store = FakeStore(X, tokens, sequences, vocab)

    ref = encode(X) * scale
    seen = [0]

    def encode_rows(x):  # the pass reads rows in storage order, so the scale follows the row
        a = seen[0]
        seen[0] += len(x)
        return encode(x) * scale[a:a + len(x)]

    monkeypatch.setattr(browser, "CODE_BUDGET", 4 * W.shape[0])  # 4 rows per batch
    data = page_data(write_feature_browser(tmp_path / "small.html", encode=encode_rows, components=W, store=store,
                                           top_contexts=6))
    np.testing.assert_array_equal(data["count"], (ref > 0).sum(0))
    for f, det in data["detail"].items():
        values = ref[:, int(f)][ref[:, int(f)] > 0]
        hist = det["hist"]
        ref_hist, _ = np.histogram(values, bins=len(hist), range=(0, len(hist) * det["width"]))
        assert hist == ref_hist.tolist()
        expected = np.argsort(-ref[:, int(f)], kind="stable")[:min(6, len(values))]
        assert [data["contexts"][c][2] for c, _ in det["ctx"]] == expected.tolist()


def test_dead_features_and_max_tokens(example, tmp_path):
    X, tokens, sequences, vocab, encode, W = example
    store = FakeStore(X, tokens, sequences, vocab, fragment_rows=64)
    data = page_data(write_feature_browser(tmp_path / "p.html", encode=encode, components=W, store=store,
                                           max_tokens=250))
    C = encode(X[:250])
    assert data["meta"]["tokens"] == 250 and data["meta"]["store_tokens"] == len(X)
    np.testing.assert_array_equal(data["count"], (C > 0).sum(0))
    assert all(c[2] < 250 for c in data["contexts"])
    dead = [f for f in range(W.shape[0]) if data["count"][f] == 0]
    assert dead[:3] == [0, 1, 2] and data["density_hist"]["dead"] == len(dead)
    assert all(str(f) not in data["detail"] for f in dead)
    assert sum(data["density_hist"]["counts"]) + len(dead) == W.shape[0]


def test_features_limits_the_details_to_the_most_frequent(example, tmp_path):
    X, tokens, sequences, vocab, encode, W = example
    store = FakeStore(X, tokens, sequences, vocab)
    data = page_data(write_feature_browser(tmp_path / "p.html", encode=encode, components=W, store=store,
                                           features=5))
    counts = (encode(X) > 0).sum(0)
    assert sorted(map(int, data["detail"])) == sorted(np.argsort(-counts, kind="stable")[:5].tolist())
    assert len(data["count"]) == W.shape[0] and data["meta"]["detailed"] == 5  # every feature is still listed
    data = page_data(write_feature_browser(tmp_path / "q.html", encode=encode, components=W, store=store,
                                           features=[0, 4, 9]))
    assert sorted(map(int, data["detail"])) == [4, 9]  # 0 is dead: nothing to detail


def test_hostile_token_strings_stay_escaped(page):
    out, data, _, _ = page
    html = out.read_text(encoding="utf-8")
    assert EVIL in data["tokens"] and "a&b \"q\" 'x' <b>" in data["tokens"]
    assert "<img" not in html and html.count("</script>") == 2  # the data element and the code element
    assert "<title>Tiny &lt;SAE&gt; &amp; co</title>" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    assert "<script src" not in html and "<link" not in html


def test_bad_inputs_are_named(example, tmp_path):
    from latentforge.errors import InputError

    X, tokens, sequences, vocab, encode, W = example
    store = FakeStore(X, tokens, sequences, vocab)
    with pytest.raises(InputError, match="columns"):
        write_feature_browser(tmp_path / "p.html", encode=encode, components=W[:, :5], store=store)
    with pytest.raises(InputError, match="shape"):
        write_feature_browser(tmp_path / "p.html", encode=lambda x: encode(x)[:, :3], components=W, store=store)
    with pytest.raises(InputError, match="max_tokens"):
        write_feature_browser(tmp_path / "p.html", encode=encode, components=W, store=store, max_tokens=0)
    assert not (tmp_path / "p.html").exists()


def test_real_activation_directory(example, tmp_path):
    """An activations dir written by hand in the spec's format 1, read through open_activations."""
    activations = pytest.importorskip("latentforge.sae.store")
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    X, tokens, sequences, vocab, encode, W = example
    acts = tmp_path / "acts"
    acts.mkdir()
    positions = np.concatenate([np.arange(c) for c in np.bincount(sequences)])
    shards = []
    for i, (a, b) in enumerate([(0, 250), (250, 600)]):  # a sequence (240..259) spans both shards
        name = f"shard-{i:05d}.safetensors"
        tensors = {"activations": X[a:b].copy(), "token_ids": tokens[a:b], "sequences": sequences[a:b],
                   "positions": positions[a:b]}
        save_file({k: torch.from_numpy(np.ascontiguousarray(v if k == "activations" else v.astype(np.int64)))
                   for k, v in tensors.items()}, str(acts / name))
        shards.append({"file": name, "rows": b - a})
    (acts / "vocab.json").write_text(json.dumps({str(k): v for k, v in vocab.items()}))
    (acts / "manifest.json").write_text(json.dumps({
        "kind": "activations", "format": 1, "model": "models/tiny", "model_class": "BertModel",
        "layer": "encoder.layer.0", "d": X.shape[1], "dtype": "float32", "n_tokens": len(X),
        "n_sequences": int(sequences.max()) + 1, "n_texts": int(sequences.max()) + 1, "max_length": 20,
        "batch_size": 8, "keep_special": False, "special_ids_excluded": [], "shards": shards,
        "latentforge_version": "0"}))
    store = activations.open_activations(acts)
    out = write_feature_browser(tmp_path / "real.html", encode=encode, components=W, store=store, top_contexts=6)
    data = page_data(out)
    fake = page_data(write_feature_browser(tmp_path / "fake.html", encode=encode, components=W, top_contexts=6,
                                           store=FakeStore(X, tokens, sequences, vocab)))
    assert data["count"] == fake["count"] and data["detail"] == fake["detail"] and data["nn"] == fake["nn"]
    assert data["meta"]["layer"] == "encoder.layer.0" and data["meta"]["model"] == "models/tiny"
    # the contexts, as read from the real shards, match the in-memory store's
    assert [[fake["tokens"][i] for i in c[0]] + [c[1], c[2]] for c in fake["contexts"]] == \
        [[data["tokens"][i] for i in c[0]] + [c[1], c[2]] for c in data["contexts"]]


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _screenshot(browser, url, shot, tmp_path):
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,1600",
                    "--virtual-time-budget=3000", url], capture_output=True, timeout=120, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    return pixels


def test_page_renders_in_headless_chromium(page, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium when run as root)")
    out, data, _, _ = page
    # keep the screenshots beside the page so they can be looked at after the run
    default = _screenshot(browser, out.as_uri(), out.with_name("browser-default.png"), tmp_path)
    grey = default.mean(2)
    assert grey.shape == (1600, 1280)
    assert 0.01 < (grey < 128).mean() < 0.9 and grey.std() > 20  # text, tables and charts, not blank
    # the detail pane of feature K (the dense one, last) opened from the URL hash: orange highlights show
    k = len(data["count"]) - 1
    detail = _screenshot(browser, out.as_uri() + f"#feature={k}", out.with_name("browser-feature.png"), tmp_path)
    orange = (detail[..., 0] > 180) & (detail[..., 1] > 60) & (detail[..., 1] < 170) & (detail[..., 2] < 90)
    assert orange.sum() > 200, "no highlighted firing token in the detail view"
    assert np.abs(detail - default).mean() > 0.5  # a different feature's detail is shown


def test_search_and_hash_in_headless_chromium(page, tmp_path):
    """The DOM after the page's script ran: #q= filters the list, #feature= opens the detail."""
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium when run as root)")
    out, data, _, _ = page
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
                           out.as_uri() + "#q=OnError&feature=5"],
                          capture_output=True, timeout=120, check=False, text=True)
    dom = done.stdout
    body = dom.split('<table id="flist">', 1)[1].split("</table>", 1)[0]
    listed = [int(f) for f in re.findall(r'data-f="(\d+)"', body)]
    # features whose firing token in a top context contains the text, case-insensitively
    expected = sorted(int(f) for f, det in data["detail"].items()
                      if any("onerror" in data["tokens"][data["contexts"][c][0][data["contexts"][c][1]]].lower()
                             for c, _ in det["ctx"]))
    assert expected and listed == expected
    assert "<h2>Feature #5" in dom and "Nearest features" in dom
    shown = dom.split('id="sae-data"', 1)[0]
    assert "<img" not in shown and "&lt;/script&gt;&lt;img src=x" in shown  # the hostile token is text, not markup
