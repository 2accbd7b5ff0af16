"""`risk validate`: input folder -> OUT/canonical/<table>.parquet, OUT/quarantine.parquet and
OUT/validation.json.

Every input row ends up exactly once either in its canonical table or in the quarantine (with the first
failing reason code); the run checks this accounting before publishing. Output is written to a hidden
sibling folder and renamed into place only when complete, so a failed run leaves OUT as it was.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from risk import definitions
from risk.atomic import remove_leftovers
from risk.errors import InputFileError, RiskUserError
from risk.io import InputTable, duckdb_error_message, find_table_file, open_input_table
from risk.provenance import code_version, file_fingerprint
from risk.sql import identifier as q
from risk.sql import literal
from risk.validate import identifiers
from risk.validate.plan import (
    OUTPUT_TYPES,
    TablePlan,
    build_plan,
    check_sql,
    checked_sql,
    reasons_sql,
    typed_sql,
)
from risk.validate.result import TableCounts, ValidationResult

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("canonical", "quarantine.parquet", "validation.json")
# Parquet format version 2 lets DuckDB write DELTA_BINARY_PACKED integers and timestamps (source_row and
# measured_at were PLAIN: 358 of the 449 MB of the other-shape county's vitals at 1M persons). The same
# write CPU, 40 % smaller files, and every later reader (features, lists, publish) decodes less: a
# per-person aggregate of that vitals table took 22 % less CPU. pyarrow and Spark read it.
COPY_OPTIONS = "(FORMAT parquet, COMPRESSION snappy, PARQUET_VERSION v2)"
EMPTY_SCAN = "(SELECT CAST(NULL AS BIGINT) AS source_row WHERE false)"  # an absent optional table
# DuckDB spills to disk beyond this, keeping the whole run well under 4 GiB resident.
DEFAULT_MEMORY_LIMIT = "2500MB"
# Errors DuckDB raises for a user's file (bad CSV line, bad encoding, corrupt Parquet) rather than a bug.
FILE_ERRORS = (duckdb.InvalidInputException, duckdb.IOException, duckdb.ConversionException)


def validate_folder(
    input_dir: Path,
    out: Path,
    as_of: date | None = None,
    allow_empty: frozenset[str] | set[str] = frozenset(),
) -> ValidationResult:
    """Validate every contract table in `input_dir` and publish canonical tables + quarantine into `out`.

    A table the contract needs with no accepted row (missing, header only, every row quarantined) is
    refused: an empty vitals table would grade everybody "no BP". `allow_empty` names the tables the user
    accepts empty (`--allow-empty TABLE`); each such acceptance is recorded in `overrides`."""
    started = time.perf_counter()
    input_dir, out = Path(input_dir), Path(out)
    as_of = as_of or date.today()
    contract = definitions.contract()
    rules = definitions.validation_rules()
    optional = set(rules["optional_tables"])
    unknown = sorted(set(allow_empty) - set(contract.tables))
    if unknown:
        raise RiskUserError(
            f"--allow-empty {unknown[0]}: not a contract table ({', '.join(contract.tables)})"
        )
    # "persons" first: the other tables are checked against the accepted persons.
    table_names = ["persons", *(name for name in contract.tables if name != "persons")]
    files = {
        name: find_table_file(input_dir, name, required=name not in optional | set(allow_empty))
        for name in table_names
    }
    if out.exists() and not out.is_dir():
        raise RiskUserError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    staging = out.parent / f".{out.name}.validating-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            fingerprint = pool.submit(file_fingerprint, [p for p in files.values() if p is not None])
            con = _connect(staging / "_spill")
            try:
                (staging / "canonical").mkdir()
                tables, warnings = _validate_tables(con, files, as_of, staging)
            finally:
                con.close()
            result = ValidationResult(
                out=out,
                as_of=as_of,
                contract_version=contract.version,
                rules_version=str(rules["version"]),
                code_version=code_version(),
                input_fingerprint=fingerprint.result(),
                tables=tables,
                warnings=warnings,
                seconds=time.perf_counter() - started,
                overrides=empty_table_overrides(tables, optional, set(allow_empty)),
            )
        shutil.rmtree(staging / "_spill", ignore_errors=True)
        document = result.to_json()
        document["input_dir"] = str(input_dir)
        (staging / "validation.json").write_text(
            json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "validated %s rows: %s accepted, %s quarantined",
        result.rows_read,
        result.rows_accepted,
        result.rows_quarantined,
    )
    return result


def last_event_date(canonical_dir: Path) -> date | None:
    """The newest event date in the canonical tables (definitions/validation.yaml `event_date`).

    Read from the Parquet row-group statistics that validation wrote (a file's footer, not its rows); a
    table whose statistics lack the column's maximum is scanned instead."""
    parts = []
    newest: list[date] = []
    for table, column in definitions.validation_rules()["event_date"].items():
        path = Path(canonical_dir) / f"{table}.parquet"
        found = _max_from_statistics(path, column)
        if found is None:
            parts.append(f"SELECT max(CAST({q(column)} AS DATE)) AS d FROM read_parquet({literal(path)})")
        elif found is not _EMPTY:
            newest.append(found)
    if parts:
        con = duckdb.connect()
        try:
            scanned = con.execute(f"SELECT max(d) FROM ({' UNION ALL '.join(parts)})").fetchone()[0]
        finally:
            con.close()
        if scanned is not None:
            newest.append(scanned)
    return max(newest, default=None)


_EMPTY = object()  # a table file without rows: no date, and nothing to scan


def _max_from_statistics(path: Path, column: str) -> object:
    """max(CAST(column AS DATE)) from the file's row-group statistics: a date, _EMPTY when the column has
    no value (no rows, or every row group all null), None when the statistics cannot say."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, pa.ArrowException):
        return None
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    if column not in names:
        return None
    index = names.index(column)
    newest = None
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group).column(index)
        stats = chunk.statistics
        if chunk.num_values == 0 or (stats is not None and stats.null_count == chunk.num_values):
            continue  # nothing in this row group
        if stats is None or not stats.has_min_max:
            return None
        value = stats.max
        if isinstance(value, datetime):
            value = value.date()
        if not isinstance(value, date):
            return None
        newest = value if newest is None else max(newest, value)
    return _EMPTY if newest is None else newest


def check_as_of(as_of: date, newest_event: date | None, today: date, allow_late: bool) -> list[str]:
    """Refuse (or, with --allow-late-as-of, warn about) an as-of after today or long after the data."""
    limit = int(definitions.validation_rules()["as_of_max_days_after_last_event"])
    problems = []
    if as_of > today:
        problems.append(f"--as-of {as_of} is after today ({today})")
    # no dated event at all (an allowed empty county): nobody to look overdue
    if newest_event is not None and (as_of - newest_event).days > limit:
        problems.append(
            f"--as-of {as_of} is {(as_of - newest_event).days} days after the newest event in "
            f"the data ({newest_event}; at most {limit})"
        )
    if problems and not allow_late:
        raise RiskUserError(
            "; ".join(problems) + ": every patient would look overdue and unmeasured; use an "
            "earlier --as-of, or pass --allow-late-as-of to run anyway"
        )
    return [f"{p}: accepted by --allow-late-as-of" for p in problems]


def empty_table_overrides(
    tables: dict[str, TableCounts], optional: set[str], allow_empty: set[str]
) -> list[str]:
    """Refuse a needed table with no accepted row unless the user allowed it; say what was allowed."""
    overrides = []
    for name, counts in tables.items():
        if name in optional or counts.rows_accepted > 0:
            continue
        state = (
            "is missing"
            if counts.file is None
            else "has no rows"
            if counts.rows_read == 0
            else f"has no accepted row ({counts.rows_read:,} read, all quarantined)"
        )
        if name not in allow_empty:
            raise RiskUserError(
                f"table '{name}' {state}: every patient would be graded without it; fix the input, or pass "
                f"--allow-empty {name} to run anyway (recorded as a warning in the run)"
            )
        overrides.append(f"table '{name}' {state}: accepted by --allow-empty {name}")
        if name == "persons":  # nobody to attach records to: the other tables are empty as a consequence
            break
    return overrides


def _connect(spill_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    memory_limit = os.environ.get("RISK_DUCKDB_MEMORY", DEFAULT_MEMORY_LIMIT)
    con.execute(f"SET memory_limit = {literal(memory_limit)}")
    con.execute(f"SET temp_directory = {literal(spill_dir)}")
    con.execute("SET preserve_insertion_order = true")
    # The accepted rows are written through the join with the accepted persons: the table read must stay
    # the probe side, so the rows come out in file order (DuckDB would otherwise build on a table smaller
    # than persons and emit rows in persons' order).
    con.execute("SET disabled_optimizers = 'build_side_probe_side'")
    try:
        # Time-zone-aware Parquet timestamps become county local time.
        con.execute("SET TimeZone = 'Asia/Shanghai'")
    except duckdb.Error:
        log.debug("DuckDB without ICU: time-zone-aware timestamps read as UTC")
    identifiers.register(con)
    con.execute(
        'CREATE TEMP TABLE quarantine ("table" VARCHAR, source_row BIGINT, person_id VARCHAR, '
        "reason_code VARCHAR, detail VARCHAR)"
    )
    return con


def _validate_tables(
    con: duckdb.DuckDBPyConnection, files: dict[str, Path | None], as_of: date, staging: Path
) -> tuple[dict[str, TableCounts], dict[str, int]]:
    contract = definitions.contract()
    tables: dict[str, TableCounts] = {}
    warnings: dict[str, int] = {}
    # Open every file and check its columns before the first long query, so file problems show at once.
    sources = {
        name: open_input_table(con, path, name) if path is not None else None for name, path in files.items()
    }
    plans = {name: build_plan(source, contract.tables[name], as_of) for name, source in sources.items()}
    for name, source in sources.items():
        table_started = time.perf_counter()
        counts = _validate_table(con, plans[name], source, staging / "canonical" / f"{name}.parquet")
        if name == "persons":
            # The other tables are checked against the accepted persons: read back from the written file
            # (three columns), rather than keeping every accepted person's typed row in memory.
            written = f"read_parquet({literal(staging / 'canonical' / 'persons.parquet')})"
            warnings["national_id_checksum"] = con.execute(
                f"SELECT count_if(NOT national_id_valid) FROM {written}"
            ).fetchone()[0]
            con.execute(
                f"CREATE TEMP TABLE persons_ok AS SELECT person_id, birth_date, death_date FROM {written}"
            )
        log.info(
            "%s: read %s, accepted %s, quarantined %s (%.1f s)",
            name,
            counts.rows_read,
            counts.rows_accepted,
            counts.rows_quarantined,
            time.perf_counter() - table_started,
        )
        tables[name] = counts
    order = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(files))
    con.execute(
        f'COPY (SELECT * FROM quarantine ORDER BY CASE "table" {order} END, source_row) '
        f"TO {literal(staging / 'quarantine.parquet')} {COPY_OPTIONS}"
    )
    return tables, warnings


@contextmanager
def _reading(source: InputTable | None) -> Iterator[None]:
    """A DuckDB error about the user's file (bad line, bad encoding) becomes a clean InputFileError."""
    try:
        yield
    except FILE_ERRORS as exc:
        assert source is not None
        raise InputFileError(str(source.path), f"cannot be read: {duckdb_error_message(exc)}") from None


def _validate_table(
    con: duckdb.DuckDBPyConnection, plan: TablePlan, source: InputTable | None, target: Path
) -> TableCounts:
    """One table, reading the whole file with the checks once and otherwise as few times as it can:

    1. the key pass: the key hashes of every row (key columns only, straight into numpy) give the hashes
       that repeat (the rows having them are the duplicate candidates);
    2. a table with candidates: one pass with the checks keeps the rows that fail a check or are
       candidates (`flagged`, with reason, detail and key); the passing candidates repeating the key of
       an earlier passing row are the `losers`; the copy then writes every row neither failing nor a
       loser, typed, without evaluating the checks again;
    3. a table without candidates: the copy writes the rows that pass the checks, and the rows that
       failed (those not written, found from the written `source_row`s) get their reason and detail
       from a pass over just those rows (none for a clean table).
    A clean table costs the key pass and the copy; a table with duplicates and failing rows one full
    read more (before: two)."""
    name = plan.spec.name
    scan = source.scan_sql if source is not None else EMPTY_SCAN
    keys = ", ".join(q(k) for k in plan.spec.key)
    with _reading(source):
        hashes = con.execute(f"SELECT hash({keys}) AS h FROM ({typed_sql(plan, scan)})").fetchnumpy()["h"]
    rows_read = last_row = len(hashes)  # source rows are 1..n (file row numbers, CSV record numbers)
    repeated = _repeated(np.asarray(hashes, dtype=np.uint64))
    del hashes
    outputs = ", ".join(
        f"CAST({expr} AS {_output_type(plan, col)}) AS {q(col)}" for col, expr in plan.output_columns.items()
    )
    person = "person_id" if "person_id" in plan.spec.columns else "CAST(NULL AS VARCHAR)"
    flags = "".join(
        f", {q('__bad_' + c)}, {q(c)} IS NOT NULL AS {q('__has_' + c)}" for c in plan.parsed_columns
    )
    if len(repeated):
        with _reading(source):
            n_losers = _flag_rows(con, plan, scan, repeated, f"{person} AS person_id{flags}")
        n_failing = con.execute("SELECT count(*) FROM failed").fetchone()[0]
        # The checks already ran: the rows written are those neither failing nor losers.
        excluded = (
            " WHERE source_row NOT IN (SELECT source_row FROM failed UNION ALL SELECT source_row FROM losers)"
            if n_failing + n_losers
            else ""
        )
        accepted = f"SELECT {outputs} FROM ({typed_sql(plan, scan)}){excluded}"
        with _reading(source):
            rows_accepted = _copy(con, accepted, target)
    else:
        _no_losers(con)
        # No ORDER BY: sorting tens of millions of wide rows costs ~30 % of the run. Rows come out in file
        # order except for a few blocks swapped by parallel threads; source_row restores the exact order.
        accepted = f"SELECT {outputs} FROM ({check_sql(plan, scan)}) WHERE __check IS NULL"
        with _reading(source):
            rows_accepted = _copy(con, accepted, target)
        failing = _failing_rows(con, rows_read - rows_accepted, last_row, target)
        con.register("failing_rows", pa.table({"source_row": pa.array(failing, type=pa.int64())}))
        limit = "" if len(failing) else " LIMIT 0"  # a clean table: nothing to read again
        with _reading(source):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE failed AS SELECT source_row, __reason, __detail, "
                f"{person} AS person_id{flags} "
                f"FROM ({checked_sql(plan, _only(scan, 'failing_rows'))}){limit}"
            )
        con.unregister("failing_rows")
    if source is not None:
        _reject_unreadable_columns(con, plan, source, scan)
    con.execute(
        f"INSERT INTO quarantine SELECT '{name}', source_row, person_id, __reason, __detail "
        "FROM failed WHERE __reason IS NOT NULL"
    )
    con.execute(
        f"INSERT INTO quarantine SELECT '{name}', source_row, person_id, 'duplicate', "
        "'same key as row ' || first_row FROM losers"
    )
    reasons = dict(
        con.execute(
            'SELECT reason_code, count(*) FROM quarantine WHERE "table" = ? GROUP BY 1 ORDER BY 2 DESC, 1',
            [name],
        ).fetchall()
    )
    con.execute("DROP TABLE failed")
    con.execute("DROP TABLE losers")
    counts = TableCounts(
        file=source.path.name if source is not None else None,
        rows_read=rows_read,
        rows_accepted=rows_accepted,
        rows_quarantined=sum(reasons.values()),
        reasons=reasons,
    )
    if not counts.adds_up:
        raise RuntimeError(f"validation accounting does not add up for {name}: {counts}")
    return counts


