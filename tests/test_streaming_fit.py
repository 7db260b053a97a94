"""Fitting from streamed sources: a Parquet folder, a CSV, a .npy, a torch DataLoader — never loaded whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from latentforge import Autoencoder
from latentforge.data import hash_split, open_source

FAST = dict(epochs=3, hidden=(16,), batch_size=32, verbose=False, threads=1)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    n = 400
    z = rng.normal(size=(n, 2))
    frame = pd.DataFrame({"id": np.arange(n), "a": z[:, 0], "b": z[:, 0] - z[:, 1], "c": 2 * z[:, 1] + 1,
                          "kind": np.where(z[:, 0] > 0, "up", "down")})
    folder = root / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(n), 3)):  # three files, several row groups each
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), folder / f"p{i}.parquet",
                       row_group_size=50)
    frame.to_csv(root / "t.csv", index=False)
    return root, frame


def _assert_same_schema(a, b):
    """Equal preprocessing states; statistics merged across different chunks agree to rounding."""
    cols_a, cols_b = a.preprocessor_.state()["columns"], b.preprocessor_.state()["columns"]
    assert len(cols_a) == len(cols_b)
    for got, want in zip(cols_a, cols_b):
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_a_parquet_folder_trains_like_the_same_rows_in_memory(table):
    root, frame = table
    streamed = Autoencoder("ae", 2, id_columns=("id",), **FAST).fit(root / "parts")
    # the one-pass schema is the in-memory one
    _assert_same_schema(streamed, Autoencoder("ae", 2, id_columns=("id",), **FAST).fit(frame))
    n_val = int(hash_split(np.arange(len(frame)), 0.1, 0).sum())
    assert streamed.metrics_["n_val"] == n_val and streamed.metrics_["n_train"] == len(frame) - n_val
    assert len(streamed.history_) == 3 and np.isfinite(streamed.history_[-1]["val_total"])
    Z = streamed.transform(frame)
    assert Z.shape == (len(frame), 2)
    # it learns as well as the in-memory path on the same budget, and far better than no training
    longer = {**FAST, "epochs": 15}
    streamed = Autoencoder("ae", 2, id_columns=("id",), **longer).fit(root / "parts")
    in_memory = Autoencoder("ae", 2, id_columns=("id",), **longer).fit(frame)
    untrained = Autoencoder("ae", 2, id_columns=("id",), **{**FAST, "epochs": 1, "lr": 1e-12}).fit(root / "parts")
    mse = {name: est.score_samples(frame).mean() for name, est in
           (("streamed", streamed), ("in_memory", in_memory), ("untrained", untrained))}
    assert mse["streamed"] < 1.25 * mse["in_memory"] and mse["streamed"] < 0.6 * mse["untrained"], mse


def test_csv_npy_and_a_dataloader_stream_too(table, tmp_path):
    root, frame = table
    csv = Autoencoder("ae", 2, id_columns=("id",), **FAST).fit(root / "t.csv")
    assert csv.metrics_["n_train"] + csv.metrics_["n_val"] == len(frame)
    X = np.array(frame[["a", "b", "c"]], dtype=np.float32)
    np.save(tmp_path / "x.npy", X)
    npy = Autoencoder("ae", 2, **FAST).fit(tmp_path / "x.npy")
    assert npy.transform(X).shape == (len(X), 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(X)), batch_size=64)
    from_loader = Autoencoder("ae", 2, **FAST).fit(loader)
    assert from_loader.metrics_["n_train"] + from_loader.metrics_["n_val"] == len(X)
    # the same rows give the same preprocessing whatever the container
    _assert_same_schema(from_loader, npy)


def test_streamed_fits_are_reproducible_and_resumable(table, tmp_path):
    root, frame = table
    a = Autoencoder("vae", 2, id_columns=("id",), **FAST).fit(root / "parts")
    b = Autoencoder("vae", 2, id_columns=("id",), **FAST).fit(open_source(root / "parts"))
    for x, y in zip(a.model_.state_dict().values(), b.model_.state_dict().values()):
        assert torch.equal(x, y)

    class Stop(Exception):
        pass

    def stop(record):
        if record["epoch"] == 2:
            raise Stop
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Stop):
        Autoencoder("vae", 2, id_columns=("id",), **FAST).fit(root / "parts", on_epoch=stop, checkpoint=ckpt)
    c = Autoencoder("vae", 2, id_columns=("id",), **FAST).fit(root / "parts", checkpoint=ckpt, resume=True)
    for x, y in zip(a.model_.state_dict().values(), c.model_.state_dict().values()):
        assert torch.equal(x, y)


def test_an_unstreamable_path_is_a_clear_error(tmp_path):
    from latentforge.errors import InputError

    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(InputError, match="cannot be streamed"):
        Autoencoder("ae", 2, **FAST).fit(tmp_path / "x.txt")
