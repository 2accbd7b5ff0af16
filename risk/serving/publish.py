"""Publish a nightly run folder into the serving store, atomically.

The run's rows are loaded under their own run_id while readers keep using the previous run through the
`current_run` pointer; one short transaction then marks the run published and flips the pointer. A reader
therefore sees the previous run or the new one, never a mix. A publish that dies half-way leaves rows of a
run in state `loading`, which no reader ever joins to, and which the next publish removes.

How the load is made fast (issue 19: 1M persons in ≤ 20 s on SQLite, ≤ 60 s on PostgreSQL) without
changing that contract:

- The rows are built by DuckDB straight from the run's Parquet files. The BP and glucose series are
  computed only for the persons of tiers.parquet (not for every person with a reading) and the newest
  60 BP readings are taken with a top-N aggregate (`arg_max(..., 60)`) instead of a window over every
  reading; on the other-shape county at 1M that query was most of the publish.
- Memory is bounded: DuckDB runs with a memory limit (1 GB, RISK_DUCKDB_MEMORY) and 2 threads, spilling
  to a temporary folder. The tiered persons' rows of tiers, persons and features are first copied into
  DuckDB tables sorted by person_id, and the patient rows are then built 10,000 persons at a time by
  person_id range; one query over the whole county peaked at 5.5 GB on the other-shape county at 1M.
- Rows reach the driver as plain tuples from DuckDB's cursor (no Arrow-to-Python round trip), and a
  producer thread builds the next batch (DuckDB and the tuple conversion) while the main thread inserts
  the previous one (SQLite and psycopg release the GIL while they write). The tier history goes first:
  it reads tiers.parquet as it is, so the driver writes it while the producer stages the other tables.
- SQLite inserts in primary-key order in one transaction. PostgreSQL takes COPY of CSV files DuckDB
  writes (no Python object per row), and a new run's search terms load on a second connection beside the
  patient rows, so that the server indexes on two backends; the two transactions commit together (see
  _LoadBeside). At 1M tiered persons: 60–65 s before, 53–57 s after, on this machine's two cores.

Two other designs were weighed and not taken. Loading only the rows that changed since the current run
would need patient rows shared between runs, so every reader (queries.py) would have to resolve a row
through the run it belongs to; and on a nightly run nearly every row changes anyway (days overdue, age
and priority move with the as-of date). Bulk-loading into a fresh SQLite file and switching files would
leave users, sessions, the audit log and call results (written by the API while the load runs) in the old
file, and open reader connections would keep the old file; PostgreSQL has no such switch. Loading in place
under a new run_id keeps history, the current-run pointer, `--make-current`, replacing a changed run,
pruning, and BEGIN IMMEDIATE with retry under concurrent readers exactly as they were.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from risk import privacy
from risk.errors import RiskUserError
from risk.provenance import text_fingerprint
from risk.run.folder import RunFolder
from risk.run.tables import parquet_source
from risk.serving import schema
from risk.serving.store import StoreError, db_error_message, open_store, run_write, safe_url
from risk.spreadsheet import restore_text
from risk.sql import literal

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
COPY_BLOCK_BYTES = 1 << 20  # CSV handed to PostgreSQL's COPY a megabyte at a time
# Patient rows are built CHUNK_PERSONS tiered persons at a time (a person_id range each, see _stage): the
# series of the whole county at once held several copies of ~0.5 GB of JSON text plus the BP top-N
# aggregate states (5.5 GB peak at 1M); 10k persons' states fit the 1 GB limit.
CHUNK_PERSONS = 10_000
DUCKDB_THREADS = 2
DUCKDB_MEMORY_LIMIT = "1GB"  # RISK_DUCKDB_MEMORY overrides, as for validation
BP_SERIES_MAX = 60  # readings per person kept for the trend chart
GLUCOSE_SERIES_MAX = 40
SERIES_YEARS = 3

# (label, value column, date column) taken from features.parquet when present.
LAST_MEASUREMENTS = [
    ("sbp", "bp_last_sbp", "bp_last_date"),
    ("dbp", "bp_last_dbp", "bp_last_date"),
    ("fpg", "fpg_last", "fpg_last_date"),
    ("hba1c", "hba1c_last", "hba1c_last_date"),
    ("bmi", "bmi_last", None),
    ("waist", "waist_last", None),
    ("tc", "tc_last", None),
    ("ldl_c", "ldl_c_last", None),
    ("hdl_c", "hdl_c_last", None),
    ("egfr", "egfr_last", None),
    ("uacr", "uacr_last", None),
    ("chinapar_risk_10y", "chinapar_risk_10y", None),
]


@dataclass
class PublishResult:
    run_id: str
    as_of: date
    store: str
    persons: int = 0
    search_terms: int = 0
    seconds: float = 0.0
    already_published: bool = False
    made_current: bool = False  # an already-published run was made current again (no rows loaded)
    replaced: bool = False  # the same run_id was published before with other content
    pruned_runs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def render(self) -> str:
        tail = "".join(f"\nwarning: {w}" for w in self.warnings)
        if self.already_published:
            return f"run {self.run_id} is already published and current in {self.store}; nothing to do{tail}"
        if self.made_current:
            return f"run {self.run_id} (as of {self.as_of}) is now the current run in {self.store}{tail}"
        pruned = f"; pruned patient rows of {', '.join(self.pruned_runs)}" if self.pruned_runs else ""
        verb = "re-published (replacing its earlier content)" if self.replaced else "published"
        return (
            f"{verb} run {self.run_id} (as of {self.as_of}) to {self.store}: {self.persons:,} persons, "
            f"{self.search_terms:,} search terms in {self.seconds:.1f} s{pruned}{tail}"
        )


class PublishError(StoreError):
    """Publishing failed; the message carries no row values."""


def publish_run(
    run_dir: Path, store_url: str, *, keep_runs: int = 2, make_current: bool = False
) -> PublishResult:
    """Load RUN_DIR into the store and make it the current run; keep patient rows of `keep_runs` runs.

    A run older (earlier as-of) than the current one is refused unless `make_current`. The same run_id
    published before with another run fingerprint (rule set, model, code or data changed) is replaced.
    """
    started = time.perf_counter()
    run = RunFolder(Path(run_dir))
    manifest = run.read_manifest()
    run.require(run.tiers, run.table("persons"))
    run_id = manifest.run_id or run.path.name
    as_of = manifest.as_of
    versions = manifest.versions
    _check_id_key(versions)
    result = PublishResult(run_id=run_id, as_of=as_of, store=safe_url(store_url))
    engine = open_store(store_url, create=True)
    try:
        try:
            action = run_write(engine, lambda conn: _begin_load(conn, run_id, as_of, versions, make_current))
            if action in ("current", "make_current"):
                result.already_published = action == "current"
                result.made_current = action == "make_current"
                if result.made_current:
                    run_write(engine, lambda conn: _point_to(conn, run_id))
                return result
            result.replaced = action == "replace"
            spill = tempfile.TemporaryDirectory(prefix="risk-publish-")
            source = _source(Path(spill.name))
            # PostgreSQL takes the rows as CSV files DuckDB writes (CsvRows); SQLite as tuples.
            csv_dir = None
            if engine.dialect.name == "postgresql":
                csv_dir = Path(spill.name) / "copy"
                csv_dir.mkdir()
            # A new run's search terms load on a second PostgreSQL connection beside the patient rows (see
            # _LoadBeside). A replaced run keeps one transaction: readers may be reading that run.
            terms_beside = None
            if engine.dialect.name == "postgresql" and not result.replaced:
                terms_source = source.cursor()  # DuckDB: one cursor per thread
                terms_beside = _LoadBeside(
                    engine, schema.search_terms, lambda: _search_term_batches(terms_source, run_id, csv_dir)
                )
            try:
                _register_run(source, run)

                def load(conn: Connection) -> tuple[int, int]:
                    if result.replaced:
                        _delete_run_rows(conn, run_id, history=True)
                    if conn.dialect.name == "sqlite":
                        # Index pages of a 1M-person load stay in memory instead of churning the WAL.
                        conn.exec_driver_sql("PRAGMA cache_size=-1048576")
                    batches = _prefetched(
                        _run_batches(
                            source,
                            run_id,
                            as_of,
                            on_staged=terms_beside.start if terms_beside else None,
                            search_terms=terms_beside is None,
                            csv_dir=csv_dir,
                        )
                    )
                    try:
                        counts = _load(conn, batches)
                    finally:
                        batches.close()  # an insert failed: stop the producer before the source closes
                    _load_cascade(conn, run, run_id)
                    if terms_beside is not None:  # this transaction commits only if those rows are in
                        counts[schema.search_terms.name] = terms_beside.wait_loaded()
                    return counts.get(schema.patients.name, 0), counts.get(schema.search_terms.name, 0)

                result.persons, result.search_terms = run_write(engine, load)
                if terms_beside is not None:
                    terms_beside.finish(commit=True)
            finally:
                if terms_beside is not None:
                    terms_beside.finish(commit=False)  # rolls it back unless it committed above
                    terms_source.close()
                source.close()
                spill.cleanup()
            run_write(engine, lambda conn: _flip_current(conn, run_id, result.persons, versions))
        except (SQLAlchemyError, engine.dialect.dbapi.Error) as exc:
            # the driver's own errors too: PostgreSQL's COPY goes through psycopg's cursor, not SQLAlchemy,
            # and its error quotes the offending value (CONTEXT: COPY ..., column phone: "...")
            raise PublishError(
                f"publishing run {run_id} failed, the current run is unchanged: {db_error_message(exc)}"
            ) from None
        try:  # the run is live now: a failure to tidy up must not report the publish as failed
            result.pruned_runs = _prune(engine, keep_runs)
        except SQLAlchemyError as exc:
            result.warnings.append(
                f"older runs were not pruned ({db_error_message(exc)}); the next publish prunes them"
            )
    finally:
        engine.dispose()
    result.seconds = time.perf_counter() - started
    log.info("published run %s: %d persons in %.1f s", run_id, result.persons, result.seconds)
    return result


def _check_id_key(versions: dict[str, Any]) -> None:
    """The county key must be set to publish; a run hashed with the development key needs the dev flag."""
    privacy.require_key()
    if versions.get("id_key") == "development" and not privacy.dev_key_allowed():
        raise RiskUserError(
            "this run's national IDs were hashed with the development key; re-run it with "
            f"{privacy.KEY_ENV} set (or pass --dev-id-key for synthetic data)"
        )


def run_fingerprint(versions: dict[str, Any]) -> str | None:
    value = versions.get("run_fingerprint")
    if value:
        return str(value)
    # runs written before run fingerprints: what the manifest records of data, rules, model and code
    known = [versions.get(k) for k in ("data_fingerprint", "rule_set", "model", "code")]
    return text_fingerprint(json.dumps(known, default=str)) if any(known) else None


def _begin_load(
    conn: Connection, run_id: str, as_of: date, versions: dict[str, Any], make_current: bool
) -> str:
    """Decide what publishing means for this run and, for a load, register it in state `loading`:
    'current' (nothing to do), 'make_current' (flip only), 'load' or 'replace'."""
    R = schema.runs
    fingerprint = run_fingerprint(versions)
    existing = conn.execute(select(R.c.state, R.c.run_fingerprint).where(R.c.run_id == run_id)).first()
    current = conn.execute(
        select(R.c.run_id, R.c.as_of).join(schema.current_run, schema.current_run.c.run_id == R.c.run_id)
    ).first()
    if current is not None and current.run_id != run_id and as_of < current.as_of and not make_current:
        raise RiskUserError(
            f"run {run_id} (as of {as_of}) is older than the current run {current.run_id} "
            f"(as of {current.as_of}); pass --make-current to serve the older run"
        )
    same = existing is not None and existing.run_fingerprint == fingerprint
    if same and existing.state == "published":
        return "current" if current is not None and current.run_id == run_id else "make_current"
    _remove_unpublished(conn)
    if existing is not None and existing.state != "loading":
        # other content under the same id, or a pruned run: the load transaction deletes its rows and
        # inserts the new ones, so readers of a current run see the old rows or the new, never none
        return "replace"
    conn.execute(
        R.insert().values(
            run_id=run_id,
            as_of=as_of,
            state="loading",
            loaded_at=datetime.now(UTC),
            n_persons=0,
        )
    )
    return "load"


def _source(spill: Path) -> duckdb.DuckDBPyConnection:
    """The DuckDB connection the rows are built with, bounded like the nightly's: the publish process
    stays within a county machine's memory next to the API (SQLite's page cache comes on top)."""
    memory_limit = os.environ.get("RISK_DUCKDB_MEMORY", DUCKDB_MEMORY_LIMIT)
    return duckdb.connect(
        config={
            "threads": DUCKDB_THREADS,
            "memory_limit": memory_limit,
            "preserve_insertion_order": False,  # every query that needs an order says ORDER BY
            "temp_directory": str(spill),  # what exceeds the limit (staged readings, sorts) goes here
        }
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:64]


def _register_run(con: duckdb.DuckDBPyConnection, run: RunFolder) -> None:
    def view(name: str, path: Path) -> None:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {parquet_source(path.resolve())}")

    view("tiers", run.tiers)
    view("persons", run.table("persons"))
    if run.features.is_file():
        view("features", run.features)
    else:
        con.execute("CREATE VIEW features AS SELECT NULL::VARCHAR AS person_id WHERE false")
    for table, columns in (
        (
            "vitals",
            "person_id VARCHAR, measured_at TIMESTAMP, sbp DOUBLE, dbp DOUBLE, file_row_number BIGINT",
        ),
        (
            "labs",
            "person_id VARCHAR, measured_at TIMESTAMP, test VARCHAR, value DOUBLE, file_row_number BIGINT",
        ),
    ):
        path = run.table(table)
        if path.is_file():  # the file order breaks ties of measured_at: the earlier row is kept
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet({literal(path.resolve().as_posix())}, "
                "file_row_number = true)"
            )
        else:  # typed, so the series queries bind (a run without readings publishes empty series)
            typed = ", ".join(f"NULL::{c.split()[1]} AS {c.split()[0]}" for c in columns.split(", "))
            con.execute(f"CREATE VIEW {table} AS SELECT {typed} WHERE false")
    if "national_id" in _columns(con, "persons"):
        raise RiskUserError("persons.parquet carries clear national IDs; publish only validated runs")


def _stage(con: duckdb.DuckDBPyConnection) -> None:
    """Copy the tiered persons' rows of tiers, persons and features into DuckDB tables sorted by
    person_id, so that each chunk of patient rows (see CHUNK_PERSONS) reads only its range of them; read
    from Parquet, a chunk re-read a whole 1M-row group of persons (the demo run's 1M publish went from 60
    to 95 CPU s). The readings stay in Parquet, read through a person_id range filter: that prunes row
    groups when the readings are clustered by person, as canonical tables written in person order are;
    otherwise each chunk re-reads their person_id column. Sorting the readings too cost more than it saved
    (10 CPU s on the other-shape county at 1M)."""
    tiered = "person_id IN (SELECT person_id FROM tiers)"  # the staged view once tiers is staged
    for table, where in (("tiers", "true"), ("persons", tiered), ("features", tiered)):
        con.execute(f"ALTER VIEW {table} RENAME TO source_{table}")
        con.execute(
            f"CREATE TABLE staged_{table} AS SELECT * FROM source_{table} WHERE {where} ORDER BY person_id"
        )
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM staged_{table}")


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()}


def _pick(available: set[str], alias: str, column: str, fallback: str = "NULL") -> str:
    return f"{alias}.{column}" if column in available else fallback


@dataclass
class CsvRows:
    """A query's rows written by DuckDB as a CSV file, for PostgreSQL's COPY ... (FORMAT csv): no Python
    object per row or value (building tuples and psycopg's per-row COPY formatting were most of the
    client's CPU in a 1M-person publish). DuckDB writes NULL as an empty field and an empty string as "",
    as PostgreSQL reads them; doubles round-trip; dates are ISO text."""

    path: Path
    rows: int

    def __len__(self) -> int:
        return self.rows


Batch = tuple[list[str], "list[tuple[Any, ...]] | CsvRows"]  # column names, rows


def _batches(con: duckdb.DuckDBPyConnection, sql: str, csv_dir: Path | None = None) -> Iterator[Batch]:
    """The query's rows as plain tuples, BATCH_ROWS at a time (DuckDB builds the Python objects); with
    `csv_dir` (PostgreSQL), as one CSV file written there."""
    cursor = con.cursor()
    try:
        if csv_dir is not None:
            columns = [d[0] for d in cursor.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
            path = csv_dir / f"rows-{next(_CSV_FILES)}.csv"
            rows = cursor.execute(f"COPY ({sql}) TO {literal(path)} (FORMAT csv, HEADER false)").fetchone()[0]
            yield columns, CsvRows(path, rows)
            return
        cursor.execute(sql)
        columns = [d[0] for d in cursor.description]
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield columns, rows
    finally:
        cursor.close()


def _patient_batches(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, csv_dir: Path | None = None
) -> Iterator[Batch]:
    """serving_patients rows in person_id order, built one range of CHUNK_PERSONS persons at a time."""
    bounds = [
        row[0]
        for row in con.execute(
            f"""SELECT max(person_id) FROM (
                    SELECT person_id,
                           (row_number() OVER (ORDER BY person_id) - 1) // {int(CHUNK_PERSONS)} AS chunk
                    FROM tiers)
                GROUP BY chunk ORDER BY 1"""
        ).fetchall()
    ]
    lower = None
    for upper in bounds:
        yield from _batches(con, patient_sql(con, run_id, as_of, (lower, upper)), csv_dir)
        lower = upper


def _in_range(column: str, persons: tuple[Any, Any] | None) -> str:
    if persons is None:
        return "true"
    lower, upper = persons
    return f"{column} <= {literal(upper)}" + ("" if lower is None else f" AND {column} > {literal(lower)}")


def patient_sql(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    as_of: date,
    persons: tuple[Any, Any] | None = None,
) -> str:
    """One serving_patients row per person of tiers.parquet, ordered by person_id; with `persons`
    (lower, upper), only the persons with lower < person_id <= upper (no lower bound when None)."""
    tiers_cols, persons_cols, features_cols = (
        _columns(con, "tiers"),
        _columns(con, "persons"),
        _columns(con, "features"),
    )
    geo = {
        col: f"coalesce({_pick(features_cols, 'f', col)}, {_pick(persons_cols, 'p', col)})"
        for col in ("team_id", "township_id", "village_id", "unit_id")
    }
    age = _pick(
        features_cols,
        "f",
        "age",
        f"date_diff('day', p.birth_date, {literal(as_of)}) / 365.25"
        if "birth_date" in persons_cols
        else "NULL",
    )
    conditions = "[]"
    if {"has_hypertension", "has_diabetes_t2"} <= features_cols:
        conditions = (
            "list_filter([CASE WHEN f.has_hypertension THEN 'hypertension' END, "
            "CASE WHEN f.has_diabetes_t2 THEN 'diabetes_t2' END], lambda x: x IS NOT NULL)"
        )
    measurement_pairs = []
    for label, value_col, date_col in LAST_MEASUREMENTS:
        if value_col in features_cols:
            when = f"strftime(f.{date_col}, '%Y-%m-%d')" if date_col and date_col in features_cols else "NULL"
            measurement_pairs.append(f"'{label}', json_object('value', f.{value_col}, 'date', {when})")
    last = f"json_object({', '.join(measurement_pairs)})" if measurement_pairs else "'{}'"
    reasons = "t.reasons" if "reasons" in tiers_cols else "'[]'"
    if (
        "reasons" in tiers_cols
        and con.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'tiers' AND column_name = 'reasons'"
        ).fetchall()[0][0]
        != "VARCHAR"
    ):
        reasons = "to_json(t.reasons)"
    in_range = _in_range("person_id", persons)
    window = (
        f"measured_at < {literal(as_of)} + INTERVAL 1 DAY "
        f"AND measured_at >= {literal(as_of)} - INTERVAL {SERIES_YEARS} YEAR "
        f"AND {in_range} AND person_id IN (SELECT person_id FROM tiers WHERE {in_range})"
    )
    # The newest BP_SERIES_MAX readings by a top-N aggregate (newest first, reversed to date order), and
    # only for tiered persons: a window over every reading of the county cost most of a 1M publish. A DATE
    # in to_json is written as "YYYY-MM-DD", the same text strftime gave. Readings with the same time are
    # ranked by file order, the earlier row first (before, the thread schedule decided which was kept).
    sql = f"""
    WITH bp AS (
        SELECT person_id,
               to_json(list_reverse(arg_max({{'date': measured_at::DATE, 'sbp': sbp, 'dbp': dbp}},
                                            {{'t': measured_at, 'r': -file_row_number}},
                                            {BP_SERIES_MAX}))) AS series
        FROM vitals WHERE {window}
        GROUP BY person_id
    ), glucose AS (
        SELECT person_id, to_json(list({{'date': strftime(measured_at, '%Y-%m-%d'), 'test': test,
                                          'value': value}} ORDER BY measured_at, file_row_number)) AS series
        FROM (SELECT * FROM labs
              WHERE test IN ('fpg', 'hba1c') AND {window}
              QUALIFY row_number() OVER (PARTITION BY person_id, test
                                         ORDER BY measured_at DESC, file_row_number)
                      <= {GLUCOSE_SERIES_MAX})
        GROUP BY person_id
    )
    SELECT
        {literal(run_id)} AS run_id, t.person_id,
        {geo["team_id"]} AS team_id, {geo["township_id"]} AS township_id,
        {geo["village_id"]} AS village_id, {geo["unit_id"]} AS unit_id,
        {_pick(persons_cols, "p", "name")} AS name,
        coalesce({_pick(features_cols, "f", "sex")}, {_pick(persons_cols, "p", "sex")}) AS sex,
        round({age}, 1)::DOUBLE AS age,
        {_pick(persons_cols, "p", "phone")} AS phone,
        {_pick(persons_cols, "p", "national_id_masked")} AS national_id_masked,
        {_pick(persons_cols, "p", "national_id_hash")} AS national_id_hash,
        to_json({conditions}) AS conditions,
        t.tier, {_pick(tiers_cols, "t", "tier_rules")} AS tier_rules,
        {_pick(tiers_cols, "t", "tier_model")} AS tier_model,
        CASE t.tier WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 WHEN 'green' THEN 2 ELSE 3 END AS tier_rank,
        coalesce({_pick(tiers_cols, "t", "risk_score")}, {_pick(tiers_cols, "t", "model_probability")},
                 {_pick(tiers_cols, "t", "rule_score")})::DOUBLE AS risk_score,
        {reasons}::VARCHAR AS reasons,
        {_pick(tiers_cols, "t", "model_probability")}::DOUBLE AS model_probability,
        {_pick(tiers_cols, "t", "model_reasons")}::VARCHAR AS model_reasons,
        {_pick(tiers_cols, "t", "combine_reason")}::VARCHAR AS combine_reason,
        {_pick(tiers_cols, "t", "next_due_on")}::DATE::VARCHAR AS next_due_on,  -- ISO text, as stored
        {_pick(tiers_cols, "t", "days_overdue")}::INTEGER AS days_overdue,
        {_pick(tiers_cols, "t", "priority")}::BIGINT AS priority,
        {_pick(tiers_cols, "t", "urgency")}::INTEGER AS urgency,
        {last}::VARCHAR AS last_measurements,
        coalesce(bp.series::VARCHAR, '[]') AS bp_series,
        coalesce(glucose.series::VARCHAR, '[]') AS glucose_series,
        {_pick(tiers_cols, "t", "rule_set_version")}::VARCHAR AS rule_set_version,
        {_pick(tiers_cols, "t", "model_version")}::VARCHAR AS model_version
    FROM (SELECT * FROM tiers WHERE {in_range}) t
    LEFT JOIN (SELECT * FROM persons WHERE {in_range}) p USING (person_id)
    LEFT JOIN (SELECT * FROM features WHERE {in_range}) f USING (person_id)
    LEFT JOIN bp USING (person_id)
    LEFT JOIN glucose USING (person_id)
    ORDER BY t.person_id
    """
    return sql


def _search_term_batches(
    con: duckdb.DuckDBPyConnection, run_id: str, csv_dir: Path | None = None
) -> Iterator[Batch]:
    """Prefix-searchable terms: person ID, name, phone digits, last 4 of phone. Nothing of the national ID
    (a full ID typed in is matched on its keyed hash), so the store holds no part of it beside birth data."""
    persons_cols, features_cols = _columns(con, "persons"), _columns(con, "features")
    phone = "regexp_replace(p.phone, '[^0-9]', '', 'g')" if "phone" in persons_cols else "NULL"
    name = "regexp_replace(upper(p.name), '\\s', '', 'g')" if "name" in persons_cols else "NULL"
    sql = f"""
    WITH base AS (
        SELECT t.person_id,
               coalesce({_pick(features_cols, "f", "team_id")}, p.team_id) AS team_id,
               coalesce({_pick(features_cols, "f", "township_id")}, p.township_id) AS township_id,
               {name} AS name, {phone} AS phone
        FROM tiers t LEFT JOIN persons p USING (person_id) LEFT JOIN features f USING (person_id)
    ), terms AS (
        SELECT person_id, team_id, township_id, upper(person_id) AS term FROM base
        UNION SELECT person_id, team_id, township_id, name FROM base
        UNION SELECT person_id, team_id, township_id, phone FROM base
        UNION SELECT person_id, team_id, township_id, right(phone, 4) FROM base
    )
    SELECT {literal(run_id)} AS run_id, term, person_id, team_id, township_id FROM terms
    WHERE term IS NOT NULL AND term <> '' AND term NOT LIKE '%*%'
    ORDER BY term, person_id  -- b-tree appends instead of random inserts
    """
    yield from _batches(con, sql, csv_dir)


def _history_batches(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, csv_dir: Path | None = None
) -> Iterator[Batch]:
    cols = _columns(con, "tiers")
    sql = f"""
    SELECT person_id, {literal(run_id)} AS run_id, {literal(as_of)}::VARCHAR AS as_of, tier,
           {_pick(cols, "t", "tier_rules")} AS tier_rules, {_pick(cols, "t", "tier_model")} AS tier_model
    FROM tiers t
    ORDER BY person_id
    """
    yield from _batches(con, sql, csv_dir)


def _run_batches(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    as_of: date,
    *,
    on_staged: Callable[[], None] | None = None,
    search_terms: bool = True,
    csv_dir: Path | None = None,
) -> Iterator[tuple[Table, Batch]]:
    """Every row the run loads, table after table (tier history, patients, search terms). The tier history
    reads tiers.parquet as it is, so the driver inserts it while this generator (in the producer thread)
    stages the tiered persons' rows (_stage) for the other two tables; staged before the load began, the
    driver waited for the stage (3.2 of 87 s at 1M tiered persons) and then for the first chunk of patients.
    `on_staged` is called once the stage is done (the search terms can then be built elsewhere:
    `search_terms=False` leaves them out of this stream). `csv_dir`: rows as CSV files (PostgreSQL)."""
    yield from ((schema.tier_history, batch) for batch in _history_batches(con, run_id, as_of, csv_dir))
    _stage(con)
    if on_staged is not None:
        on_staged()
    yield from ((schema.patients, batch) for batch in _patient_batches(con, run_id, as_of, csv_dir))
    if search_terms:
        yield from ((schema.search_terms, batch) for batch in _search_term_batches(con, run_id, csv_dir))


class _Abandoned(Exception):
    """The main load failed: the load beside it rolls back."""


class _LoadBeside:
    """One table of a new run loaded on its own connection and transaction, in a thread, beside the main
    load (PostgreSQL only).

    Most of a large PostgreSQL publish is the server inserting and indexing rows, one backend (one core)
    per connection: at 1M tiered persons the driver waited on the server for about 46 of 64 s, and the 4M
    search terms are a large part of that work. A second connection puts a second backend on them.

    Nothing of the two loads is visible to readers before the flip (the run is in state `loading`), so they
    need not share a transaction; they commit together as far as one process can make them: the main load
    waits for these rows before it commits (`wait_loaded` raises this load's error inside the main
    transaction, which then rolls back), and this transaction commits only after the main one has
    (`finish(commit=True)`). A failure between the two commits (or a killed process) leaves rows of a run in
    state `loading`, which no reader joins to and the next publish removes, as before."""

    def __init__(self, engine: Any, table: Table, batches: Callable[[], Iterator[Batch]]) -> None:
        """`batches` builds the table's rows; it starts once `start` is called (the rows are staged)."""
        self._engine, self._table, self._batches = engine, table, batches
        self._staged = threading.Event()  # the producer has staged the tiered persons' rows
        self._loaded = threading.Event()  # every row inserted (or this load failed)
        self._verdict = threading.Event()  # the main load's outcome is known: commit or roll back
        self._commit = False
        self._rows = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"publish-{table.name}", daemon=True)
        self._thread.start()

    def start(self) -> None:
        self._staged.set()

    def _run(self) -> None:
        try:
            while not self._staged.wait(0.1):
                if self._verdict.is_set():
                    return  # the main load failed before staging: nothing was started

            def work(conn: Connection) -> None:
                batches = _prefetched(self._batches())
                try:
                    for columns, rows in batches:
                        if self._verdict.is_set():
                            raise _Abandoned
                        if rows:
                            insert_rows(conn, self._table, columns, rows)
                            self._rows += len(rows)
                finally:
                    batches.close()
                self._loaded.set()
                self._verdict.wait()
                if not self._commit:
                    raise _Abandoned  # rolls this transaction back

            run_write(self._engine, work)
        except _Abandoned:
            pass
        except BaseException as exc:  # handed to the main load (wait_loaded) or to finish
            self._error = exc
        finally:
            self._loaded.set()

    def wait_loaded(self) -> int:
        """Rows inserted once every row is in; this load's error if it failed."""
        self._loaded.wait()
        if self._error is not None:
            raise self._error
        return self._rows

    def finish(self, *, commit: bool) -> None:
        """Commit (after the main load committed) or roll back; wait for the thread. Once only."""
        if self._verdict.is_set():
            return
        self._commit = commit
        self._verdict.set()
        self._thread.join()
        if commit and self._error is not None:
            raise self._error


