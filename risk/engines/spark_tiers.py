"""Tiers on Spark: the rule set's SQL on Spark, the same model and the same Python tier code per batch.

- Rules: the query the DuckDB rule engine runs (`build_query`: derived columns as CTEs, one
  `coalesce(condition, false)` per rule) transpiled to Spark SQL, over the features cast to the rule
  engine's input types; the fired-rule columns then go through `evaluation_from_fired` and
  `rule_tiers_from_evaluation` per Arrow batch, so reasons, scores and due dates are the same code.
- Model: `predict_proba` and `top_reasons` of the exported model per batch (row-wise), then the capacity
  tiers (a ranking across rows) in one group per `within` value of the policy (the whole population when
  it is null), rows in person_id order as on DuckDB, so ties fall the same way.
- Combination and due dates: `finish_tiers` (risk/tiers/assemble.py) per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlglot

from risk.engines.spark_sql import to_spark_sql
from risk.errors import RiskUserError
from risk.schema import TIER_SCHEMA
from risk.tiers.rule_engine import build_query, evaluation_from_fired, missing_input_columns
from risk.tiers.rule_set import RuleSet

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from risk.models.export import ExportedModel
    from risk.models.policy import ModelPolicy

KEYS = ("person_id", "as_of", "fu_last_date")
SPARK_TYPES = {"DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN", "VARCHAR": "STRING", "DATE": "DATE"}
MODEL_SCHEMA = pa.schema([("person_id", pa.string()), ("model_probability", pa.float64()),
                          ("model_reasons", pa.string())])
MODEL_TIER_SCHEMA = pa.schema([*MODEL_SCHEMA, ("tier_model", pa.string())])
TIER_MODEL_ONLY = pa.schema([("person_id", pa.string()), ("tier_model", pa.string())])


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def rule_query(rule_set: RuleSet, source: str = "rule_input") -> str:
    """The DuckDB rule engine's query, carrying the key columns, in Spark SQL."""
    query = sqlglot.parse_one(build_query(rule_set, source), read="duckdb")
    query = query.select(*(f"k_{key}" for key in KEYS), append=True)
    return to_spark_sql(query.sql(dialect="duckdb"))


def rule_input(spark: SparkSession, features: DataFrame, rule_set: RuleSet) -> DataFrame:
    """Key columns plus the rule set's input columns cast to the rule engine's types."""
    missing = missing_input_columns(rule_set, pd.Index(features.columns))
    if missing:
        raise RiskUserError(f"features are missing column(s) {', '.join(missing)} used by rule set "
                            f"'{rule_set.name}' {rule_set.version} ({rule_set.path})")
    features.createOrReplaceTempView("rule_features")
    items = [f"{key} AS k_{key}" for key in KEYS]
    items += [f"CAST({c} AS {SPARK_TYPES[rule_set.column_types[c]]}) AS {c}" for c in rule_set.input_columns]
    return spark.sql(f"SELECT {', '.join(items)} FROM rule_features")


def fired_rules(spark: SparkSession, features: DataFrame, rule_set: RuleSet) -> DataFrame:
    """k_person_id, k_as_of, k_fu_last_date and one boolean r<i> per rule (rule-set order)."""
    rule_input(spark, features, rule_set).createOrReplaceTempView("rule_input")
    return spark.sql(rule_query(rule_set))


def _score_batches(model: ExportedModel, top_n: int) -> Callable[[Iterator[pa.RecordBatch]],
                                                                   Iterator[pa.RecordBatch]]:
    from risk.models.explanations import reasons_json, top_reasons

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = batch.to_pandas()
            probability = model.estimator.predict_proba(frame)[:, 1] if len(frame) else np.zeros(0)
            yield pa.RecordBatch.from_pydict({
                "person_id": frame["person_id"].astype(str).tolist(),
                "model_probability": probability,
                "model_reasons": reasons_json(top_reasons(model.estimator, frame, top_n)),
            }, schema=MODEL_SCHEMA)

    return score


