"""Nightly job: validate -> features -> tiers (rules, model, combined) -> lists -> run report.

The run is assembled in a hidden temporary sibling folder and renamed into place only when every stage
has finished, so a failed run never leaves a folder that looks complete. Re-running on the same inputs
gives identical tables (nothing time-dependent is written into them; wall-clock timings go to
timings.json only).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.run_record import RunRecord, library_versions, write_quarantine_exports
from risk import privacy, provenance
from risk.errors import RiskUserError
from risk.models.policy import default_model_policy
from risk.run.folder import RunFolder
from risk.run.manifest import RunManifest
from risk.schema import TIER_SCHEMA, check_parquet, feature_schema
from risk.schema import TIERS_WORST_FIRST as TIERS

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from risk.engines.base import Engine
    from risk.models.drift import DriftReport
    from risk.models.export import ExportedModel
    from risk.models.policy import ModelPolicy
    from risk.products.unmanaged import UnmanagedExport
    from risk.tiers.rule_set import RuleSet

log = logging.getLogger("risk.nightly")


@dataclass
class NightlyOptions:
    input_dir: Path
    as_of: date
    out: Path
    rules: Path | None = None
    model_dir: Path | None = None
    use_model: bool = True
    previous_run: Path | None = None
    xlsx: bool = True
    store_url: str | None = None
    engine: str = "duckdb"  # or "spark": features and tiers on Spark (risk/engines/, docs/scaling.md)
    spark_master: str | None = None  # default RISK_SPARK_MASTER or local[2]
    calls: bool = True  # call lists (calls/); with store_url, call results recorded so far feed the run
    call_capacity: int | None = None  # calls per village doctor per day (default: call_results.yaml)
    # Overrides of refusals (each recorded in run.json `warnings` and summary.md):
    allow_empty: frozenset[str] = frozenset()  # needed tables the user accepts missing or empty
    allow_late_as_of: bool = False  # as_of after today or long after the newest event
    accept_model_drift: bool = False  # score although the data do not resemble the training population
    lang: str = "zh"  # language of the printed team workbooks (zh or en)


@dataclass
class NightlyResult:
    run_dir: Path
    manifest: dict
    timings: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        return (self.run_dir / "summary.md").read_text(encoding="utf-8")


class StageClock:
    """Logs each stage as it starts and ends; keeps seconds and peak memory per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}  # this process, all threads (not forked workers)
        self.peak_rss_mb: dict[str, float] = {}
        self.parts: dict[str, dict[str, float]] = {}  # parts of a stage: {"seconds", "cpu_seconds"}

    @contextmanager
    def stage(self, name: str, number: int, total: int) -> Iterator[None]:
        log.info("[%d/%d] %s ...", number, total, name)
        start, cpu_start = time.perf_counter(), time.process_time()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.cpu_seconds[name] = round(time.process_time() - cpu_start, 3)
        self.peak_rss_mb[name] = round(_peak_rss_mb(), 1)
        log.info("[%d/%d] %s done in %.1f s", number, total, name, self.seconds[name])

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Seconds of one part of a stage (e.g. lists.calls), in timings.json `parts`."""
        start, cpu_start = time.perf_counter(), time.process_time()
        yield
        self.parts[name] = {
            "seconds": round(time.perf_counter() - start, 3),
            "cpu_seconds": round(time.process_time() - cpu_start, 3),
        }


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def default_model_dir() -> Path | None:
    """The model named by risk/models/approved/CURRENT (the version approved for the nightly job), if any.
    Package data: a wheel install finds it as a source checkout does."""
    from risk.models.export import approved_models_dir

    current = approved_models_dir() / "CURRENT"
    if not current.is_file():
        return None
    return current.parent / current.read_text(encoding="utf-8").strip()


_ID_KEY_TEXT = {
    "county": "the county key (RISK_ID_KEY)",
    "development": "**the development key** (--dev-id-key): for synthetic or test data only, never publish "
    "real patients hashed with it",
}


def _write_summary(manifest: RunManifest, path: Path, workload: pd.DataFrame | None = None) -> None:
    counts, versions = manifest.counts, manifest.versions
    lines = [
        f"# Nightly run {manifest.run_id}",
        "",
        f"- as of: {manifest.as_of.isoformat()}",
        f"- status: **{manifest.status or 'succeeded'}**; started {manifest.started_at or '?'}, "
        f"ended {manifest.ended_at or '?'}",
        f"- data snapshot: `{versions['data_fingerprint']}`",
        "- versions: "
        + ", ".join(f"{key} {value}" for key, value in versions.items() if key != "data_fingerprint"),
        f"- national-ID key: {_ID_KEY_TEXT.get(versions.get('id_key'), 'unknown')}",
        "",
    ]
    if manifest.warnings:
        lines += ["## Warnings", "", *(f"- **{w}**" for w in manifest.warnings), ""]
    lines += [
        "## Validation (rows read = accepted + quarantined)",
        "",
        "| table | read | accepted | quarantined |",
        "|---|---:|---:|---:|",
    ]
    for table, row in manifest.validation.items():
        lines.append(f"| {table} | {row['read']:,} | {row['accepted']:,} | {row['quarantined']:,} |")
    lines += [
        "",
        f"## Tiers ({counts['tiered']:,} managed patients)",
        "",
        "| tier | combined | rules | model |",
        "|---|---:|---:|---:|",
    ]
    for tier in TIERS:
        lines.append(
            f"| {tier} | {counts['tier'].get(tier, 0):,} | {counts['tier_rules'].get(tier, 0):,} | "
            f"{counts['tier_model'].get(tier, 0):,} |"
        )
    lines += [
        "",
        "## By township (combined tier)",
        "",
        "| township | red | yellow | green | total |",
        "|---|---:|---:|---:|---:|",
    ]
    for township, row in manifest.by_township.items():
        total = sum(row.values())
        lines.append(
            f"| {township} | {row.get('red', 0):,} | {row.get('yellow', 0):,} | "
            f"{row.get('green', 0):,} | {total:,} |"
        )
    transitions = manifest.transitions
    if transitions:
        lines += [
            "",
            f"## Tier transitions since {manifest.previous_run_as_of}",
            "",
            "| before \\ now | " + " | ".join([*TIERS, "left"]) + " |",
            "|---" * 5 + "|",
        ]
        for before in [*TIERS, "new"]:
            row = transitions.get(before, {})
            lines.append(f"| {before} | " + " | ".join(f"{row.get(t, 0):,}" for t in [*TIERS, "left"]) + " |")
    lines += [
        "",
        "## Lists",
        "",
        f"- priority list rows: {counts['priority_rows']:,} in {counts['list_files']} files",
        f"- unmanaged key population (person × condition): {counts['unmanaged']:,}",
        "",
    ]
    if workload is not None and manifest.workload:
        from risk.products.workload import summary_lines

        lines += summary_lines(manifest.to_dict(), workload)
    path.write_text("\n".join(lines), encoding="utf-8")


def run_nightly(options: NightlyOptions) -> NightlyResult:
    """validate -> features -> tiers -> lists (and call lists) -> report -> publish, in a staged run."""
    from risk.engines import ENGINES, open_engine
    from risk.validate.run import check_as_of, last_event_date

    if not Path(options.input_dir).is_dir():
        raise RiskUserError(f"{options.input_dir}: input folder not found")
    if options.previous_run is not None and not RunFolder(Path(options.previous_run)).has_tiers:
        raise RiskUserError(f"{options.previous_run}: not a run folder (no tiers.parquet) for --previous")
    if options.engine not in ENGINES:
        raise RiskUserError(f"unknown engine '{options.engine}' (duckdb or spark)")
    if options.as_of > date.today() and not options.allow_late_as_of:
        check_as_of(options.as_of, None, date.today(), allow_late=False)  # refused before any work
    # before any work: nothing is hashed or published without a key (the run record reports the
    # development key, once)
    id_key = privacy.require_key(report_dev_key=False)
    out, clock, record = options.out.resolve(), StageClock(), RunRecord()
    total = 6 if options.store_url else 5  # "publish" is a stage only when there is a store to publish to
    # one warnings list for the run record: overrides of refusals, the as-of check, model drift, Python
    # warnings, the ID key
    with record.collect_warnings(), RunFolder.staged(out) as run, _one_worker() as worker:
        with clock.stage("validate", 1, total):
            record.extend(_validate(options, run))
        call_results = _feed_call_results(options, run)
        last_event = last_event_date(run.canonical)
        record.extend(check_as_of(options.as_of, last_event, date.today(), options.allow_late_as_of))
        with clock.stage("features", 2, total):
            engine = open_engine(options.engine, run.path, options.spark_master)
            features = engine.features(run.canonical, options.as_of, run.features)
            check_parquet(run.features, feature_schema(), f"{options.engine} features")
        # Beside the tier stage, which leaves a core idle (the feature stage uses both).
        quarantine_exports = _quarantine_exports(run, worker)
        with _unmanaged_beside(options, run) as unmanaged:  # forked while the tiers stage uses one core
            with clock.stage("tiers", 3, total):
                tiered = _tiers(options, engine, run, features)
                record.extend(tiered.warnings)
            with clock.stage("lists", 4, total):
                lists = _lists(options, engine, run, tiered, features, call_results, clock, unmanaged)
        with clock.stage("report", 5, total):
            quarantine_exports.result()  # the manifest lists the quarantine files
            manifest = _manifest(options, out, run, features, tiered, lists, record, id_key)
            run.write_manifest(manifest)
            _write_summary(manifest, run.summary, lists.workload)
        run.timings.write_text(
            json.dumps(
                {
                    "seconds": clock.seconds,
                    "cpu_seconds": clock.cpu_seconds,
                    "peak_rss_mb": clock.peak_rss_mb,
                    "parts": clock.parts,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        run.publish(out)
        if options.store_url:
            with clock.stage("publish", 6, total):
                from risk.serving import publish_run

                publish_run(out, options.store_url)
    return NightlyResult(run_dir=out, manifest=manifest.to_dict(), timings=clock.seconds)


def _validate(options: NightlyOptions, run: RunFolder) -> list[str]:
    """Canonical tables, quarantine and validation.json into the run; the overrides used, as warnings."""
    from risk.validate import validate_folder

    # "In the future" means after the day the job runs, not after as_of: a backfill for an earlier date
    # must not quarantine the later events the features simply do not look at.
    validated = validate_folder(
        Path(options.input_dir), run.path, as_of=None, allow_empty=options.allow_empty
    )
    return list(validated.overrides)


def _quarantine_exports(run: RunFolder, worker: ProcessPoolExecutor) -> Future[int]:
    """The quarantine CSV/XLSX for people, being written by a forked worker (wait before the manifest).

    xlsxwriter costs about 5 µs a cell, some 6 CPU s for the 1M stress county's ~225k quarantined rows.
    Started after the feature stage, which keeps both cores busy (the worker slowed it by a third there),
    so that it runs beside the tier and list stages."""
    return worker.submit(write_quarantine_exports, run.path)


@contextmanager
def _one_worker() -> Iterator[ProcessPoolExecutor]:
    """One forked worker for work beside the stages; on leaving (also on an error) it finishes what it
    started before the staged run folder is removed or published."""
    from risk.workers import process_pool

    pool = process_pool(1)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _unmanaged_beside(options: NightlyOptions, run: RunFolder) -> Iterator[Future[UnmanagedExport] | None]:
    """The unmanaged key-population list (lists/unmanaged_key_population.csv) written by a forked worker
    from the canonical tables while the tiers stage runs: it needs neither features nor tiers, and the
    tiers stage is single-threaded Python (one core idle for ~7 s at 1M persons). DuckDB gets one thread
    there. The lists stage waits for it (lists.unmanaged) and fails if it failed; on leaving (also on an
    error) the worker finishes before the staged run folder is removed or published. None with Spark: the
    lists stage then queries the engine's tables itself."""
    if options.engine != "duckdb":
        yield None
        return
    from risk.products.lists import UNMANAGED_CSV
    from risk.products.unmanaged import export_unmanaged

    with _one_worker() as pool:
        csv = run.lists / UNMANAGED_CSV
        yield pool.submit(export_unmanaged, run.canonical, options.as_of, csv, threads=1)


