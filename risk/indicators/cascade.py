"""The monthly follow-up call cascade (definitions: risk/definitions/indicators_cascade.yaml).

overdue at the start of the month -> contactable -> called -> result of the first call -> returned to care
within N days of it; list completion; median days overdue. Per person first (`cascade_people`), then counted
per county / township / team / village with the small-cell suppression of the other indicators
(`cascade_table`). Inputs are frames, so the nightly, `risk report`, the overview and the tests share one
computation; `cascade_for_runs` reads them from two run folders and the call results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from risk.calls.definitions import call_definitions
from risk.calls.lists import call_states
from risk.definitions import definition_path, load_yaml
from risk.errors import DefinitionError, RiskUserError
from risk.indicators.definitions import indicator_set
from risk.indicators.periods import Period
from risk.indicators.suppression import complementary_mask, primary_mask
from risk.run.folder import RunFolder
from risk.spreadsheet import write_csv, write_xlsx

PLACES = {"township": "township_id", "team": "team_id", "village": "village_id"}
TABLE_COLUMNS = [
    "month", "level", "unit", "step", "result", "numerator", "denominator", "value", "suppressed",
]  # fmt: skip


@dataclass(frozen=True)
class CascadeDefinitions:
    version: str
    levels: tuple[str, ...]
    level_labels: dict[str, dict[str, str]]
    steps: dict[str, dict[str, Any]]
    returned_within_days: int
    min_count: int

    def label(self, step: str, language: str = "en") -> str:
        text = str(self.steps[step][language])
        return text.replace("${returned_within_days}", str(self.returned_within_days))


@lru_cache(maxsize=1)
def cascade_definitions() -> CascadeDefinitions:
    raw = load_yaml(definition_path("indicators_cascade.yaml"))
    steps = raw["steps"]
    for step, entry in steps.items():
        for key in ("zh", "en", "of", "definition"):
            if not entry.get(key):
                raise DefinitionError(f"indicators_cascade.yaml: step {step} needs `{key}`")
        if entry["of"] not in (*steps, "registered", "listed"):
            raise DefinitionError(f"indicators_cascade.yaml: step {step}: unknown denominator {entry['of']}")
    within = raw["parameters"]["returned_within_days"]
    days = (
        getattr(call_definitions().policy, within["from_call_policy"]) if isinstance(within, dict) else within
    )
    return CascadeDefinitions(
        version=str(raw["version"]),
        levels=tuple(raw["levels"]),
        level_labels=raw["level_labels"],
        steps=steps,
        returned_within_days=int(days),
        min_count=indicator_set().min_count,
    )


def cascade_people(
    month: Period,
    start_tiers: pd.DataFrame,
    persons: pd.DataFrame,
    results: pd.DataFrame,
    visits: pd.DataFrame,
    listed: set[str] | None = None,
    defs: CascadeDefinitions | None = None,
) -> pd.DataFrame:
    """One row per patient of the start run with the cascade flags of `month`.

    start_tiers: person_id, next_due_on (and fu_last_date when known) from the run current the day before the
    month; persons: person_id, phone, township_id, team_id, village_id; results: call results (person_id,
    called_on, result_type, remove_reason, visit_on, recorded_at optional); visits: person_id, visit_date."""
    defs = defs or cascade_definitions()
    day_before = month.start - timedelta(days=1)
    people = start_tiers[["person_id", "next_due_on"]].merge(
        persons[["person_id", "phone", *PLACES.values()]], on="person_id", how="left"
    )
    due = pd.to_datetime(people["next_due_on"])
    start = pd.Timestamp(month.start)
    people["overdue"] = (due < start).fillna(False).astype(bool)
    people["days_overdue"] = np.where(people["overdue"], (start - due).dt.days, np.nan)
    phone = people["phone"].fillna("").astype(str).str.strip() != ""
    results = results if results is not None else pd.DataFrame(columns=["person_id", "called_on"])
    if "fu_last_date" in start_tiers:
        state_people = start_tiers[["person_id", "fu_last_date"]]
    else:
        state_people = start_tiers[["person_id"]].assign(fu_last_date=None)
    before = results[pd.to_datetime(results["called_on"]).dt.date <= day_before] if len(results) else results
    states = call_states(state_people, before, day_before).set_index("person_id")["status"]
    removed = people["person_id"].map(states).eq("removed")
    people["contactable"] = people["overdue"] & phone & ~removed
    in_month = results.copy()
    if len(in_month):
        called_on = pd.to_datetime(in_month["called_on"]).dt.date
        in_month = in_month[(called_on >= month.start) & (called_on <= month.end)]
        order = ["called_on", "recorded_at", "result_id"]
        in_month = in_month.sort_values([c for c in order if c in in_month], kind="stable")
    first = (
        in_month.drop_duplicates("person_id", keep="first").set_index("person_id") if len(in_month) else None
    )
    people["called"] = people["person_id"].isin(in_month["person_id"]) if len(in_month) else False
    people["first_called_on"] = people["person_id"].map(first["called_on"]) if first is not None else None
    people["first_result"] = people["person_id"].map(first["result_type"]) if first is not None else None

    def days(frame: pd.DataFrame, column: str) -> pd.DataFrame:  # one datetime64 dtype: a fast concat
        return pd.DataFrame(
            {
                "person_id": frame["person_id"],
                "visit_date": pd.to_datetime(frame[column]).astype("datetime64[ns]"),
            }
        )

    parts = [days(visits, "visit_date")] if visits is not None and len(visits) else []
    if len(in_month):
        parts.append(days(in_month[in_month["result_type"] == "visited"], "called_on"))
    window = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["person_id", "visit_date"])
    )
    returned = pd.Series(False, index=people.index)
    if len(window) and first is not None:
        w = window.assign(visit_date=pd.to_datetime(window["visit_date"]).dt.normalize())
        w = w.merge(people.loc[people["called"], ["person_id", "first_called_on"]], on="person_id")
        first_day = pd.to_datetime(w["first_called_on"])
        hit = (w["visit_date"] >= first_day) & (
            w["visit_date"] <= first_day + pd.Timedelta(days=defs.returned_within_days)
        )
        returned = people["person_id"].isin(set(w.loc[hit, "person_id"]))
    people["returned_any"] = returned & people["called"]
    people["listed"] = people["person_id"].isin(listed) if listed is not None else people["contactable"]
    people["registered"] = True
    # the chain, one column per step: each step is a subset of the one before
    people["overdue_start"] = people["overdue"]
    people["called_any"] = people["called"]
    people["called"] = people["contactable"] & people["called_any"]
    people["returned"] = people["called"] & people["returned_any"]
    people["list_completion"] = people["listed"] & people["called_any"]
    return people


def cascade_table(
    people: pd.DataFrame, month: Period, min_count: int | None = None, defs: CascadeDefinitions | None = None
) -> pd.DataFrame:
    """Counts per step and breakdown unit, suppressed: a cell about 1..k-1 people (or whose complement is)
    is hidden, and within each step and level enough further cells that none can be recovered from the
    county row."""
    defs = defs or cascade_definitions()
    k = defs.min_count if min_count is None else min_count
    result_types = list(call_definitions().result_types)
    # one column of 0/1 per cell (numerator and denominator), summed per unit with one groupby per level
    cells: list[tuple[str, str]] = []
    columns: dict[str, pd.Series] = {}
    for step, entry in defs.steps.items():
        of = people[entry["of"]].astype(bool)
        kinds = result_types if entry.get("by_result_type") else [""]
        for kind in kinds:
            cells.append((step, kind))
            if entry.get("kind") == "median":
                hit = of
            elif kind:
                hit = of & (people["first_result"] == kind)
            else:
                hit = of & people[step].astype(bool)
            columns[f"n|{step}|{kind}"], columns[f"d|{step}|{kind}"] = hit, of
    flags = pd.DataFrame(columns).astype(np.int64)
    rows = []
    for level in defs.levels:
        key = pd.Series("county", index=people.index) if level == "county" else people[PLACES[level]]
        sums = flags.groupby(key, sort=True).sum()
        medians: dict[str, pd.Series] = {}
        for step, entry in defs.steps.items():
            if entry.get("kind") == "median":
                of = people[entry["of"]].astype(bool)
                medians[step] = people.loc[of, "days_overdue"].groupby(key[of]).median()
        for unit, counts in sums.iterrows():
            for step, kind in cells:
                n, d = int(counts[f"n|{step}|{kind}"]), int(counts[f"d|{step}|{kind}"])
                if step in medians:
                    value = float(medians[step].get(unit, np.nan))
                    rows.append((month.id, level, unit, step, kind, d, d, value))
                else:
                    rows.append((month.id, level, unit, step, kind, n, d, n / d if d else np.nan))
    table = pd.DataFrame(
        rows, columns=["month", "level", "unit", "step", "result", "numerator", "denominator", "value"]
    )
    is_median = table["step"].map(lambda s: defs.steps[s].get("kind") == "median").to_numpy()
    hidden = primary_mask(table["numerator"], table["denominator"], k, rate=True)
    hidden[is_median] = primary_mask(table["denominator"], table["denominator"], k, rate=False)[is_median]
    primary = hidden.copy()
    groups = []
    for (step, result, level), cells in table.groupby(["step", "result", "level"], sort=False):
        if level == "county":
            continue
        total = table.index[
            (table["step"] == step) & (table["result"] == result) & (table["level"] == "county")
        ]
        groups.append((cells.index.to_numpy(), int(total[0])))
    hidden = complementary_mask(hidden, table["denominator"].to_numpy(float), groups, k)
    table["suppressed"] = np.where(primary, "primary", np.where(hidden, "secondary", ""))
    table["numerator"] = table["numerator"].astype("Int64").mask(hidden)
    table["denominator"] = table["denominator"].astype("Int64").mask(hidden)
    table["value"] = table["value"].mask(hidden)
    return table[TABLE_COLUMNS]


def run_visits(run_dir: Path) -> pd.DataFrame:
    """Contact days in a run's canonical tables (follow-up forms, clinic BP, labs, admissions)."""
    run = RunFolder(Path(run_dir))
    sources = {
        "follow_ups": "followed_on",
        "vitals": "measured_at",
        "labs": "measured_at",
        "encounters": "admitted_on",
    }
    frames = []
    for name, column in sources.items():
        path = run.table(name)
        if path.is_file():
            frame = pd.read_parquet(path, columns=["person_id", column])
            day = pd.to_datetime(frame[column], utc=isinstance(frame[column].dtype, pd.DatetimeTZDtype))
            if isinstance(day.dtype, pd.DatetimeTZDtype):
                day = day.dt.tz_localize(None)
            # one datetime64 dtype per table before concatenating (mixed dtypes fall back to slow objects)
            frames.append(pd.DataFrame({"person_id": frame["person_id"], "visit_date": day.dt.normalize()}))
    if not frames:
        return pd.DataFrame(columns=["person_id", "visit_date"])
    frames = [f.assign(visit_date=f["visit_date"].astype("datetime64[ns]")) for f in frames]
    return pd.concat(frames, ignore_index=True).dropna()