def model_tiers(features: DataFrame, model: ExportedModel, policy: ModelPolicy) -> DataFrame:
    """person_id, model_probability, model_reasons, tier_model: score_model_tiers on Spark."""
    from pyspark.sql import functions as F

    from risk.features import FEATURE_SET_VERSION
    from risk.tiers.model import assign_probability_tiers

    model.check_features(features.columns, FEATURE_SET_VERSION)
    within = policy.tiering.capacity.within
    if within and within not in features.columns:
        raise RiskUserError(f"model_policy.yaml ranks capacity within '{within}', which the features lack")
    from pyspark import StorageLevel

    scored = features.mapInArrow(_score_batches(model, policy.explanations.top_n),
                                 _spark_schema(MODEL_SCHEMA))
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)  # read twice below; scoring is the costly part
    group = features.select("person_id", F.col(within).alias("capacity_group")) if within else \
        features.select("person_id", F.lit(0).alias("capacity_group"))
    # Only ids and probabilities travel to the ranking group (with within=null that is one task holding
    # every scored patient: about 60 bytes each); the reasons text is joined back afterwards.
    ranked = scored.select("person_id", "model_probability").join(group, on="person_id")

    def tier_group(table: pa.Table) -> pa.Table:
        frame = table.to_pandas().sort_values("person_id", kind="mergesort")  # DuckDB row order
        tiers = assign_probability_tiers(frame["model_probability"].to_numpy(), policy)
        return pa.table({"person_id": frame["person_id"].astype(str).tolist(), "tier_model": tiers.tolist()},
                        schema=TIER_MODEL_ONLY)

    tiers = ranked.groupBy("capacity_group").applyInArrow(tier_group, _spark_schema(TIER_MODEL_ONLY))
    return scored.join(tiers, on="person_id").select(*MODEL_TIER_SCHEMA.names)


def _tier_batches(rule_set: RuleSet, with_model: bool, as_of: date, model_version: str, policy: ModelPolicy
                  ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    from risk.tiers.assemble import finish_tiers
    from risk.tiers.rules import rule_tiers_from_evaluation

    n_rules = len(rule_set.rules)

    def tiers(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = batch.to_pandas()
            keys = pd.DataFrame({key: frame[f"k_{key}"] for key in KEYS})
            fired = np.zeros((len(frame), n_rules), dtype=bool)
            for i in range(n_rules):
                fired[:, i] = frame[f"r{i}"].to_numpy(dtype=bool)
            rule_tiers = rule_tiers_from_evaluation(keys, evaluation_from_fired(rule_set, fired))
            scored = frame[["k_person_id", *MODEL_TIER_SCHEMA.names[1:]]].rename(
                columns={"k_person_id": "person_id"}) if with_model else None
            out = finish_tiers(rule_tiers, scored, keys, rule_set.intervals, as_of, model_version, policy,
                               explain_model=False)
            yield from pa.Table.from_pandas(out[TIER_SCHEMA.names], preserve_index=False) \
                .cast(TIER_SCHEMA).to_batches()

    return tiers


def tier_frame(spark: SparkSession, features: DataFrame, rule_set: RuleSet, as_of: date,
               model: ExportedModel | None, policy: ModelPolicy) -> DataFrame:
    """The nightly tiers table (TIER_SCHEMA columns) as a Spark DataFrame, one row per features row."""
    fired = fired_rules(spark, features, rule_set)
    if model is not None:
        scored = model_tiers(features, model, policy).withColumnRenamed("person_id", "k_person_id")
        fired = fired.join(scored, on="k_person_id", how="left")
    model_version = model.version if model is not None else "none"
    return fired.mapInArrow(_tier_batches(rule_set, model is not None, as_of, model_version, policy),
                            _spark_schema(TIER_SCHEMA))