def _feed_call_results(options: NightlyOptions, run: RunFolder) -> pd.DataFrame | None:
    """The follow-up loop: visits recorded as call results enter this run's features (origin marked)."""
    if not (options.calls and options.store_url):
        return None
    from pipelines.calls import feed_visit_readings, results_from_store

    call_results = results_from_store(options.store_url, options.as_of)
    fed = feed_visit_readings(run, call_results, options.as_of)
    log.info("call results: %d read, visit readings fed as %s", len(call_results), fed)
    return call_results


@dataclass
class _Tiered:
    tiers: pd.DataFrame
    rule_set: RuleSet  # the rule set that made the tiers (its tier labels are the workbook's legend)
    versions: dict[str, str]  # rule set (version, fingerprint) and model that made the tiers
    drift: DriftReport | None  # the model's drift check (None without a model)

    @property
    def warnings(self) -> list[str]:
        return list(self.drift.warnings) if self.drift is not None else []


def _load_model(
    options: NightlyOptions, features: pd.DataFrame, policy: ModelPolicy
) -> tuple[ExportedModel | None, DriftReport | None]:
    """The model of --model, else models/CURRENT (none with --no-model or when none is approved), checked
    against the features and, by PSI, against its training population."""
    model_dir = options.model_dir or (default_model_dir() if options.use_model else None)
    if not options.use_model or model_dir is None:
        return None, None
    from risk.tiers.model import check_model_drift, load_exported_model

    model = load_exported_model(model_dir)
    model.check_features(list(features.columns))
    return model, check_model_drift(model, features, policy, accept=options.accept_model_drift)


