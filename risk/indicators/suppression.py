"""Small-cell suppression for anything exported (CSV, XLSX, HTML).

Primary: a cell is hidden when it describes fewer than k people: its denominator is 1..k-1, or its
numerator or the complement (denominator - numerator) is 1..k-1 (for rates; the complement matters because
"12 of 13 controlled" tells who is not). Zero counts are not hidden.
Secondary (complementary): when cells add up to a published total (the townships of one period add up to
the county row), one hidden cell could be recovered as total - the others. So in every such group at least
two cells are hidden and the hidden cells together cover at least k people; the next-smallest non-empty cell
is hidden until that holds (if no cell is left, the total itself is hidden). Repeated until stable, so it
also works for two-way tables (tier transitions: rows and columns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

VALUE_COLUMNS = ("numerator", "denominator", "persons", "value", "ci_low", "ci_high")


def primary_mask(numerator: np.ndarray, denominator: np.ndarray, k: int, rate: bool = True) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)

    def small(x: np.ndarray) -> np.ndarray:
        return (x >= 1) & (x < k)

    mask = small(denominator)
    if rate:
        mask |= small(numerator) | small(denominator - numerator)
    return mask


def complementary_mask(
    hidden: np.ndarray,
    size: np.ndarray,
    groups: Sequence[tuple[np.ndarray, int | None]],
    k: int,
) -> np.ndarray:
    """Extend `hidden` so no group's hidden cells can be recovered from its published total.

    groups: (indices of the cells adding up to a total, index of the total cell or None when the total is
    published elsewhere and cannot be hidden here).
    """
    hidden = np.asarray(hidden, dtype=bool).copy()
    size = np.asarray(size, dtype=float)
    changed = True
    while changed:
        changed = False
        for members, total in groups:
            members = np.asarray(members, dtype=int)
            if total is not None and hidden[total]:
                continue
            hidden_members = members[hidden[members]]
            if len(hidden_members) == 0:
                continue
            if len(hidden_members) >= 2 and size[hidden_members].sum() >= k:
                continue
            candidates = members[~hidden[members] & (size[members] > 0)]
            if len(candidates):
                hidden[candidates[np.argsort(size[candidates], kind="stable")[0]]] = True
            elif total is not None:
                hidden[total] = True
            else:
                continue
            changed = True
    return hidden


def suppress_indicator_table(
    table: pd.DataFrame,
    k: int,
    rate: bool = True,
    total_level: str = "county",
) -> pd.DataFrame:
    """Suppress an indicator result table (columns of engine.RESULT_COLUMNS).

    Cells of one period and one breakdown level form a group whose total is the `total_level` row of the
    same period. Adds a `suppressed` column ('', 'primary', 'secondary') and blanks the counts and values of
    hidden cells. Tables with several non-total levels are protected level by level against the total only.
    """
    table = table.reset_index(drop=True).copy()
    size = table["persons"].to_numpy(float)
    primary = primary_mask(table["numerator"], table["denominator"], k, rate) | primary_mask(
        size, size, k, False
    )
    groups: list[tuple[np.ndarray, int | None]] = []
    for (_, level), rows in table.groupby(["period", "level"], sort=False):
        if level == total_level:
            continue
        period = rows["period"].iloc[0]
        total_rows = table.index[(table["period"] == period) & (table["level"] == total_level)]
        groups.append((rows.index.to_numpy(), int(total_rows[0]) if len(total_rows) else None))
    hidden = complementary_mask(primary, size, groups, k)
    return _blank(table, hidden, primary)


def _blank(table: pd.DataFrame, hidden: np.ndarray, primary: np.ndarray) -> pd.DataFrame:
    table["suppressed"] = np.where(primary, "primary", np.where(hidden, "secondary", ""))
    for column in VALUE_COLUMNS:
        if column in table:
            if pd.api.types.is_integer_dtype(table[column]):
                table[column] = table[column].astype("Int64")
            table.loc[hidden, column] = pd.NA if table[column].dtype == "Int64" else np.nan
    for column in ("meets_target",):
        if column in table:
            table[column] = table[column].astype(object)
            table.loc[hidden, column] = None
    return table


def suppress_crosstab(counts: pd.DataFrame, k: int) -> pd.DataFrame:
    """Suppress a two-way count table (index x columns) with published row and column totals.

    Returns a table of the same shape with hidden cells as <NA> (nullable Int64).
    """
    values = counts.to_numpy(float)
    n_rows, n_cols = values.shape
    flat = values.ravel()
    primary = (flat >= 1) & (flat < k)
    groups = [(np.arange(r * n_cols, (r + 1) * n_cols), None) for r in range(n_rows)]
    groups += [(np.arange(c, n_rows * n_cols, n_cols), None) for c in range(n_cols)]
    hidden = complementary_mask(primary, flat, groups, k).reshape(values.shape)
    result = counts.astype("Int64")
    return result.mask(hidden)
