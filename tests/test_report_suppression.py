"""Small-cell suppression: primary rule, complementary cells, and that hidden cells cannot be recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.indicators.suppression import complementary_mask, suppress_crosstab, suppress_indicator_table


def township_table(counts: list[tuple[int, int]]) -> pd.DataFrame:
    """A one-period table: townships T0.. with (numerator, denominator) and the county total row."""
    rows = [{"period": "2024Q4", "level": "township", "unit": f"T{i}", "numerator": n, "denominator": d,
             "persons": d, "value": n / d if d else np.nan, "ci_low": np.nan, "ci_high": np.nan,
             "target": 0.6, "meets_target": None} for i, (n, d) in enumerate(counts)]
    total_n, total_d = sum(n for n, _ in counts), sum(d for _, d in counts)
    rows.insert(0, {**rows[0], "level": "county", "unit": "county", "numerator": total_n,
                    "denominator": total_d, "persons": total_d,
                    "value": total_n / total_d if total_d else np.nan})
    return pd.DataFrame(rows)


def test_primary_and_secondary_suppression() -> None:
    # T0 has 3 patients (< 10): primary. Alone it could be recovered as county - T1 - T2, so the next
    # smallest township (T2, 40 patients) is hidden too; T1 stays.
    table = suppress_indicator_table(township_table([(2, 3), (50, 100), (20, 40)]), k=10).set_index("unit")
    assert table.loc["T0", "suppressed"] == "primary"
    assert table.loc["T2", "suppressed"] == "secondary"
    assert table.loc["T1", "suppressed"] == ""
    assert pd.isna(table.loc["T0", "numerator"]) and pd.isna(table.loc["T2", "value"])
    assert table.loc["county", "denominator"] == 143 and table.loc["T1", "numerator"] == 50


def test_complement_is_protected_too() -> None:
    # 98 of 100 controlled: the 2 uncontrolled patients are a small cell.
    table = suppress_indicator_table(township_table([(98, 100), (60, 100), (30, 50)]), k=10).set_index("unit")
    assert table.loc["T0", "suppressed"] == "primary"
    assert table.loc["T2", "suppressed"] == "secondary"  # smallest remaining township


def test_zero_counts_and_large_cells_are_not_hidden() -> None:
    table = suppress_indicator_table(township_table([(0, 50), (50, 100)]), k=10)
    assert (table["suppressed"] == "").all()


def test_only_other_cell_is_hidden_with_total_when_no_candidate_left() -> None:
    # Two townships, one small: the other must go, and nothing else is left.
    table = suppress_indicator_table(township_table([(1, 4), (30, 60)]), k=10).set_index("unit")
    assert set(table["suppressed"]) == {"primary", "secondary", ""}
    assert table.loc["T1", "suppressed"] == "secondary"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=2, max_size=12),
       st.integers(2, 15))
@pytest.mark.slow
def test_hidden_cells_cannot_be_recovered_from_the_total(pairs: list[tuple[int, int]], k: int) -> None:
    counts = [(min(a, b), max(a, b)) for a, b in pairs]
    table = suppress_indicator_table(township_table(counts), k=k)
    cells = table[table["level"] == "township"]
    hidden = cells["suppressed"] != ""
    county_hidden = bool(table.loc[table["level"] == "county", "suppressed"].iloc[0])
    denominators = np.array([d for _, d in counts])
    # Every cell describing 1..k-1 people is hidden.
    assert hidden.to_numpy()[(denominators >= 1) & (denominators < k)].all()
    if not county_hidden and hidden.any():
        # At least two hidden, together at least k people, or every non-empty cell is hidden.
        nonempty_visible = (~hidden.to_numpy()) & (denominators > 0)
        protected = hidden.sum() >= 2 and denominators[hidden.to_numpy()].sum() >= k
        assert protected or not nonempty_visible.any()


def test_crosstab_rows_and_columns_protected() -> None:
    counts = pd.DataFrame([[50, 3, 40], [30, 60, 20], [25, 35, 45]],
                          index=["red", "yellow", "green"], columns=["red", "yellow", "green"])
    result = suppress_crosstab(counts, k=10)
    hidden = result.isna().to_numpy()
    assert hidden[0, 1]
    # No row or column has exactly one hidden cell.
    assert all(row.sum() != 1 for row in hidden) and all(col.sum() != 1 for col in hidden.T)
    assert result.loc["yellow", "yellow"] == 60 or hidden[1, 1]


def test_complementary_mask_without_total_stops() -> None:
    mask = complementary_mask(np.array([True, False]), np.array([3.0, 0.0]), [(np.array([0, 1]), None)], 10)
    assert mask.tolist() == [True, False]  # the only other cell is empty: hiding it protects nothing