def _tiers(options: NightlyOptions, engine: Engine, run: RunFolder, features: pd.DataFrame) -> _Tiered:
    """The tiers table (written to the run, checked against the schema), what made it, the drift check."""
    from risk.engines.base import TierInputs
    from risk.tiers.priority import priority_rank
    from risk.tiers.rules import RuleTierClassifier

    policy = default_model_policy()
    rule_estimator = RuleTierClassifier(rules=options.rules).fit(features)
    model, drift = _load_model(options, features, policy)
    inputs = TierInputs(rule_estimator.rule_set_, model, options.as_of, policy)
    tiers = engine.tiers(features, inputs)
    tiers = tiers.sort_values("person_id", kind="mergesort").reset_index(drop=True)
    # one global order (the Spark engine finishes tiers per batch)
    tiers["priority"] = priority_rank(tiers.assign(as_of=pd.Timestamp(options.as_of)))
    tiers.to_parquet(run.tiers, index=False)
    check_parquet(run.tiers, TIER_SCHEMA, f"{options.engine} tiers")
    versions = {
        "rule_set": rule_estimator.rule_set_version_,
        "rule_set_fingerprint": rule_estimator.rule_set_fingerprint_,
        "model": inputs.model_version,
    }
    return _Tiered(tiers, rule_estimator.rule_set_, versions, drift)


