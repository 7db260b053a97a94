"""Tabular preprocessing: roles, statistics, one-hot buckets, schema checks, persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from latentforge.data import TabularPreprocessor
from latentforge.data.tabular import OTHER
from latentforge.errors import InputError


def fitted(frame, **kw):
    return TabularPreprocessor(id_columns=("customer_id",), label="churn", **kw).fit(frame)


def test_roles_are_inferred_and_overridable(mixed_frame):
    pre = fitted(mixed_frame)
    roles = {c["name"]: c["role"] for c in pre.columns_}
    assert roles == {"customer_id": "id", "age": "numeric", "income": "numeric", "city": "categorical",
                     "member": "categorical", "churn": "label"}
    pre = fitted(mixed_frame, column_types={"age": "categorical", "member": "ignore"})
    roles = {c["name"]: c["role"] for c in pre.columns_}
    assert roles["age"] == "categorical" and roles["member"] == "ignore"


def test_numeric_standardised_with_train_statistics_and_median_imputed(mixed_frame):
    pre = fitted(mixed_frame)
    out = pre.transform(mixed_frame)
    age = mixed_frame[["age"]].to_numpy()
    np.testing.assert_allclose(out[:, 0], StandardScaler().fit_transform(age)[:, 0], atol=1e-5)
    income = mixed_frame["income"].to_numpy()
    observed = income[~np.isnan(income)]
    imputed = np.where(np.isnan(income), np.median(observed), income)
    np.testing.assert_allclose(out[:, 1], (imputed - observed.mean()) / observed.std(), rtol=1e-5, atol=1e-5)
    # the missing indicator is its own 0/1 column, exactly on the missing rows
    names = pre.feature_names
    ind = out[:, names.index("income__missing")]
    np.testing.assert_array_equal(ind, np.isnan(income).astype(np.float32))


def test_one_hot_matches_sklearn_and_unseen_goes_to_other(mixed_frame):
    pre = fitted(mixed_frame)
    out = pre.transform(mixed_frame)
    start, stop = [(a, b) for k, a, b in pre.layout if k == "categorical"][0]
    city = out[:, start:stop]
    ref = OneHotEncoder(categories=[pre.columns_[3]["categories"]], handle_unknown="ignore", sparse_output=False)
    np.testing.assert_array_equal(city[:, :-1], ref.fit_transform(mixed_frame[["city"]]))
    assert (city[:, -1] == 0).all()
    new = mixed_frame.head(2).copy()
    new["city"] = ["berlin", "paris"]
    onehot = pre.transform(new)[:, start:stop]
    assert onehot[0, -1] == 1 and onehot[0, :-1].sum() == 0      # unseen → <other>
    assert onehot[1, pre.columns_[3]["categories"].index("paris")] == 1


def test_high_cardinality_keeps_top_n_plus_other():
    frame = pd.DataFrame({"x": np.arange(300.0), "cat": [f"v{i % 50}" if i < 200 else "common" for i in range(300)]})
    pre = TabularPreprocessor(max_categories=5).fit(frame)
    cats = pre.columns_[1]["categories"]
    assert len(cats) == 5 and cats[0] == "common"               # most frequent first
    block = [(a, b) for k, a, b in pre.layout if k == "categorical"][0]
    assert block[1] - block[0] == 6                             # 5 kept + <other>
    onehot = pre.transform(frame)[:, block[0]:block[1]]
    kept = frame["cat"].isin(cats).to_numpy()
    np.testing.assert_array_equal(onehot[:, -1], (~kept).astype(np.float32))


def test_inverse_transform_recovers_original_columns(mixed_frame):
    pre = fitted(mixed_frame)
    back = pre.inverse_transform(pre.transform(mixed_frame))
    assert list(back.columns) == ["age", "income", "city", "member"]
    np.testing.assert_allclose(back["age"], mixed_frame["age"], rtol=1e-5)
    assert (back["city"] == mixed_frame["city"]).all()
    assert back["member"].dtype == bool and (back["member"] == mixed_frame["member"]).all()  # booleans as booleans
    assert OTHER not in set(back["city"])


def test_state_round_trips_through_json(mixed_frame):
    pre = fitted(mixed_frame)
    again = TabularPreprocessor.from_state(json.loads(json.dumps(pre.state())))
    np.testing.assert_array_equal(again.transform(mixed_frame), pre.transform(mixed_frame))
    assert again.layout == pre.layout


def test_schema_errors_name_the_columns(mixed_frame):
    pre = fitted(mixed_frame)
    with pytest.raises(InputError, match="missing column.*'age'"):
        pre.transform(mixed_frame.drop(columns=["age"]))
    with pytest.raises(InputError, match="unexpected column.*'surprise'"):
        pre.transform(mixed_frame.assign(surprise=1))
    changed = mixed_frame.astype({"age": object})
    changed.loc[5, "age"] = "forty"
    with pytest.raises(InputError, match="'age'.*numeric.*'forty'"):
        pre.transform(changed)
    # id and label columns may be absent at embed time
    assert pre.transform(mixed_frame.drop(columns=["customer_id", "churn"])).shape[0] == len(mixed_frame)


@pytest.mark.parametrize("bad,match", [
    ("junk", "non-numeric value 'oops'"),
    ("all_nan", "'b' has no values"),
    ("inf", "infinite value"),
])
def test_bad_values_are_named(bad, match):
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0)})
    if bad == "junk":
        frame["b"] = frame["b"].astype(object)
        frame.loc[7, "b"] = "oops"
    elif bad == "all_nan":
        frame["b"] = np.nan
    else:
        frame.loc[4, "b"] = -np.inf
    with pytest.raises(InputError, match=match):
        TabularPreprocessor().fit(frame)


def test_unique_text_column_is_left_out_with_a_warning():
    frame = pd.DataFrame({"name": [f"row-{i}" for i in range(30)], "x": np.arange(30.0)})
    with pytest.warns(UserWarning, match="identifier"):
        pre = TabularPreprocessor().fit(frame)
    assert pre.feature_names == ["x"]


def test_callers_frame_is_never_modified():
    frame = pd.DataFrame(np.arange(40.0).reshape(20, 2))  # integer column labels
    before = frame.copy()
    pre = TabularPreprocessor().fit(frame)
    pre.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert pre.feature_names == ["0", "1"]


# -- the NumPy fast path of streamed fits (transform_arrays) -------------------------------------

def _numeric_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "f32": rng.normal(3, 2, n).astype(np.float32),
        "f64": rng.normal(-1e6, 1e3, n),
        "i64": rng.integers(-50, 50, n),
        "u8": rng.integers(0, 255, n).astype(np.uint8),
        "gappy": rng.normal(size=n),
        "customer_id": np.arange(n),
        "churn": rng.integers(0, 2, n),
    })
    frame.loc[frame.index[::7], "gappy"] = np.nan
    frame.loc[frame.index[::11], "f32"] = np.nan
    return frame


def _reference_features(pre: TabularPreprocessor, frame: pd.DataFrame) -> np.ndarray:
    """The documented arithmetic, written out independently: float64 median imputation and
    standardisation, rounded once to float32, then the 0/1 missing indicators."""
    numeric = [c for c in pre.columns_ if c["role"] == "numeric"]
    values = np.stack([frame[c["name"]].to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric], axis=1)
    miss = np.isnan(values)
    out = [(np.where(miss[:, j], c["median"], values[:, j]) - c["mean"]) / c["std"] for j, c in enumerate(numeric)]
    out += [miss[:, j].astype(np.float64) for j, c in enumerate(numeric) if c["missing_indicator"]]
    return np.stack(out, axis=1).astype(np.float32)


def test_transform_arrays_is_transform_bit_for_bit_on_numeric_tables():
    frame = _numeric_frame()
    pre = fitted(frame)
    names = pre.numeric_feature_columns
    assert names == ["f32", "f64", "i64", "u8", "gappy"]
    assert [c["missing_indicator"] for c in pre.columns_ if c["role"] == "numeric"] == [True, False, False, False,
                                                                                           True]
    new = _numeric_frame(5000, seed=1)  # other rows: other values, missing in columns that had none at fit
    new.loc[new.index[::13], "f64"] = np.nan
    for data in (frame, new, new.iloc[:1], new.iloc[4093:4100]):  # across a block boundary, and one row
        slow = pre.transform(data)
        fast = pre.transform_arrays([data[c].to_numpy() for c in names])
        assert fast.dtype == np.float32 and fast.shape == slow.shape and fast.flags.c_contiguous
        np.testing.assert_array_equal(fast.view(np.uint32), slow.view(np.uint32))  # bitwise, NaN-free
        np.testing.assert_array_equal(fast, _reference_features(pre, data))


def test_transform_arrays_errors_match_transform():
    frame = _numeric_frame(300)
    pre = fitted(frame)
    names = pre.numeric_feature_columns
    bad = frame.copy()
    bad.loc[200, "gappy"] = np.inf
    bad.loc[250, "f64"] = -np.inf
    with pytest.raises(InputError) as slow:
        pre.transform(bad.set_axis(np.arange(1000, 1300)))
    with pytest.raises(InputError) as fast:
        pre.transform_arrays([bad[c].to_numpy() for c in names], rows=np.arange(1000, 1300))
    assert str(fast.value) == str(slow.value) and "'f64'" in str(fast.value) and "1250" in str(fast.value)
    with pytest.raises(InputError, match="needs 5 arrays"):
        pre.transform_arrays([frame["f32"].to_numpy()])
    with pytest.raises(InputError, match="integer or float"):
        pre.transform_arrays([frame[c].astype(object).to_numpy() for c in names])
    two_cities = frame.assign(city=np.where(np.arange(len(frame)) % 2, "paris", "lyon"))  # one city would be dropped
    with pytest.raises(InputError, match="categorical"):
        fitted(two_cities).transform_arrays([frame[c].to_numpy() for c in names])
    assert fitted(two_cities).numeric_feature_columns is None
