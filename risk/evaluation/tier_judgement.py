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


def capacity_per_team(team: np.ndarray, settings: dict[str, Any] | None = None) -> dict[str, dict[str, int]]:
    """K per team: 'capacity' = the unit's weekly capacity (capacity.yaml) x evaluation.capacity_weeks,
    capped at the team's size; 'top_share' = ceil(evaluation.top_share x team size)."""
    from risk.definitions import capacity_settings

    settings = settings or capacity_settings()
    work, judged = settings["workload"], settings.get("evaluation") or {}
    weeks, share = int(judged.get("capacity_weeks", 2)), float(judged.get("top_share", 0.10))
    sizes = pd.Series(np.asarray(team).astype(str)).value_counts()
    per_unit = work.get("per_unit") or {}
    return {
        "capacity": {
            t: int(min(n, int(per_unit.get(t, work["visits_per_week"])) * weeks)) for t, n in sizes.items()
        },
        "top_share": {t: int(math.ceil(share * n)) for t, n in sizes.items()},
    }


def order_within(team: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Rank (0 = first) by the given keys, lower first, ties by row order; the team does not matter to
    capture_at_capacity, which ranks within each team."""
    order = np.lexsort(tuple(reversed([np.asarray(k) for k in keys])))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def judge_methods(
    tiers: dict[str, np.ndarray],
    y: np.ndarray,
    groups: pd.DataFrame,
    orders: dict[str, np.ndarray] | None = None,
    team: np.ndarray | None = None,
    settings: dict[str, Any] | None = None,
    min_events: int = 20,
) -> dict[str, Any]:
    """judge_tiers for every method (rules, model, combined) and, where an order and teams are given, the
    events caught in each team's first K (at its capacity, and in its top share)."""
    y = np.asarray(y).astype(int)
    out: dict[str, Any] = {"n": int(len(y)), "events": int(y.sum()), "methods": {}, "tables": []}
    ks = capacity_per_team(team, settings) if team is not None else None
    for name, tier in tiers.items():
        judged = judge_tiers(tier, y, groups, min_events)
        out["tables"].append(judged.pop("table").assign(method=name))
        if ks is not None and orders is not None and name in orders:
            key = pd.DataFrame({"team_id": np.asarray(team).astype(str), "priority": orders[name]})
            judged["capture"] = {label: capture_at_capacity(key, y, k) for label, k in ks.items()}
        out["methods"][name] = judged
    out["table"] = pd.concat(out.pop("tables"), ignore_index=True) if tiers else pd.DataFrame()
    return out


def judgement_lines(judgement: dict[str, Any], max_violations: int = 8) -> list[str]:
    """Markdown: the figures of issue 15 per method (share and event rate by tier with 95 % CIs, red / green,
    ordering violations by sex, age band and township, events caught at capacity)."""
    table = judgement["table"]
    lines = [
        "## Does the colour do what the list is for? (tier judgement)",
        "",
        f"{judgement['n']:,} patients, {judgement['events']:,} events. Red > yellow > green is checked in "
        "every "
        "subgroup with at least 20 events; capture counts the events among each team's first K patients of "
        "the method's order (K = its capacity over the evaluation weeks of capacity.yaml, capped at the team "
        "size; and its top 10 %).",
        "",
        "| method | red share | yellow share | green share | event rate red (95% CI) | yellow | green "
        "| red ÷ green | events at capacity | events in top 10 % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, judged in judgement["methods"].items():
        overall = table[(table["method"] == name) & (table["group"] == "all")].set_index("tier")

        def rate(tier: str, ci: bool = False, overall: pd.DataFrame = overall) -> str:
            r = overall.loc[tier]
            if r["n"] == 0:
                return "–"
            text = f"{r['event_rate']:.1%}"
            return f"{text} ({r['low']:.1%}–{r['high']:.1%})" if ci else text

        capture = judged.get("capture") or {}
        cap = capture.get("capacity")
        top = capture.get("top_share")
        lines.append(
            f"| {name} | {overall.at['red', 'share']:.1%} | {overall.at['yellow', 'share']:.1%} | "
            f"{overall.at['green', 'share']:.1%} | {rate('red', True)} | {rate('yellow', True)} | "
            f"{rate('green', True)} | {judged['red_to_green']:.1f} | "
            + (f"{cap['events_captured']:,} ({cap['share_of_events']:.1%})" if cap else "–")
            + " | "
            + (f"{top['events_captured']:,} ({top['share_of_events']:.1%})" if top else "–")
            + " |"
        )
    lines += ["", "Subgroups where red > yellow > green does not hold (≥ 20 events):", ""]
    for name, judged in judgement["methods"].items():
        violations = judged["violations"]
        shown = "; ".join(violations[:max_violations])
        more = f" (+{len(violations) - max_violations} more)" if len(violations) > max_violations else ""
        lines.append(f"- {name}: {shown + more if violations else 'none'}")
    lines.append("")
    return lines
