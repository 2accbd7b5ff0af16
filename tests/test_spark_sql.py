"""Spark SQL generation (no Spark needed): literals, the rule query, the session settings."""

from __future__ import annotations

from datetime import date

import pytest
import sqlglot

from risk.engines.spark_session import BASE_CONF, _extra_conf
from risk.engines.spark_sql import to_spark_sql
from risk.engines.spark_tiers import KEYS, TIER_SCHEMA, rule_query
from risk.errors import RiskUserError
from risk.tiers import load_rule_set


def test_decimal_literals_become_doubles_and_integers_stay() -> None:
    spark = to_spark_sql("SELECT AVG(CASE WHEN a < 140.0 THEN 1.0 ELSE 0 END), COUNT(*) * 1000000000 + 2 "
                         "FROM t")
    assert "CAST(140.0 AS DOUBLE)" in spark and "CAST(1.0 AS DOUBLE)" in spark
    assert "CAST(0 AS" not in spark and "1000000000 + 2" in spark


def test_string_literals_that_look_numeric_are_left_alone() -> None:
    assert to_spark_sql("SELECT * FROM t WHERE code = '1.5'") == "SELECT * FROM t WHERE code = '1.5'"


def test_duckdb_functions_are_translated() -> None:
    spark = to_spark_sql("SELECT DATE_DIFF('day', a, b), UNNEST(STRING_SPLIT(s, ';')) FROM t")
    assert "DATEDIFF(" in spark and "EXPLODE(SPLIT(" in spark


def test_top_n_list_functions_are_rewritten_for_spark() -> None:
    spark = to_spark_sql("SELECT LIST_AVG(MAX_BY(x, k, 3)), MIN_BY(x, k, 2), MAX_BY(x, k) FROM t GROUP BY p")
    assert "SORT_ARRAY(COLLECT_LIST(" in spark and "SLICE(" in spark and "AGGREGATE(" in spark
    assert "LIST_AVG" not in spark and spark.count("MAX_BY(") == 1  # the plain two-argument MAX_BY stays
    sqlglot.parse_one(spark, read="spark")


def test_whole_feature_query_transpiles() -> None:
    from risk.engines.spark_features import spark_feature_sql

    spark = spark_feature_sql(date(2024, 6, 30))
    parsed = sqlglot.parse_one(spark, read="spark")
    assert "CAST(365.25 AS DOUBLE)" in spark and "QUALIFY" not in spark
    assert parsed.expressions[0].alias_or_name == "person_id"


def test_rule_query_carries_keys_and_one_column_per_rule() -> None:
    rule_set = load_rule_set()
    parsed = sqlglot.parse_one(rule_query(rule_set), read="spark")
    names = [e.alias_or_name for e in parsed.expressions]
    assert names == [f"r{i}" for i in range(len(rule_set.rules))] + [f"k_{k}" for k in KEYS]


def test_tier_schema_names_the_nightly_columns() -> None:
    assert {"person_id", "tier", "tier_rules", "tier_model", "reasons", "next_due_on", "days_overdue",
            "model_version", "combine_reason"} <= set(TIER_SCHEMA.names)


def test_session_settings_match_the_embedded_engine() -> None:
    assert BASE_CONF["spark.sql.session.timeZone"] == "UTC"
    assert BASE_CONF["spark.sql.ansi.enabled"] == "true"


def test_extra_conf_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_SPARK_CONF", "spark.executor.memory=8g; spark.executor.cores=4")
    assert _extra_conf() == {"spark.executor.memory": "8g", "spark.executor.cores": "4"}
    monkeypatch.setenv("RISK_SPARK_CONF", "nonsense")
    with pytest.raises(RiskUserError, match="key=value"):
        _extra_conf()
