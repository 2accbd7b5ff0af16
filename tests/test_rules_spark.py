"""The rule conditions transpiled to Spark SQL give the same fired rules as DuckDB (needs pyspark + Java)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_rules import CASES

from risk.tiers import load_rule_set
from risk.tiers.rule_engine import _arrow_input, evaluate
from tests.support.rules import base_row, frame

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_spark_and_duckdb_agree_on_every_case(spark, tmp_path):  # type: ignore[no-untyped-def]
    rule_set = load_rule_set()
    overrides = [case for cases in CASES.values() for pair in cases for case in pair]
    rows = [base_row()] + [base_row(**case) for case in overrides]
    features = frame(*rows)
    expected = evaluate(rule_set, features).fired

    table = _arrow_input(rule_set, features)
    table = table.append_column("row_number", pa.array(np.arange(len(features)), type=pa.int64()))
    pq.write_table(table, tmp_path / "features.parquet")
    spark_sql = rule_set.to_dialect("spark")
    spark.read.parquet(str(tmp_path / "features.parquet")).createOrReplaceTempView("features_in")
    source = "features_in"
    for column in rule_set.derived:
        spark.sql(f"SELECT *, ({spark_sql[column.name]}) AS {column.name} FROM {source}") \
            .createOrReplaceTempView(f"d_{column.name}")
        source = f"d_{column.name}"
    selects = ", ".join(f"coalesce(({spark_sql[rule.id]}), false) AS r{i}"
                        for i, rule in enumerate(rule_set.rules))
    result = spark.sql(f"SELECT {selects} FROM {source} ORDER BY row_number").toPandas()
    assert np.array_equal(result.to_numpy(dtype=bool), expected)