_DONE = object()
_CSV_FILES = itertools.count()


def _prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """`items`, produced by a background thread at most `depth` ahead of the consumer: DuckDB builds the
    next batch while the caller writes the last one. An error in the producer is raised in the consumer;
    a consumer that stops early (an insert failed) stops the producer before returning."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(item: Any) -> bool:
        """Hand `item` over, waiting for room; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            failure.append(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            put(_DONE)

    thread = threading.Thread(target=produce, name="publish-rows", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not _DONE:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]] | CsvRows
) -> None:
    """Bulk insert: COPY on PostgreSQL (psycopg 3), executemany on SQLite; inside the caller's transaction.
    CsvRows (PostgreSQL only) are streamed to COPY as they are, and their file removed."""
    if isinstance(rows, CsvRows):
        cursor = conn.connection.driver_connection.cursor()
        with (
            cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy,
            rows.path.open("rb") as data,
        ):
            while block := data.read(COPY_BLOCK_BYTES):
                copy.write(block)
        rows.path.unlink()
        return
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def _load(conn: Connection, batches: Iterator[tuple[Table, Batch]]) -> dict[str, int]:
    """Insert every batch in the caller's transaction; rows loaded per table."""
    counts: dict[str, int] = {}
    for table, (columns, rows) in batches:
        if rows:
            insert_rows(conn, table, columns, rows)
            counts[table.name] = counts.get(table.name, 0) + len(rows)
    return counts


