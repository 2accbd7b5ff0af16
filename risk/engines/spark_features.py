"""The feature definitions (risk/features/sql/) on Spark: same SQL text transpiled, same China-PAR step.

Tables: each canonical Parquet file (or a folder of Parquet files, e.g. partitioned by township) is bound
to its logical name through the same `table_select_sql` projection the DuckDB engine uses, and the value
sets are small temp views built from the same definitions (`value_set_tables`). The China-PAR post-step
is `risk.features.pipeline.add_chinapar`, applied per Arrow batch with `mapInArrow`, then cast to the
catalogue schema exactly as on DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk.engines.spark_sql import to_spark_sql
from risk.errors import InputFileError
from risk.features.sql import EVENT_TABLES, feature_query
from risk.features.tables import value_set_tables
from risk.run import folder as run_folder
from risk.run.tables import table_select_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PARTITION_COLUMN = "township_id"


def canonical_source(canonical_dir: Path, table: str) -> Path:
    """<table>.parquet as a file or as a (partitioned) folder of Parquet files."""
    path = Path(canonical_dir) / f"{table}.parquet"
    if not path.exists():
        raise InputFileError(str(path), "canonical table not found (run `risk validate` first)")
    return path


def register_canonical_tables(spark: SparkSession, canonical_dir: Path) -> None:
    """Temp views persons, conditions, ... over the canonical Parquet, and the vs_* value sets."""
    for table in EVENT_TABLES:
        raw = spark.read.parquet(str(canonical_source(canonical_dir, table)))
        raw.createOrReplaceTempView(f"{table}__parquet")
        projection = table_select_sql(table, set(raw.columns), f"{table}__parquet")
        spark.sql(to_spark_sql(projection)).createOrReplaceTempView(table)
    register_frames(spark, value_set_tables())


def register_frames(spark: SparkSession, frames: dict) -> None:
    """Small pandas lookup tables as temp views (via Arrow, so types are those of the frame)."""
    for name, frame in frames.items():
        spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False)).createOrReplaceTempView(name)


def spark_feature_sql(as_of: date, columns: Collection[str] | None = None) -> str:
    return to_spark_sql(feature_query(as_of, columns))


def _finish_batches(batches: Iterator[pa.RecordBatch], columns: tuple[str, ...] | None,
                    chinapar: bool) -> Iterator[pa.RecordBatch]:
    from risk.features.pipeline import finish_feature_table
    from risk.schema import feature_schema

    schema = feature_schema(columns)
    for batch in batches:
        yield from finish_feature_table(pa.Table.from_batches([batch]), schema, chinapar).to_batches()


def spark_schema(columns: Sequence[str] | None = None) -> object:
    from pyspark.sql.pandas.types import from_arrow_schema

    from risk.schema import feature_schema

    return from_arrow_schema(feature_schema(columns))


def feature_frame(spark: SparkSession, canonical_dir: Path, as_of: date,
                  columns: Sequence[str] | None = None) -> DataFrame:
    """The feature rows as a Spark DataFrame with the catalogue's columns and types (lazy); `columns`
    as in compute_features_table."""
    from risk.features.pipeline import plan_columns

    sql_columns, chinapar = plan_columns(columns)
    register_canonical_tables(spark, canonical_dir)
    finish = partial(_finish_batches, columns=None if columns is None else tuple(columns), chinapar=chinapar)
    return spark.sql(spark_feature_sql(as_of, sql_columns)).mapInArrow(finish, spark_schema(columns))


def to_arrow(frame: DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Collect to the driver as Arrow, sorted by person_id like the DuckDB result.

    Sorting on the driver (the rows are collected anyway) avoids a Spark range-partitioned sort, which
    would run the whole plan twice (once to sample the partition bounds).
    """
    table = frame.toArrow().sort_by("person_id")
    return table.cast(schema) if schema is not None else table


def run_feature_query_spark(canonical_dir: Path, as_of: date, master: str | None = None,
                            columns: Sequence[str] | None = None) -> pa.Table:
    """The Spark counterpart of compute_features_table: the catalogue-typed feature table on the driver."""
    from risk.engines.spark_session import get_spark
    from risk.schema import feature_schema

    spark = get_spark(master)
    return to_arrow(feature_frame(spark, Path(canonical_dir), as_of, columns), feature_schema(columns))


def write_partitioned(frame: DataFrame, out: Path, partition_by: str = PARTITION_COLUMN) -> None:
    """Parquet folder partitioned by township (out/township_id=.../part-*.parquet), replaced whole."""
    frame.write.mode("overwrite").partitionBy(partition_by).parquet(str(out))


def read_partitioned(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """A partitioned Parquet folder back as one table, partition column restored to a plain string."""
    table = pq.read_table(path, partitioning="hive")
    if table.num_rows == 0 and schema is not None:
        return schema.empty_table()  # Spark writes no data file for an empty frame, so no columns either
    if PARTITION_COLUMN in table.column_names:
        index = table.column_names.index(PARTITION_COLUMN)
        table = table.set_column(index, PARTITION_COLUMN, table.column(PARTITION_COLUMN).cast(pa.string()))
    if schema is not None:
        table = table.select(schema.names).cast(schema)
    return table


def compute_features_partitioned(
    canonical_dir: Path, as_of: date, out: Path, master: str | None = None,
    columns: Sequence[str] | None = None,
) -> int:
    """`risk features --engine spark`: write the rows as a township-partitioned Parquet folder; row count.
    Chosen `columns` always include the partition column."""
    from risk.engines.spark_session import get_spark

    canonical_dir = run_folder.canonical_dir(canonical_dir)
    if columns is not None and PARTITION_COLUMN not in columns:
        columns = [*columns, PARTITION_COLUMN]
    spark = get_spark(master)
    write_partitioned(feature_frame(spark, canonical_dir, as_of, columns), Path(out))
    return pq.ParquetDataset(out, partitioning="hive").read(columns=["person_id"]).num_rows


def feature_function(master: str | None = None) -> Callable[[Path, date], pd.DataFrame]:
    """A FeatureFunction for risk.models.training_set.build_training_set (feature_fn=) on Spark."""
    def features_on_spark(canonical_dir: Path, as_of: date) -> pd.DataFrame:
        return run_feature_query_spark(Path(canonical_dir), as_of, master).to_pandas()

    return features_on_spark
