"""County overview report: one self-contained, printable HTML page for the county health commission."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from risk.errors import RiskUserError
from risk.indicators.cascade import overview_block
from risk.indicators.charts import tier_mix_chart, trend_chart, units_chart
from risk.indicators.engine import compute_indicator
from risk.indicators.periods import Period, parse_period, period_containing, trailing_periods
from risk.indicators.report import format_value, template_environment
from risk.indicators.run import Run, open_run
from risk.indicators.suppression import suppress_indicator_table
from risk.indicators.tiers import tier_mix, tier_transitions
from risk.run.history import find_runs

log = logging.getLogger("risk.indicators.overview")

HEADLINE = [
    "bp_control_cn",
    "bp_control_cn_followed",
    "bp_control_hearts",
    "glucose_control_fpg",
    "glucose_control_hba1c",
    "standardised_management_hypertension",
    "standardised_management_diabetes",
    "signing_rate",
    "admission_rate",
    "complication_incidence",
    "outside_county_share",
    "cost_per_patient",
    "fund_per_patient",
]
LEAGUE = [
    "bp_control_cn",
    "bp_control_hearts",
    "glucose_control_fpg",
    "standardised_management_hypertension",
    "signing_rate",
    "admission_rate",
]
TRENDS = {
    "Blood-pressure control": ["bp_control_cn", "bp_control_hearts"],
    "Glucose control": ["glucose_control_fpg", "glucose_control_hba1c"],
}
COST_BY_TIER = ["cost_per_patient", "fund_per_patient"]


def default_period(run: Run) -> Period:
    """The quarter containing the run's as_of date (or the last BP measurement)."""
    day = run.as_of or run.last_data_date()
    if day is None:
        raise RiskUserError(f"{run.path}: no as_of date and no measurements; pass --period")
    return period_containing(day, "quarter")


def _cell(row: pd.Series, is_rate: bool) -> dict[str, Any]:
    met = row["meets_target"]
    return {
        "text": format_value(row["value"], is_rate),
        "hidden": bool(row["suppressed"]),
        "cls": "met" if met is True else "notmet" if met is False else "",
    }


