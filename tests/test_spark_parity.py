"""Spark and the embedded DuckDB engine give the same features, tiers and lists on a small county.

One nightly run per engine (same input, same rule set, same small model trained here), compared table by
table: floats within 1e-9, same nulls, same types; list files byte for byte. The checks are helpers of one
test so that pytest-xdist cannot spread them over workers (each would start a JVM and redo both runs).
Skipped without PySpark or Java unless RISK_REQUIRE_SPARK=1 (CI), where a missing engine is a failure.
"""

from __future__ import annotations

import filecmp
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = date(2024, 6, 30)
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def validated(small_county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from risk.validate import validate_folder

    folder = tmp_path_factory.mktemp("valid")
    validate_folder(small_county, folder, as_of=None)  # as the nightly job validates
    return folder


@pytest.fixture(scope="module")
def model_dir(validated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small calibrated logistic model on the county's features, so model scoring is compared too."""
    from risk.features import FEATURE_SET_VERSION, compute_features
    from risk.models.drift import training_profile
    from risk.models.estimators import CalibratedRiskModel
    from risk.models.export import write_exported_model
    from risk.models.features import select_model_features
    from risk.models.policy import default_model_policy

    folder = tmp_path_factory.mktemp("model")
    features = compute_features(validated, AS_OF)
    policy = default_model_policy()
    spec = select_model_features(features, policy)
    rng = np.random.default_rng(11)
    # A label that depends on the features (and noise), so the model has real, distinct probabilities.
    signal = features["bp_last_sbp"].fillna(140).to_numpy() / 20 + features["age"].to_numpy() / 15
    label = (signal + rng.normal(0, 1.5, len(features)) > np.quantile(signal, 0.7)).astype(int)
    estimator = CalibratedRiskModel("logistic_regression", spec, {"C": 0.1}, "sigmoid", 0.3, seed=3)
    estimator.fit(features, label)
    metadata = {
        "version": "parity-test",
        "feature_columns": spec.columns,
        "feature_set_version": FEATURE_SET_VERSION,
    }
    # its training profile, as `risk train --export` writes it: the nightly's drift check (issue 12) refuses
    # a model without one, and the county it scores is its own training population
    profile = training_profile(features, spec.number_columns, list(spec.categorical))
    return write_exported_model(
        estimator, metadata, "# parity test model\n", folder / "models", profile=profile
    )


@pytest.fixture(scope="module")
def runs(
    spark, small_county: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    from pipelines.nightly import NightlyOptions, run_nightly

    root = tmp_path_factory.mktemp("parity")
    out = {}
    for engine in ("duckdb", "spark"):
        out[engine] = root / engine
        run_nightly(
            NightlyOptions(
                input_dir=small_county,
                as_of=AS_OF,
                out=out[engine],
                model_dir=model_dir,
                xlsx=False,
                engine=engine,
            )
        )
    return out


def assert_tables_equal(embedded: pa.Table, spark: pa.Table, key: str = "person_id") -> None:
    assert spark.schema.equals(embedded.schema), f"{spark.schema}\n!=\n{embedded.schema}"
    assert spark.num_rows == embedded.num_rows > 0
    left = embedded.sort_by(key).to_pandas()
    right = spark.sort_by(key).to_pandas()
    for column in left.columns:
        a, b = left[column], right[column]
        assert (a.isna() == b.isna()).all(), f"{column}: nulls differ"
        known = a.notna()
        if pd.api.types.is_float_dtype(a):
            gap = float(np.max(np.abs(a[known].to_numpy() - b[known].to_numpy()), initial=0.0))
            assert gap <= TOLERANCE, f"{column}: largest difference {gap}"
        else:
            differs = a[known] != b[known]
            assert not differs.any(), (
                f"{column}: {a[known][differs].head(3).tolist()} vs {b[known][differs].head(3).tolist()}"
            )


def check_features_are_identical(runs: dict[str, Path]) -> None:
    embedded = pq.read_table(runs["duckdb"] / "features.parquet")
    assert_tables_equal(embedded, pq.read_table(runs["spark"] / "features.parquet"))
    # Every kind of feature is exercised: a float that is rarely a round number, dates, booleans, strings.
    frame = embedded.to_pandas()
    assert frame["chinapar_risk_10y"].notna().sum() > 50 and frame["cx_count"].gt(0).any()
    assert frame["fu_consecutive_uncontrolled_bp"].gt(0).any()
    assert frame["pdc_antihypertensive_12m"].gt(0).any()


def check_partitioned_features_hold_the_same_rows(runs: dict[str, Path]) -> None:
    from risk.engines.spark_features import read_partitioned
    from risk.features import feature_schema

    folder = runs["spark"] / "partitioned" / "features"
    townships = sorted(p.name for p in folder.glob("township_id=*"))
    embedded = pq.read_table(runs["duckdb"] / "features.parquet")
    assert townships == sorted(f"township_id={t}" for t in set(embedded.column("township_id").to_pylist()))
    assert_tables_equal(embedded, read_partitioned(folder, feature_schema()))


def check_tiers_are_identical(runs: dict[str, Path]) -> None:
    embedded = pq.read_table(runs["duckdb"] / "tiers.parquet")
    spark = pq.read_table(runs["spark"] / "tiers.parquet").select(embedded.column_names)
    assert_tables_equal(embedded, spark)
    frame = embedded.to_pandas()
    # The comparison covers every tier, model scores and a model that raised some rule tiers.
    assert set(frame["tier"]) == {"red", "yellow", "green"}
    assert frame["model_version"].eq("parity-test").all() and frame["model_probability"].nunique() > 100
    assert frame["combine_reason"].str.startswith("model_raised").any()
    partitioned = pq.read_table(runs["spark"] / "partitioned" / "tiers", partitioning="hive")
    assert partitioned.num_rows == embedded.num_rows


def check_lists_are_identical(runs: dict[str, Path]) -> None:
    embedded, spark = runs["duckdb"] / "lists", runs["spark"] / "lists"
    files = sorted(p.relative_to(embedded) for p in embedded.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(spark) for p in spark.rglob("*") if p.is_file())
    assert any("unmanaged" in str(f) for f in files) and len(files) > 10
    differing = [str(f) for f in files if not filecmp.cmp(embedded / f, spark / f, shallow=False)]
    assert differing == []


def check_run_manifests_agree(runs: dict[str, Path]) -> None:
    import json

    embedded, spark = (json.loads((runs[e] / "run.json").read_text(encoding="utf-8")) for e in runs)
    assert embedded["counts"] == spark["counts"] and embedded["by_township"] == spark["by_township"]
    assert embedded["counts"]["unmanaged"] > 0


def check_decimal_literals_keep_duckdb_double_semantics(spark) -> None:  # type: ignore[no-untyped-def]
    """AVG of 1.0/0.0 flags: DuckDB gives a DOUBLE; plain Spark would round a DECIMAL to 5 places."""
    import duckdb

    from risk.engines.spark_sql import to_spark_sql

    sql = (
        "SELECT AVG(CASE WHEN x < 1 THEN 1.0 ELSE 0.0 END) AS share, SUM(x) / 365.0 AS per_day, "
        "DATE_DIFF('day', DATE '2020-01-01', DATE '2024-06-30') / 365.25 AS years "
        "FROM (SELECT 0 AS x UNION ALL SELECT 1 UNION ALL SELECT 2) t"
    )
    expected = duckdb.sql(sql).fetchall()[0]
    got = spark.sql(to_spark_sql(sql)).collect()[0]
    assert got["share"] == pytest.approx(1 / 3, abs=1e-15) == expected[0]
    assert got["per_day"] == pytest.approx(expected[1], abs=1e-15)
    assert got["years"] == pytest.approx(expected[2], abs=1e-15)


def check_chosen_columns_match(validated: Path, tmp_path: Path) -> None:
    """`columns=` on Spark: the same pruned definitions, China-PAR computed from its inputs, same values;
    written partitioned, the township column is always kept."""
    from risk.engines.spark_features import (
        compute_features_partitioned,
        read_partitioned,
        run_feature_query_spark,
    )
    from risk.features import compute_features_table, feature_schema

    columns = ["bp_mean3_sbp", "fu_consecutive_uncontrolled_bp", "pdc_statin_12m", "chinapar_risk_10y"]
    embedded = compute_features_table(validated / "canonical", AS_OF, columns=columns)
    assert embedded.column_names == [
        "person_id",
        "as_of",
        "bp_mean3_sbp",
        "fu_consecutive_uncontrolled_bp",
        "pdc_statin_12m",
        "chinapar_risk_10y",
    ]
    assert_tables_equal(embedded, run_feature_query_spark(validated / "canonical", AS_OF, columns=columns))
    out = tmp_path / "chosen_by_township"
    assert compute_features_partitioned(validated, AS_OF, out, columns=["bp_last_sbp"]) == embedded.num_rows
    chosen = read_partitioned(out, feature_schema(["bp_last_sbp", "township_id"]))
    assert chosen.column_names == ["person_id", "as_of", "township_id", "bp_last_sbp"]


def check_nobody_under_management_gives_empty_tables(validated: Path, tmp_path: Path) -> None:
    """Spark writes no data file for an empty frame; features and tiers must still come back typed."""
    from datetime import date

    from risk.engines.base import TierInputs
    from risk.engines.spark_nightly import SparkNightly
    from risk.features import feature_names
    from risk.models.policy import default_model_policy
    from risk.tiers import load_rule_set

    run = SparkNightly(tmp_path / "empty-run")
    features = run.features(validated / "canonical", date(2001, 1, 1))
    assert features.empty and list(features.columns) == feature_names()
    inputs = TierInputs(load_rule_set(), None, date(2001, 1, 1), default_model_policy())
    assert run.tiers(features, inputs).empty


def check_top_n_lists_keep_duckdb_semantics(spark) -> None:  # type: ignore[no-untyped-def]
    """MAX_BY/MIN_BY(x, key, n) and LIST_AVG, rewritten for Spark: order, NULL keys, NULL values, n > rows."""
    import duckdb

    from risk.engines.spark_sql import to_spark_sql

    rows = (
        "SELECT p, k, CAST(x AS DOUBLE) AS x FROM (VALUES ('a', 1, 10), ('a', 2, 20), ('a', 3, NULL), "
        "('a', 4, 40), ('a', NULL, 99), ('b', 7, 5)) t(p, k, x)"
    )
    sql = (
        f"SELECT p, MAX_BY(x, k, 3) AS top, MIN_BY(x, k, 2) AS bottom, "
        f"LIST_AVG(MAX_BY(x, k, 3)) AS mean3, LIST_AVG(MAX_BY(x, k, 5)) AS mean_all "
        f"FROM ({rows}) s GROUP BY p ORDER BY p"
    )
    expected = duckdb.sql(sql).fetchall()
    # DuckDB leaves out rows whose key or value is NULL, as the plain two-argument MAX_BY does.
    assert expected == [
        ("a", [40.0, 20.0, 10.0], [10.0, 20.0], 70.0 / 3, 70.0 / 3),
        ("b", [5.0], [5.0], 5.0, 5.0),
    ]
    got = [tuple(r) for r in spark.sql(to_spark_sql(sql)).collect()]
    assert got == expected


def check_features_command_writes_township_partitions(
    validated: Path, runs: dict[str, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from risk.cli import app

    out = tmp_path / "features_by_township"
    result = CliRunner().invoke(
        app,
        [
            "features",
            str(validated),
            "--as-of",
            AS_OF.isoformat(),
            "--out",
            str(out),
            "--engine",
            "spark",
            "--spark-master",
            "local[2]",
        ],
    )
    assert result.exit_code == 0, result.output
    embedded = pq.read_table(runs["duckdb"] / "features.parquet")
    assert f"{embedded.num_rows} persons" in result.output
    assert sorted(p.name for p in out.glob("township_id=*")) == sorted(
        f"township_id={t}" for t in set(embedded.column("township_id").to_pylist())
    )


def test_spark_matches_the_embedded_engine(  # type: ignore[no-untyped-def]
    spark, runs: dict[str, Path], validated: Path, tmp_path: Path
) -> None:
    """One test (so pytest-xdist keeps the two nightly runs and the JVM on one worker)."""
    check_features_are_identical(runs)
    check_features_command_writes_township_partitions(validated, runs, tmp_path)
    check_partitioned_features_hold_the_same_rows(runs)
    check_tiers_are_identical(runs)
    check_lists_are_identical(runs)
    check_run_manifests_agree(runs)
    check_decimal_literals_keep_duckdb_double_semantics(spark)
    check_top_n_lists_keep_duckdb_semantics(spark)
    check_chosen_columns_match(validated, tmp_path)
    check_nobody_under_management_gives_empty_tables(validated, tmp_path)
