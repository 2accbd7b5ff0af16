"""Capitation charts (matplotlib Agg, embedded as base64 PNG): budget vs spend per township, burn-down."""

from __future__ import annotations

import numpy as np
import pandas as pd

from risk.indicators.charts import _data_uri, plt


def budget_chart(
    township: pd.DataFrame, text: dict[str, str], names: dict[str, str] | None = None
) -> str | None:
    """Per township (by name when known): year budget, spend to date and projected year-end spend with its
    interval; labels from `text` (risk.capitation.render.SECTION_TEXT)."""
    names = names or {}
    t = township[township["township_id"] != "county"].sort_values("township_id")
    if t.empty:
        return None
    y = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(t) + 1.4))
    ax.barh(y + 0.2, t["budget_year"] / 1e4, height=0.4, color="#bdc3c7", label=text["chart_budget"])
    ax.barh(y - 0.2, t["spend"] / 1e4, height=0.4, color="#2c3e50", label=text["chart_spend"])
    low = (t["projected_spend"] - t["projected_spend_low"]).clip(lower=0) / 1e4
    high = (t["projected_spend_high"] - t["projected_spend"]).clip(lower=0) / 1e4
    ax.errorbar(
        t["projected_spend"] / 1e4,
        y - 0.2,
        xerr=[low.fillna(0), high.fillna(0)],
        fmt="D",
        color="#c0392b",
        ms=4,
        capsize=2,
        label=text["chart_projected"],
    )
    ax.set_yticks(y, [names.get(str(i)) or str(i) for i in t["township_id"]])
    ax.set_xlabel(text["chart_unit"])
    ax.set_title(text["chart_budget_title"])
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    return _data_uri(fig)


def burn_down_chart(monthly: pd.DataFrame, text: dict[str, str]) -> str | None:
    """County budget remaining by month (observed months), against a straight-line budget use."""
    county = monthly[monthly["township_id"] == "county"].sort_values("month")
    if county.empty:
        return None
    total = county["budget"].sum()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.plot(
        county["month"],
        (total - county["budget_cum"]) / 1e4,
        "--",
        color="#7f8c8d",
        label=text["chart_burn_plan"],
    )
    shown = county.dropna(subset=["spend_cum"])
    ax.plot(
        shown["month"],
        shown["budget_remaining"] / 1e4,
        "o-",
        color="#2c3e50",
        label=text["chart_burn_actual"],
    )
    ax.axhline(0, color="#c0392b", lw=0.8)
    ax.set_xticks(range(1, 13))
    ax.set_xlabel(text["chart_month"])
    ax.set_ylabel(text["chart_unit"])
    ax.set_title(text["chart_burn_title"])
    ax.legend(fontsize=7)
    return _data_uri(fig)