def build_overview(
    run_dir: str | Path,
    out: str | Path,
    period: str | None = None,
    runs_root: str | Path | None = None,
    min_count: int | None = None,
    trend_quarters: int = 8,
    capitation: bool = True,
) -> Path:
    """Write the county overview HTML: headline indicators vs targets, township league table, trends,
    tier mix over time (runs under `runs_root`, default: the run's parent folder), tier transitions and
    cost by tier, and the capitation (小包干) section of the period's year (`capitation=False` skips it).
    Returns the output path."""
    started = time.perf_counter()
    out = Path(out)
    with open_run(run_dir) as run:
        defs = run.definitions
        k = defs.min_count if min_count is None else min_count
        target_period = parse_period(period) if period else default_period(run)
        trend_periods = trailing_periods(period_containing(target_period.end, "quarter"), trend_quarters)
        all_periods = sorted({*trend_periods, target_period})
        results: dict[str, pd.DataFrame] = {}
        for indicator_id in HEADLINE:
            levels = ["county", "township"]
            if run.has_tiers and indicator_id in COST_BY_TIER:
                levels.append("tier")
            results[indicator_id] = compute_indicator(run, indicator_id, all_periods, by=levels)
        headline = _headline(results, defs, target_period, k)
        league, league_columns = _league(results, defs, target_period, k)
        trends = _trends(results, defs, trend_periods, k)
        league_chart = _league_chart(results, defs, target_period, k)
        tiers = _tier_section(run, results, runs_root, target_period, k) if run.has_tiers else None
        cap = _capitation_section(run.path, target_period.end.year, runs_root) if capitation else None
        cascade = overview_block(run_dir)
        html = (
            template_environment()
            .get_template("overview.html.j2")
            .render(
                period=target_period,
                headline=headline,
                league=league,
                league_columns=league_columns,
                trends=trends,
                league_chart=league_chart,
                tiers=tiers,
                cap=cap,
                cascade=cascade,
                min_count=k,
                methods=[defs.get(i) for i in HEADLINE],
                tier_definitions=defs.tier_indicators,
                provenance=run.provenance(),
                trend_span=f"{trend_periods[0]}–{trend_periods[-1]}",
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    log.info("county overview %s written in %.1f s", out, time.perf_counter() - started)
    return out


def _capitation_section(run_dir: Path, year: int, runs_root: str | Path | None) -> dict[str, Any] | None:
    """The capitation section (risk/capitation); when the run cannot give one (no rule for the year, no
    complete month of it, no pilot patient) the overview leaves it out and logs why."""
    from risk.capitation.render import capitation_section

    try:
        return capitation_section(run_dir, year, runs_root)
    except RiskUserError as exc:
        log.info("capitation section left out: %s", exc)
        return None


def _headline(results: dict[str, pd.DataFrame], defs: Any, period: Period, k: int) -> list[dict[str, Any]]:
    rows = []
    for indicator_id, table in results.items():
        indicator = defs.get(indicator_id)
        county = table[(table["period"] == period.id) & (table["level"] == "county")]
        county = suppress_indicator_table(county, k, rate=indicator.is_rate).iloc[0]
        reference = indicator.reference or {}
        rows.append(
            {
                "indicator": indicator,
                **_cell(county, indicator.is_rate),
                "ci": "" if pd.isna(county["ci_low"]) else f"{county['ci_low']:.1%}–{county['ci_high']:.1%}",
                "n": "—" if pd.isna(county["denominator"]) else f"{county['denominator']:,.0f}",
                "target": ""
                if pd.isna(county["target"])
                else ("≥ " if indicator.target.direction == "at_least" else "≤ ") + f"{county['target']:.0%}",
                "reference": f"{reference['value']:.2%} ({reference['year']})" if reference else "",
            }
        )
    return rows


def _league(
    results: dict[str, pd.DataFrame],
    defs: Any,
    period: Period,
    k: int,
) -> tuple[list[dict[str, Any]], list[Any]]:
    columns = [defs.get(i) for i in LEAGUE]
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for indicator in columns:
        table = results[indicator.id]
        table = suppress_indicator_table(table[table["period"] == period.id], k, rate=indicator.is_rate)
        for _, row in table.iterrows():
            cells.setdefault(row["unit"], {})[indicator.id] = {
                **_cell(row, indicator.is_rate),
                "value": row["value"],
            }
    empty = {"text": "", "hidden": False, "cls": "", "value": float("nan")}

    def sort_key(unit: str) -> float:
        value = cells[unit].get(LEAGUE[0], empty)["value"]
        return -value if pd.notna(value) else 1.0

    townships = sorted((u for u in cells if u != "county"), key=lambda u: (sort_key(u), u))
    rows = [
        {"unit": u, "rank": i + 1, "cells": [cells[u].get(c.id, empty) for c in columns], "total": False}
        for i, u in enumerate(townships)
    ]
    if "county" in cells:
        rows.append(
            {
                "unit": "county 全县",
                "rank": "",
                "cells": [cells["county"].get(c.id, empty) for c in columns],
                "total": True,
            }
        )
    return rows, columns


def _league_chart(results: dict[str, pd.DataFrame], defs: Any, period: Period, k: int) -> str | None:
    indicator = defs.get(LEAGUE[0])
    table = results[indicator.id]
    table = suppress_indicator_table(table[table["period"] == period.id], k, rate=True)
    townships = table[table["level"] == "township"]
    target = townships["target"].dropna()
    return units_chart(
        townships,
        f"{indicator.en} by township, {period}",
        True,
        float(target.iloc[0]) if len(target) else None,
    )


def _trends(
    results: dict[str, pd.DataFrame], defs: Any, periods: list[Period], k: int
) -> list[dict[str, Any]]:
    ids = [p.id for p in periods]
    charts = []
    for title, indicator_ids in TRENDS.items():
        series, targets = {}, {}
        for indicator_id in indicator_ids:
            indicator = defs.get(indicator_id)
            table = results[indicator_id]
            county = table[(table["level"] == "county") & table["period"].isin(ids)]
            series[indicator.en] = suppress_indicator_table(county, k, rate=True)
            if indicator.target:
                for year in sorted({p.end.year for p in periods}):
                    value = indicator.target.for_year(year)
                    if value is not None:
                        targets[f"target {value:.0%}"] = value
        charts.append({"title": title, "uri": trend_chart(series, f"{title}, county, by quarter", targets)})
    return charts


def _tier_section(run: Run, results: dict[str, pd.DataFrame], runs_root: str | Path | None, period: Period,
                  k: int) -> dict[str, Any]:
    root = Path(runs_root) if runs_root else run.path.parent
    runs = [r for r in find_runs(root)] if root.is_dir() else []
    if run.path.resolve() not in [r.resolve() for r in runs]:
        runs.append(run.path)
    mix = tier_mix(runs, min_count=k)
    mix_rows = mix.pivot_table(index="as_of", columns="tier", values="share", aggfunc="sum")
    section: dict[str, Any] = {
        "mix_chart": tier_mix_chart(mix),
        "mix_rows": [
            {
                "as_of": idx,
                **{t: format_value(mix_rows.loc[idx].get(t), True) for t in ("red", "yellow", "green")},
            }
            for idx in mix_rows.index
        ],
        "transitions": None,
        "cost": [],
    }
    ordered = [r.resolve() for r in runs]
    position = ordered.index(run.path.resolve())
    if position > 0:
        table = tier_transitions(runs[position - 1], run.path, min_count=k)
        section["transitions"] = {
            "from": runs[position - 1].name,
            "to": run.path.name,
            "rows": [(idx, ["—" if pd.isna(v) else f"{v:,}" for v in row]) for idx, row in table.iterrows()],
            "columns": list(table.columns),
        }
    for indicator_id in COST_BY_TIER:
        indicator = run.definitions.get(indicator_id)
        table = results[indicator_id]
        table = table[(table["period"] == period.id) & table["level"].isin(["county", "tier"])]
        table = suppress_indicator_table(table, k, rate=False)
        section["cost"].append(
            {
                "indicator": indicator,
                "rows": [
                    {
                        "unit": r["unit"],
                        "value": format_value(r["value"], False),
                        "n": "—" if pd.isna(r["persons"]) else f"{r['persons']:,}",
                    }
                    for _, r in table.iterrows()
                ],
            }
        )
    return section
