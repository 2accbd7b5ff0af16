"""Does the colour do what the list is for? Event rate and share by tier, per subgroup; capture at capacity.

The list promises two things (issue 15): the colour shows risk at a glance (a red patient is more likely to
have an event than a yellow one, a yellow more than a green, overall and inside every sex, age band and
township), and each doctor's list puts first the people to see first (the events caught in a team's top K,
K = what the team can see in its planning period).

- `tier_table`: tier x subgroup -> n, share, events, event rate with a Wilson 95 % interval.
- `ordering_violations`: subgroups with enough events where red > yellow > green does not hold.
- `capture_at_capacity`: per team, the events among its top-K rows of a priority order, summed.
- `judge_tiers`: the done-means figures of issue 15 in one dict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from risk.stats import wilson_interval
from risk.tiers.rule_set import TIERS

WORST_FIRST = list(reversed(TIERS))


def ten_year_bands(age: pd.Series, start: int = 35) -> pd.Series:
    """'35-44', '45-54', ... '85+' (the last band open), '<35' below start."""
    age = pd.to_numeric(age, errors="coerce")
    low = (np.floor((age - start) / 10) * 10 + start).clip(lower=start - 10)
    labels = low.map(
        lambda v: (
            ""
            if math.isnan(v)
            else (f"<{start}" if v < start else ("85+" if v >= 85 else f"{int(v)}-{int(v) + 9}"))
        )
    )
    return labels.astype(object)


def tier_table(
    tier: pd.Series | np.ndarray, y: np.ndarray, groups: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Rows: subgroup column ('all' for everyone), level, tier, n, share, events, event_rate, low, high."""
    tier = pd.Series(np.asarray(tier).astype(str))
    y = np.asarray(y).astype(int)
    frames = {"all": pd.Series(["all"] * len(tier))}
    if groups is not None:
        for column in groups.columns:
            frames[column] = pd.Series(groups[column].astype(str).to_numpy())
    rows = []
    for column, levels in frames.items():
        frame = pd.DataFrame({"level": levels, "tier": tier, "y": y})
        for level, part in frame.groupby("level", sort=True):
            total = len(part)
            for name in WORST_FIRST:
                sub = part[part["tier"] == name]
                rows.append(
                    {
                        "group": column,
                        "level": level,
                        "tier": name,
                        "n": len(sub),
                        "share": len(sub) / total if total else np.nan,
                        "events": int(sub["y"].sum()),
                        "group_events": int(part["y"].sum()),
                    }
                )
    table = pd.DataFrame(rows)
    rate = table["events"] / table["n"].where(table["n"] > 0)
    low, high = wilson_interval(table["events"].to_numpy(), table["n"].to_numpy())
    return table.assign(event_rate=rate, low=low, high=high)


def ordering_violations(table: pd.DataFrame, min_events: int = 20) -> list[str]:
    """Subgroups (with >= min_events events) where the event rate is not red > yellow > green."""
    out = []
    for (group, level), part in table.groupby(["group", "level"], sort=True):
        if part["group_events"].iloc[0] < min_events:
            continue
        rates = part.set_index("tier")["event_rate"].reindex(WORST_FIRST).to_numpy(dtype=float)
        present = rates[~np.isnan(rates)]
        if len(present) < 2 or not np.all(np.diff(present) < 0):
            shown = ", ".join(
                f"{t} {r:.1%}" if not math.isnan(r) else f"{t} –"
                for t, r in zip(WORST_FIRST, rates, strict=True)
            )
            out.append(f"{group}={level}: {shown}")
    return out


def capture_at_capacity(
    order_key: pd.DataFrame, y: np.ndarray, capacity: int | dict[str, int]
) -> dict[str, float]:
    """order_key: team_id and priority (lower = first). Events among each team's first K rows, summed.

    capacity: K for every team, or a mapping team -> K. Returns events_captured, share_of_events, seen.
    """
    frame = order_key[["team_id", "priority"]].reset_index(drop=True).assign(y=np.asarray(y).astype(int))
    frame = frame.sort_values(["team_id", "priority"], kind="mergesort")
    position = frame.groupby("team_id").cumcount()
    limit = frame["team_id"].map(capacity) if isinstance(capacity, dict) else capacity
    seen = position < limit
    captured = int(frame.loc[seen, "y"].sum())
    events = int(frame["y"].sum())
    return {
        "events_captured": captured,
        "share_of_events": captured / events if events else np.nan,
        "seen": int(seen.sum()),
        "event_rate_seen": captured / int(seen.sum()) if seen.any() else np.nan,
    }


def judge_tiers(
    tier: pd.Series | np.ndarray, y: np.ndarray, groups: pd.DataFrame, min_events: int = 20
) -> dict[str, Any]:
    """Red share, red / green event-rate ratio and ordering violations (the done-means of issue 15)."""
    table = tier_table(tier, y, groups)
    overall = table[table["group"] == "all"].set_index("tier")
    red, green = overall.at["red", "event_rate"], overall.at["green", "event_rate"]
    return {
        "table": table,
        "red_share": float(overall.at["red", "share"]),
        "red_to_green": float(red / green) if green and not math.isnan(green) else float("inf"),
        "violations": ordering_violations(table, min_events),
    }
