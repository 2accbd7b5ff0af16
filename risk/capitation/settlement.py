"""Settlement of a township's year: surplus kept and split (结余留用), overspend shared (合理超支分担)."""

from __future__ import annotations

import pandas as pd

from risk.capitation.definitions import LEVELS, Overspend, Split


def settle(
    budget: float, spend: float, split: Split, overspend: Overspend, coefficient: float = 1.0
) -> dict[str, float]:
    """One unit's settlement. Positive level amounts are money kept, negative amounts losses borne.

    Surplus S = budget - spend > 0: the unit keeps S x coefficient (assessment), split county:town:village by
    `split`; the rest returns to the fund.
    Deficit D = spend - budget > 0: overspend up to `reasonable_cap_share` x budget is reasonable; the unit
    bears `unit_share` of it and the fund the rest; overspend beyond the cap is borne by the unit alone.
    The unit's borne amount is split between the levels by the same shares as a surplus.
    """
    surplus = budget - spend
    out = {
        "surplus": surplus,
        "kept": 0.0,
        "to_fund": 0.0,
        "reasonable_overspend": 0.0,
        "unreasonable_overspend": 0.0,
        "fund_bears": 0.0,
        "unit_bears": 0.0,
    }
    if surplus >= 0:
        out["kept"] = surplus * coefficient
        out["to_fund"] = surplus - out["kept"]
        amount = out["kept"]
    else:
        deficit = -surplus
        reasonable = min(deficit, overspend.reasonable_cap_share * budget)
        out["reasonable_overspend"] = reasonable
        out["unreasonable_overspend"] = deficit - reasonable
        out["fund_bears"] = reasonable * (1 - overspend.unit_share)
        out["unit_bears"] = deficit - out["fund_bears"]
        amount = -out["unit_bears"]
    for level in LEVELS:
        out[level] = amount * split.share(level)
    return out


def settle_table(
    table: pd.DataFrame,
    budget: str,
    spend: str,
    split: Split,
    overspend: Overspend,
    coefficients: dict[str, float] | None = None,
    unit: str = "township_id",
    prefix: str = "",
) -> pd.DataFrame:
    """settle() for every row of `table`; the result's columns get `prefix`."""
    coefficients = coefficients or {}
    rows = [
        settle(float(r[budget]), float(r[spend]), split, overspend, float(coefficients.get(r[unit], 1.0)))
        for _, r in table.iterrows()
    ]
    out = pd.DataFrame(rows, index=table.index)
    return out.add_prefix(prefix)
