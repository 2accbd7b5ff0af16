"""Workload products of the nightly: lists/workload.csv and the summary.md section (risk/tiers/workload.py
holds the planning itself, shared with the API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from risk.definitions import capacity_settings
from risk.products.lists import write_csv
from risk.tiers.workload import red_share_check, workload_summary, workload_table, workload_unit


@dataclass
class Workload:
    """The workload per unit and week (lists/workload.csv once written) and the run.json figures."""

    table: pd.DataFrame
    unit: str  # the unit column's name in the CSV
    figures: dict[str, Any]  # workload and red share

    def write(self, out_dir: Any) -> None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        write_csv(self.table.rename(columns={"unit": self.unit}), Path(out_dir) / "workload.csv")


def plan_workload(
    tiers: pd.DataFrame, features: pd.DataFrame, as_of: date, settings: dict[str, Any] | None = None
) -> Workload:
    """The workload table and figures, not written yet (the nightly plans it while the list workers write
    their workbooks, and writes it once they are done: the list export counts its files on disk)."""
    settings = settings or capacity_settings()
    unit = workload_unit(features.columns, settings)
    with_unit = tiers.drop(columns=[unit], errors="ignore").merge(
        features[["person_id", unit]], on="person_id", how="left"
    )
    table = workload_table(with_unit, unit, as_of, settings)
    figures = workload_summary(table, unit, settings)
    return Workload(table, unit, {"workload": figures, "red_share": red_share_check(tiers, settings)})


def export_workload(
    tiers: pd.DataFrame,
    features: pd.DataFrame,
    as_of: date,
    out_dir: Any,
    settings: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Write lists/workload.csv; return the table and the run.json figures (workload and red share)."""
    workload = plan_workload(tiers, features, as_of, settings)
    workload.write(out_dir)
    return workload.table, workload.figures


def summary_lines(figures: dict[str, Any], table: pd.DataFrame, top: int = 10) -> list[str]:
    """The summary.md section: capacity, units over it in week 1, the red share against the county maximum."""
    work, red = figures["workload"], figures["red_share"]
    lines = [
        "## Workload and capacity (lists/workload.csv)",
        "",
        f"- unit: `{work['unit']}`, capacity {work['visits_per_week']} visits a week (capacity.yaml "
        f"{work['settings_version']}), horizon {work['weeks']} weeks",
        f"- week 1: {work['due_week1']:,} patients due ({work['red_due_week1']:,} red, "
        f"{work['emergencies']:,} emergencies); {work['units_over_capacity_week1']} of {work['units']} units "
        "over capacity",
        f"- emergencies are always planned in week 1; units whose emergencies alone exceed capacity: "
        f"{work['units_with_emergencies_over_capacity']}",
        f"- patients due within the horizon who find no room in it (pushed later, not dropped): "
        f"{work['pushed_past_horizon']:,}",
    ]
    over = table[(table["week"] == 1) & table["over_capacity"]].sort_values(
        ["due", "unit"], ascending=[False, True]
    )
    if len(over):
        lines += ["", "| unit | due week 1 | red | emergencies | capacity |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {r.unit} | {r.due} | {r.red_due} | {r.emergencies} | {r.capacity} |"
            for r in over.head(top).itertuples()
        ]
    shares = ", ".join(f"{name} {red[name]:.1%}" for name in ("rules", "combined") if name in red)
    flag = (
        f"**above the county maximum {red['maximum']:.0%}: {', '.join(red['exceeded'])}** (flag only: "
        "nobody is recoloured or reordered; the county reviews its thresholds)"
        if red["exceeded"]
        else f"within the county maximum {red['maximum']:.0%}"
    )
    lines += ["", f"- red share: {shares}; {flag}", ""]
    return lines