def _only(scan: str, rows_table: str) -> str:
    """The scan narrowed to the source rows listed in `rows_table` (filtered before any typing or check,
    so only those rows are parsed and checked)."""
    return f"(SELECT * FROM {scan} WHERE source_row IN (SELECT source_row FROM {rows_table}))"


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """The 64-bit key hashes that occur more than once, each once (sorted in numpy: several times faster
    than a DuckDB GROUP BY over tens of millions of distinct keys)."""
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]  # sorted; a value k times repeated k - 1 times
    return repeated[np.concatenate(([True], repeated[1:] != repeated[:-1]))] if len(repeated) else repeated


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> int:
    """Write `query` to the Parquet file `target`; the number of rows written."""
    return con.execute(f"COPY ({query}) TO {literal(target)} {COPY_OPTIONS}").fetchone()[0]


def _no_losers(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE losers AS SELECT CAST(NULL AS BIGINT) AS source_row, "
        "CAST(NULL AS VARCHAR) AS person_id, CAST(NULL AS BIGINT) AS first_row WHERE false"
    )


def _flag_rows(
    con: duckdb.DuckDBPyConnection, plan: TablePlan, scan: str, repeated: np.ndarray, columns: str
) -> int:
    """One pass with the checks over every row: `failed` (the rows failing a check, with reason, detail
    and `columns`) and `losers` (rows that pass every check but repeat the key of an earlier passing row);
    returns the number of losers.

    The rows whose key hash is in `repeated` are the duplicate candidates; the passing
    ones are grouped on the exact key, so a hash collision cannot make a false duplicate."""
    keys = ", ".join(q(k) for k in plan.spec.key)
    key_columns = "".join(f", {q(k)}" for k in plan.spec.key)
    # Filtered on __check (not on the reason built from it), so each check runs once per row.
    flagged = (
        f"SELECT * FROM ({check_sql(plan, scan)}) "
        f"WHERE __check IS NOT NULL OR hash({keys}) IN (SELECT h FROM repeated_hashes)"
    )
    con.register("repeated_hashes", pa.table({"h": pa.array(repeated, type=pa.uint64())}))
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE flagged AS SELECT source_row, __reason, __detail, {columns}"
            f"{key_columns} FROM ({reasons_sql(plan, flagged)})"
        )
    finally:
        con.unregister("repeated_hashes")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE losers AS "
        f"WITH candidates AS (SELECT source_row, person_id, "
        f"min(source_row) OVER (PARTITION BY {keys}) AS first_row "
        f"FROM flagged WHERE __reason IS NULL) "
        "SELECT source_row, person_id, first_row FROM candidates WHERE source_row > first_row"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE failed AS SELECT * FROM flagged WHERE __reason IS NOT NULL")
    con.execute("DROP TABLE flagged")
    return con.execute("SELECT count(*) FROM losers").fetchone()[0]


