"""Streaming data sources: every reader returns exactly the file's rows, each epoch reads every row
exactly once across ranks and DataLoader workers, shuffling and the hash split are seeded and
reproducible, memory stays within one fragment plus the shuffle buffer, and bad input is an
InputError naming the culprit. References are the files read whole with pandas/NumPy/PIL."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from latentforge.data.images import load_image_folder
from latentforge.data import (
    Chunk,
    CsvSource,
    DataSource,
    ImageFolderSource,
    ParquetSource,
    TorchStreamSource,
    hash_split,
    iter_batches,
    iter_chunks,
    open_source,
)
from latentforge.errors import InputError

N = 1_000


def _frame(n: int = N, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    frame = pd.DataFrame({
        "id": np.arange(start, start + n),
        "value": rng.normal(size=n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
    })
    frame.loc[frame.index[::97], "value"] = np.nan
    return frame


class _Rows(torch.utils.data.Dataset):
    """A map-style dataset of (row, label) pairs over a fixed array."""

    def __init__(self, array: np.ndarray):
        self.array = torch.as_tensor(array)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int):
        return self.array[i], i % 3


class _Items(torch.utils.data.IterableDataset):
    def __init__(self, array: np.ndarray):
        self.array = torch.as_tensor(array)

    def __iter__(self):
        return iter(self.array)


def _make(kind: str, tmp_path) -> tuple[DataSource, pd.DataFrame | np.ndarray]:
    """(source, reference): the reference is the same data read whole, independently of the source."""
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(N, 5)).astype(np.float32)
    images = rng.integers(0, 256, size=(60, 1, 6, 5), dtype=np.uint8)
    if kind == "parquet":
        _frame().to_parquet(tmp_path / "t.parquet", row_group_size=170)
        return open_source(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "t.parquet")
    if kind == "parquet_dir":
        (tmp_path / "d").mkdir()
        for i, (n, group) in enumerate([(400, 130), (250, 250), (350, 60)]):
            _frame(n, start=1000 * i).to_parquet(tmp_path / "d" / f"part-{i}.parquet", row_group_size=group)
        ref = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "d").glob("*.parquet"))])
        return open_source(tmp_path / "d"), ref
    if kind == "csv":
        _frame().to_csv(tmp_path / "t.csv", index=False)
        return open_source(tmp_path / "t.csv", block_size=4096), pd.read_csv(tmp_path / "t.csv")
    if kind == "npy":
        np.save(tmp_path / "t.npy", matrix)
        return open_source(tmp_path / "t.npy", fragment_rows=128), np.load(tmp_path / "t.npy")
    if kind == "npy_images":
        np.save(tmp_path / "i.npy", images[:, 0])  # (N, H, W): the source adds the channel axis
        return open_source(tmp_path / "i.npy", fragment_rows=7), images
    if kind == "safetensors_dir":
        (tmp_path / "s").mkdir()
        for i, part in enumerate(np.array_split(matrix, [300, 320])):
            save_file({"acts": torch.from_numpy(part.copy())}, tmp_path / "s" / f"shard-{i}.safetensors")
        return open_source(tmp_path / "s", fragment_rows=150), matrix
    if kind == "images":
        (tmp_path / "img").mkdir()
        for i, im in enumerate(images):
            Image.fromarray(im[0]).save(tmp_path / "img" / f"{i:03d}.png")
        return open_source(tmp_path / "img", fragment_rows=8), load_image_folder(tmp_path / "img")[0]
    if kind == "frame":
        return open_source(_frame(), fragment_rows=300), _frame()
    if kind == "array_images":
        return open_source(images, fragment_rows=16), images
    if kind == "torch_map":
        return open_source(_Rows(matrix), fragment_rows=99), matrix
    if kind == "torch_loader":
        loader = torch.utils.data.DataLoader(_Rows(matrix), batch_size=64)
        return open_source(loader), matrix
    if kind == "torch_iterable":
        return open_source(_Items(matrix), fragment_rows=111), matrix
    raise AssertionError(kind)


KINDS = ["parquet", "parquet_dir", "csv", "npy", "npy_images", "safetensors_dir", "images", "frame",
         "array_images", "torch_map", "torch_loader", "torch_iterable"]


def _assert_rows_match(rows: np.ndarray, data, ref) -> None:
    """``data`` holds exactly the reference rows ``rows`` (values, and the global index of a table)."""
    if isinstance(ref, pd.DataFrame):
        np.testing.assert_array_equal(data.index.to_numpy(), rows)
        expected = ref.iloc[rows].reset_index(drop=True)
        pd.testing.assert_frame_equal(data.reset_index(drop=True), expected, check_dtype=False)
    else:
        expected = ref[rows]
        got = data.to_numpy() if isinstance(data, pd.DataFrame) else data
        np.testing.assert_array_equal(got, expected.reshape(got.shape))


@pytest.mark.parametrize("kind", KINDS)
def test_every_source_returns_exactly_the_rows_of_its_file(kind, tmp_path):
    source, ref = _make(kind, tmp_path)
    assert source.n_rows == len(ref) == sum(source.fragment_sizes)
    assert source.kind == ("table" if isinstance(ref, pd.DataFrame) or ref.ndim == 2 else "image")
    ordered = list(iter_chunks(source, shuffle=False))
    rows = np.concatenate([c.rows for c in ordered])
    np.testing.assert_array_equal(rows, np.arange(len(ref)))  # storage order, nothing dropped
    for chunk in ordered:
        _assert_rows_match(chunk.rows, chunk.data, ref)
    shuffled = list(iter_chunks(source, shuffle=True, shuffle_buffer=200, seed=3))
    rows = np.concatenate([c.rows for c in shuffled])
    assert not np.array_equal(rows, np.arange(len(ref)))
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(ref)))  # the same multiset of rows
    for chunk in shuffled:
        _assert_rows_match(chunk.rows, chunk.data, ref)
    head = source.head(5)
    _assert_rows_match(np.arange(5), head, ref)


@pytest.mark.parametrize("kind", ["parquet_dir", "csv", "npy", "torch_map"])
def test_read_fragment_returns_that_fragment_only(kind, tmp_path):
    source, ref = _make(kind, tmp_path)
    offsets = source.offsets
    for f in (source.n_fragments - 1, 0, 1):
        data = source.read_fragment(f)
        assert len(data) == source.fragment_sizes[f]
        _assert_rows_match(np.arange(offsets[f], offsets[f + 1]), data, ref)
    with pytest.raises(IndexError):
        source.read_fragment(source.n_fragments)


def _parquet_dir(tmp_path) -> tuple[ParquetSource, int]:
    """A folder of Parquet files with unequal row groups (13 fragments of 20 to 130 rows)."""
    folder = tmp_path / "ds"
    folder.mkdir()
    for i, (n, group) in enumerate([(410, 130), (90, 90), (300, 47), (20, 20)]):
        _frame(n, start=1000 * i).to_parquet(folder / f"part-{i}.parquet", row_group_size=group)
    source = open_source(folder)
    assert len(set(source.fragment_sizes)) > 3
    return source, 820


class _Shard(torch.utils.data.IterableDataset):
    """What a streaming trainer does: each DataLoader worker iterates its own share of the epoch."""

    def __init__(self, source: DataSource, rank: int, world_size: int, shuffle: bool):
        self.source, self.rank, self.world_size, self.shuffle = source, rank, world_size, shuffle

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = -1 if info is None else info.id
        for chunk in iter_chunks(self.source, epoch=2, seed=5, shuffle=self.shuffle, shuffle_buffer=100,
                                 rank=self.rank, world_size=self.world_size):
            yield worker, chunk.rows


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_each_epoch_reads_every_row_exactly_once_across_ranks_and_workers(world_size, num_workers, shuffle, tmp_path):
    source, n = _parquet_dir(tmp_path)
    seen, by_consumer = [], {}
    for rank in range(world_size):
        loader = torch.utils.data.DataLoader(_Shard(source, rank, world_size, shuffle), batch_size=None,
                                             num_workers=num_workers)
        for worker, rows in loader:
            seen.append(rows.numpy())
            by_consumer.setdefault((rank, int(worker)), []).append(rows.numpy())
    rows = np.concatenate(seen)
    assert len(rows) == n  # no row twice ...
    np.testing.assert_array_equal(np.sort(rows), np.arange(n))  # ... and none missing
    assert len(by_consumer) == world_size * max(num_workers, 1)  # every consumer got a share


def test_a_rank_gets_the_fragments_at_its_positions(tmp_path):
    """Without shuffling the order is storage order, so rank r of 3 owns fragments r, r+3, ..."""
    source, _ = _parquet_dir(tmp_path)
    offsets = source.offsets
    for rank in range(3):
        got = [c.rows for c in iter_chunks(source, shuffle=False, rank=rank, world_size=3)]
        expected = [np.arange(offsets[f], offsets[f + 1]) for f in range(rank, source.n_fragments, 3)]
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_a_csv_is_shared_exactly_once_across_ranks(tmp_path):
    _frame().to_csv(tmp_path / "t.csv", index=False)
    source = CsvSource(tmp_path / "t.csv", block_size=2048)
    assert source.n_fragments > 6
    rows = np.concatenate([c.rows for rank in range(3)
                           for c in iter_chunks(source, rank=rank, world_size=3, shuffle_buffer=64)])
    np.testing.assert_array_equal(np.sort(rows), np.arange(N))


def _order(source: DataSource, **kwargs) -> np.ndarray:
    return np.concatenate([c.rows for c in iter_chunks(source, shuffle_buffer=150, **kwargs)])


def test_epochs_and_seeds_change_the_order_and_repeat_exactly(tmp_path):
    source, ref = _make("parquet_dir", tmp_path)
    first = _order(source, epoch=0, seed=1)
    np.testing.assert_array_equal(first, _order(source, epoch=0, seed=1))
    assert not np.array_equal(first, _order(source, epoch=1, seed=1))
    assert not np.array_equal(first, _order(source, epoch=0, seed=2))
    # the same arguments give the same chunks, data included
    a = list(iter_chunks(source, epoch=4, seed=9, shuffle_buffer=150))
    b = list(iter_chunks(source, epoch=4, seed=9, shuffle_buffer=150))
    assert [len(c.rows) for c in a] == [len(c.rows) for c in b]
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x.data, y.data)
    # rows are mixed across fragments: the first chunk draws from more than one row group
    first_chunk = a[0].rows
    fragments = np.searchsorted(source.offsets, first_chunk, side="right") - 1
    assert len(np.unique(fragments)) > 1


def _fragment_sequence(source: DataSource, **kwargs) -> list[int]:
    """The fragments in the order read (shuffle_buffer=0: each chunk is one whole fragment)."""
    chunks = iter_chunks(source, shuffle_buffer=0, **kwargs)
    return [int(np.searchsorted(source.offsets, c.rows.min(), side="right") - 1) for c in chunks]


def test_the_fragment_order_is_one_permutation_per_epoch_shared_by_all_ranks(tmp_path):
    source, _ = _parquet_dir(tmp_path)
    order = _fragment_sequence(source, epoch=3, seed=4)
    assert sorted(order) == list(range(source.n_fragments)) and order != sorted(order)
    assert order != _fragment_sequence(source, epoch=4, seed=4)
    assert order == _fragment_sequence(source, epoch=3, seed=4)
    for rank in range(3):  # rank r takes positions r, r+3, ... of that same permutation
        assert _fragment_sequence(source, epoch=3, seed=4, rank=rank, world_size=3) == order[rank::3]


def _splitmix64_reference(x: int) -> int:
    """Plain-integer splitmix64 (the published constants), independent of the vectorised one."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_hash_split_is_a_seeded_row_hash():
    rows = np.arange(200_000)
    fraction, seed = 0.2, 7
    mask = hash_split(rows, fraction, seed)
    np.testing.assert_array_equal(mask, hash_split(rows, fraction, seed))
    sd = np.sqrt(len(rows) * fraction * (1 - fraction))
    assert abs(mask.sum() - fraction * len(rows)) < 5 * sd
    # each row's answer depends on its index only: any subset, in any order, agrees
    picked = np.random.default_rng(0).permutation(rows)[:5000]
    np.testing.assert_array_equal(hash_split(picked, fraction, seed), mask[picked])
    key = _splitmix64_reference(seed)
    expected = [_splitmix64_reference(int(r) ^ key) < int(fraction * 2**64) for r in rows[:300]]
    np.testing.assert_array_equal(mask[:300], expected)
    assert (mask != hash_split(rows, fraction, seed + 1)).mean() > 0.2
    assert not hash_split(rows, 0.0).any() and hash_split(rows, 1.0).all()
    with pytest.raises(InputError, match="fraction"):
        hash_split(rows, 1.5)


