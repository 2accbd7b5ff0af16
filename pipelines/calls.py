"""The follow-up loop in a run: call results in (visit readings become follow-ups of the next run, marked
with origin = 'call_result'), call lists out (`risk calls`, and the nightly's `calls` stage)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk.calls.definitions import call_definitions
from risk.calls.lists import CallExport, build_call_lists, export_call_lists, rule_urgencies
from risk.errors import RiskUserError
from risk.run.folder import RunFolder
from risk.run.tables import ORIGIN_CALL_RESULT
from risk.spreadsheet import write_csv

if TYPE_CHECKING:
    from risk.tiers.rule_set import RuleSet

ORIGIN_INPUT, ORIGIN_CALL = "input", ORIGIN_CALL_RESULT  # the feature SQL reads origin (40_follow_ups.sql)


def results_from_store(store_url: str, until: date) -> pd.DataFrame:
    from risk.serving.call_results import results_frame
    from risk.serving.store import open_store

    engine = open_store(store_url, create=True)
    try:
        return results_frame(engine, until)
    finally:
        engine.dispose()


def _append(path: Path, rows: pd.DataFrame) -> int:
    """Append rows to a canonical table, marking every row's origin; keeps the table's Arrow types."""
    table = pq.read_table(path)
    # appended rows leave optional answers empty: every column becomes nullable (values are unchanged)
    table = table.cast(pa.schema([field.with_nullable(True) for field in table.schema]))
    if "origin" not in table.schema.names:
        table = table.append_column("origin", pa.array([ORIGIN_INPUT] * table.num_rows, pa.string()))
    if rows.empty:
        pq.write_table(table, path)
        return 0
    start = (pa.compute.max(table.column("source_row")).as_py() or 0) + 1 if table.num_rows else 1
    rows = rows.assign(source_row=range(start, start + len(rows)), origin=ORIGIN_CALL)
    extra = {}
    for field in table.schema:
        values = rows[field.name] if field.name in rows else pd.Series([None] * len(rows))
        extra[field.name] = pa.array(values.tolist(), type=field.type)
    pq.write_table(pa.concat_tables([table, pa.table(extra, schema=table.schema)]), path)
    return len(rows)


def feed_visit_readings(run: RunFolder, results: pd.DataFrame, as_of: date) -> dict[str, int]:
    """`visited` results become a follow-up form (one per registered condition) with the BP as a vital and
    the FPG as a lab on the call date, so the next run's features, tier and due date see the visit. The
    rows are appended to the run's canonical tables."""
    visits = results[(results["result_type"] == "visited") & (results["called_on"] <= as_of)]
    conditions = pd.read_parquet(run.table("conditions"), columns=["person_id", "condition"])
    persons = set(pd.read_parquet(run.table("persons"), columns=["person_id"])["person_id"])
    visits = visits[visits["person_id"].isin(persons)]  # never another county's or an unknown person
    mode = call_definitions().policy.visit_follow_up_mode
    fu = visits[["person_id", "called_on"]].merge(conditions.drop_duplicates(), on="person_id")
    fu = fu.rename(columns={"called_on": "followed_on"}).assign(mode=mode)
    fu = fu.drop_duplicates(["person_id", "followed_on", "condition"])

    # noon of the call date; computed on each filtered frame (a Series assigned to an empty frame would
    # bring its own index in: rows without a person when no visit had an FPG)
    def at_noon(frame: pd.DataFrame) -> pd.Series:
        return frame["called_on"].map(lambda d: datetime(d.year, d.month, d.day, 12, 0))

    bp = visits[visits["sbp"].notna() & visits["dbp"].notna()]
    bp = bp.assign(measured_at=at_noon)[["person_id", "measured_at", "sbp", "dbp"]].assign(source="follow_up")
    fpg = visits[visits["fpg"].notna()].assign(measured_at=at_noon)
    fpg = (
        fpg[["person_id", "measured_at", "fpg"]]
        .rename(columns={"fpg": "value"})
        .assign(test="fpg", unit="mmol/L")
    )
    return {
        "follow_ups": _append(run.table("follow_ups"), fu),
        "vitals": _append(run.table("vitals"), bp.drop_duplicates(["person_id", "measured_at"])),
        "labs": _append(run.table("labs"), fpg.drop_duplicates(["person_id", "measured_at"])),
    }


