"""The tier stage's faster paths give what the paths they replaced gave (issue 19), value for value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from risk.models import drift, explanations


def _object_numbers(series: pd.Series) -> np.ndarray:
    """drift._numbers before issue 19: every column through objects and to_numeric."""
    return pd.to_numeric(series.astype("object").where(series.notna(), None), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.5, np.nan, -0.0, 1e300, 3.0]),
        pd.Series([1, 2, -7, 2**40], dtype="int64"),
        pd.Series([3, 250], dtype="uint8"),
        pd.Series([True, False, True]),
        pd.Series([True, None, False], dtype=object),
        pd.Series([1.0, None], dtype="Float64"),
        pd.Series(["1.5", None, "x"], dtype="str"),
        pd.Series([], dtype="float64"),
    ],
    ids=["float", "int", "uint8", "bool", "object bool", "Float64", "str", "empty"],
)
def test_drift_numbers_are_the_object_path_numbers(series: pd.Series) -> None:
    np.testing.assert_array_equal(drift._numbers(series), _object_numbers(series))
    assert drift._numbers(series).dtype == np.float64


def test_sum_by_owner_is_np_add_at_bit_for_bit() -> None:
    rng = np.random.default_rng(19)
    per_output = rng.normal(size=(500, 40)) * 10.0 ** rng.integers(-8, 8, size=(1, 40))
    owners = [int(o) for o in rng.integers(0, 12, size=40)]  # several outputs per feature, in any order
    expected = np.zeros((500, 13))
    np.add.at(expected.T, owners, per_output.T)
    got = explanations.sum_by_owner(per_output, owners, 13)
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("feature", ["bp_last_sbp", "fu_days_since_last", "bmi_last", "enc_inpatient_12m"])
def test_sayable_from_floats_is_sayable_from_objects(feature: str) -> None:
    if feature not in explanations.phrase_book()["features"]:
        pytest.skip(f"{feature} has no phrase")
    rng = np.random.default_rng(7)
    floats = rng.choice(np.array([np.nan, 0.0, 1.0, 3.0, 45.0, 120.0, 150.0, 400.0]), size=400)
    typical = rng.choice(np.array([np.nan, 1.0, 130.0, 140.0]), size=400)
    as_objects = pd.Series(floats).astype(object).to_numpy(), pd.Series(typical).astype(object).to_numpy()
    expected = explanations._sayable(feature, *as_objects)
    got = explanations._sayable(feature, *as_objects, floats, typical)
    np.testing.assert_array_equal(got, expected)
    assert expected.any() and not expected.all()
