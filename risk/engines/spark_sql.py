"""DuckDB-dialect SQL -> Spark SQL with sqlglot, plus the one semantic adjustment sqlglot leaves out.

Numeric literals with a decimal point (`1.0`, `365.25`, thresholds such as `140.0`) are DECIMAL in both
engines, but DuckDB turns DECIMAL into DOUBLE for division and AVG, while Spark keeps DECIMAL arithmetic
and rounds it to a fixed scale (AVG of DECIMAL(2,1) has 5 decimals, so a share of 1/3 would be 0.33333).
Casting those literals to DOUBLE gives Spark DuckDB's effective semantics; exact integer arithmetic
(counts, day differences) is left alone.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp


def _double_literals(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE"):
        return exp.cast(node.copy(), exp.DataType.Type.DOUBLE)
    return node


def to_spark_sql(duckdb_sql: str) -> str:
    """One DuckDB-dialect statement as Spark SQL (raises on anything sqlglot cannot carry over)."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    tree = tree.transform(_double_literals)
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