def _as_of(run_dir: Path) -> date:
    return RunFolder(run_dir).read_manifest().as_of


def start_run_for(month: Period, runs_root: Path) -> Path:
    """The latest run under runs_root scored before the month started."""
    from risk.run.history import find_runs

    before = [
        run for run in find_runs(runs_root) if RunFolder(run).has_manifest and _as_of(run) < month.start
    ]
    if not before:
        raise RiskUserError(f"no run under {runs_root} scored before {month.start} (the cascade's start)")
    return before[-1]


def cascade_for_runs(
    month: Period, start_run: Path, end_run: Path, results: pd.DataFrame, min_count: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-person frame, suppressed table) for `month` from the start run (due dates, places, phones,
    call lists), the call results and the visits recorded in `end_run`."""
    start, end_run = RunFolder(Path(start_run)), Path(end_run)
    tiers = pd.read_parquet(start.tiers, columns=["person_id", "next_due_on"])
    features = start.features
    if features.is_file() and "fu_last_date" in pq.read_schema(features).names:
        fu = pd.read_parquet(features, columns=["person_id", "fu_last_date"])
        tiers = tiers.merge(fu, on="person_id", how="left")
    persons = pd.read_parquet(start.table("persons"), columns=["person_id", "phone", *PLACES.values()])
    listed = None
    calls = start.path / "calls" / "calls.csv"
    if calls.is_file():
        listed = set(pd.read_csv(calls, usecols=["person_id"], dtype=str, encoding="utf-8-sig")["person_id"])
    people = cascade_people(month, tiers, persons, results, run_visits(end_run), listed=listed)
    return people, cascade_table(people, month, min_count=min_count)


UNIT_DAYS = {"zh": "{days:.0f} 天", "en": "{days:.0f} d"}


def read_cascade_csv(path: Path) -> pd.DataFrame:
    """A run's calls/cascade.csv as written: ids and result codes as text, empty counts as missing."""
    return pd.read_csv(
        path,
        dtype={"unit": str, "result": str, "month": str},
        keep_default_na=False,
        na_values={"numerator": [""], "denominator": [""], "value": [""]},
        encoding="utf-8-sig",
    )


