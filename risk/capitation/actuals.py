"""Member-months, budget and fund spend per person and month (DuckDB over a run's canonical tables).

One row per pilot patient and month of the year in which they count (weight > 0):
person_id, month (1..12), township_id, unit_id, signed, weight (member-months, 1 or a daily fraction),
budget, spend, spend_inpatient, spend_outside, spend_drugs, tier (held that month, see tier_history).
Membership span per person: earliest enrolled_on of a pilot condition to the latest ended_on (null = open),
cut by death_date; a person whose pilot conditions have a gap between them counts over the gap too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from risk.capitation.definitions import CapitationDefinitions
from risk.run.folder import RunFolder
from risk.run.history import find_runs
from risk.run.tables import parquet_source
from risk.sql import literal_list


def observed_months(year: int, as_of: date | None) -> int:
    """Months of `year` whose last day is on or before as_of (12 when as_of is past the year, or unknown)."""
    if as_of is None or as_of.year > year:
        return 12
    if as_of.year < year:
        return 0
    next_day = as_of.toordinal() + 1
    return as_of.month if date.fromordinal(next_day).month != as_of.month else as_of.month - 1


def member_months(
    con: duckdb.DuckDBPyConnection,
    defs: CapitationDefinitions,
    year: int,
    months: int = 12,
    known_on: date | None = None,
) -> pd.DataFrame:
    """person_id, month, township_id, unit_id, signed, weight, budget for months 1..`months` of `year`.

    `known_on` (the run's as_of): enrolments, ends and deaths dated after it are not known yet, so months
    after it count everyone under management on that day (no projected deaths or moves)."""
    rule = defs.year(year)
    known = f"DATE '{(known_on or date(9999, 12, 30)).isoformat()}'"
    if defs.partial_month == "mid_month":
        weight = f"""CASE WHEN make_date({year}, m.month, {defs.reference_day}) BETWEEN s.start_on
                           AND s.end_on THEN 1.0 ELSE 0.0 END"""
    else:  # daily: days covered / days in month
        weight = f"""greatest(0, date_diff('day',
                        greatest(s.start_on, make_date({year}, m.month, 1)),
                        least(s.end_on, last_day(make_date({year}, m.month, 1))) ) + 1)
                     / day(last_day(make_date({year}, m.month, 1)))"""
    sql = f"""
    WITH spans AS (
        SELECT c.person_id, min(c.enrolled_on) AS enrolled_on,
               max(CASE WHEN c.ended_on <= {known} THEN c.ended_on ELSE DATE '9999-12-31' END) AS ended_on
        FROM conditions c
        WHERE c.condition IN ({literal_list(defs.conditions)}) AND c.enrolled_on <= {known}
        GROUP BY c.person_id
    ),
    s AS (  -- last covered day: the day before ended_on / death_date
        SELECT sp.person_id, p.township_id, p.unit_id, coalesce(p.signed_contract, FALSE) AS signed,
               greatest(sp.enrolled_on, DATE '{defs.pilot_start.isoformat()}') AS start_on,
               least(sp.ended_on, CASE WHEN p.death_date <= {known} THEN p.death_date
                                      ELSE DATE '9999-12-31' END) - 1 AS end_on
        FROM spans sp JOIN persons p USING (person_id)
    ),
    m AS (SELECT range::INTEGER AS month FROM range(1, {months} + 1))
    SELECT s.person_id, m.month, s.township_id, s.unit_id, s.signed, {weight} AS weight
    FROM s CROSS JOIN m
    WHERE s.start_on <= last_day(make_date({year}, m.month, 1))
      AND s.end_on >= make_date({year}, m.month, 1)
    """
    df = con.execute(sql).df()
    df = df[df["weight"] > 0].reset_index(drop=True)
    df["weight"] = df["weight"].astype(float)
    df["budget"] = df["weight"] * (rule.quota + rule.signing_supplement * df["signed"].astype(float)) / 12.0
    return df


def _drug_column(con: duckdb.DuckDBPyConnection) -> str | None:
    columns = {row[0] for row in con.execute("DESCRIBE prescriptions").fetchall()}
    for name in ("fund_paid", "cost"):
        if name in columns:
            return name
    return None


def monthly_spend(
    con: duckdb.DuckDBPyConnection, defs: CapitationDefinitions, year: int, months: int = 12
) -> pd.DataFrame:
    """person_id, month, spend, spend_inpatient, spend_outside, spend_drugs (all persons, months 1..)."""
    start, end = date(year, 1, 1), date(year, months, 1) if months else date(year, 1, 1)
    if months == 0:
        return pd.DataFrame(
            columns=["person_id", "month", "spend", "spend_inpatient", "spend_outside", "spend_drugs"]
        )
    drug = _drug_column(con) if defs.drugs else None
    drugs_sql = (
        f"""UNION ALL SELECT person_id, month(dispensed_on) AS month, 0, 0, 0,
                   coalesce({drug}, 0) FROM prescriptions
            WHERE dispensed_on >= DATE '{start}' AND dispensed_on <= last_day(DATE '{end}')"""
        if drug
        else ""
    )
    sql = f"""
    SELECT person_id, month::INTEGER AS month, sum(s) AS spend_claims, sum(inp) AS spend_inpatient,
           sum(outside) AS spend_outside, sum(drugs) AS spend_drugs
    FROM (
        SELECT person_id, month(admitted_on) AS month, fund_paid AS s,
               CASE WHEN setting = 'inpatient' THEN fund_paid ELSE 0 END AS inp,
               CASE WHEN facility_level = 'outside_county' THEN fund_paid ELSE 0 END AS outside,
               0 AS drugs
        FROM encounters
        WHERE admitted_on >= DATE '{start}' AND admitted_on <= last_day(DATE '{end}')
          AND setting IN ({literal_list(defs.settings)})
          AND facility_level IN ({literal_list(defs.facility_levels)})
        {drugs_sql}
    ) GROUP BY ALL
    """
    df = con.execute(sql).df()
    df["spend"] = df["spend_claims"] + df["spend_drugs"]
    return df.drop(columns="spend_claims")


def tier_history(runs: Sequence[str | Path]) -> pd.DataFrame:
    """person_id, as_of, tier from each run's tiers.parquet (one row per person and run)."""
    frames = []
    for run in runs:
        path = RunFolder(Path(run)).tiers
        if path.is_file():
            frames.append(duckdb.sql(f"SELECT person_id, as_of, tier FROM {parquet_source(path)}").df())
    if not frames:
        return pd.DataFrame(columns=["person_id", "as_of", "tier"])
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = pd.to_datetime(out["as_of"]).dt.date
    return out


def history_runs(run_dir: Path, runs_root: str | Path | None) -> list[Path]:
    """Runs whose tiers give the history: those under runs_root (default: the run's parent folder) with
    as_of up to this run's, plus this run."""
    root = Path(runs_root) if runs_root else Path(run_dir).parent
    runs = find_runs(root) if root.is_dir() else []
    resolved = [r.resolve() for r in runs]
    if Path(run_dir).resolve() not in resolved:
        if RunFolder(Path(run_dir)).has_tiers:
            runs.append(Path(run_dir))
        return runs
    return runs[: resolved.index(Path(run_dir).resolve()) + 1]


def attach_tiers(rows: pd.DataFrame, history: pd.DataFrame, year: int) -> tuple[pd.DataFrame, str]:
    """Add `tier`: the tier from the latest run with as_of before the month's first day; months before the
    first run take the first run's tier (stated in the returned note). 'untiered' when a person has none."""
    rows = rows.copy()
    if history.empty:
        rows["tier"] = "untiered"
        return rows, "no tiers.parquet in the run or its siblings: spend is not attributed to tiers"
    dates = sorted(history["as_of"].unique())
    month_start = pd.Series([date(year, m, 1) for m in range(1, 13)], index=range(1, 13))
    # the run in force in each month: latest as_of < first day of the month, else the first run
    in_force = {m: max([d for d in dates if d < month_start[m]], default=dates[0]) for m in range(1, 13)}
    rows["tier_as_of"] = rows["month"].map(in_force)
    rows = rows.merge(
        history.rename(columns={"as_of": "tier_as_of"}), on=["person_id", "tier_as_of"], how="left"
    )
    rows["tier"] = rows["tier"].fillna("untiered")
    if len(dates) == 1:
        note = (
            f"one run only (tiers as of {dates[0]}): its tier is applied to every month of {year}, "
            "including months before it; add earlier runs (risk backfill) for a month-by-month tier"
        )
    else:
        before = [m for m, d in in_force.items() if d >= month_start[m]]
        note = (
            f"tier of each month from the latest of {len(dates)} runs ({dates[0]} … {dates[-1]}) dated "
            "before the month"
            + (f"; months {before[0]}–{before[-1]} precede the first run and take its tier" if before else "")
        )
    return rows.drop(columns="tier_as_of"), note


def person_months(
    con: duckdb.DuckDBPyConnection,
    defs: CapitationDefinitions,
    year: int,
    months: int,
    history: pd.DataFrame,
    known_on: date | None = None,
) -> tuple[pd.DataFrame, str]:
    """Member-months joined to spend (spend counts only in months the person counts) and tiers."""
    mm = member_months(con, defs, year, months, known_on)
    spend = monthly_spend(con, defs, year, months)
    rows = mm.merge(spend, on=["person_id", "month"], how="left")
    for column in ("spend", "spend_inpatient", "spend_outside", "spend_drugs"):
        rows[column] = rows[column].fillna(0.0).astype(float)
    return attach_tiers(rows, history, year)


def summarise(rows: pd.DataFrame, by: str, months: int, budget_year: pd.Series | None = None) -> pd.DataFrame:
    """Budget vs spend per `by` (township_id, unit_id, tier or month): member-months, budget YTD, spend,
    PMPM, burn rate (spend / prorated budget), outside-county share, inpatient share."""
    g = rows.groupby(by, observed=True)
    out = pd.DataFrame(
        {
            "persons": g["person_id"].nunique(),
            "member_months": g["weight"].sum(),
            "budget_ytd": g["budget"].sum(),
            "spend": g["spend"].sum(),
            "spend_inpatient": g["spend_inpatient"].sum(),
            "spend_outside": g["spend_outside"].sum(),
            "spend_drugs": g["spend_drugs"].sum(),
        }
    )
    out["pmpm"] = out["spend"] / out["member_months"]
    out["burn_rate"] = out["spend"] / out["budget_ytd"]
    out["outside_share"] = (out["spend_outside"] / out["spend"]).where(out["spend"] > 0)
    out["inpatient_share"] = (out["spend_inpatient"] / out["spend"]).where(out["spend"] > 0)
    out["surplus_ytd"] = out["budget_ytd"] - out["spend"]
    return out.reset_index()