def _load_cascade(conn: Connection, run: RunFolder, run_id: str) -> int:
    """The run's call cascade (calls/cascade.csv: suppressed counts, no person) when the nightly wrote it."""
    import pandas as pd

    path = run.path / "calls" / "cascade.csv"
    if not path.is_file():
        return 0
    counts = {"numerator": [""], "denominator": [""], "value": [""]}
    frame = pd.read_csv(
        path,
        dtype={"month": str, "unit": str, "result": str, "suppressed": str},
        keep_default_na=False,
        na_values=counts,
        encoding="utf-8-sig",
    )

    def number(value: Any, kind: type) -> Any:
        return None if pd.isna(value) else kind(value)

    rows = [
        (
            run_id,
            r.month,
            r.level,
            restore_text(r.unit),
            r.step,
            r.result,
            number(r.numerator, int),
            number(r.denominator, int),
            number(r.value, float),
            r.suppressed,
        )
        for r in frame.itertuples(index=False)
    ]
    if rows:
        insert_rows(conn, schema.call_cascade, [c.name for c in schema.call_cascade.columns], rows)
    return len(rows)


def _flip_current(conn: Connection, run_id: str, persons: int, versions: dict[str, Any]) -> None:
    """Mark the run published with what it was made from, then point readers at it."""
    conn.execute(
        update(schema.runs)
        .where(schema.runs.c.run_id == run_id)
        .values(
            state="published",
            published_at=datetime.now(UTC),
            n_persons=persons,
            rule_set_version=_text(versions.get("rule_set")),
            model_version=_text(versions.get("model")),
            code_version=_text(versions.get("code")),
            data_fingerprint=_text(versions.get("data_fingerprint")),
            run_fingerprint=_text(run_fingerprint(versions)),
        )
    )
    _point_to(conn, run_id)


