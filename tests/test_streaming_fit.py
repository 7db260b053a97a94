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

# a fixed small recipe (lr too: the streamed/in-memory comparison below was calibrated at 1e-3)
FAST = dict(epochs=3, hidden=(16,), batch_size=32, lr=1e-3, verbose=False, threads=1)


@pytest.fixture(autouse=True)
def streamed(monkeypatch):
    """These files are small enough to be held in memory after one read; the tests here are about
    the stream, so they read it every epoch (the held path has its own tests at the end)."""
    import latentforge.estimator.autoencoder as autoencoder

    monkeypatch.setattr(autoencoder, "HOLD_IN_MEMORY_BYTES", 0)


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


@pytest.fixture(scope="module")
def numeric_parquet(tmp_path_factory):
    """An all-numeric table (with an id and missing values): the columnar fast path applies."""
    path = tmp_path_factory.mktemp("numeric") / "n.parquet"
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 2))
    frame = pd.DataFrame({"id": np.arange(500), "a": z[:, 0].astype(np.float32), "b": z[:, 0] - z[:, 1],
                          "n": rng.integers(0, 5, 500)})
    frame.loc[frame.index[::23], "b"] = np.nan
    frame.to_parquet(path, row_group_size=60)
    return path


def _without_fast_path(monkeypatch):
    import latentforge.estimator.autoencoder as autoencoder

    monkeypatch.setattr(autoencoder, "numeric_view", lambda source, pre: None)


def test_the_columnar_fast_path_trains_exactly_as_the_pandas_path(numeric_parquet, monkeypatch):
    from latentforge.data import numeric_view
    from latentforge.estimator import autoencoder

    calls = []
    monkeypatch.setattr(autoencoder, "numeric_view", lambda s, p: calls.append(1) or numeric_view(s, p))
    fast = Autoencoder("ae", 2, id_columns=("id",), **FAST).fit(numeric_parquet)
    assert calls
    _without_fast_path(monkeypatch)
    slow = Autoencoder("ae", 2, id_columns=("id",), **FAST).fit(numeric_parquet)
    for (k, x), y in zip(fast.model_.state_dict().items(), slow.model_.state_dict().values()):
        assert torch.equal(x, y), k
    drop = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert [drop(h) for h in fast.history_] == [drop(h) for h in slow.history_]
    assert fast.metrics_ == slow.metrics_
    np.testing.assert_array_equal(fast.train_codes_, slow.train_codes_)


def test_a_fast_path_fit_killed_mid_epoch_resumes_bit_for_bit(numeric_parquet, tmp_path):
    class Stop(Exception):
        pass

    seen = {"n": 0}

    def stop_at_step_11(model, x):
        seen["n"] += 1
        if seen["n"] == 11:
            raise Stop
        return {}
    options = dict(id_columns=("id",), checkpoint_every=4, **FAST)
    reference = Autoencoder("vae", 2, **options).fit(numeric_parquet)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Stop):
        Autoencoder("vae", 2, regularizers=(stop_at_step_11,), **options).fit(numeric_parquet, checkpoint=ckpt)
    resumed = Autoencoder("vae", 2, **options).fit(numeric_parquet, checkpoint=ckpt, resume=True)
    for (k, x), y in zip(reference.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(x, y), k
    assert [h["val_total"] for h in reference.history_] == [h["val_total"] for h in resumed.history_]


def test_validation_batches_are_read_once_and_then_served_from_memory():
    from latentforge.train.batches import StreamBatches

    reads = []
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(n, 3)).astype(np.float32) for n in (4, 4, 2)]

    def read(epoch):
        reads.append(epoch)
        return iter(arrays)
    cpu = torch.device("cpu")
    kept = StreamBatches(read, 10, 4, cpu, cache_bytes=10 * 3 * 4)
    expected = [a.copy() for a in arrays]
    for b in kept.epoch(1):
        b.mul_(0)  # a step that writes into its input does not change what later epochs get
    for epoch in (2, 3):
        again = [b.numpy() for b in kept.epoch(epoch)]
        assert len(again) == 3 and all(np.array_equal(a, b) for a, b in zip(expected, again))
        again[0][:] = 7
    assert reads == [1]
    reads.clear()
    too_big = StreamBatches(read, 10, 4, cpu, cache_bytes=10 * 3 * 4 - 1)
    list(too_big.epoch(1)), list(too_big.epoch(2))
    assert reads == [1, 2]
    reads.clear()
    never = StreamBatches(read, 10, 4, cpu)
    next(iter(never.epoch(1))), list(never.epoch(2)), list(never.epoch(3))
    assert reads == [1, 2, 3]