@dataclass
class CallsRun:
    export: CallExport
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        e = self.export
        return {
            "calls": e.calls,
            "home_visits": e.home_visits,
            "registry_suggestions": e.registry_suggestions,
            "over_capacity": e.over_capacity,
        }

    def render(self) -> str:
        e = self.export
        return (
            f"call list: {e.calls:,} calls, {e.home_visits:,} home-visit tasks, "
            f"{e.registry_suggestions:,} suggested registry changes, {e.over_capacity:,} over capacity "
            f"({e.files} files)"
        )


def run_calls(
    run_dir: Path,
    on: date,
    out: Path,
    *,
    results: pd.DataFrame | None = None,
    window_days: int | None = None,
    daily_capacity: int | None = None,
    xlsx: bool = True,
    check_as_of: bool = True,
) -> CallsRun:
    """Call lists for `on` from a run folder (tiers, features, persons) and the call results so far."""
    from risk.products.lists import LIST_PERSON_COLUMNS, build_priority_list

    run = RunFolder(Path(run_dir))
    persons_table = run.table("persons")  # InputFileError when the folder has no canonical tables
    for path in [run.tiers, run.features, persons_table] + ([run.manifest_path] if check_as_of else []):
        if not path.is_file():
            raise RiskUserError(f"{run_dir}: not a run folder ({path.relative_to(run.path)} missing)")
    persons = pd.read_parquet(persons_table, columns=LIST_PERSON_COLUMNS)
    as_of = run.read_manifest().as_of if check_as_of else None
    if as_of is not None and on < as_of:
        raise RiskUserError(f"--date {on} is before the run's as-of date {as_of.isoformat()}")
    tiers = pd.read_parquet(run.tiers)
    features = pd.read_parquet(run.features)
    priority = build_priority_list(tiers, features, persons)
    return calls_from_priority(
        priority,
        tiers,
        on,
        out,
        rule_set=_tiers_rule_set(tiers),
        results=results,
        window_days=window_days,
        daily_capacity=daily_capacity,
        xlsx=xlsx,
    )


def calls_from_priority(
    priority: pd.DataFrame,
    tiers: pd.DataFrame,
    on: date,
    out: Path,
    *,
    results: pd.DataFrame | None = None,
    window_days: int | None = None,
    daily_capacity: int | None = None,
    xlsx: bool = True,
    submit: Callable[..., Any] | None = None,
    rule_set: RuleSet | None = None,
) -> CallsRun:
    """Call lists for `on` from a priority list already built (the nightly's own, so it is not read back
    from the run folder and rebuilt). With `submit` (the nightly's PendingExport.submit) the team workbooks
    go to the list workers, and the caller waits for them."""
    result = build_call_lists(
        priority,
        tiers,
        results,
        on,
        window_days=window_days,
        daily_capacity=daily_capacity,
        urgency_of=rule_urgencies(rule_set) if rule_set is not None else None,
    )
    export = export_call_lists(result, Path(out), on, xlsx=xlsx, submit=submit)
    return CallsRun(export=export)


def _tiers_rule_set(tiers: pd.DataFrame) -> RuleSet | None:
    """The packaged rule set when it is the one that made these tiers (same fingerprint), else None: a run
    tiered with another rule file gets headline reasons by tier alone rather than another file's urgencies."""
    from risk.tiers.rule_set import load_rule_set

    if "rule_set_fingerprint" not in tiers or tiers.empty:
        return None
    made_by = set(tiers["rule_set_fingerprint"].dropna().unique())
    packaged = load_rule_set()
    return packaged if made_by == {packaged.fingerprint} else None


def write_cascade(
    run_dir: Path, start_run: Path | None, as_of: date, results: pd.DataFrame | None
) -> Path | None:
    """The call cascade of the month containing `as_of` (month to date) into calls/cascade.csv, suppressed,
    when call results were read and a run scored before the month exists (its due dates start the cascade)."""
    from risk.indicators.cascade import cascade_for_runs
    from risk.indicators.periods import period_containing

    if results is None or start_run is None:
        return None
    month = period_containing(as_of, "month")
    _, table = cascade_for_runs(month, Path(start_run), Path(run_dir), results)
    target = Path(run_dir) / "calls" / "cascade.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, target)  # inert; publish reads it back through restore_text
    return target
