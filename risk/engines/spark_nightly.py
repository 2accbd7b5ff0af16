"""The Spark side of `risk nightly --engine spark`: features and tiers on Spark, partitioned by township.

Layout added to the run folder (next to the usual single-file tables, which the products, the serving
store and the indicators keep reading unchanged):

    RUN/partitioned/features/township_id=<id>/part-*.parquet
    RUN/partitioned/tiers/township_id=<id>/part-*.parquet

Lists are a small per-team product: the tiers and features are collected to the driver and the same
pandas list code runs; the unmanaged-population query runs on Spark through `SparkSqlConnection`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from risk.engines.spark_features import (
    PARTITION_COLUMN,
    feature_frame,
    read_partitioned,
    register_canonical_tables,
    register_frames,
    spark_schema,
    write_partitioned,
)
from risk.engines.spark_sql import to_spark_sql
from risk.engines.spark_tiers import tier_frame
from risk.schema import TIER_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from risk.engines.base import TierInputs


class SparkResult:
    """What find_unmanaged expects from `con.execute(sql)`: a result with .df()."""

    def __init__(self, frame: DataFrame):
        self.frame = frame

    def df(self) -> pd.DataFrame:
        # Through DuckDB's own Arrow -> pandas conversion, so dtypes match a DuckDB result's .df()
        # (e.g. a BIGINT column with nulls stays an integer column, not float).
        import duckdb

        return duckdb.from_arrow(self.frame.toArrow()).df()


class SparkSqlConnection:
    """The slice of a DuckDB connection the product queries use (register, execute(...).df()), on Spark.

    SQL is written in DuckDB's dialect and transpiled; registered pandas frames become temp views.
    """

    def __init__(self, spark: SparkSession):
        self.spark = spark

    def register(self, name: str, frame: pd.DataFrame) -> None:
        register_frames(self.spark, {name: frame})

    def execute(self, sql: str) -> SparkResult:
        return SparkResult(self.spark.sql(to_spark_sql(sql)))


class SparkNightly:
    """The Spark engine (risk.engines.base.Engine): features and tiers of one run on Spark; results are
    also returned as pandas for the products."""

    def __init__(self, run_dir: Path, master: str | None = None):
        from risk.engines.spark_session import get_spark

        self.spark: SparkSession = get_spark(master)
        self.run_dir = Path(run_dir)
        self.features_path = self.run_dir / "partitioned" / "features"
        self.tiers_path = self.run_dir / "partitioned" / "tiers"

    def features(self, canonical_dir: Path, as_of: date, out: Path | None = None) -> pd.DataFrame:
        """Compute, write partitioned (and as `out`, default RUN/features.parquet), return the rows sorted
        by person_id."""
        from risk.features.pipeline import write_parquet_atomically
        from risk.schema import feature_schema

        write_partitioned(feature_frame(self.spark, Path(canonical_dir), as_of), self.features_path)
        table = read_partitioned(self.features_path, feature_schema()).sort_by("person_id")
        write_parquet_atomically(table, out or self.run_dir / "features.parquet")
        return table.to_pandas()

    def stored_features(self) -> DataFrame:
        from risk.schema import feature_schema

        # the schema is given, not inferred: an empty run (nobody under management) has no data files
        frame = self.spark.read.schema(spark_schema()).parquet(str(self.features_path))
        return frame.select(*feature_schema().names)

    def tiers(self, features: pd.DataFrame, inputs: TierInputs) -> pd.DataFrame:
        """The nightly tiers table, written partitioned by township; returned sorted by person_id. The
        pandas features are not shipped back (Spark reads its own partitioned features, the same rows);
        they serve the model's reasons, which compare each patient with everyone scored in the run."""
        from risk.tiers.priority import add_model_reasons

        stored = self.stored_features()
        tiers = tier_frame(self.spark, stored, inputs.rule_set, inputs.as_of, inputs.model, inputs.policy)
        townships = stored.select("person_id", PARTITION_COLUMN)
        write_partitioned(tiers.join(townships, on="person_id", how="left"), self.tiers_path)
        table = read_partitioned(self.tiers_path, TIER_SCHEMA)
        dates = {pa.date32(): pd.ArrowDtype(pa.date32())}
        frame = table.sort_by("person_id").to_pandas(types_mapper=dates.get)
        if inputs.model is None:  # the same all-null columns as the embedded path writes
            frame["tier_model"] = None
            frame["model_reasons"] = None
        else:
            frame["reasons"] = add_model_reasons(frame, features).to_numpy()
        return frame

    def connection(self, canonical_dir: Path) -> SparkSqlConnection:
        register_canonical_tables(self.spark, Path(canonical_dir))
        return SparkSqlConnection(self.spark)
