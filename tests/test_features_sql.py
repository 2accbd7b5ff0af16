"""The feature definitions are one portable SQL text: it binds, parses and transpiles to Spark SQL."""

from __future__ import annotations

import re
from datetime import date

import pytest
import sqlglot

from risk.engines.spark_features import spark_feature_sql as spark_feature_query
from risk.engines.spark_sql import to_spark_sql as to_spark
from risk.errors import DefinitionError
from risk.features import feature_names, feature_query
from risk.features.sql import (
    EVENT_TABLES,
    VALUE_SET_TABLES,
    SqlBlock,
    bind,
    query_parameters,
    sql_blocks,
    tables_read,
)
from risk.sql import literal

AS_OF = date(2024, 6, 30)


@pytest.mark.parametrize("block", sql_blocks(), ids=lambda b: b.name)
def test_every_block_transpiles_to_spark(block: SqlBlock) -> None:
    spark = to_spark(bind(block.sql, query_parameters(AS_OF)))
    assert sqlglot.parse_one(spark, read="spark") is not None


@pytest.mark.parametrize("block", sql_blocks(), ids=lambda b: b.name)
def test_table_references_agree_with_sqlglot(block: SqlBlock) -> None:
    parsed = sqlglot.parse_one(bind(block.sql, query_parameters(AS_OF)), read="duckdb")
    assert tables_read(block.sql) == {t.name for t in parsed.find_all(sqlglot.exp.Table)}


def test_whole_query_transpiles_and_uses_spark_functions() -> None:
    spark = spark_feature_query(AS_OF)
    assert "EXPLODE(SPLIT(" in spark and "MAX_BY(" in spark and "QUALIFY" not in spark
    assert "STRING_SPLIT" not in spark and "UNNEST" not in spark and ":as_of" not in spark
    assert "DATE_ADD(" in spark and "DATEDIFF(" in spark
    # Parses back as Spark SQL, and the output columns are the catalogue's, in order.
    parsed = sqlglot.parse_one(spark, read="spark")
    assert [e.alias_or_name for e in parsed.expressions] == feature_names()[:-2]  # China-PAR is a post-step


def test_query_reads_only_logical_tables() -> None:
    parsed = sqlglot.parse_one(feature_query(AS_OF), read="duckdb")
    ctes = {cte.alias for cte in parsed.find_all(sqlglot.exp.CTE)}
    tables = {t.name for t in parsed.find_all(sqlglot.exp.Table)} - ctes - {""}
    assert tables <= set(EVENT_TABLES) | set(VALUE_SET_TABLES)


def test_parameters_come_from_thresholds() -> None:
    params = {name: literal(value) for name, value in query_parameters(AS_OF).items()}
    assert params["as_of"] == "DATE '2024-06-30'"
    assert params["window_start"] == "DATE '2023-07-02'"  # (as_of - 365 days, as_of]
    assert params["as_of_end"] == "TIMESTAMP '2024-07-01 00:00:00'"
    assert params["new_complication_start"] == "DATE '2024-04-02'"
    assert params["sbp_controlled_below"] == "140.0" and params["grade3_dbp"] == "110.0"
    assert params["readmission_days"] == "30"
    assert not re.search(r"(?<![:\w]):[a-z]", feature_query(AS_OF))


def test_unknown_parameter_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="no_such"):
        bind("SELECT :no_such", query_parameters(AS_OF))


def test_event_tables_are_read_for_managed_persons_only() -> None:
    """Only managed persons get a feature row, so a block reading an event table keeps their rows (reads
    `managed`, directly or through the blocks it reads) before it groups: on the other-shape county
    aggregating every person's vitals and labs cost a sixth of the feature stage for nothing."""
    reads = {b.name: tables_read(b.sql) for b in sql_blocks() if b.kind == "cte"}

    def reaches_managed(name: str, seen: frozenset[str] = frozenset()) -> bool:
        return "managed" in reads[name] or any(
            reaches_managed(other, seen | {name}) for other in reads[name] & reads.keys() - seen
        )

    who_is_managed = {"active_conditions", "managed"}  # from conditions alone
    event_tables = set(EVENT_TABLES) - {"persons"}
    unfiltered = [
        name
        for name, tables in reads.items()
        if name not in who_is_managed and tables & event_tables and not reaches_managed(name)
    ]
    assert unfiltered == []