def _point_to(conn: Connection, run_id: str) -> None:
    changed = conn.execute(
        update(schema.current_run).where(schema.current_run.c.slot == 1).values(run_id=run_id)
    ).rowcount
    if changed == 0:
        conn.execute(schema.current_run.insert().values(slot=1, run_id=run_id))


def _delete_run_rows(conn: Connection, run_id: str, *, history: bool) -> None:
    tables = [schema.patients, schema.search_terms, schema.call_cascade] + (
        [schema.tier_history] if history else []
    )
    for table in tables:
        conn.execute(delete(table).where(table.c.run_id == run_id))


def _remove_unpublished(conn: Connection) -> None:
    """Rows left by a publish that died before its flip; no reader can see them."""
    loading = select(schema.runs.c.run_id).where(schema.runs.c.state == "loading")
    for run_id in conn.execute(loading).scalars().all():
        log.warning("removing rows of run %s left by an unfinished publish", run_id)
        _delete_run_rows(conn, run_id, history=True)
        conn.execute(delete(schema.runs).where(schema.runs.c.run_id == run_id))


def _prune(engine: Any, keep_runs: int) -> list[str]:
    """Drop patient rows of older runs (tier history stays): the store holds at most `keep_runs` runs."""

    def prune(conn: Connection) -> list[str]:
        current = conn.execute(select(schema.current_run.c.run_id)).scalar_one()
        published = (
            conn.execute(
                select(schema.runs.c.run_id)
                .where(schema.runs.c.state == "published")
                .order_by(schema.runs.c.published_at.desc())
            )
            .scalars()
            .all()
        )
        stale = [run_id for run_id in published[max(keep_runs, 1) :] if run_id != current]
        for run_id in stale:
            _delete_run_rows(conn, run_id, history=False)
            conn.execute(update(schema.runs).where(schema.runs.c.run_id == run_id).values(state="pruned"))
        return stale

    return run_write(engine, prune)


