"""One SparkSession per process, configured so Spark computes what the embedded DuckDB engine computes.

- session time zone UTC: canonical timestamps are naive local times (TIMESTAMP WITHOUT TIME ZONE); with UTC
  no instant is shifted when Spark casts between its TIMESTAMP and TIMESTAMP_NTZ;
- ANSI mode stays on (the Spark 4 default): an overflow or a division by zero fails loudly instead of
  quietly giving NULL where DuckDB would give a number;
- Parquet timestamps without a UTC flag are read as TIMESTAMP_NTZ, like DuckDB's TIMESTAMP.

`RISK_SPARK_MASTER` (or the `--spark-master` option) selects the cluster; extra settings come from
`RISK_SPARK_CONF` as `key=value;key=value` (for example executor memory on a real cluster).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from risk.engines import DEFAULT_SPARK_MASTER
from risk.errors import RiskUserError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    # township_id=340621 must stay the string '340621' when a partitioned folder is read back.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}
LOCAL_CONF: dict[str, str] = {
    # Small local runs (tests, one county on a laptop): few shuffle partitions, modest driver memory.
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


def spark_available() -> str | None:
    """None when PySpark and a Java runtime are present, else what is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime (install openjdk-17-jre-headless or set JAVA_HOME)"
    return None


def _extra_conf() -> dict[str, str]:
    conf = {}
    for item in filter(None, os.environ.get("RISK_SPARK_CONF", "").split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            raise RiskUserError(f"RISK_SPARK_CONF item '{item}' is not key=value")
        conf[key.strip()] = value.strip()
    return conf


def get_spark(master: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """The active session, or a new one on `master` (default: RISK_SPARK_MASTER or local[2])."""
    missing = spark_available()
    if missing:
        raise RiskUserError(f"the Spark engine needs PySpark and Java: {missing}")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = master or os.environ.get("RISK_SPARK_MASTER") or DEFAULT_SPARK_MASTER
    # Python workers must be this interpreter (the one with pyarrow, pandas and the risk package).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = dict(BASE_CONF)
    if master.startswith("local"):
        settings |= LOCAL_CONF
    settings |= _extra_conf() | (conf or {})
    builder = SparkSession.builder.master(master).appName("risk")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