@dataclass
class _Lists:
    counts: dict[str, Any]
    workload: pd.DataFrame  # per unit and week (lists/workload.csv)
    workload_figures: dict[str, Any]  # run.json `workload` and `red_share`


def _lists(
    options: NightlyOptions,
    engine: Engine,
    run: RunFolder,
    tiered: _Tiered,
    features: pd.DataFrame,
    call_results: pd.DataFrame | None,
    clock: StageClock | None = None,
    unmanaged_beside: Future[UnmanagedExport] | None = None,
) -> _Lists:
    """Priority lists, the unmanaged key-population list, (with calls) the call lists and the workload per
    unit and week, with their counts. The team workbooks of the priority and the call lists are written by
    the list workers while this process does the rest; `clock` gets the seconds of each part."""
    from risk.products.lists import LIST_PERSON_COLUMNS, PendingExport, build_priority_list
    from risk.products.unmanaged import find_unmanaged, unmanaged_list
    from risk.products.workload import plan_workload

    clock = clock or StageClock()
    tiers = tiered.tiers
    with clock.part("lists.priority"):
        persons = pd.read_parquet(run.table("persons"), columns=LIST_PERSON_COLUMNS)
        priority = build_priority_list(tiers, features, persons)
        # the printed workbook's colour legend: the rule set's tier labels in the workbook's language
        legend = {
            tier: spec.label_en if options.lang == "en" else spec.label_zh
            for tier, spec in tiered.rule_set.tiers.items()
        }
        pending = PendingExport(
            priority,
            run.lists,
            run_date=options.as_of.isoformat(),
            xlsx=options.xlsx,
            lang=options.lang,
            legend=legend,
            village_names=_village_names(run),
        )
    try:
        unmanaged = None  # written by the worker of _unmanaged_beside when it is given
        if unmanaged_beside is None:
            with clock.part("lists.unmanaged"):
                found = find_unmanaged(engine.connection(run.canonical), options.as_of)
                # who to look for and where: the village doctor contacts these residents for confirmation
                unmanaged = unmanaged_list(persons, found)
        calls = None
        if options.calls:
            from pipelines.calls import calls_from_priority

            with clock.part("lists.calls"):  # the call workbooks themselves: in lists.workbooks
                calls = calls_from_priority(
                    priority,
                    tiers,
                    options.as_of,
                    run.path / "calls",
                    results=call_results,
                    daily_capacity=options.call_capacity,
                    xlsx=options.xlsx,
                    submit=pending.submit,
                    rule_set=tiered.rule_set,  # the urgencies of the rules that made the tiers
                ).counts()
                if call_results is not None:
                    _write_cascade(options, run, call_results)
        if unmanaged_beside is not None:
            with clock.part("lists.unmanaged"):  # waiting for it: its own seconds are unmanaged.beside
                beside = unmanaged_beside.result()
            clock.parts["unmanaged.beside"] = {"seconds": beside.seconds, "cpu_seconds": beside.cpu_seconds}
        with clock.part("lists.workload"):  # planned while the workers write; written once they are done
            workload = plan_workload(tiers, features, options.as_of)
    except BaseException:
        pending.close()
        raise
    with clock.part("lists.csv_and_workbooks"):  # CSV files, then waiting for the workers' workbooks
        exported = pending.finish(unmanaged)
    workload.write(run.lists)
    counts = {
        "priority_rows": exported.rows,
        # counted on disk (lists/ also holds workload.csv): what was written, not what was meant
        "list_files": sum(1 for p in run.lists.rglob("*") if p.suffix in (".csv", ".xlsx")),
        "unmanaged": int(len(unmanaged)) if unmanaged is not None else beside.rows,
        "calls": calls,
    }
    return _Lists(counts, workload.table, workload.figures)


