"""DuckDB-dialect SQL -> Spark SQL with sqlglot, plus the semantic adjustments sqlglot leaves out.

Numeric literals with a decimal point (`1.0`, `365.25`, thresholds such as `140.0`) are DECIMAL in both
engines, but DuckDB turns DECIMAL into DOUBLE for division and AVG, while Spark keeps DECIMAL arithmetic
and rounds it to a fixed scale (AVG of DECIMAL(2,1) has 5 decimals, so a share of 1/3 would be 0.33333).
Casting those literals to DOUBLE gives Spark DuckDB's effective semantics; exact integer arithmetic
(counts, day differences) is left alone.

Two DuckDB list functions used by the feature definitions have no Spark counterpart that sqlglot knows,
so they are rewritten here with DuckDB's semantics:
- `MAX_BY(x, key, n)` / `MIN_BY(x, key, n)`: the x of the n rows with the largest (smallest) key, in
  that order, rows with a NULL key or NULL x left out -> a sorted COLLECT_LIST of (key, x) structs, sliced.
- `LIST_AVG(list)`: mean of the non-NULL elements, NULL for an empty list.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp


def _double_literals(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE"):
        return exp.cast(node.copy(), exp.DataType.Type.DOUBLE)
    return node


_TOP_N = (
    "TRANSFORM(SLICE(SORT_ARRAY(COLLECT_LIST(CASE WHEN __key IS NOT NULL AND __value IS NOT NULL"
    " THEN STRUCT(__key AS k, __value AS v)"
    " END), __descending), 1, __n), e -> e.v)"
)
_LIST_AVG = (
    "AGGREGATE(__list, STRUCT(CAST(0 AS DOUBLE) AS total, 0 AS n),"
    " (acc, x) -> CASE WHEN x IS NULL THEN acc ELSE STRUCT(acc.total + x AS total, acc.n + 1 AS n) END,"
    " acc -> CASE WHEN acc.n > 0 THEN acc.total / acc.n END)"
)


def _fill(template: str, **parts: exp.Expression) -> exp.Expression:
    def substitute(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name.startswith("__"):
            return parts[node.name[2:]].copy().transform(_list_functions)  # nested list functions
        return node

    return sqlglot.parse_one(template, read="spark").transform(substitute)


def _list_functions(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArgMax | exp.ArgMin) and node.args.get("count") is not None:
        descending = exp.false() if isinstance(node, exp.ArgMax) else exp.true()
        return _fill(_TOP_N, key=node.expression, value=node.this, n=node.args["count"],
                     descending=descending)
    if isinstance(node, exp.Anonymous) and node.name.upper() == "LIST_AVG" and len(node.expressions) == 1:
        return _fill(_LIST_AVG, list=node.expressions[0])
    return node


def to_spark_sql(duckdb_sql: str) -> str:
    """One DuckDB-dialect statement as Spark SQL (raises on anything sqlglot cannot carry over)."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    tree = tree.transform(_list_functions).transform(_double_literals)
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
