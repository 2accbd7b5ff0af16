"""A team's workload: patients due and reds due per unit (doctor, else team) per week against its capacity.

Settings are county data (risk/definitions/capacity.yaml): the unit column, visits per week (default 50,
per-unit overrides) and the horizon in weeks. Week 1 is the 7 days from the as-of date and holds every
overdue patient.

Capacity schedules, it does not hide: each unit's patients are placed in the one priority order
(risk/tiers/priority.py) into the first week from their due week that still has room. An emergency is always
planned in week 1, even past capacity (the week is then flagged over capacity); the priority order already
puts emergencies first, so nobody can take an emergency's place. A patient who finds no room within the
horizon is counted as pushed later, never dropped. The priority list's order itself is not changed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from risk.definitions import capacity_settings
from risk.tiers.rule_set import URGENCIES

EMERGENCY = URGENCIES.index("emergency") + 1

WORKLOAD_COLUMNS = [
    "unit",
    "week",
    "week_start",
    "week_end",
    "capacity",
    "due",
    "red_due",
    "emergencies",
    "planned",
    "planned_red",
    "pushed_to_later_week",
    "over_capacity",
]


def workload_unit(columns: Any, settings: dict[str, Any] | None = None) -> str:
    """The first configured unit column the data has (doctor_id, else team_id by default)."""
    settings = settings or capacity_settings()
    available = set(columns)
    for column in settings["workload"]["unit"]:
        if column in available:
            return column
    return "team_id"


def plan_visits(
    tiers: pd.DataFrame, unit: str, as_of: date, settings: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Per patient: unit, due_week (1 = overdue or due in the first 7 days; 0 = after the horizon),
    planned_week (0 = not due within the horizon; weeks + 1 = pushed past the horizon) and emergency.

    tiers needs person_id, tier, next_due_on, priority, the unit column and (optionally) urgency.
    """
    settings = settings or capacity_settings()
    workload = settings["workload"]
    weeks = int(workload["weeks"])
    frame = tiers.reset_index(drop=True)
    due_on = pd.to_datetime(frame["next_due_on"]).to_numpy(dtype="datetime64[D]")
    days = (due_on - np.datetime64(pd.Timestamp(as_of).date(), "D")).astype("timedelta64[D]")
    days = np.where(np.isnat(days), np.iinfo(np.int64).max // 2, days.astype("int64"))
    due_week = np.where(days < 0, 1, days // 7 + 1)
    due_week = np.where(due_week > weeks, 0, due_week).astype(np.int64)
    urgency = frame["urgency"].fillna(0).to_numpy(dtype="int64") if "urgency" in frame else 0
    emergency = np.asarray(urgency) >= EMERGENCY
    emergency = np.broadcast_to(emergency, len(frame)).copy()
    due_week = np.where(emergency, 1, due_week)
    units = frame[unit].astype(str).to_numpy()
    priority = pd.to_numeric(frame["priority"], errors="coerce").fillna(np.inf).to_numpy()
    order = np.lexsort((frame["person_id"].astype(str).to_numpy(), priority, units))
    planned = np.zeros(len(frame), dtype=np.int64)
    per_unit = workload.get("per_unit") or {}
    default = int(workload["visits_per_week"])
    used: dict[str, list[int]] = {}
    for i in order:
        week = int(due_week[i])
        if week == 0:
            continue
        room = used.setdefault(units[i], [0] * weeks)
        if emergency[i]:
            planned[i] = 1
            room[0] += 1
            continue
        limit = int(per_unit.get(units[i], default))
        slot = next((w for w in range(week, weeks + 1) if room[w - 1] < limit), weeks + 1)
        planned[i] = slot
        if slot <= weeks:
            room[slot - 1] += 1
    return pd.DataFrame(
        {
            "person_id": frame["person_id"].to_numpy(),
            "unit": units,
            "tier": frame["tier"].to_numpy(),
            "due_week": due_week,
            "planned_week": planned,
            "emergency": emergency,
        }
    )


def workload_table(
    tiers: pd.DataFrame, unit: str, as_of: date, settings: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row per unit and week of the horizon (columns WORKLOAD_COLUMNS)."""
    settings = settings or capacity_settings()
    workload = settings["workload"]
    weeks = int(workload["weeks"])
    plan = plan_visits(tiers, unit, as_of, settings)
    start = pd.Timestamp(as_of).date()
    rows = []
    for name, part in plan.groupby("unit", sort=True):
        capacity = int((workload.get("per_unit") or {}).get(name, workload["visits_per_week"]))
        red = part["tier"].to_numpy() == "red"
        for week in range(1, weeks + 1):
            due = part["due_week"].to_numpy() == week
            planned = part["planned_week"].to_numpy() == week
            rows.append(
                {
                    "unit": name,
                    "week": week,
                    "week_start": start + timedelta(days=7 * (week - 1)),
                    "week_end": start + timedelta(days=7 * week - 1),
                    "capacity": capacity,
                    "due": int(due.sum()),
                    "red_due": int((due & red).sum()),
                    "emergencies": int((due & part["emergency"].to_numpy()).sum()),
                    "planned": int(planned.sum()),
                    "planned_red": int((planned & red).sum()),
                    "pushed_to_later_week": int((due & (part["planned_week"].to_numpy() > week)).sum()),
                    "over_capacity": bool(due.sum() > capacity or planned.sum() > capacity),
                }
            )
    return pd.DataFrame(rows, columns=WORKLOAD_COLUMNS)


def workload_summary(
    table: pd.DataFrame, unit: str, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Figures for run.json: how many units are over capacity, and whether emergencies alone exceed it."""
    settings = settings or capacity_settings()
    workload = settings["workload"]
    first = table[table["week"] == 1]
    return {
        "settings_version": str(settings.get("version")),
        "unit": unit,
        "visits_per_week": int(workload["visits_per_week"]),
        "weeks": int(workload["weeks"]),
        "units": int(first["unit"].nunique()),
        "units_over_capacity_week1": int(first["over_capacity"].sum()),
        "due_week1": int(first["due"].sum()),
        "red_due_week1": int(first["red_due"].sum()),
        "emergencies": int(first["emergencies"].sum()),
        "units_with_emergencies_over_capacity": int((first["emergencies"] > first["capacity"]).sum()),
        "pushed_past_horizon": int(table["due"].sum() - table["planned"].sum()),
    }


def red_share_check(tiers: pd.DataFrame, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Red share of the rules and of the combined colour against the county maximum. Flags only."""
    settings = settings or capacity_settings()
    maximum = float(settings["red_share"]["maximum"])
    shares = {}
    for name, column in (("rules", "tier_rules"), ("combined", "tier")):
        if column in tiers and len(tiers):
            shares[name] = round(float((tiers[column] == "red").mean()), 4)
    exceeded = [name for name, share in shares.items() if share > maximum]
    return {"maximum": maximum, **shares, "exceeded": exceeded}
