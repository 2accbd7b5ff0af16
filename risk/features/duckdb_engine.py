"""Run the feature SQL on DuckDB, reading the canonical Parquet files directly (streaming scans)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from risk.features.sql import EVENT_TABLES, feature_query
from risk.features.tables import value_set_sql
from risk.run.tables import bind_canonical_tables

THREADS = 2
MEMORY_LIMIT = "3GB"


def connect(
    canonical_dir: Path, threads: int = THREADS, memory_limit: str = MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with the logical tables bound: views over the Parquet files, value-set tables."""
    con = duckdb.connect(
        config={"threads": threads, "memory_limit": memory_limit, "preserve_insertion_order": False}
    )
    bind_canonical_tables(con, canonical_dir, EVENT_TABLES)
    for name, select in value_set_sql().items():  # literal rows: `risk features` never imports pandas
        con.execute(f"CREATE TABLE {name} AS {select}")
    return con


def run_feature_query(canonical_dir: Path, as_of: date, columns: Collection[str] | None = None) -> pa.Table:
    con = connect(canonical_dir)
    try:
        return con.sql(feature_query(as_of, columns)).to_arrow_table()
    finally:
        con.close()
