"""The canonical tables of a run (or of a `risk validate` output) bound to their logical names.

Every contract column is present in the bound view (NULL where an optional column is absent from the
file); a missing table is one clear InputFileError, except where a caller asks for an empty view.
Columns a run adds to its canonical tables (RUN_COLUMNS, not part of the input contract) bind the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from risk import definitions
from risk.errors import InputFileError
from risk.sql import literal

# Columns a run adds to canonical tables after validation, never read from input files: `origin` marks rows
# fed by the run itself ('call_result': a `visited` call result, pipelines/calls.py) beside the validated
# rows ('input'). A table that was never fed has no such column; it binds as NULL (= input), as an absent
# optional contract column does.
ORIGIN_CALL_RESULT = "call_result"
RUN_COLUMNS: dict[str, dict[str, str]] = {
    "follow_ups": {"origin": "string"},
    "vitals": {"origin": "string"},
    "labs": {"origin": "string"},
}


def canonical_path(canonical_dir: Path, table: str) -> Path:
    return Path(canonical_dir) / f"{table}.parquet"


def table_select_sql(table: str, present_columns: set[str], source: str) -> str:
    """SELECT giving every contract column of `table` (+ RUN_COLUMNS, source_row) from `source`, NULL where
    absent."""
    spec = definitions.contract().tables[table]
    items = []
    for column in spec.columns.values():
        if column.name in present_columns:
            items.append(column.name)
        elif column.required:
            raise InputFileError(source, "required column missing from canonical table", column.name)
        else:
            items.append(f"CAST(NULL AS {definitions.SQL_TYPES[column.type]}) AS {column.name}")
    for name, kind in RUN_COLUMNS.get(table, {}).items():
        items.append(
            name if name in present_columns else f"CAST(NULL AS {definitions.SQL_TYPES[kind]}) AS {name}"
        )
    items.append("source_row" if "source_row" in present_columns else "CAST(0 AS BIGINT) AS source_row")
    return f"SELECT {', '.join(items)} FROM {source}"


def parquet_columns(path: Path) -> set[str]:
    if not path.is_file():
        raise InputFileError(str(path), "canonical table not found (run `risk validate` first)")
    try:
        return set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputFileError(str(path), f"not a readable Parquet file ({exc})") from exc


def parquet_source(path: Path) -> str:
    """DuckDB table function over one Parquet file, the path quoted."""
    return f"read_parquet({literal(Path(path).as_posix())})"


def bind_canonical_tables(con: duckdb.DuckDBPyConnection, canonical_dir: Path, tables: Iterable[str]) -> None:
    """CREATE VIEW <table> for each of `tables`, bound by table_select_sql."""
    for table in tables:
        path = canonical_path(canonical_dir, table)
        select = table_select_sql(table, parquet_columns(path), parquet_source(path))
        con.execute(f"CREATE VIEW {table} AS {select}")


def canonical_connection(canonical_dir: Path) -> duckdb.DuckDBPyConnection:
    """Every contract table as a view, bound the way the feature pipeline binds them."""
    con = duckdb.connect()
    bind_canonical_tables(con, Path(canonical_dir), definitions.contract().tables)
    return con
