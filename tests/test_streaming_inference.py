"""Bounded-memory inference: embed / reconstruct / score stream file inputs chunk by chunk, their
outputs equal the in-memory API's row for row, memory does not grow with the rows, and a failure
leaves neither the output nor a temporary file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import latentforge.estimator.batched as batched
import latentforge.estimator.streaming as streaming
from latentforge import AnomalyDetector, Autoencoder
from latentforge.cli import main
from latentforge.data.io import write_stream
from latentforge.errors import InputError

BATCH = 128  # rows per batch in these tests: fragments (150-row groups, one CSV block) are cut and joined


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"key": [f"k{i:06d}" for i in range(n)], "a": rng.normal(size=n),
                         "b": rng.normal(size=n).round(3), "c": rng.choice(["x", "y", "z"], n)})


def _parquet_folder(frame: pd.DataFrame, folder, row_group: int = 150):
    folder.mkdir()
    half = len(frame) // 2
    frame.iloc[:half].to_parquet(folder / "part-0.parquet", row_group_size=row_group)
    frame.iloc[half:].to_parquet(folder / "part-1.parquet", row_group_size=row_group)
    return folder


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    frame = _table(1000)
    est = Autoencoder("ae", latent_dim=2, epochs=2, hidden=(16,), id_columns=("key",), verbose=False).fit(frame)
    est.save(root / "model")
    inputs = {"parquet": _parquet_folder(frame, root / "table"), "csv": root / "table.csv"}
    frame.to_csv(inputs["csv"], index=False)
    return root, frame, Autoencoder.load(root / "model"), inputs


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch):
    monkeypatch.setattr(batched, "DEFAULT_BATCH_ROWS", BATCH)  # where iter_applied reads it


def _read(path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npy"])
def test_streamed_cli_outputs_equal_the_in_memory_api(fitted, kind, suffix, tmp_path, capsys):
    root, frame, est, inputs = fitted
    Z = est.transform(frame)
    detector = AnomalyDetector.from_autoencoder(est)
    s = detector.decision_function(frame)
    for command in ("embed", "reconstruct", "score"):
        out = tmp_path / f"{command}{suffix}"
        assert main([command, str(root / "model"), str(inputs[kind]), "--out", str(out)]) == 0
    assert "wrote 1000 embeddings of size 2" in capsys.readouterr().err
    if suffix == ".npy":
        np.testing.assert_allclose(np.load(tmp_path / "embed.npy"), Z, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.load(tmp_path / "score.npy"), s, rtol=1e-6, atol=1e-6)
        rec = np.load(tmp_path / "reconstruct.npy")   # a table's numbers, as write_output gives them
        np.testing.assert_allclose(rec, est.reconstruct(frame)[["a", "b"]].to_numpy(), rtol=1e-5, atol=1e-6)
        return
    emb, rec, sco = (_read(tmp_path / f"{c}{suffix}") for c in ("embed", "reconstruct", "score"))
    assert list(emb.columns) == ["key", "z0", "z1"] and emb["key"].tolist() == frame["key"].tolist()
    np.testing.assert_allclose(emb[["z0", "z1"]].to_numpy(np.float32), Z, rtol=1e-6, atol=1e-7)
    expected = est.reconstruct(frame)
    assert list(rec.columns) == ["key", *expected.columns] and rec["key"].tolist() == frame["key"].tolist()
    assert rec["c"].tolist() == expected["c"].tolist()
    np.testing.assert_allclose(rec[["a", "b"]].to_numpy(), expected[["a", "b"]].to_numpy(), rtol=1e-5, atol=1e-6)
    assert list(sco.columns) == ["key", "score", "is_outlier"] and sco["key"].tolist() == frame["key"].tolist()
    np.testing.assert_allclose(sco["score"].to_numpy(), s, rtol=1e-6, atol=1e-6)
    assert sco["is_outlier"].tolist() == (s > detector.threshold_).tolist()


def test_api_generators_match_the_in_memory_calls(fitted):
    root, frame, est, inputs = fitted
    parts = list(streaming.iter_embeddings(est, inputs["parquet"]))
    assert [len(z) for _, z in parts] == [BATCH] * 7 + [1000 - 7 * BATCH]   # storage order, cut and joined
    assert pd.concat([ids for ids, _ in parts])["key"].tolist() == frame["key"].tolist()
    np.testing.assert_allclose(np.concatenate([z for _, z in parts]), est.transform(frame), rtol=1e-6, atol=1e-7)
    detector = AnomalyDetector.from_autoencoder(est, score="recon")
    scores = np.concatenate([s for _, s in streaming.iter_scores(detector, frame, batch_rows=300)])
    np.testing.assert_allclose(scores, detector.decision_function(frame), rtol=1e-6)
    recs = pd.concat([r for _, r in streaming.iter_reconstructions(est, frame.drop(columns="key"))], ignore_index=True)
    assert all(ids is None for ids, _ in streaming.iter_reconstructions(est, frame.drop(columns="key")))
    pd.testing.assert_frame_equal(recs, est.reconstruct(frame), rtol=1e-5)
    with pytest.raises(InputError, match="batch_rows"):
        streaming.iter_embeddings(est, frame, batch_rows=0)


def test_memory_is_bounded_by_the_batch_whatever_the_rows(fitted, tmp_path, monkeypatch):
    """Count what is held: the largest batch embedded and the largest chunk written do not grow with
    the rows (10x more rows here), and the whole output is never handed over at once."""
    root, _, _, _ = fitted
    seen = {"transform": [], "write": []}
    transform, write_table = Autoencoder.transform, pq.ParquetWriter.write_table
    monkeypatch.setattr(Autoencoder, "transform", lambda self, X, **kw: seen["transform"].append(len(X))
                        or transform(self, X, **kw))
    monkeypatch.setattr(pq.ParquetWriter, "write_table", lambda self, table, *a, **kw: seen["write"].append(
        table.num_rows) or write_table(self, table, *a, **kw))
    largest = {}
    for n in (1_000, 10_000):
        data = _parquet_folder(_table(n, seed=1), tmp_path / f"in{n}", row_group=500)
        for key in seen:
            seen[key].clear()
        assert main(["embed", str(root / "model"), str(data), "--out", str(tmp_path / f"e{n}.parquet")]) == 0
        assert sum(seen["write"]) == n == pq.ParquetFile(tmp_path / f"e{n}.parquet").metadata.num_rows
        largest[n] = (max(seen["transform"]), max(seen["write"]))
    assert largest[1_000] == largest[10_000] == (BATCH, BATCH)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".npy"])
def test_a_failure_in_the_third_chunk_leaves_no_output_and_no_temporary_file(fitted, suffix, tmp_path, capsys):
    root, frame, _, _ = fitted
    bad = frame.astype({"a": object})
    bad.loc[2 * BATCH + 5, "a"] = "oops"   # a schema error in the 3rd batch: two are written before it
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "out" / f"emb{suffix}"
    assert main(["embed", str(root / "model"), str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'a'" in err and "oops" in err and f"row {2 * BATCH + 5}" in err
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_a_previous_output_survives_a_failure_and_a_killed_runs_leftover_goes(fitted, tmp_path):
    _, frame, est, _ = fitted
    out = tmp_path / "z.parquet"
    write_stream(out, [frame.iloc[:10]])
    (tmp_path / ".z.parquet.tmp-123-dead").write_bytes(b"half a file")   # what a kill -9 leaves

    def failing():
        yield frame.iloc[:10]
        raise InputError("broken in the middle")
    with pytest.raises(InputError, match="broken"):
        write_stream(out, failing())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.parquet"]
    assert len(pd.read_parquet(out)) == 10
    with pytest.raises(InputError, match="total row count"):
        write_stream(tmp_path / "z.npy", [np.zeros((3, 2))])
    with pytest.raises(InputError, match="4 rows came, not the 5"):
        write_stream(tmp_path / "z.npy", [np.zeros((3, 2)), np.zeros((1, 2))], n_rows=5)
    with pytest.raises(InputError, match="images cannot be written as .csv"):
        write_stream(tmp_path / "z.csv", [(None, np.zeros((2, 1, 4, 4)))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.parquet"]


def test_in_memory_inputs_and_per_row_embeddings_go_through_the_same_writer(fitted, tmp_path):
    """.npz archives stay in memory (they cannot be read lazily); --dims streams through the same chunks."""
    root, frame, est, inputs = fitted
    numbers = frame[["a", "b"]].to_numpy()
    model = Autoencoder("ae", latent_dim=1, epochs=1, hidden=(8,), verbose=False).fit(numbers)
    model.save(tmp_path / "m")
    np.savez(tmp_path / "x.npz", x=numbers)
    assert main(["embed", str(tmp_path / "m"), str(tmp_path / "x.npz"), "--out", str(tmp_path / "e.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "e.csv").to_numpy(np.float32), model.transform(numbers),
                               rtol=1e-6, atol=1e-7)
    from latentforge.transform import embed_truncated

    args = ["embed", str(root / "model"), str(inputs["csv"]), "--dims", "1", "--out", str(tmp_path / "d.npy")]
    assert main(args) == 0
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), embed_truncated(est, frame, 1), rtol=1e-5, atol=1e-6)


def test_image_folders_stream_with_their_file_names(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"im{i:03d}.png")
    est = Autoencoder("ae", latent_dim=2, epochs=1, hidden=(16,), verbose=False).fit(images[:, None])
    est.save(tmp_path / "m")
    assert main(["embed", str(tmp_path / "m"), str(folder), "--out", str(tmp_path / "e.parquet")]) == 0
    emb = pd.read_parquet(tmp_path / "e.parquet")
    assert emb["file"].tolist() == [f"im{i:03d}.png" for i in range(40)]
    np.testing.assert_allclose(emb[["z0", "z1"]].to_numpy(), est.transform(images[:, None]), rtol=1e-6, atol=1e-7)
    assert main(["reconstruct", str(tmp_path / "m"), str(folder), "--out", str(tmp_path / "r.csv")]) == 2
    parts = list(streaming.iter_reconstructions(est, folder, batch_rows=16))
    assert [r.shape for _, r in parts] == [(16, 1, 8, 8), (16, 1, 8, 8), (8, 1, 8, 8)]
    assert parts[-1][0]["file"].tolist() == [f"im{i:03d}.png" for i in range(32, 40)]
