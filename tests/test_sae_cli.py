"""The SAE command line end to end on a tiny randomly initialised BERT built offline:
activations → sae fit → sae evaluate (with downstream fidelity) → sae inspect, and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from latentforge.cli import main

transformers = pytest.importorskip("transformers")
from test_sae_activations import WORDS, _bert_config, _bert_tokenizer  # noqa: E402  (the same tiny model)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae_cli")
    torch.manual_seed(0)
    transformers.BertModel(_bert_config()).eval().save_pretrained(root / "bert")
    _bert_tokenizer().save_pretrained(root / "bert")
    lines = [" ".join(WORDS[(i * j) % len(WORDS)] for j in range(3, 12)) for i in range(60)]
    (root / "texts.txt").write_text("\n".join(lines) + "\n")
    return root


def test_activations_fit_evaluate_inspect(run, capsys):
    acts, sae, html = run / "acts", run / "sae", run / "features.html"
    assert main(["activations", str(run / "bert"), "--layer", "encoder.layer.0", "--text", str(run / "texts.txt"),
                 "--out", str(acts), "--max-length", "16", "--quiet"]) == 0
    manifest = json.loads((acts / "manifest.json").read_text())
    assert manifest["d"] == 32 and manifest["n_tokens"] == 60 * 9  # 9 words per line, specials left out
    assert main(["sae", "fit", str(acts), "--n-features", "64", "--k", "4", "--batch-size", "64", "--epochs", "3",
                 "--threads", "1", "--out", str(sae), "--quiet"]) == 0
    assert "saved a topk SAE with 64 features" in capsys.readouterr().err
    assert (sae / "sae.json").is_file() and not (run / "sae.checkpoint").exists()
    assert main(["sae", "evaluate", str(sae), str(acts), "--text", str(run / "texts.txt"), "--max-texts", "20",
                 "--json", str(run / "m.json")]) == 0
    figures = json.loads((run / "m.json").read_text())  # strict JSON
    assert 0 <= figures["fvu"] < 1 and figures["l0"] <= 4 and figures["tokens"] == 60 * 9
    assert figures["downstream"]["kind"] == "encoder" and figures["downstream"]["cosine_pooled"] > 0.5
    assert "fvu" in capsys.readouterr().out
    assert main(["sae", "inspect", str(sae), str(acts), "--out", str(html), "--max-tokens", "300"]) == 0
    page = html.read_text()
    assert "<html" in page and "SAE features: sae" in page


@pytest.mark.parametrize("argv, message", [
    (["sae", "fit", "missing-dir", "--out", "x"], "missing-dir"),
    (["activations", "bert", "--layer", "encoder.layer.0", "--out", "a"], "exactly one of --text FILE or --dataset"),
    (["sae", "inspect", "sae", "acts", "--out", "f.txt"], "--out must be an .html file"),
    (["sae", "fit", "acts", "--out", "y", "--architecture", "nope"], "unknown SAE architecture 'nope'"),
])
def test_errors_are_one_line_and_exit_2(run, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(run)
    if argv[:2] == ["sae", "fit"] and argv[2] == "acts" and not (run / "acts").exists():
        pytest.skip("needs the activations of the end-to-end test")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error:") and "\n" not in err and "Traceback" not in err