def list_runs(store_url: str) -> list[dict[str, Any]]:
    """Every run the store knows, newest as-of first, with `current` marking the one readers see."""
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            current = conn.execute(select(schema.current_run.c.run_id)).scalar_one_or_none()
            rows = (
                conn.execute(
                    select(schema.runs).order_by(
                        schema.runs.c.as_of.desc(), schema.runs.c.published_at.desc()
                    )
                )
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    return [{**dict(row), "current": row["run_id"] == current} for row in rows]


def set_current_run(store_url: str, run_id: str) -> None:
    """Point readers at an already published run (patient rows still in the store)."""
    privacy.require_key()
    engine = open_store(store_url)
    try:

        def point(conn: Connection) -> None:
            state = conn.execute(
                select(schema.runs.c.state).where(schema.runs.c.run_id == run_id)
            ).scalar_one_or_none()
            if state is None:
                raise RiskUserError(f"run {run_id} is not in the store (see `risk runs list`)")
            if state != "published":
                raise RiskUserError(
                    f"run {run_id} is {state}; publish its run folder again "
                    "(`risk publish RUN_DIR --make-current`)"
                )
            _point_to(conn, run_id)

        run_write(engine, point)
    except SQLAlchemyError as exc:
        raise PublishError(f"cannot change the current run: {db_error_message(exc)}") from None
    finally:
        engine.dispose()
