"""Other execution engines for the same definitions: Spark (PySpark) next to the embedded DuckDB engine.

Nothing here redefines a feature, a rule or a model: the DuckDB-dialect SQL of risk/features/sql/,
the rule-set conditions and the unmanaged-population query are transpiled with sqlglot
(`risk.engines.spark_sql.to_spark_sql`), and the Python post-steps (China-PAR, model scoring, tier
combination, lists) are the same functions, run per Arrow/pandas batch on the executors or on the driver
for small outputs. docs/scaling.md explains the split and the sizing.
"""

from risk.engines.base import ENGINES, DuckDBEngine, Engine, open_engine

DEFAULT_SPARK_MASTER = "local[2]"

__all__ = ["DEFAULT_SPARK_MASTER", "ENGINES", "DuckDBEngine", "Engine", "open_engine"]