def _failing_rows(con: duckdb.DuckDBPyConnection, expected: int, last_row: int, target: Path) -> np.ndarray:
    """The source rows that failed a check: read (1..last_row) but neither written to `target` nor losers."""
    if expected == 0:
        return np.zeros(0, dtype=np.int64)
    done = np.zeros(last_row + 1, dtype=bool)  # source rows are positive and unique
    for sql in (f"SELECT source_row FROM read_parquet({literal(target)})", "SELECT source_row FROM losers"):
        done[np.asarray(con.execute(sql).fetchnumpy()["source_row"], dtype=np.int64)] = True
    # source rows are 1..n (file row numbers, CSV record numbers): the failing rows are the ones not done
    failing = np.flatnonzero(~done[1:]) + 1
    if len(failing) != expected:
        raise RuntimeError(f"validation accounting: {len(failing)} failing rows, expected {expected}")
    return failing


def _output_type(plan: TablePlan, column: str) -> str:
    if column in plan.spec.columns:
        return OUTPUT_TYPES[plan.spec.columns[column].type]
    return {"source_row": "BIGINT", "national_id_valid": "BOOLEAN"}.get(column, "VARCHAR")


def _reject_unreadable_columns(
    con: duckdb.DuckDBPyConnection, plan: TablePlan, source: InputTable, scan: str
) -> None:
    """A column where no cell can be read as its type is a wrong-type file, not a pile of bad rows.

    Every unreadable cell fails a check, so `failed` holds them all; a readable cell among the failed rows
    settles it, else the whole column is counted (only when a column has unreadable cells)."""
    if not plan.parsed_columns:
        return
    parts = [
        f"coalesce(count_if({q(has)}), 0), coalesce(count_if({q(bad)}), 0), min(source_row) FILTER ({q(bad)})"
        for has, bad in (("__has_" + c, "__bad_" + c) for c in plan.parsed_columns)
    ]
    row = con.execute(f"SELECT {', '.join(parts)} FROM failed").fetchone()
    for i, column in enumerate(plan.parsed_columns):
        readable, unreadable, first_bad = row[3 * i : 3 * i + 3]
        if unreadable > 0 and readable == 0:
            readable = con.execute(f"SELECT count({q(column)}) FROM ({typed_sql(plan, scan)})").fetchone()[0]
        if readable == 0 and unreadable > 0:
            col_type = plan.spec.columns[column].type
            raise InputFileError(
                str(source.path),
                f"wrong type: no value can be read as {col_type} "
                f"({unreadable:,} values, first at row {first_bad})",
                column,
            )


def _publish(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    # OUT exists (e.g. a run folder): swap each output in, keeping anything else that lives there.
    retired = out.parent / f".{out.name}.retired-{os.getpid()}-{secrets.token_hex(4)}"
    retired.mkdir()
    try:
        for name in OUTPUT_NAMES:
            if (out / name).exists():
                (out / name).rename(retired / name)
            (staging / name).rename(out / name)
    finally:
        shutil.rmtree(retired, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
