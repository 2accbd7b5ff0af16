"""Nightly job: validate -> features -> tiers (rules, model, combined) -> lists -> run report.

The run is assembled in a hidden temporary sibling folder and renamed into place only when every stage
has finished, so a failed run never leaves a folder that looks complete. Re-running on the same inputs
gives identical tables (nothing time-dependent is written into them; wall-clock timings go to
timings.json only).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from risk import privacy, provenance
from risk.atomic import check_replaceable, remove_leftovers, swap_into_place
from risk.errors import RiskUserError
from risk.models.policy import default_model_policy
from risk.schema import TIER_SCHEMA, check_parquet, feature_schema
from risk.schema import TIERS_WORST_FIRST as TIERS

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
        self.peak_rss_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, number: int, total: int) -> Iterator[None]:
        log.info("[%d/%d] %s ...", number, total, name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.peak_rss_mb[name] = round(_peak_rss_mb(), 1)
        log.info("[%d/%d] %s done in %.1f s", number, total, name, self.seconds[name])


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


def _write_summary(manifest: dict, path: Path, workload: pd.DataFrame | None = None) -> None:
    counts = manifest["counts"]
    lines = [
        f"# Nightly run {manifest['run_id']}",
        "",
        f"- as of: {manifest['as_of']}",
        f"- data snapshot: `{manifest['versions']['data_fingerprint']}`",
        f"- contract {manifest['versions']['contract']}, rule set {manifest['versions']['rule_set']}, "
        f"model {manifest['versions']['model']}, code {manifest['versions']['code']}",
        f"- national-ID key: {_ID_KEY_TEXT.get(manifest['versions'].get('id_key'), 'unknown')}",
        "",
    ]
    warnings = manifest.get("warnings") or []
    if warnings:
        lines += ["## Warnings", "", *(f"- **{w}**" for w in warnings), ""]
    lines += [
        "## Validation (rows read = accepted + quarantined)",
        "",
        "| table | read | accepted | quarantined |",
        "|---|---:|---:|---:|",
    ]
    for table, row in manifest["validation"].items():
        lines.append(f"| {table} | {row['read']:,} | {row['accepted']:,} | {row['quarantined']:,} |")
    lines += ["", f"## Tiers ({counts['tiered']:,} managed patients)", "",
              "| tier | combined | rules | model |", "|---|---:|---:|---:|"]
    for tier in TIERS:
        lines.append(f"| {tier} | {counts['tier'].get(tier, 0):,} | {counts['tier_rules'].get(tier, 0):,} | "
                     f"{counts['tier_model'].get(tier, 0):,} |")
    lines += ["", "## By township (combined tier)", "", "| township | red | yellow | green | total |",
              "|---|---:|---:|---:|---:|"]
    for township, row in manifest["by_township"].items():
        total = sum(row.values())
        lines.append(f"| {township} | {row.get('red', 0):,} | {row.get('yellow', 0):,} | "
                     f"{row.get('green', 0):,} | {total:,} |")
    transitions = manifest.get("transitions") or {}
    if transitions:
        lines += ["", f"## Tier transitions since {manifest.get('previous_run_as_of')}", "",
                  "| before \\ now | " + " | ".join([*TIERS, "left"]) + " |", "|---" * 5 + "|"]
        for before in [*TIERS, "new"]:
            row = transitions.get(before, {})
            lines.append(f"| {before} | " + " | ".join(f"{row.get(t, 0):,}" for t in [*TIERS, "left"]) + " |")
    lines += ["", "## Lists", "",
              f"- priority list rows: {counts['priority_rows']:,} in {counts['list_files']} files",
              f"- unmanaged key population (person × condition): {counts['unmanaged']:,}", ""]
    if workload is not None and "workload" in manifest:
        from risk.products.workload import summary_lines

        lines += summary_lines(manifest, workload)
    path.write_text("\n".join(lines), encoding="utf-8")


def run_nightly(options: NightlyOptions) -> NightlyResult:
    from risk.engines import ENGINES, open_engine
    from risk.features import FEATURE_SET_VERSION
    from risk.products.lists import PendingExport, build_priority_list
    from risk.products.unmanaged import find_unmanaged
    from risk.products.workload import export_workload
    from risk.run.folder import RunFolder
    from risk.run.history import previous_run, transitions_by_tier
    from risk.tiers.priority import priority_rank
    from risk.tiers.rules import RuleTierClassifier
    from risk.validate import validate_folder
    from risk.validate.run import check_as_of, last_event_date

    out = options.out.resolve()
    if not Path(options.input_dir).is_dir():
        raise RiskUserError(f"{options.input_dir}: input folder not found")
    check_replaceable(out, "run.json", "an earlier run folder")
    id_key = privacy.require_key()  # before any work: nothing is hashed or published without a key
    if options.previous_run is not None and not (Path(options.previous_run) / "tiers.parquet").is_file():
        raise RiskUserError(f"{options.previous_run}: not a run folder (no tiers.parquet) for --previous")
    remove_leftovers(out)
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    out.parent.mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    total = 6
    if options.engine not in ENGINES:
        raise RiskUserError(f"unknown engine '{options.engine}' (duckdb or spark)")
    if options.as_of > date.today() and not options.allow_late_as_of:
        check_as_of(options.as_of, None, date.today(), allow_late=False)  # refused before any work
    warnings: list[str] = []
    try:
        with clock.stage("validate", 1, total):
            # "In the future" means after the day the job runs, not after as_of: a backfill for an
            # earlier date must not quarantine the later events the features simply do not look at.
            validated = validate_folder(Path(options.input_dir), staging, as_of=None,
                                        allow_empty=options.allow_empty)
            warnings += validated.overrides
        canonical = staging / "canonical"
        call_results = None
        if options.calls and options.store_url:
            # the follow-up loop: visits recorded as call results enter this run's features (origin marked)
            from pipelines.calls import feed_visit_readings, results_from_store

            call_results = results_from_store(options.store_url, options.as_of)
            fed = feed_visit_readings(canonical, call_results, options.as_of)
            log.info("call results: %d read, visit readings fed as %s", len(call_results), fed)
        warnings += check_as_of(options.as_of, last_event_date(canonical), date.today(),
                                options.allow_late_as_of)

        with clock.stage("features", 2, total):
            engine = open_engine(options.engine, staging, options.spark_master)
            features = engine.features(canonical, options.as_of, staging / "features.parquet")
            check_parquet(staging / "features.parquet", feature_schema(), f"{options.engine} features")

        with clock.stage("tiers", 3, total):
            rule_estimator = RuleTierClassifier(rules=options.rules).fit(features)
            policy = default_model_policy()
            model_version = "none"
            drift = None
            model_dir = options.model_dir or (default_model_dir() if options.use_model else None)
            model = None
            if options.use_model and model_dir is not None:
                from risk.tiers.model import check_model_drift, load_exported_model

                model = load_exported_model(model_dir)
                model.check_features(list(features.columns))
                model_version = model.version
                drift = check_model_drift(model, features, policy, accept=options.accept_model_drift)
                warnings += drift.warnings
            tiers = engine.tiers(features, rule_estimator.rule_set_, model, options.as_of, policy)
            tiers = tiers.sort_values("person_id", kind="mergesort").reset_index(drop=True)
            # one global order (the Spark engine finishes tiers per batch)
            tiers["priority"] = priority_rank(tiers.assign(as_of=pd.Timestamp(options.as_of)))
            tiers.to_parquet(staging / "tiers.parquet", index=False)
            check_parquet(staging / "tiers.parquet", TIER_SCHEMA, f"{options.engine} tiers")

        with clock.stage("lists", 4, total):
            persons = pd.read_parquet(canonical / "persons.parquet", columns=[
                "person_id", "name", "phone", "national_id_masked", "township_id", "village_id", "unit_id",
                "team_id",
            ])
            priority = build_priority_list(tiers, features, persons)
            pending = PendingExport(priority, staging / "lists",
                                    title=f"随访优先名单 {options.as_of.isoformat()}", xlsx=options.xlsx)
            try:
                unmanaged = find_unmanaged(engine.connection(canonical), options.as_of)
                # who to look for and where: the village doctor contacts these residents for confirmation
                unmanaged = persons.merge(unmanaged, on="person_id", how="inner").sort_values(
                    ["team_id", "village_id", "evidence_kinds", "person_id", "condition"],
                    ascending=[True, True, False, True, True], kind="mergesort",
                ).reset_index(drop=True)
            except BaseException:
                pending.close()
                raise
            exported = pending.finish(unmanaged)
            if options.calls:
                from pipelines.calls import run_calls

                calls_run = run_calls(staging, options.as_of, staging / "calls", results=call_results,
                                      daily_capacity=options.call_capacity, xlsx=options.xlsx,
                                      check_as_of=False)
                if call_results is not None:
                    from pipelines.calls import write_cascade
                    from risk.indicators.periods import period_containing

                    month_start = period_containing(options.as_of, "month").start
                    write_cascade(staging, previous_run(out, month_start), options.as_of, call_results)
            workload_table, workload_figures = export_workload(tiers, features, options.as_of,
                                                               staging / "lists")

        with clock.stage("report", 5, total):
            previous_dir = options.previous_run or previous_run(out, options.as_of)
            previous = None
            previous_as_of = None
            if previous_dir is not None and RunFolder(Path(previous_dir)).has_tiers:
                before = RunFolder(Path(previous_dir))
                previous = pd.read_parquet(before.tiers, columns=["person_id", "tier"])
                previous_as_of = before.as_of.isoformat() if before.as_of else None
            by_township = (
                tiers.merge(features[["person_id", "township_id"]], on="person_id")
                .groupby(["township_id", "tier"]).size().unstack(fill_value=0)
            )
            validation_json = json.loads((staging / "validation.json").read_text(encoding="utf-8"))
            made_from = {
                "data_fingerprint": validation_json["input_fingerprint"],
                "rule_set_fingerprint": rule_estimator.rule_set_.fingerprint,
                "model": model_version,
                "code": provenance.code_version(),
            }
            fingerprint = provenance.text_fingerprint(json.dumps(made_from, sort_keys=True))
            manifest = {
                # data, rule set, model and code: changing any of them gives another run id
                "run_id": f"{options.as_of.isoformat()}-{fingerprint}",
                "as_of": options.as_of.isoformat(),
                "input_dir": str(Path(options.input_dir).resolve().name),
                "versions": {
                    "data_fingerprint": validation_json["input_fingerprint"],
                    "contract": validation_json["contract_version"],
                    "rule_set": rule_estimator.rule_set_version_,
                    "rule_set_fingerprint": made_from["rule_set_fingerprint"],
                    "model": model_version,
                    "feature_set": FEATURE_SET_VERSION,
                    "code": made_from["code"],
                    "run_fingerprint": fingerprint,
                    "id_key": id_key,
                },
                "validation": {
                    table: {"read": row["rows_read"], "accepted": row["rows_accepted"],
                            "quarantined": row["rows_quarantined"]}
                    for table, row in validation_json["tables"].items()
                },
                "counts": {
                    "tiered": int(len(tiers)),
                    "tier": _counts(tiers["tier"]),
                    "tier_rules": _counts(tiers["tier_rules"]),
                    "tier_model": _counts(tiers["tier_model"]),
                    "priority_rows": exported.rows,
                    # counted on disk (lists/ also holds workload.csv): what was written, not what was meant
                    "list_files": sum(1 for p in (staging / "lists").rglob("*")
                                      if p.suffix in (".csv", ".xlsx")),
                    "unmanaged": int(len(unmanaged)),
                    "calls": calls_run.counts() if options.calls else None,
                },
                "by_township": {
                    str(t): {str(k): int(v) for k, v in row.items()} for t, row in by_township.iterrows()
                },
                "warnings": warnings,
                "model_drift": drift.as_dict() if drift is not None else None,
                "previous_run_as_of": previous_as_of,
                "transitions": transitions_by_tier(tiers, previous),
                **workload_figures,
            }
            manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False)
            (staging / "run.json").write_text(manifest_text, encoding="utf-8")
            _write_summary(manifest, staging / "summary.md", workload_table)

        with clock.stage("publish", 6, total):
            (staging / "timings.json").write_text(
                json.dumps({"seconds": clock.seconds, "peak_rss_mb": clock.peak_rss_mb}, indent=2),
                encoding="utf-8",
            )
            swap_into_place(staging, out)
            if options.store_url:
                from risk.serving import publish_run

                publish_run(out, options.store_url)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return NightlyResult(run_dir=out, manifest=manifest, timings=clock.seconds)



def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.dropna().value_counts().items()}