def overview_block(
    run_dir: str | Path,
    defs: CascadeDefinitions | None = None,
    lang: str = "zh",
    names: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """The county overview's call-cascade section from the run's calls/cascade.csv (None without one):
    county and township rows of each step, already suppressed, labelled in `lang`; `units` are the ids,
    `headers` what the page shows (township names from the geography when known)."""
    path = Path(run_dir) / "calls" / "cascade.csv"
    if not path.is_file():
        return None
    defs = defs or cascade_definitions()
    names = names or {}
    table = read_cascade_csv(path)
    table = table[table["level"].isin(["county", "township"])]
    labels = call_definitions()
    units = ["county", *sorted(set(table.loc[table["level"] == "township", "unit"]))]
    county = defs.level_labels["county"][lang]
    headers = [county if unit == "county" else names.get(unit) or unit for unit in units]
    rows = []
    for (step, result), cells in table.groupby(["step", "result"], sort=False):
        median = defs.steps[step].get("kind") == "median"
        name = defs.label(step, lang)
        if result:
            name += f"：{labels.label(result, lang)}" if lang == "zh" else f": {labels.label(result, lang)}"
        by_unit = cells.set_index("unit")
        row = []
        for unit in units:
            if unit not in by_unit.index or by_unit.loc[unit, "suppressed"]:
                row.append("·" if unit in by_unit.index else "")
                continue
            cell = by_unit.loc[unit]
            if median:
                row.append("–" if pd.isna(cell["value"]) else UNIT_DAYS[lang].format(days=cell["value"]))
            else:
                share = "" if pd.isna(cell["value"]) else f" ({cell['value']:.0%})"
                row.append(f"{int(cell['numerator']):,}/{int(cell['denominator']):,}{share}")
        rows.append({"name": name, "cells": row})
    return {
        "month": str(table["month"].iloc[0]) if len(table) else "",
        "units": units,
        "headers": headers,
        "rows": rows,
        "version": defs.version,
        "k": defs.min_count,
    }


def write_cascade_report(
    run_dir: str | Path,
    out: str | Path,
    *,
    month: str | None = None,
    results: pd.DataFrame | None = None,
    runs_root: str | Path | None = None,
    min_count: int | None = None,
    fmt: str | None = None,
) -> Path:
    """`risk report call_cascade`: the run's calls/cascade.csv as it is, or, given the call results (and
    optionally another month), recomputed from the run scored before the month (under runs_root, default
    the run's parent) and this run's visits. CSV, XLSX or HTML."""
    from risk.indicators.periods import parse_period, period_containing

    run_dir, out = Path(run_dir), Path(out)
    if results is None:
        path = run_dir / "calls" / "cascade.csv"
        if not path.is_file():
            raise RiskUserError(f"{run_dir}: no calls/cascade.csv; pass --store to compute the cascade")
        table = read_cascade_csv(path)
        if month is not None and set(table["month"]) != {parse_period(month).id}:
            raise RiskUserError(
                f"{path} holds {', '.join(sorted(set(table['month'])))}; pass --store for {month}"
            )
    else:
        period = parse_period(month) if month else period_containing(_as_of(run_dir), "month")
        start = start_run_for(period, Path(runs_root) if runs_root else run_dir.parent)
        _, table = cascade_for_runs(period, start, run_dir, results, min_count=min_count)
    fmt = fmt or out.suffix.lstrip(".").lower() or "csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        write_csv(table, out)
    elif fmt == "xlsx":
        write_xlsx(out, {"call_cascade": table})
    elif fmt == "html":
        out.write_text(table.to_html(index=False, na_rep="·"), encoding="utf-8")
    else:
        raise RiskUserError(f"--format must be csv, xlsx or html, not {fmt}")
    return out
