"""Column types as real tables hold them (issues 12 and 15): datetimes of any unit and time zone,
ISO dates written as text, integers, booleans and categories that survive the round trip, row
numbers written as an index, constant columns, repeated column names, extreme values, nested
columns, labels with gaps and 0./1. outlier flags. Each behaviour is checked in memory
(``fit``) and, where the fit can stream, from files (``fit_stream`` over CSV / Parquet fragments).
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from latentforge.data import CsvSource, ImagePreprocessor, ParquetSource, TabularPreprocessor, iter_chunks, read_table
from latentforge.data import split_indices
from latentforge.errors import InputError
from latentforge.evaluate import auprc, auroc, kmeans_clustering_scores, linear_probe_accuracy, linear_probe_cv_accuracy

N = 60
RNG = np.random.default_rng(0)
#: whole-second instants between 1969 and 2033 (so s, ms, us and ns all hold them exactly), one NaT
SECONDS = RNG.integers(-10**8, 2 * 10**9, N)


def _instants() -> pd.Series:
    t = pd.Series(pd.to_datetime(SECONDS, unit="s"))
    t[5] = pd.NaT
    return t


def _base() -> pd.DataFrame:
    """The same two feature columns every time."""
    return pd.DataFrame({"x": np.random.default_rng(1).normal(size=N), "k": np.arange(N) % 7})


def _streamed(source, **kw) -> TabularPreprocessor:
    return TabularPreprocessor(**kw).fit_stream(chunk.data for chunk in iter_chunks(source, shuffle=False))


def _spec(pre: TabularPreprocessor, name: str) -> dict:
    return next(c for c in pre.columns_ if c["name"] == name)


# -- datetimes ---------------------------------------------------------------------------------
def test_every_unit_and_time_zone_gives_the_same_features_for_the_same_instants():
    t = _instants()
    # independent reference: seconds since the epoch from Python's datetime, standardised by hand
    ref = np.array([np.nan if pd.isna(v) else (v.to_pydatetime() - dt.datetime(1970, 1, 1)).total_seconds()
                    for v in t])
    observed = ref[~np.isnan(ref)]
    expected = (np.where(np.isnan(ref), np.median(observed), ref) - observed.mean()) / observed.std()
    features = {}
    for unit in ("s", "ms", "us", "ns"):
        frame = _base().assign(d=t.astype(f"datetime64[{unit}]"))
        pre = TabularPreprocessor().fit(frame)
        assert _spec(pre, "d")["role"] == "datetime" and _spec(pre, "d")["unit"] == unit
        features[unit] = pre.transform(frame)
        back = pre.inverse_transform(features[unit])
        assert back["d"].dtype == f"datetime64[{unit}]"  # the unit it came in
    aware = _base().assign(d=t.dt.tz_localize("UTC").dt.tz_convert("America/New_York"))
    pre = TabularPreprocessor().fit(aware)
    features["tz"] = pre.transform(aware)
    assert str(pre.inverse_transform(features["tz"])["d"].dtype) == "datetime64[us, America/New_York]"
    for key, f in features.items():
        np.testing.assert_array_equal(f, features["s"], err_msg=key)
    d = pre.feature_names.index("d")
    np.testing.assert_allclose(features["s"][:, d], expected, rtol=1e-6, atol=1e-6)
    assert features["s"][5, pre.feature_names.index("d__missing")] == 1  # NaT is a missing value
    assert features["s"][:, pre.feature_names.index("d__missing")].sum() == 1


def test_datetimes_come_back_as_datetimes_near_the_instants():
    frame = _base().assign(d=_instants())
    pre = TabularPreprocessor().fit(frame)
    back = pre.inverse_transform(pre.transform(frame))
    present = frame["d"].notna()
    error = (back["d"][present] - frame["d"][present]).abs().max()
    assert error <= pd.Timedelta(seconds=2 * 10**9 * 2e-7)  # float32 features: about 7 digits
    assert (back["d"].dt.microsecond == 0).all()  # whole seconds at fit time: whole seconds back


def test_iso_text_in_a_csv_is_a_datetime_in_memory_and_streamed(tmp_path):
    t = _instants()
    frame = _base().assign(when=t.dt.strftime("%Y-%m-%dT%H:%M:%S"), day=t.dt.strftime("%Y-%m-%d"))
    frame.to_csv(tmp_path / "t.csv", index=False)
    in_memory = TabularPreprocessor().fit(read_table(tmp_path / "t.csv"))
    streamed = _streamed(CsvSource(tmp_path / "t.csv", block_size=512))  # several fragments
    for pre in (in_memory, streamed):
        assert [c["role"] for c in pre.columns_] == ["numeric", "numeric", "datetime", "datetime"]
    for name in ("when", "day"):
        a, b = _spec(in_memory, name), _spec(streamed, name)
        assert (a["mean"], a["std"], a["median"]) == pytest.approx((b["mean"], b["std"], b["median"]), rel=1e-12)
    reference = TabularPreprocessor().fit(_base().assign(when=t, day=t.dt.floor("D")))
    data = read_table(tmp_path / "t.csv")
    np.testing.assert_allclose(in_memory.transform(data), reference.transform(_base().assign(when=t, day=t.dt.floor("D"))),
                               atol=1e-6)
    back = streamed.inverse_transform(streamed.transform(data))
    assert (back["day"].dropna() == back["day"].dropna().dt.floor("D")).all()  # dates stay dates


def test_datetime_column_type_and_its_errors():
    text = _base().assign(d=["2024-03-01 10:00"] * (N - 1) + ["2024-03-02"])
    pre = TabularPreprocessor(column_types={"d": "datetime"}).fit(text)
    assert _spec(pre, "d")["role"] == "datetime"
    with pytest.raises(InputError, match=r"column 'd' is a datetime column but holds 'soon' \(row 3\)"):
        TabularPreprocessor().fit(text.assign(d=text["d"].where(text.index != 3, "soon")))
    with pytest.raises(InputError, match=r"column 'd' holds '2024-13-45' \(row 0\), which is not a valid date"):
        pre.transform(text.assign(d="2024-13-45"))
    with pytest.raises(InputError, match=r"--column-type d=datetime"):  # numeric on dates: says what to do
        TabularPreprocessor(column_types={"d": "numeric"}).fit(text)
    mostly_text = _base().assign(d=["2024-03-01"] * 50 + ["n/a"] * 10)  # 83% dates: not inferred
    assert _spec(TabularPreprocessor().fit(mostly_text), "d")["role"] == "categorical"


def test_datetimes_in_a_parquet_file_stream_like_a_frame(tmp_path):
    frame = _base().assign(d=_instants().astype("datetime64[ms]").dt.tz_localize("Europe/Paris", ambiguous="NaT",
                                                                                  nonexistent="NaT"))
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=16)
    streamed, whole = _streamed(ParquetSource(tmp_path / "t.parquet")), TabularPreprocessor().fit(frame)
    a, b = _spec(streamed, "d"), _spec(whole, "d")
    assert {k: v for k, v in a.items() if k not in ("mean", "std")} == {k: v for k, v in b.items()
                                                                          if k not in ("mean", "std")}
    assert (a["mean"], a["std"]) == pytest.approx((b["mean"], b["std"]), rel=1e-12)  # merged chunk by chunk
    assert a["unit"] == "ms" and a["tz"] == "Europe/Paris"
    np.testing.assert_allclose(streamed.transform(frame), whole.transform(frame), atol=1e-6)


# -- types survive the round trip --------------------------------------------------------------
def test_integers_are_rounded_and_clipped_floats_are_not():
    frame = pd.DataFrame({"months": np.arange(N) % 72, "score": RNG.normal(size=N),
                          "gappy": np.where(np.arange(N) % 5, np.arange(N) * 10.0, np.nan)})
    pre = TabularPreprocessor().fit(frame)
    assert _spec(pre, "months")["integer"] and _spec(pre, "gappy")["integer"]  # whole floats with gaps
    assert "integer" not in _spec(pre, "score")
    features = pre.transform(frame)
    names = pre.feature_names
    far = features.copy()
    far[:, names.index("months")] = 50.0   # far beyond the training maximum
    far[:, names.index("score")] = 50.0
    far[0, names.index("months")] = -50.0
    back = pre.inverse_transform(far)
    assert back["months"].dtype == frame["months"].dtype and back["gappy"].dtype == np.int64
    assert back["months"].iloc[0] == 0 and (back["months"].iloc[1:] == frame["months"].max()).all()
    assert back["score"].iloc[0] > frame["score"].max() + 10  # floats are not clipped
    near = pre.inverse_transform(features)
    assert (near["months"] == frame["months"]).all()  # rounding recovers the integers exactly


def test_booleans_and_categories_come_back_as_values_of_the_column():
    frame = pd.DataFrame({"x": RNG.normal(size=N), "flag": np.arange(N) % 3 == 0,
                          "code": (np.arange(N) % 4) * 10, "city": ["a", "b", None] * (N // 3)})
    pre = TabularPreprocessor(column_types={"code": "categorical"}).fit(frame)
    width = pre.n_features
    other_wins = np.zeros((3, width), dtype=np.float32)
    for _, start, stop in [b for b in pre.layout if b[0] == "categorical"]:
        other_wins[:, stop - 1] = 10.0   # <other> most probable, but no training value fell into it
        other_wins[:, start] = 1.0
    back = pre.inverse_transform(other_wins)
    assert back["flag"].dtype == bool
    assert set(back["code"]) <= {0, 10, 20, 30} and all(isinstance(v, int) for v in back["code"])
    assert "<other>" not in set(back["city"].astype(str))
    missing = pre.feature_names.index("city=<missing>")
    picked = np.zeros((1, width), dtype=np.float32)
    picked[0, missing] = 5.0
    assert pre.inverse_transform(picked)["city"].isna().all()  # <missing> decodes to a missing value


# -- real CSV habits ---------------------------------------------------------------------------
@pytest.mark.parametrize("first", [0, 1])
def test_a_row_number_column_is_an_index_not_a_feature(tmp_path, first):
    frame = _base()
    frame.index = frame.index + first
    frame.to_csv(tmp_path / "t.csv")  # pandas writes the index under an empty header, as R does
    for reader in (lambda: TabularPreprocessor().fit(read_table(tmp_path / "t.csv")),
                   lambda: _streamed(CsvSource(tmp_path / "t.csv"))):
        with pytest.warns(UserWarning, match=f"'Unnamed: 0' holds the row numbers {first}, {first + 1}"):
            pre = reader()
        assert _spec(pre, "Unnamed: 0")["role"] == "ignore" and "Unnamed: 0" not in pre.feature_names
    shuffled = frame.sample(frac=1, random_state=0)  # not row numbers: a feature like any other
    shuffled.to_csv(tmp_path / "s.csv")
    assert _spec(TabularPreprocessor().fit(read_table(tmp_path / "s.csv")), "Unnamed: 0")["role"] == "numeric"


def test_constant_columns_are_dropped_with_a_note_unless_typed():
    frame = _base().assign(one=3.0, same="x", gappy_one=np.where(np.arange(N) % 2, 1.0, np.nan))
    with pytest.warns(UserWarning, match=r"column\(s\) 'one', 'same' hold one value in every row"):
        pre = TabularPreprocessor().fit(frame)
    assert [c["name"] for c in pre.columns_ if c["role"] == "ignore"] == ["one", "same"]
    assert "gappy_one__missing" in pre.feature_names  # its gaps carry information: kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = TabularPreprocessor(column_types={"one": "numeric", "same": "categorical"}).fit(frame)
    assert "one" in kept.feature_names and "same=x" in kept.feature_names
    pre.transform(frame.drop(columns=["one", "same"]))  # dropped columns are not needed later
    back = pre.inverse_transform(pre.transform(frame))  # ... and come back holding their value
    assert list(back.columns) == list(frame.columns)
    assert (back["one"] == 3.0).all() and (back["same"] == "x").all()


def test_repeated_column_names_are_refused(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,a\n1,2,3\n4,5,6\n")
    for read in (lambda: read_table(tmp_path / "d.csv"), lambda: CsvSource(tmp_path / "d.csv")):
        with pytest.raises(InputError, match=r"d.csv has more than one column named 'a'"):
            read()
    with pytest.raises(InputError, match="more than one column named 'a'"):
        TabularPreprocessor().fit(pd.DataFrame([[1, 2, 3], [4, 5, 6]], columns=["a", "b", "a"]))


# -- extreme values and nested columns -----------------------------------------------------------
def test_extreme_values_give_an_error_naming_the_column_or_finite_features():
    huge = _base().assign(a=np.where(np.arange(N) % 2, 1e308, -1e308))
    with pytest.raises(InputError, match=r"column 'a' holds values as large as 1e\+308"):
        TabularPreprocessor().fit(huge)
    pre = TabularPreprocessor().fit(_base())
    with pytest.raises(InputError, match=r"column 'x' holds 1e\+300 \(row 2\), too far from the training values"):
        pre.transform(_base().assign(x=np.where(np.arange(N) == 2, 1e300, 0.0)))
    big_ints = _base().assign(n=2**62 + np.arange(N) * 2**12, tiny=5e-324 * np.arange(N))
    with pytest.warns(UserWarning, match=r"column 'n' holds integers beyond ±2\*\*53"):
        pre = TabularPreprocessor().fit(big_ints)
    features = pre.transform(big_ints)
    assert np.isfinite(features).all()
    far = np.full_like(features[:2], 1e30)
    back = pre.inverse_transform(far)
    assert back["n"].dtype == np.int64 and (back["n"] == big_ints["n"].max()).all()  # clipped, no overflow
    assert np.isfinite(back["tiny"]).all()


def test_nested_columns_are_refused_naming_the_column_and_type(tmp_path):
    with pytest.raises(InputError, match=r"column 'tags' holds list values"):
        TabularPreprocessor().fit(_base().assign(tags=[[1, 2]] * N))
    pytest.importorskip("pyarrow")
    _base().assign(s=[{"u": 1, "v": "w"}] * N).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"column 's' holds struct/dict values"):
        _streamed(ParquetSource(tmp_path / "s.parquet"))
    with pytest.raises(InputError, match=r"column 'tags' holds list values"):  # typed: still refused
        TabularPreprocessor(column_types={"tags": "categorical"}).fit(_base().assign(tags=[[1]] * N))


def test_an_image_model_refuses_a_table():
    pre = ImagePreprocessor().fit(RNG.random((4, 1, 3, 3)))
    with pytest.raises(InputError, match=r"fitted on images .* but got a table \(columns 'x', 'k'\)"):
        pre.transform(_base())
    assert pre.id_columns == [] and pre.label is None


# -- labels with gaps and outlier flags ------------------------------------------------------------
def test_a_label_with_gaps_still_splits_and_its_unlabelled_rows_leave_the_metrics():
    y = np.array(["a", "b", "c"] * 20, dtype=object)
    y[[0, 7, 33]] = np.nan
    rest, held = split_indices(len(y), y, 0.25, seed=0)
    assert len(rest) + len(held) == len(y) and len(np.intersect1d(rest, held)) == 0
    Z = (np.array([{"a": 0, "b": 1, "c": 2}.get(v, 0) for v in y])[:, None]
         + 0.3 * RNG.normal(size=(len(y), 2)))
    labelled = ~pd.isna(y)
    with pytest.warns(UserWarning, match="3 of 60 rows have no label"):
        cv = linear_probe_cv_accuracy(Z, y, seed=0)
    assert cv == linear_probe_cv_accuracy(Z[labelled], y[labelled].astype(str), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert linear_probe_accuracy(Z, y, Z, y) == linear_probe_accuracy(Z[labelled], y[labelled].astype(str),
                                                                          Z[labelled], y[labelled].astype(str))
        assert kmeans_clustering_scores(Z, y) == kmeans_clustering_scores(Z[labelled], y[labelled].astype(str))
    floats = np.where(np.arange(60) % 2, 1.0, 0.0)
    floats[4] = np.nan
    with pytest.warns(UserWarning, match="1 of 60 rows"):
        linear_probe_cv_accuracy(Z, floats)


def test_auroc_takes_float_and_bool_flags_and_rejects_other_values():
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = RNG.normal(size=40)
    flags = (np.arange(40) % 3 == 0)
    reference = roc_auc_score(flags.astype(int), scores)
    for given in (flags, flags.astype(float), flags.astype(int), flags.astype(object), list(flags.astype(float))):
        assert auroc(scores, given) == reference
    assert auprc(scores, flags.astype(float)) == average_precision_score(flags, scores)
    for bad, shown in ((np.where(flags, 1.0, 0.5), "0.5"), (np.where(flags, 2, 0), "2"),
                       (np.where(flags, 1.0, np.nan), "nan"), (np.where(flags, "yes", "no"), "'yes'")):
        with pytest.raises(InputError, match=f"is_outlier must be booleans or 0/1 .*got {shown}"):
            auroc(scores, bad)


def test_datetime_and_integer_statistics_merge_across_processes_as_one_pass():
    from latentforge.data import TableStats

    frame = _base().assign(d=_instants().dt.tz_localize("UTC"), day=_instants().dt.strftime("%Y-%m-%d"),
                           gappy=np.where(np.arange(N) % 4, np.arange(N), np.nan))
    whole = TabularPreprocessor(column_types={"day": "datetime"}).fit(frame)
    halves = []
    for start in (0, 30):  # two "processes", each its own accumulator, sent as JSON
        pre = TabularPreprocessor(column_types={"day": "datetime"})
        stats = pre.new_stats(reservoir_size=None, row_offset=start).update(frame.iloc[start:start + 30])
        halves.append(TableStats.from_dict(stats.to_dict()))
    merged = TabularPreprocessor(column_types={"day": "datetime"}).fit_from_stats(halves[0].merge(halves[1]))
    for name in ("d", "day", "gappy"):
        a, b = _spec(merged, name), _spec(whole, name)
        assert {k: v for k, v in a.items() if k not in ("mean", "std")} == {k: v for k, v in b.items()
                                                                              if k not in ("mean", "std")}, name
        assert (a["mean"], a["std"]) == pytest.approx((b["mean"], b["std"]), rel=1e-12)
    assert _spec(merged, "gappy")["integer"] and _spec(merged, "day")["step"] == 86400
    assert _spec(merged, "d")["tz"] == "UTC" and _spec(merged, "d")["step"] == 1


def test_the_cli_fits_dates_from_a_csv_and_generates_dates(tmp_path, capsys):
    from latentforge.cli import main

    t = _instants()
    table = _base().assign(day=t.dt.strftime("%Y-%m-%d"), at=t.dt.strftime("%Y-%m-%d %H:%M:%S"))
    table.to_csv(tmp_path / "t.csv", index=False)
    fast = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--batch-size", "16", "--quiet", "--model", "ae"]
    code = main([str(a) for a in ["fit", tmp_path / "t.csv", "--out", tmp_path / "m", "--column-type", "day=datetime",
                                  *fast]])
    assert code == 0, capsys.readouterr().err
    assert main([str(a) for a in ["generate", tmp_path / "m", "--n", "20", "--out", tmp_path / "g.parquet"]]) == 0
    generated = pd.read_parquet(tmp_path / "g.parquet")
    assert pd.api.types.is_datetime64_any_dtype(generated["day"]) and pd.api.types.is_datetime64_any_dtype(generated["at"])
    assert (generated["day"] == generated["day"].dt.floor("D")).all()
    low, high = pd.to_datetime(table["at"]).min(), pd.to_datetime(table["at"]).max()
    assert generated["at"].between(low, high).all() and pd.api.types.is_integer_dtype(generated["k"])