def _write_cascade(options: NightlyOptions, run: RunFolder, call_results: pd.DataFrame) -> None:
    """calls/cascade.csv: the month to date, started from the run scored before the month (if any)."""
    from pipelines.calls import write_cascade
    from risk.indicators.periods import period_containing
    from risk.run.history import previous_run

    month_start = period_containing(options.as_of, "month").start
    write_cascade(run.path, previous_run(options.out.resolve(), month_start), options.as_of, call_results)


def _manifest(
    options: NightlyOptions,
    out: Path,
    run: RunFolder,
    features: pd.DataFrame,
    tiered: _Tiered,
    lists: _Lists,
    record: RunRecord,
    id_key: str,
) -> RunManifest:
    """run.json: what produced the run (every version), when it ran and how it ended (the run record:
    start/end time, status, warnings, ID key), validation counts, tier counts, transitions since the
    previous run, the quarantine files."""
    from risk.features import FEATURE_SET_VERSION
    from risk.run.history import previous_run, transitions_by_tier

    tiers = tiered.tiers
    previous_dir = options.previous_run or previous_run(out, options.as_of)
    previous, previous_as_of = None, None
    if previous_dir is not None and RunFolder(Path(previous_dir)).has_tiers:
        before = RunFolder(Path(previous_dir))
        previous = pd.read_parquet(before.tiers, columns=["person_id", "tier"])
        previous_as_of = before.as_of.isoformat() if before.as_of else None
    by_township = (
        tiers.merge(features[["person_id", "township_id"]], on="person_id")
        .groupby(["township_id", "tier"])
        .size()
        .unstack(fill_value=0)
    )
    validation = run.validation_report()
    made_from = {
        "data_fingerprint": validation["input_fingerprint"],
        "rule_set_fingerprint": tiered.versions["rule_set_fingerprint"],
        "model": tiered.versions["model"],
        "code": provenance.code_version(),
    }
    fingerprint = provenance.text_fingerprint(json.dumps(made_from, sort_keys=True))
    recorded = record.fields(id_key)
    return RunManifest(
        # data, rule set, model and code: changing any of them gives another run id
        run_id=f"{options.as_of.isoformat()}-{fingerprint}",
        as_of=options.as_of,
        started_at=recorded["started_at"],
        ended_at=recorded["ended_at"],
        status=recorded["status"],
        id_key=recorded["id_key"],
        input_dir=str(Path(options.input_dir).resolve().name),
        versions={
            "data_fingerprint": validation["input_fingerprint"],
            "contract": validation["contract_version"],
            **tiered.versions,
            "feature_set": FEATURE_SET_VERSION,
            "code": made_from["code"],
            "run_fingerprint": fingerprint,
            "id_key": id_key,
            "validation_rules": validation.get("validation_rules_version", ""),
            "indicators": _indicator_version(),
            **library_versions(),
        },
        validation={
            table: {
                "read": row["rows_read"],
                "accepted": row["rows_accepted"],
                "quarantined": row["rows_quarantined"],
            }
            for table, row in validation["tables"].items()
        },
        counts={
            "tiered": int(len(tiers)),
            "tier": _counts(tiers["tier"]),
            "tier_rules": _counts(tiers["tier_rules"]),
            "tier_model": _counts(tiers["tier_model"]),
            **lists.counts,
        },
        by_township={str(t): {str(k): int(v) for k, v in row.items()} for t, row in by_township.iterrows()},
        warnings=recorded["warnings"],
        model_drift=tiered.drift.as_dict() if tiered.drift is not None else None,
        previous_run_as_of=previous_as_of,
        transitions=transitions_by_tier(tiers, previous),
        workload=lists.workload_figures["workload"],
        red_share=lists.workload_figures["red_share"],
        quarantine_files=sorted(p.name for p in run.path.glob("quarantine.*")),
    )


def _village_names(run: RunFolder) -> dict[str, str]:
    """Village id -> name from the optional persons.village_name column, for the printed lists."""
    import pyarrow.parquet as pq

    path = run.table("persons")
    if "village_name" not in pq.read_schema(path).names:
        return {}
    frame = pd.read_parquet(path, columns=["village_id", "village_name"]).dropna()
    return frame.drop_duplicates("village_id").set_index("village_id")["village_name"].astype(str).to_dict()


def _indicator_version() -> str:
    from risk.indicators.definitions import indicator_set

    return indicator_set().version


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.dropna().value_counts().items()}
