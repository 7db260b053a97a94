"""A real table end to end (issue 15.7): the Palmer penguins CSV that the ``palmerpenguins`` package
ships (344 rows; gaps in the measurements and in ``sex``; integers with gaps, which CSV readers
turn into floats; the integer ``year``; text categories), run through the CLI as a user would:
``fit --label species``, ``embed``, ``evaluate``, ``generate``, ``score`` and ``reconstruct``.

Three of the labels are blanked, as real label columns have gaps: fit and evaluate must still
succeed, and evaluate must say how many rows it left out of the label metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentforge.cli import main

palmerpenguins = pytest.importorskip("palmerpenguins")

INTEGER_COLUMNS = ["flipper_length_mm", "body_mass_g", "year"]  # the first two have gaps in the CSV
FAST = ["--epochs", "5", "--hidden", "32", "--latent-dim", "4", "--batch-size", "32", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    csv = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    frame = pd.read_csv(csv)
    assert len(frame) == 344 and frame["sex"].isna().sum() == 11  # the table this test was written against
    return frame


def _run(args: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_penguins_through_the_cli(penguins, tmp_path, capsys):
    table = penguins.copy()
    table.loc[[0, 100, 300], "species"] = np.nan  # a label column with gaps
    csv = tmp_path / "penguins.csv"
    table.to_csv(csv, index=False)
    model = tmp_path / "model"

    code, _, err = _run(["fit", csv, "--label", "species", "--out", model, *FAST], capsys)
    assert code == 0, err
    schema = {c["name"]: c for c in json.loads((model / "model.json").read_text())["preprocessing"]["columns"]}
    assert schema["species"]["role"] == "label"
    assert all(schema[c]["role"] == "numeric" and schema[c]["integer"] for c in INTEGER_COLUMNS)
    assert schema["bill_length_mm"]["role"] == "numeric" and "integer" not in schema["bill_length_mm"]
    assert schema["island"]["role"] == schema["sex"]["role"] == "categorical"

    code, _, err = _run(["embed", model, csv, "--out", tmp_path / "e.csv"], capsys)
    assert code == 0, err
    embedded = pd.read_csv(tmp_path / "e.csv")
    codes = embedded.filter(regex=r"^z\d+$")
    assert codes.shape == (344, 4) and np.isfinite(codes.to_numpy()).all()
    if "species" in embedded.columns:  # the label carried through as a key, gaps and all
        pd.testing.assert_series_equal(embedded["species"], table["species"], check_dtype=False)

    code, out, err = _run(["evaluate", model, csv], capsys)
    assert code == 0, err
    assert "3 of 344 rows have no label" in err
    metrics = json.loads(out)
    assert "downstream" not in metrics["skipped"], metrics["skipped"]
    # species is all but linearly separable from the measurements; chance is about 0.44 (Adelie's share)
    assert metrics["probe_cv_acc"] > 0.8, metrics

    code, _, err = _run(["generate", model, "--n", "100", "--out", tmp_path / "g.csv"], capsys)
    assert code == 0, err
    generated = pd.read_csv(tmp_path / "g.csv")
    assert len(generated) == 100 and "species" not in generated.columns
    _assert_like_training(generated, penguins)

    code, _, err = _run(["reconstruct", model, csv, "--out", tmp_path / "r.csv"], capsys)
    assert code == 0, err
    reconstructed = pd.read_csv(tmp_path / "r.csv")
    assert len(reconstructed) == 344
    _assert_like_training(reconstructed, penguins)

    code, _, err = _run(["score", model, csv, "--out", tmp_path / "s.csv"], capsys)
    assert code == 0, err
    scores = pd.read_csv(tmp_path / "s.csv").select_dtypes("number").to_numpy()
    assert scores.shape == (344, 1) and np.isfinite(scores).all() and scores.std() > 0


def _assert_like_training(decoded: pd.DataFrame, training: pd.DataFrame) -> None:
    """Decoded rows in the training table's types: whole numbers in the training range for the
    integer columns (read back from CSV as integers), training categories only."""
    for column in INTEGER_COLUMNS:
        assert pd.api.types.is_integer_dtype(decoded[column]), (column, decoded[column].dtype)
        assert decoded[column].between(training[column].min(), training[column].max()).all(), column
    assert set(decoded["year"]) <= {2007, 2008, 2009}
    assert set(decoded["island"]) <= set(training["island"])
    assert set(decoded["sex"].dropna()) <= {"male", "female"}
    assert pd.api.types.is_float_dtype(decoded["bill_length_mm"])