def test_the_validation_split_and_its_complement_cover_the_rows_once(tmp_path):
    source, _ = _make("parquet_dir", tmp_path)
    n = source.n_rows

    def held_out(r):
        return hash_split(r, 0.25, seed=3)

    val = np.concatenate([c.rows for c in iter_chunks(source, row_filter=held_out, epoch=0)])
    train = np.concatenate([c.rows for c in iter_chunks(source, row_filter=lambda r: ~held_out(r), epoch=5)])
    np.testing.assert_array_equal(np.sort(val), np.flatnonzero(held_out(np.arange(n))))
    assert len(np.intersect1d(val, train)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([val, train])), np.arange(n))
    again = np.concatenate([c.rows for c in iter_chunks(source, row_filter=held_out, epoch=9, rank=1, world_size=2)]
                           + [c.rows for c in iter_chunks(source, row_filter=held_out, epoch=9, rank=0, world_size=2)])
    np.testing.assert_array_equal(np.sort(again), np.sort(val))  # the same rows on any epoch and sharding


class _Spy(ParquetSource):
    """Records the rows of every fragment read."""

    reads: list[int]

    def read_fragment(self, f):
        data = super().read_fragment(f)
        self.reads.append(len(data))
        return data


def test_memory_stays_within_one_row_group_plus_the_buffer(tmp_path, monkeypatch):
    path = tmp_path / "big.parquet"
    _frame(3000).to_parquet(path, row_group_size=250)
    groups = [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(12)]
    whole = lambda *a, **k: pytest.fail("the whole file was read")  # noqa: E731
    monkeypatch.setattr(pd, "read_parquet", whole)
    monkeypatch.setattr(pq, "read_table", whole)
    monkeypatch.setattr(pq.ParquetFile, "read", whole)
    source = _Spy(path, columns=["value", "id"])
    source.reads = []
    assert source.fragment_sizes == groups
    buffer = 400
    emitted = 0
    for chunk in iter_chunks(source, shuffle_buffer=buffer, seed=1):
        held = sum(source.reads) - emitted  # rows read and not yet handed on, this chunk included
        assert held <= buffer + max(groups), held
        assert len(chunk.rows) <= buffer + max(groups)
        assert list(chunk.data.columns) == ["value", "id"]  # only the columns asked for
        emitted += len(chunk.rows)
    assert emitted == 3000 and max(source.reads) == 250 and len(source.reads) == len(groups)