@pytest.mark.parametrize("data", ["numeric", "mixed"])
def test_setting_validation_rows_aside_changes_nothing_but_the_reads(data, numeric_parquet, table, monkeypatch):
    import latentforge.estimator.autoencoder as autoencoder
    from latentforge.data import sources

    path = numeric_parquet if data == "numeric" else table[0] / "parts"
    reads = []  # fragments read, through pandas or through the columnar reader
    read_fragment, column_reader = sources.ParquetSource.read_fragment, sources.ParquetSource.column_reader
    monkeypatch.setattr(sources.ParquetSource, "read_fragment", lambda self, f: reads.append(f) or read_fragment(self, f))

    def counted_column_reader(self, columns):
        read = column_reader(self, columns)
        return None if read is None else (lambda f: reads.append(f) or read(f))
    monkeypatch.setattr(sources.ParquetSource, "column_reader", counted_column_reader)
    options = dict(id_columns=("id",), **{**FAST, "epochs": 3})
    kept = Autoencoder("ae", 2, **options).fit(path)
    n_kept = len(reads)
    reads.clear()
    monkeypatch.setattr(autoencoder, "VALIDATION_CACHE_BYTES", 0)  # read the validation rows every epoch
    every = Autoencoder("ae", 2, **options).fit(path)
    n_fragments = sources.open_source(path).n_fragments
    # the statistics pass, the kept-sample pass and three training passes (which set the validation
    # rows aside); without the cache also three validation passes and the metrics' one
    assert (n_kept, len(reads)) == (5 * n_fragments, 9 * n_fragments)
    for (k, x), y in zip(kept.model_.state_dict().items(), every.model_.state_dict().values()):
        assert torch.equal(x, y), k
    drop = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert [drop(h) for h in kept.history_] == [drop(h) for h in every.history_]
    assert kept.metrics_ == every.metrics_


def _counting_fragment_reads(monkeypatch) -> list:
    from latentforge.data import sources

    reads = []
    read_fragment = sources.ParquetSource.read_fragment
    monkeypatch.setattr(sources.ParquetSource, "read_fragment", lambda self, f: reads.append(f) or read_fragment(self, f))
    return reads


def test_a_small_source_is_read_once_and_trained_on_in_memory(table, monkeypatch, tmp_path):
    import latentforge.estimator.autoencoder as autoencoder

    root, frame = table
    reads = _counting_fragment_reads(monkeypatch)
    monkeypatch.setattr(autoencoder, "HOLD_IN_MEMORY_BYTES", 256 << 20)
    options = dict(id_columns=("id",), **{**FAST, "epochs": 6})
    held = Autoencoder("ae", 2, **options).fit(root / "parts")
    n_fragments = len(set(reads))
    # the statistics pass and one read of the training and of the validation rows, whatever the epochs
    assert len(reads) == 3 * n_fragments and len(held.history_) == 6
    # the same hash split as the stream, the same preprocessing as the rows in memory
    n_val = int(hash_split(np.arange(len(frame)), 0.1, 0).sum())
    assert (held.metrics_["n_val"], held.metrics_["n_train"]) == (n_val, len(frame) - n_val)
    assert held.held_out_ == {"n_rows": len(frame), "hash_fraction": 0.1, "hash_seed": 0}
    _assert_same_schema(held, Autoencoder("ae", 2, id_columns=("id",), **FAST).fit(frame))
    # the rows it holds are the stream's training rows, in storage order (all kept: fewer than 10,000)
    is_val = hash_split(np.arange(len(frame)), 0.1, 0)
    np.testing.assert_allclose(held.train_codes_, held.transform(frame[~is_val]), rtol=1e-5, atol=1e-6)
    # it learns as well as the stream on the same budget, and a killed run resumes bit for bit
    monkeypatch.setattr(autoencoder, "HOLD_IN_MEMORY_BYTES", 0)
    streamed = Autoencoder("ae", 2, **options).fit(root / "parts")
    assert held.score_samples(frame).mean() < 1.25 * streamed.score_samples(frame).mean()
    monkeypatch.setattr(autoencoder, "HOLD_IN_MEMORY_BYTES", 256 << 20)

    class Stop(Exception):
        pass

    def stop(record):
        if record["epoch"] == 3:
            raise Stop
    with pytest.raises(Stop):
        Autoencoder("ae", 2, **options).fit(root / "parts", on_epoch=stop, checkpoint=tmp_path / "ckpt")
    resumed = Autoencoder("ae", 2, **options).fit(root / "parts", checkpoint=tmp_path / "ckpt", resume=True)
    for (k, x), y in zip(held.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(x, y), k


def test_a_source_over_the_limit_is_still_streamed(table, monkeypatch):
    import latentforge.estimator.autoencoder as autoencoder

    root, frame = table
    reads = _counting_fragment_reads(monkeypatch)
    monkeypatch.setattr(autoencoder, "HOLD_IN_MEMORY_BYTES", 100 * 4 * 4)  # 100 rows of 4 features: under 360
    Autoencoder("ae", 2, id_columns=("id",), **{**FAST, "epochs": 4}).fit(root / "parts")
    # the statistics pass, the kept sample, and each epoch's training pass (validation kept after one)
    assert len(reads) == 6 * len(set(reads))
