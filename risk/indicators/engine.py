"""Indicator values per period and breakdown unit, computed with DuckDB over a run's canonical tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from risk.errors import RiskUserError
from risk.indicators.definitions import Indicator
from risk.indicators.periods import Period, parse_period
from risk.indicators.run import Run
from risk.stats import wilson_interval

# Breakdown level -> column of `persons` (or of tiers.parquet for `tier`).
LEVELS: dict[str, str | None] = {
    "county": None,
    "township": "township_id",
    "unit": "unit_id",
    "team": "team_id",
    "village": "village_id",
    "tier": "tier",
}
RESULT_COLUMNS = [
    "indicator_id",
    "definition",
    "period",
    "period_start",
    "period_end",
    "level",
    "unit",
    "numerator",
    "denominator",
    "persons",
    "value",
    "ci_low",
    "ci_high",
    "target",
    "meets_target",
]


def _as_periods(periods: Period | str | Sequence[Period | str]) -> list[Period]:
    if isinstance(periods, Period | str):
        periods = [periods]
    parsed = [p if isinstance(p, Period) else parse_period(p) for p in periods]
    if not parsed:
        raise RiskUserError("no period given")
    return parsed


def _window_start(period: Period, indicator: Indicator) -> pd.Timestamp:
    end = pd.Timestamp(period.end)
    if indicator.window == "last_3_months":
        return end.replace(day=1) - pd.DateOffset(months=2)
    if indicator.window == "rolling_12_months":
        return end - pd.DateOffset(years=1) + pd.Timedelta(days=1)
    return pd.Timestamp(period.start)


def _load_periods(run: Run, periods: list[Period], indicator: Indicator) -> str:
    """Load the `periods` table for this indicator's window; returns a key identifying its content."""
    frame = pd.DataFrame(
        {
            "period_id": [p.id for p in periods],
            "period_start": [_window_start(p, indicator).date() for p in periods],
            "period_end": [p.end for p in periods],
            "year12_start": [
                (pd.Timestamp(p.end) - pd.DateOffset(years=1)).date() + timedelta(days=1) for p in periods
            ],
        }
    )
    run.con.register("periods_df", frame)
    run.con.execute(
        "CREATE OR REPLACE TEMP TABLE periods AS SELECT period_id::VARCHAR AS period_id, "
        "period_start::DATE AS period_start, period_end::DATE AS period_end, "
        "year12_start::DATE AS year12_start FROM periods_df"
    )
    run.con.unregister("periods_df")
    return frame.astype(str).to_csv(index=False)


def _materialise(run: Run, name: str, sql: str, periods_key: str) -> str:
    """Compute a cohort or measure once per run and set of periods (several indicators share them)."""
    key = (name, periods_key)
    if key not in run.materialised:
        table = f"cached_{len(run.materialised)}_{name}"
        run.con.execute(f"CREATE TEMP TABLE {table} AS {sql}")
        run.materialised[key] = table
    return run.materialised[key]


def person_rows_sql(run: Run, indicator: Indicator, periods_key: str) -> str:
    """SQL yielding one row per (period_id, person_id) in the denominator with numerator and denominator.

    Needs the `periods` table loaded for `periods_key` (see _load_periods)."""
    defs = run.definitions
    cohort = _materialise(run, f"cohort_{indicator.denominator}", defs.cohort_sql(indicator.denominator),
                          periods_key)
    ctes = [f"{name} AS (SELECT * FROM {_materialise(run, name, defs.measure_sql(name), periods_key)})"
            for name in indicator.measures]
    joins = "".join(
        f"\n  LEFT JOIN {name} ON {name}.period_id = d.period_id AND {name}.person_id = d.person_id"
        for name in indicator.measures
    )
    numerator = defs.render(indicator.numerator)
    if indicator.kind == "proportion":
        numerator_sql = f"CASE WHEN ({numerator}) THEN 1.0 ELSE 0.0 END"
    else:
        numerator_sql = f"coalesce(CAST(({numerator}) AS DOUBLE), 0.0)"
    denominator_sql = f"coalesce(CAST(({defs.render(indicator.denominator_value)}) AS DOUBLE), 0.0)"
    return (
        ("WITH " + ",\n".join(ctes) + "\n" if ctes else "")
        + f"SELECT d.period_id, d.person_id, {numerator_sql} AS numerator, {denominator_sql} AS denominator\n"
        f"FROM {cohort} d JOIN persons person ON person.person_id = d.person_id{joins}"
    )


def person_rows(run: Run, indicator_id: str, periods: Period | str | Sequence[Period | str]) -> pd.DataFrame:
    """Per-person numerator / denominator rows (for drill-down and tests; holds person ids)."""
    indicator = run.definitions.get(indicator_id)
    periods_key = _load_periods(run, _as_periods(periods), indicator)
    return run.con.execute(person_rows_sql(run, indicator, periods_key) + "\nORDER BY 1, 2").df()


