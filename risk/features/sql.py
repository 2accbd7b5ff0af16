"""The feature definitions as SQL: loading the CTE files, binding parameters, composing one query.

The files in risk/features/sql/ are written in DuckDB's dialect restricted to a subset that
risk/engines/spark_sql.py (sqlglot plus a few semantic rewrites) transpiles to Spark SQL, and they refer
to logical table names only (persons, vitals, ..., and the value-set tables vs_*). An engine binds those
names (DuckDB: views over read_parquet; Spark: temp views), so both engines run the same definitions.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from risk import definitions
from risk import sql as sql_text
from risk.errors import DefinitionError

SQL_DIR = Path(str(resources.files("risk.features") / "sql"))
EVENT_TABLES = ("persons", "conditions", "vitals", "labs", "follow_ups", "encounters", "prescriptions")
VALUE_SET_TABLES = ("vs_managed_conditions", "vs_complications", "vs_pdc_classes")

_BLOCK_HEADER = re.compile(r"^-- (cte|select): (\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class SqlBlock:
    kind: str  # "cte" or "select"
    name: str
    sql: str
    source_file: str


@lru_cache(maxsize=1)
def sql_blocks() -> tuple[SqlBlock, ...]:
    """All CTE blocks in file order, ending with the final SELECT."""
    blocks: list[SqlBlock] = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        headers = list(_BLOCK_HEADER.finditer(text))
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            body = "\n".join(
                line for line in text[header.end() : end].strip().splitlines() if not line.startswith("--")
            ).strip()
            blocks.append(SqlBlock(header.group(1), header.group(2), body, path.name))
    selects = [b for b in blocks if b.kind == "select"]
    if len(selects) != 1 or blocks[-1].kind != "select":
        raise DefinitionError(f"{SQL_DIR}: expected exactly one final '-- select:' block")
    return tuple(blocks)


def query_parameters(as_of: date) -> dict[str, date | datetime | float | int]:
    """The value of every :name used in the definitions, from as_of and thresholds.yaml (bound as
    literals by risk.sql.bind: dates as DATE '...', as_of_end and window_start_ts as TIMESTAMP '...')."""
    t = definitions.thresholds()
    window_start = as_of - timedelta(days=int(t["window_days"]) - 1)
    grades = {g["grade"]: g for g in t["bp_grades"]}
    params: dict[str, date | datetime | float | int] = {
        "as_of": as_of,
        "as_of_end": _midnight(as_of + timedelta(days=1)),
        "window_start": window_start,
        "window_start_ts": _midnight(window_start),
        "window_days": float(t["window_days"]),
        "new_complication_start": as_of - timedelta(days=int(t["new_complication_days"]) - 1),
        "sbp_controlled_below": float(t["bp_controlled"]["sbp_below"]),
        "dbp_controlled_below": float(t["bp_controlled"]["dbp_below"]),
        "elderly_from_age": float(t["bp_controlled_elderly"]["from_age"]),
        "sbp_controlled_below_elderly": float(t["bp_controlled_elderly"]["sbp_below"]),
        "fpg_controlled_below": float(t["fpg_controlled_below"]),
        "follow_up_standard_per_year": int(t["follow_up_standard_per_year"]),
        "readmission_days": int(t["readmission_days"]),
    }
    for grade in (1, 2, 3):
        params[f"grade{grade}_sbp"] = float(grades[grade]["sbp_from"])
        params[f"grade{grade}_dbp"] = float(grades[grade]["dbp_from"])
    return params


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def bind(sql: str, params: dict[str, Any]) -> str:
    return sql_text.bind(sql, params, where="feature SQL")


def feature_query(as_of: date, columns: Collection[str] | None = None) -> str:
    """The whole feature computation as one DuckDB-dialect query over the logical table names.

    With `columns`, only those output columns (and person_id) are selected, and the LEFT JOINs and CTEs
    that none of them needs are left out, so a caller that wants a few features pays only for those.
    The CTE bodies are used verbatim either way; only the final SELECT is rewritten.
    """
    params = query_parameters(as_of)
    blocks = sql_blocks()
    final = bind(blocks[-1].sql, params)
    ctes = [b for b in blocks if b.kind == "cte"]
    if columns is not None:
        final = _keep_columns(final, set(columns))
        needed = _needed_ctes(final, ctes)
        ctes = [b for b in ctes if b.name in needed]
    body = ",\n".join(f"{b.name} AS (\n{bind(b.sql, params)}\n)" for b in ctes)
    return f"WITH {body}\n{final}"


def _keep_columns(final_select: str, columns: set[str]) -> str:
    # sqlglot only here: the whole catalogue (`risk features`, the nightly job) does not parse its SQL, and
    # importing sqlglot with its DuckDB dialect costs about 0.1 CPU seconds a process.
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(final_select, read="duckdb")
    known = {e.alias_or_name for e in tree.expressions}
    if unknown := sorted(columns - known):
        raise DefinitionError(f"not computed by the feature SQL: {', '.join(unknown)}")
    tree.set("expressions", [e for e in tree.expressions if e.alias_or_name in columns | {"person_id"}])
    used = {column.table for e in tree.expressions for column in e.find_all(exp.Column)}
    # Only LEFT JOINs can go: the inner join to persons also decides who gets a row (alive on as_of).
    joins = tree.args.get("joins") or []
    tree.set("joins", [j for j in joins if j.side != "LEFT" or j.alias_or_name in used])
    return tree.sql(dialect="duckdb")


_TABLE_REFERENCE = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


def tables_read(sql: str) -> set[str]:
    """Names after FROM / JOIN. A regular expression, not sqlglot: parsing every block took ~90 ms per
    process, and the definitions are our own files (tests check it against sqlglot for every block)."""
    return set(_TABLE_REFERENCE.findall(sql))


def _needed_ctes(final_select: str, ctes: list[SqlBlock]) -> set[str]:
    """The CTEs the final SELECT reads, directly or through other CTEs."""
    reads = {b.name: tables_read(b.sql) for b in ctes}
    needed: set[str] = set()
    pending = tables_read(final_select) & reads.keys()
    while pending:
        name = pending.pop()
        needed.add(name)
        pending |= (reads[name] & reads.keys()) - needed
    return needed