def test_iter_batches_rebatches_transformed_chunks(tmp_path):
    source, ref = _make("npy", tmp_path)
    calls = []

    def transform(raw: pd.DataFrame) -> np.ndarray:
        calls.append(len(raw))
        return raw.to_numpy() * 2

    batches = list(iter_batches(source, transform, 64, seed=2, shuffle_buffer=300))
    sizes = [len(r) for r, _ in batches]
    assert sizes[:-1] == [64] * (len(batches) - 1) and 0 < sizes[-1] <= 64 and sum(sizes) == N
    rows = np.concatenate([r for r, _ in batches])
    np.testing.assert_array_equal(np.sort(rows), np.arange(N))
    for r, x in batches:
        assert x.dtype == np.float32
        np.testing.assert_allclose(x, ref[r] * 2)
    assert len(calls) < len(batches)  # once per chunk, not per batch
    kept = list(iter_batches(source, transform, 64, drop_last=True, seed=2, shuffle_buffer=300))
    assert [len(r) for r, _ in kept] == [64] * (N // 64)
    np.testing.assert_array_equal(np.concatenate([r for r, _ in kept]), rows[: 64 * (N // 64)])


def test_torch_images_and_labels(tmp_path):
    images = torch.rand(40, 3, 4, 4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.arange(40)), batch_size=16)
    source = open_source(loader)
    assert isinstance(source, TorchStreamSource) and source.kind == "image" and not source.shardable
    got = np.concatenate([c.data for c in iter_chunks(source, shuffle=False)])
    np.testing.assert_array_equal(got, images.numpy())
    assert source.fragment_sizes == [16, 16, 8]  # known after the pass


def test_image_folders_follow_load_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        pixels = rng.integers(0, 256, (4, 3, 3) if i == 2 else (4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    source = ImageFolderSource(tmp_path, fragment_rows=2)
    images, names = load_image_folder(tmp_path)
    assert source.files == names and source.fragment_sizes == [2, 2, 1]
    got = np.concatenate([source.read_fragment(f) for f in range(3)])
    assert got.dtype == np.uint8 and got.shape == (5, 3, 4, 3)  # one RGB file makes the folder RGB
    np.testing.assert_array_equal(got, images)


def test_a_csv_column_that_turns_to_text_later_is_read_as_text(tmp_path):
    frame = pd.DataFrame({"code": np.arange(3000).astype(object), "x": np.arange(3000) / 7})
    frame.loc[2900, "code"] = "oops"
    frame.to_csv(tmp_path / "t.csv", index=False)
    source = CsvSource(tmp_path / "t.csv", block_size=4096)
    got = pd.concat([c.data for c in iter_chunks(source, shuffle=False)])
    ref = pd.read_csv(tmp_path / "t.csv")
    assert got["code"].astype(str).tolist() == ref["code"].astype(str).tolist()
    np.testing.assert_allclose(got["x"], ref["x"])


def _write(path, content: bytes = b""):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make,culprit,match", [
    (lambda p: p / "missing.parquet", "missing.parquet", "not found"),
    (lambda p: _write(p / "empty.csv"), "empty.csv", "is empty"),
    (lambda p: _write(p / "empty.parquet"), "empty.parquet", "is empty"),
    (lambda p: _write(p / "empty.npy"), "empty.npy", "is empty"),
    (lambda p: _write(p / "head.csv", b"a,b\n"), "head.csv", "no rows"),
    (lambda p: _write(p / "junk.parquet", b"not parquet at all"), "junk.parquet", "cannot be read"),
    (lambda p: _write(p / "junk.safetensors", b"not safetensors"), "junk.safetensors", "cannot be read"),
    (lambda p: _write(p / "table.txt", b"a\n1\n"), "table.txt", "unsupported type"),
    (lambda p: _write(p / "arr.npz", b"PK"), "arr.npz", ".npy"),
])
def test_bad_paths_are_input_errors_naming_the_culprit(tmp_path, make, culprit, match):
    with pytest.raises(InputError, match=match) as err:
        open_source(make(tmp_path))
    assert culprit in str(err.value)


def test_bad_folders_and_objects_are_input_errors(tmp_path):
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(odd / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(odd / "b.png")
    with pytest.raises(InputError, match=re.escape("image b.png is 4x5 but a.png is 4x4")):
        open_source(odd)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _frame(10).to_parquet(mixed / "t.parquet")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(mixed / "a.png")
    with pytest.raises(InputError, match="mixed.*mixes Parquet and image"):
        open_source(mixed)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty contains no"):
        open_source(tmp_path / "empty")
    _frame(10).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(InputError, match="'nope' not found"):
        open_source(tmp_path / "t.parquet", columns=["nope"])
    with pytest.raises(InputError, match="unknown option.*'colums'"):
        open_source(tmp_path / "t.parquet", colums=["id"])
    with pytest.raises(InputError, match="cannot read a set"):
        open_source({1, 2})
    with pytest.raises(InputError, match="shape"):
        open_source(np.zeros(5))
    source = open_source(_frame(10))
    assert open_source(source) is source
    with pytest.raises(InputError, match="rank"):
        next(iter_chunks(source, rank=2, world_size=2))
    assert isinstance(next(iter_chunks(source)), Chunk)


# -- the columnar fast path: Arrow/array columns to features without pandas ---------------------

def _numeric_parquet(tmp_path) -> DataSource:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"id": np.arange(N), "a": rng.normal(size=N).astype(np.float32),
                          "b": rng.normal(100, 5, size=N), "c": pd.array(rng.integers(0, 9, N), dtype="Int64")})
    frame.loc[frame.index[::31], "a"] = np.nan
    frame.loc[frame.index[::17], "c"] = pd.NA  # an integer column with nulls: NaN as float64, as pandas reads it
    frame.to_parquet(tmp_path / "n.parquet", row_group_size=130)
    return open_source(tmp_path / "n.parquet")


def _fitted_on(source: DataSource, **options):
    from latentforge.data import TabularPreprocessor

    return TabularPreprocessor(**options).fit_stream(c.data for c in iter_chunks(source, shuffle=False))


@pytest.mark.parametrize("kind", ["numeric_parquet", "parquet_dir_numeric", "npy", "safetensors_dir", "torch_map",
                                  "array"])
def test_the_numeric_view_streams_the_same_batches_bit_for_bit(kind, tmp_path):
    from latentforge.data import ColumnBlock, numeric_view

    options = {}
    if kind == "numeric_parquet":
        source, options = _numeric_parquet(tmp_path), {"id_columns": ("id",)}
    elif kind == "parquet_dir_numeric":
        source, _ = _make("parquet_dir", tmp_path)
        options = {"id_columns": ("id",), "column_types": {"city": "ignore"}}
    elif kind == "array":
        source = open_source(np.random.default_rng(4).integers(-9, 9, size=(N, 4)), fragment_rows=210)
    else:
        source, _ = _make(kind, tmp_path)
    pre = _fitted_on(source, **options)
    view, fast = numeric_view(source, pre)
    assert view.fragment_sizes == source.fragment_sizes
    assert isinstance(view.read_fragment(1), ColumnBlock)
    slow = lambda raw: pre.transform(raw).reshape(len(raw), -1)  # noqa: E731
    settings = [dict(seed=0, epoch=1), dict(seed=5, epoch=2, shuffle_buffer=0),
                dict(shuffle=False, row_filter=lambda r: hash_split(r, 0.2, 1)),
                dict(seed=2, epoch=1, rank=1, world_size=2, shuffle_buffer=100, row_filter=lambda r: r % 3 > 0)]
    for kw in settings:
        want = list(iter_batches(source, slow, 64, **kw))
        got = list(iter_batches(view, fast, 64, **kw))
        assert len(got) == len(want) > 1
        for (rows_g, x_g), (rows_w, x_w) in zip(got, want):
            np.testing.assert_array_equal(rows_g, rows_w)
            np.testing.assert_array_equal(x_g.view(np.uint32), x_w.view(np.uint32))


def test_the_numeric_view_applies_only_where_it_gives_the_same_features(tmp_path):
    from latentforge.data import numeric_view

    mixed, _ = _make("parquet", tmp_path)  # a categorical column: the pandas transform
    assert numeric_view(mixed, _fitted_on(mixed)) is None
    csv, _ = _make("csv", tmp_path)  # read only from the start
    assert numeric_view(csv, _fitted_on(csv, column_types={"city": "ignore"})) is None
    numeric = _numeric_parquet(tmp_path)
    assert numeric_view(numeric, _fitted_on(numeric, id_columns=("id",))) is not None
    # a column the schema does not know: the slow transform's error, not a silent skip
    assert numeric_view(numeric, _fitted_on(open_source(tmp_path / "n.parquet", columns=["a", "b"]))) is None
    frame = pd.DataFrame({"t": pd.date_range("2020", periods=50, freq="D"), "x": np.arange(50.0)})
    frame.to_parquet(tmp_path / "time.parquet")
    timed = open_source(tmp_path / "time.parquet")
    pre = _fitted_on(timed)
    assert pre.numeric_feature_columns is None and numeric_view(timed, pre) is None  # datetimes: pandas


def test_column_readers_give_the_numbers_pandas_holds(tmp_path):
    source = _numeric_parquet(tmp_path)
    read = source.column_reader(["c", "a"])
    frame = source.read_fragment(2)
    c, a = read(2)
    np.testing.assert_array_equal(c, frame["c"].to_numpy(dtype=float, na_value=np.nan))
    np.testing.assert_array_equal(a, frame["a"].to_numpy(dtype=float, na_value=np.nan))
    assert a.dtype == np.float32 and np.isnan(c).sum() == frame["c"].isna().sum() > 0
    mixed, _ = _make("parquet", tmp_path)
    assert mixed.column_reader(["value", "city"]) is None and mixed.column_reader(["nope"]) is None
    npy, ref = _make("npy", tmp_path)
    x0, x3 = npy.column_reader(["x0", "x3"])(1)
    np.testing.assert_array_equal(np.stack([x0, x3], 1), ref[128:256][:, [0, 3]])
    assert open_source(_frame()).column_reader(["value"]) is None  # an in-memory frame: pandas already


@pytest.mark.parametrize("drop_last", [False, True])
def test_rebatch_cuts_the_rows_in_order_and_slices_inside_a_chunk(drop_last):
    from latentforge.data import rebatch

    rng = np.random.default_rng(0)
    sizes = [5, 3, 9, 1, 1, 16, 2]
    starts = np.cumsum([0, *sizes])
    chunks = [Chunk(np.arange(a, a + n), rng.normal(size=(n, 2))) for a, n in zip(starts, sizes)]
    whole = np.concatenate([c.data for c in chunks])
    for size in (1, 4, 7, 37, 100):
        batches = list(rebatch(iter(chunks), size, drop_last=drop_last))
        n_out = len(whole) - (len(whole) % size if drop_last else 0)
        assert [len(b.rows) for b in batches] == [min(size, n_out - a) for a in range(0, n_out, size)]
        np.testing.assert_array_equal(np.concatenate([b.rows for b in batches]) if batches else [], np.arange(n_out))
        if batches:
            np.testing.assert_array_equal(np.concatenate([b.data for b in batches]), whole[:n_out])
    inside = next(b for b in rebatch(iter(chunks), 4) if b.rows[0] == 20)  # rows 20..23 lie in the 16-row chunk
    assert np.shares_memory(inside.data, chunks[5].data)  # a view, not a copy


@pytest.mark.parametrize("kind", ["parquet_dir", "csv", "npy"])
def test_rows_set_aside_in_a_training_pass_are_the_validation_stream(kind, tmp_path):
    from latentforge.data import RowsAside

    source, _ = _make(kind, tmp_path)
    pre = _fitted_on(source, id_columns=("id",)) if source.columns != [f"x{i}" for i in range(5)] else None
    transform = ((lambda raw: pre.transform(raw)) if pre is not None else (lambda raw: raw.to_numpy() * 2))
    is_val = lambda rows: hash_split(rows, 0.15, 4)  # noqa: E731
    want = [x for _, x in iter_batches(source, transform, 50, shuffle=False, row_filter=is_val)]
    aside = RowsAside(source, is_val, transform)
    train = list(iter_batches(aside, transform, 64, epoch=3, seed=1, shuffle_buffer=200,
                              row_filter=lambda r: ~is_val(r)))
    plain = list(iter_batches(source, transform, 64, epoch=3, seed=1, shuffle_buffer=200,
                              row_filter=lambda r: ~is_val(r)))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(train, plain))
    got = aside.batches(50)
    assert len(got) == len(want) > 2 and all(np.array_equal(g, w) for g, w in zip(got, want))
    partial = RowsAside(source, is_val, transform)
    next(iter_batches(partial, transform, 64, shuffle=False, row_filter=lambda r: ~is_val(r)))
    assert partial.batches(50) is None  # not every fragment was read
