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


def _scored_frame(n: int = 600):  # the approved model and patients of many age-sex groups
    from risk.models.features import model_frame
    from risk.tiers.model import load_exported_model
    from tests.test_training import approved_models_dir

    model = load_exported_model(approved_models_dir()).estimator
    rng = np.random.default_rng(11)
    X = model_frame(
        pd.DataFrame({c: model.reference_[c] for c in model.spec.columns}, index=range(n)), model.spec
    )
    X["age"] = rng.uniform(30, 95, n)
    X["sex"] = rng.choice(np.array(["M", "F"], dtype=object), n)
    for column in ("bp_last_sbp", "fpg_last", "fu_days_since_last"):
        if column in X:
            X[column] = X[column].astype(float) * rng.uniform(0.5, 1.5, n)
    if "fpg_last" in X:
        X.loc[::7, "fpg_last"] = np.nan
    X.index = X.index + 1000  # not 0..n-1
    return model, X


def test_typical_reference_types_each_group_once_with_the_same_values() -> None:
    model, X = _scored_frame()
    reference, grouped, groups = explanations._typical_reference(model, X)
    assert getattr(model, "group_reference_", None) and len(np.unique(groups)) > 10
    # the reference as typical_reference built it before issue 19: every row's object typed on its own
    from risk.models.estimators import age_sex_groups
    from risk.models.features import model_frame

    working = model_frame(X, model.spec)
    table = model.group_reference_
    labels = age_sex_groups(X)
    for column in model.spec.columns:
        per_row = np.array(
            [table.get(str(g), {}).get(column, model.reference_[column]) for g in labels], dtype=object
        )
        expected = pd.Series(per_row, index=working.index).astype(working[column].dtype)
        pd.testing.assert_series_equal(reference[column], expected, check_names=False)
    assert grouped.any()


def test_contributions_with_reference_groups_are_the_row_by_row_ones_bit_for_bit() -> None:
    model, X = _scored_frame()
    reference, _, groups = explanations._typical_reference(model, X)
    row_by_row = explanations.contributions(model, X, reference)
    by_group = explanations.contributions(model, X, reference, groups)
    assert by_group.to_numpy().tobytes() == row_by_row.to_numpy().tobytes()
    assert list(by_group.index) == list(X.index)


def test_object_columns_are_the_object_matrix_cell_for_cell() -> None:
    frame = pd.DataFrame(
        {
            "a": [1.5, np.nan, 3.0, -0.0],
            "b": pd.Series(["x", None, "y", np.nan], dtype=object),
            "c": [1.0, 0.0, np.nan, 1.0],
        }
    )
    matrix = frame.astype(object).to_numpy()
    cells = explanations.ObjectColumns(frame)
    for j in range(3):
        for rows in (slice(None), np.array([3, 0, 0]), 2):
            got, expected = cells[rows, j], matrix[rows, j]
            got, expected = np.atleast_1d(got), np.atleast_1d(expected)
            assert [type(v) for v in got] == [type(v) for v in expected]
            assert [repr(v) for v in got] == [repr(v) for v in expected]


def test_object_columns_take_is_the_object_matrix_rows() -> None:
    frame = pd.DataFrame(
        {"a": [1.5, np.nan, 3.0, -0.0], "b": pd.Series(["x", None, "y", np.nan], dtype=object)},
        index=[7, 3, 9, 1],
    )
    matrix = frame.astype(object).to_numpy()
    for read_first in (False, True):  # a column not read yet, and one read whole before
        cells = explanations.ObjectColumns(frame)
        for j in range(2):
            if read_first:
                cells[:, j]
            got, expected = cells.take(np.array([3, 0, 0, 2]), j), matrix[[3, 0, 0, 2], j]
            assert [repr(v) for v in got] == [repr(v) for v in expected]
            assert [type(v) for v in got] == [type(v) for v in expected]


def test_top_columns_are_the_stable_sort_ones() -> None:
    rng = np.random.default_rng(19)
    matrix = rng.integers(-2, 3, size=(2000, 9)).astype(float)  # many ties, zeros and -0.0
    matrix[::5] *= -0.0
    matrix[:, 4] += rng.normal(size=2000)
    for top_n in (1, 3, 9, 12):
        expected = np.argsort(-matrix, axis=1, kind="stable")[:, :top_n]
        np.testing.assert_array_equal(explanations._top_columns(matrix, top_n), expected)
    for odd in (np.nan, np.inf, -np.inf):  # the sort's order, where argmax would differ
        strange = matrix.copy()
        strange[::3, 2] = odd
        strange[1::3, :] = odd
        expected = np.argsort(-strange, axis=1, kind="stable")[:, :3]
        np.testing.assert_array_equal(explanations._top_columns(strange, 3), expected)


def test_probability_from_the_shared_preprocessing_is_predict_proba_bit_for_bit() -> None:
    """The tier stage preprocesses once (model_inputs) and scores from it: the same bits as the model's
    own predict_proba, for the approved (linear) model, which the estimator does not notice (unchanged)."""
    import pickle

    model, X = _scored_frame()
    X.loc[X.index[::4], "bp_last_sbp"] = np.nan
    before = pickle.dumps(model)
    inputs = explanations.model_inputs(model, X)
    assert inputs.transformed is not None
    got = explanations.calibrated_probability(model, X, inputs)
    assert got.tobytes() == model.predict_proba(X)[:, 1].tobytes()
    shared = explanations.contributions(model, X, inputs=inputs)
    assert shared.to_numpy().tobytes() == explanations.contributions(model, X).to_numpy().tobytes()
    assert pickle.dumps(model) == before


def test_reasons_text_is_the_json_reasons_as_a_str_column() -> None:
    """The tier stage's reasons column (UTF-8 straight into Arrow) is what a DataFrame makes of the
    json.dumps texts: same strings, same dtype (rows without a reason: test_model_reasons)."""
    model, X = _scored_frame()
    X.loc[X.index[:50], "bp_last_sbp"] = np.nan
    expected = explanations.reasons_json(explanations.top_reasons(model, X, 3))
    assert len({len(text) for text in expected}) > 1
    got = explanations.top_reasons_text(model, X, 3)
    got._pa_array.validate(full=True)
    pd.testing.assert_series_equal(pd.Series(got), pd.Series(expected))
    assert explanations.top_reasons_json(model, X, 1) == explanations.reasons_json(
        explanations.top_reasons(model, X, 1)
    )