def _unit_sql(run: Run, level: str) -> str:
    if level not in LEVELS:
        raise RiskUserError(f"unknown breakdown '{level}'; use one of {', '.join(LEVELS)}")
    if level == "county":
        return "'county'"
    if level == "tier":
        if not run.has_tiers:
            raise RiskUserError(f"{run.path}: breakdown by tier needs tiers.parquet in the run folder")
        return "coalesce(t.tier, 'untiered')"
    return f"person.{LEVELS[level]}"


def compute_indicator(
    run: Run,
    indicator_id: str,
    periods: Period | str | Sequence[Period | str],
    by: str | Sequence[str] = "county",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Indicator values for every period and every unit of each breakdown level in `by`.

    Returns RESULT_COLUMNS: counts (numerator, denominator, persons), value, Wilson interval (rates
    whose units are persons), the target for the period's year and whether it is met. Unsuppressed:
    pass the result through risk.indicators.suppression before exporting it.
    """
    indicator = run.definitions.get(indicator_id)
    period_list = _as_periods(periods)
    levels = [by] if isinstance(by, str) else list(by)
    periods_key = _load_periods(run, period_list, indicator)
    run.con.execute(
        f"CREATE OR REPLACE TEMP TABLE indicator_rows AS {person_rows_sql(run, indicator, periods_key)}"
    )
    tier_join = " LEFT JOIN tiers t ON t.person_id = r.person_id" if "tier" in levels else ""
    parts = [
        f"SELECT r.period_id, '{level}' AS level, CAST({_unit_sql(run, level)} AS VARCHAR) AS unit, "
        # DECIMAL sums (numerators are 0/1, counts or money): identical bits whatever the threads' order
        "CAST(sum(CAST(r.numerator AS DECIMAL(38, 4))) AS DOUBLE) AS numerator, "
        "CAST(sum(CAST(r.denominator AS DECIMAL(38, 4))) AS DOUBLE) AS denominator, count(*) AS persons "
        f"FROM indicator_rows r JOIN persons person ON person.person_id = r.person_id{tier_join} GROUP BY ALL"
        for level in levels
    ]
    counts = run.con.execute(" UNION ALL ".join(parts)).df()
    run.con.execute("DROP TABLE indicator_rows")
    return _finish(counts, indicator, period_list, levels, alpha)


def _finish(
    counts: pd.DataFrame, indicator: Indicator, periods: list[Period], levels: list[str], alpha: float
) -> pd.DataFrame:
    by_id = {p.id: p for p in periods}
    # Every period shows the county row even when nobody is in the denominator.
    present = set(zip(counts["period_id"], counts["level"], strict=True))
    filler = [
        {
            "period_id": p.id,
            "level": "county",
            "unit": "county",
            "numerator": 0.0,
            "denominator": 0.0,
            "persons": 0,
        }
        for p in periods
        if "county" in levels and (p.id, "county") not in present
    ]
    if filler:
        counts = pd.concat([counts, pd.DataFrame(filler)], ignore_index=True)
    result = counts.rename(columns={"period_id": "period"})
    result["persons"] = result["persons"].astype("int64")
    numerator = result["numerator"].to_numpy(float)
    denominator = result["denominator"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        result["value"] = np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )
    if indicator.ci == "wilson":
        result["ci_low"], result["ci_high"] = wilson_interval(numerator, denominator, alpha)
    else:
        result["ci_low"] = np.nan
        result["ci_high"] = np.nan
    if indicator.kind != "mean_per_person":
        result["numerator"] = result["numerator"].round().astype("int64")
        result["denominator"] = result["denominator"].round().astype("int64")
    years = result["period"].map(lambda p: by_id[p].end.year)
    if indicator.target:
        result["target"] = years.map(indicator.target.for_year).astype(float)
        result["meets_target"] = pd.Series(
            [indicator.target.met(v, y) for v, y in zip(result["value"], years, strict=True)],
            index=result.index,
            dtype=object,
        )
    else:
        result["target"] = np.nan
        result["meets_target"] = None
    result["indicator_id"] = indicator.id
    result["definition"] = indicator.definition
    result["period_start"] = result["period"].map(lambda p: by_id[p].start)
    result["period_end"] = result["period"].map(lambda p: by_id[p].end)
    order = {p.id: i for i, p in enumerate(periods)}
    level_order = {lvl: i for i, lvl in enumerate(levels)}
    result = result.assign(_p=result["period"].map(order), _l=result["level"].map(level_order))
    result = result.sort_values(["_p", "_l", "unit"], kind="stable").drop(columns=["_p", "_l"])
    return result[RESULT_COLUMNS].reset_index(drop=True)
