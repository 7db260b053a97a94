"""One-pass fitting over chunks: the same saved schema as fitting the whole table, exact where it
says so (means, standard deviations, categories), a bounded seeded sample for the medians, mergeable
accumulators, and the same errors. References are numpy and collections.Counter, not the code under test."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from latentforge.data import ImagePreprocessor, TabularPreprocessor
from latentforge.data.tabular import MISSING, TableStats
from latentforge.errors import InputError

CUTS = [0, 1, 150, 151, 380, 381, 500]  # unequal chunks, 1-row ones included (first and in the middle)


def chunked(frame: pd.DataFrame, cuts=CUTS) -> list[pd.DataFrame]:
    return [frame.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


@pytest.fixture
def table() -> pd.DataFrame:
    """Every role, missing values, integer and boolean columns, and categories with tied counts."""
    rng = np.random.default_rng(3)
    n = 500
    x = rng.normal(50, 7, n)
    x[rng.random(n) < 0.1] = np.nan
    x[0] = 48.5  # the 1-row first chunk is observed, so roles are those of the whole table
    ties = np.repeat(np.array(["d", "b", "a", "c", "e", "f", None], dtype=object),
                     [95, 95, 95, 80, 80, 40, 15])  # a-b-d tie, c-e tie at the cut (max_categories=4)
    city = pd.Series(rng.permutation(ties), dtype=object)
    return pd.DataFrame({
        "customer_id": [f"c{i:04d}" for i in range(n)],
        "x": x,
        "count": rng.integers(0, 40, n),
        "big": 1e9 + rng.normal(0, 1, n),
        "city": city,
        "member": rng.random(n) < 0.3,
        "churn": rng.integers(0, 2, n),
    })


def make(**kw) -> TabularPreprocessor:
    return TabularPreprocessor(id_columns=("customer_id",), label="churn", **kw)


def assert_same_state(a: dict, b: dict, rtol: float = 1e-12) -> None:
    """Equal key for key; means and standard deviations to rtol, everything else exactly."""
    assert a.keys() == b.keys()
    assert [c["name"] for c in a["columns"]] == [c["name"] for c in b["columns"]]
    for ca, cb in zip(a["columns"], b["columns"]):
        assert ca.keys() == cb.keys(), ca["name"]
        for key in ca:
            if key in ("mean", "std"):
                assert ca[key] == pytest.approx(cb[key], rel=rtol, abs=0), (ca["name"], key)
            else:
                assert ca[key] == cb[key], (ca["name"], key)
    assert {k: v for k, v in a.items() if k != "columns"} == {k: v for k, v in b.items() if k != "columns"}


def test_stream_gives_fits_state_and_the_independent_reference(table):
    whole = make(max_categories=4).fit(table).state()
    streamed = make(max_categories=4).fit_stream(chunked(table)).state()
    assert_same_state(streamed, whole)
    json.dumps(streamed)  # plain JSON, as the in-memory state
    cols = {c["name"]: c for c in streamed["columns"]}
    assert {n: c["role"] for n, c in cols.items()} == {
        "customer_id": "id", "x": "numeric", "count": "numeric", "big": "numeric",
        "city": "categorical", "member": "categorical", "churn": "label"}
    for name in ("x", "count", "big"):
        v = table[name].to_numpy(dtype=float)
        obs = v[~np.isnan(v)]
        assert cols[name]["mean"] == pytest.approx(obs.mean(), rel=1e-12)
        assert cols[name]["std"] == pytest.approx(obs.std(), rel=1e-12)   # population std
        assert cols[name]["median"] == np.median(obs)                      # 500 values < reservoir: exact
        assert cols[name]["missing_indicator"] == bool(np.isnan(v).any())
    # categories: by count, ties broken by the value, missing as its own token
    counts = Counter(MISSING if v is None else v for v in table["city"])
    expected = sorted(counts, key=lambda v: (-counts[v], v))[:4]
    assert cols["city"]["categories"] == expected == ["a", "b", "d", "c"]
    assert cols["member"]["categories"] == ["False", "True"]


def test_roles_come_from_the_first_chunk_and_column_types_override_them(table):
    # a first chunk whose 'x' is all missing still gives a numeric column (float dtype)
    frame = table.copy()
    frame.loc[:9, "x"] = np.nan
    assert_same_state(make().fit_stream(chunked(frame, [0, 10, 500])).state(), make().fit(frame).state())
    # integers in the first chunk, then floats with gaps (as Parquet batches come): float64, as concat gives
    ints = pd.DataFrame({"n": np.arange(5)})
    floats = pd.DataFrame({"n": [5.0, np.nan, 7.0]})
    st = TabularPreprocessor().fit_stream([ints, floats]).state()
    assert st == TabularPreprocessor().fit(pd.concat([ints, floats], ignore_index=True)).state()
    assert st["columns"][0]["dtype"] == "float64"
    pre = make(column_types={"count": "categorical"}).fit_stream(chunked(table))
    assert pre.columns_[2]["role"] == "categorical"


def test_mean_and_std_are_numerically_stable_on_a_large_offset():
    rng = np.random.default_rng(0)
    n = 1_000_000
    x = 1e9 + rng.normal(0, 1, n)
    cuts = np.unique(np.r_[0, rng.integers(1, n, 150), n])
    pre = TabularPreprocessor().fit_stream(chunked(pd.DataFrame({"x": x}), cuts), reservoir_size=1000)
    spec = pre.columns_[0]
    # x - 1e9 is exact in floating point, so this reference has no cancellation at all
    assert spec["mean"] == pytest.approx(np.mean(x), rel=1e-12)
    assert spec["std"] == pytest.approx(np.std(x - 1e9), rel=1e-12)
    # a sum-of-squares update would have failed here: it loses the variance entirely
    naive = np.sqrt(abs(np.sum(x * x) / n - np.mean(x) ** 2))
    assert abs(naive - np.std(x - 1e9)) > 1e-3


def test_reservoir_median_is_within_its_documented_rank_error_and_reproducible():
    rng = np.random.default_rng(1)
    n, k = 1_000_000, 10_000
    frame = pd.DataFrame({"x": rng.lognormal(0, 1, n)})
    ordered = np.sort(frame["x"].to_numpy())

    def rank_error(seed: int, cuts) -> tuple[float, float]:
        med = TabularPreprocessor().fit_stream(chunked(frame, cuts), seed=seed, reservoir_size=k).columns_[0]["median"]
        return med, np.searchsorted(ordered, med, side="right") / n - 0.5

    cuts = np.linspace(0, n, 9).astype(int)
    med, err = rank_error(0, cuts)
    assert abs(err) < 1 / np.sqrt(k)                                   # the bound docs/scale.md gives
    assert rank_error(0, cuts)[0] == med                                # same seed, same median
    assert rank_error(0, [0, 1, 77_777, n])[0] == med                   # ... whatever the chunking
    others = [rank_error(seed, cuts) for seed in range(1, 13)]
    assert len({m for m, _ in others} | {med}) == 13                    # the seed picks the sample
    spread = np.sqrt(np.mean([e * e for _, e in others]))
    assert 0.5 * 0.5 / np.sqrt(k) < spread < 1.5 * 0.5 / np.sqrt(k)    # one sd ≈ 0.5/sqrt(k)


def test_medians_are_exact_up_to_the_reservoir_size(table):
    obs = table["x"].dropna().to_numpy()
    pre = make().fit_stream(chunked(table), reservoir_size=len(obs))
    assert pre.columns_[1]["median"] == np.median(obs)


@pytest.mark.parametrize("reservoir", [None, 60])
def test_merging_two_halves_equals_one_pass(table, reservoir):
    pre = make(max_categories=4)
    one = pre.new_stats(seed=5, reservoir_size=reservoir)
    for c in chunked(table):
        one.update(c)
    first = pre.new_stats(seed=5, reservoir_size=reservoir)
    for c in chunked(table, [0, 1, 200, 250]):
        first.update(c)
    second = pre.new_stats(seed=5, reservoir_size=reservoir, row_offset=250)
    for c in chunked(table, [250, 251, 400, 500]):
        second.update(c)
    # as another process would send them: through JSON
    first, second = (TableStats.from_dict(json.loads(json.dumps(s.to_dict()))) for s in (first, second))
    expected = make(max_categories=4).fit_from_stats(one).state()
    merged = TableStats.from_dict(first.to_dict()).merge(second)
    assert_same_state(make(max_categories=4).fit_from_stats(merged).state(), expected)
    assert_same_state(make(max_categories=4).fit_from_stats(second.merge(first)).state(), expected)
    assert merged.n_rows == 500
    assert merged.missing_rates()["x"] == pytest.approx(table["x"].isna().mean())
    assert merged.missing_rates()["city"] == pytest.approx(table["city"].isna().mean())
    # an empty share (a process that got no rows) merges as nothing
    empty = pre.new_stats(seed=5, reservoir_size=reservoir)
    assert_same_state(make(max_categories=4).fit_from_stats(empty.merge(merged)).state(), expected)


def test_merge_refuses_mismatched_accumulators(table):
    a = make().new_stats().update(table)
    with pytest.raises(InputError, match="seed"):
        a.merge(make().new_stats(seed=1).update(table))
    other = make(column_types={"count": "categorical"})
    with pytest.raises(InputError, match="column types"):
        make().fit_from_stats(other.new_stats().update(table))
    b = make().new_stats().update(table.assign(count=table["count"].astype(str) + "x"))
    with pytest.raises(InputError, match="'count' was inferred as numeric.*categorical"):
        a.merge(b)


def _message(fn) -> str:
    with pytest.raises(InputError) as info:
        fn()
    return str(info.value)


@pytest.mark.parametrize("case", ["junk", "inf", "all_missing", "no_rows", "no_columns", "unknown_type",
                                  "no_features", "not_a_frame"])
def test_errors_are_fits_with_global_row_numbers(table, case):
    frame, kw = table.copy(), {}
    if case == "junk":
        frame["x"] = frame["x"].astype(object)
        frame.loc[388, "x"] = "oops"        # in the fifth chunk
    elif case == "inf":
        frame.loc[151, "big"] = np.inf      # the 1-row fourth chunk
    elif case == "all_missing":
        frame["x"] = np.nan
    elif case == "no_rows":
        frame = frame.iloc[:0]
    elif case == "no_columns":
        frame = pd.DataFrame(index=range(10))
    elif case == "unknown_type":
        kw = {"column_types": {"nope": "numeric"}}
    elif case == "no_features":
        kw = {"column_types": {c: "ignore" for c in frame.columns if c not in ("customer_id", "churn")}}
    whole = _message(lambda: make(**kw).fit(frame if case != "not_a_frame" else [1, 2]))
    chunks = chunked(frame) if len(frame) else [frame, frame]
    if case == "not_a_frame":
        chunks = [frame.iloc[:3], [1, 2]]
    streamed = _message(lambda: make(**kw).fit_stream(chunks))
    assert streamed == whole
    if case == "junk":
        assert "row 388" in streamed
    if case == "inf":
        assert "row 151" in streamed
    assert _message(lambda: TabularPreprocessor().fit_stream([])) == "the table has no rows."


def test_row_numbers_are_global_and_chunks_must_share_columns():
    chunks = [pd.DataFrame({"x": np.arange(5.0)}, index=range(5)) for _ in range(3)]  # each indexed 0..4
    chunks[2] = chunks[2].astype(object)
    chunks[2].loc[3, "x"] = "oops"
    assert "(row 13)" in _message(lambda: TabularPreprocessor().fit_stream(chunks))
    bad = [pd.DataFrame({"x": [1.0], "y": [2.0]}), pd.DataFrame({"x": [1.0], "z": [2.0]})]
    assert _message(lambda: TabularPreprocessor().fit_stream(bad)) == (
        "chunk 1 (from row 1) does not have the columns of the first: missing column(s) 'y'; "
        "unexpected column(s) 'z'.")
    with pytest.raises(InputError, match="reservoir_size"):
        TabularPreprocessor().fit_stream(chunks, reservoir_size=0)
    with pytest.raises(InputError, match="iterable of DataFrames"):
        TabularPreprocessor().fit_stream(chunks[0])  # one frame, not chunks: would iterate column names


def test_image_stream_gives_fits_state():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(23, 3, 8, 6), dtype=np.uint8)
    chunks = [pixels[:1], pixels[1:10], pixels[10:]]
    assert ImagePreprocessor().fit_stream(chunks).state() == ImagePreprocessor().fit(pixels).state()
    # the rule comes from the whole range: [0, 1] floats first, then 8-bit values
    first = rng.random((4, 3, 8, 6))
    later = pixels[:2].astype(float)
    state = ImagePreprocessor().fit_stream([first, later]).state()
    assert state == ImagePreprocessor().fit(np.concatenate([first, later])).state()
    assert state["scale"] == 255.0 and ImagePreprocessor().fit(first).state()["scale"] == 1.0
    grey = rng.random((5, 8, 6))  # (n, H, W) chunks are one channel
    assert ImagePreprocessor().fit_stream([grey[:2], grey[2:]]).state() == ImagePreprocessor().fit(grey).state()


def test_image_stream_errors():
    ok = np.zeros((2, 1, 4, 4))
    with pytest.raises(InputError, match=r"chunk 1 holds images shaped \(C, H, W\) = \(1, 5, 4\).*\(1, 4, 4\)"):
        ImagePreprocessor().fit_stream([ok, np.zeros((2, 1, 5, 4))])
    bad = [ok, np.full((1, 1, 4, 4), 300.0), np.full((1, 1, 4, 4), -2.0)]
    assert _message(lambda: ImagePreprocessor().fit_stream(bad)) == _message(
        lambda: ImagePreprocessor().fit(np.concatenate(bad)))
    nan = np.full((1, 1, 4, 4), np.nan)
    assert "chunk 1 contain NaN" in _message(lambda: ImagePreprocessor().fit_stream([ok, nan]))
    assert _message(lambda: ImagePreprocessor().fit_stream([nan])) == _message(lambda: ImagePreprocessor().fit(nan))
    assert "no images" in _message(lambda: ImagePreprocessor().fit_stream([]))
    with pytest.raises(InputError, match="iterable of image arrays"):
        ImagePreprocessor().fit_stream(ok)  # one array, not chunks: would iterate single images
