"""Evaluate a rule set over a features frame with DuckDB: one boolean column per rule.

The same expressions run unchanged on Spark later (`RuleSet.to_dialect("spark")`).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from risk.errors import RiskUserError
from risk.tiers.rule_columns import arrow_type
from risk.tiers.rule_set import TIER_RANK, TIERS, RuleSet


@dataclass(frozen=True)
class RuleEvaluation:
    """Which rules fired for each row, and the tier that follows (worst fired tier, else the default)."""

    rule_set: RuleSet
    fired: np.ndarray  # (n_rows, n_rules) bool, columns in rule-set order
    rank: np.ndarray  # (n_rows,) int tier rank, 0 = green

    @property
    def tiers(self) -> np.ndarray:
        return np.asarray(TIERS, dtype=object)[self.rank]

    def score(self) -> np.ndarray:
        """Tier rank plus a within-tier part in [0, 1): the fired rules' weight share.

        Within-tier part = sum of weights of all fired rules (any tier) / (sum of all weights + 1), so a
        person with more (or heavier) problems ranks above another in the same tier, and the score can
        never cross into the next tier.
        """
        weights = np.array([rule.weight for rule in self.rule_set.rules], dtype=float)
        within = (self.fired.astype(float) @ weights) / (weights.sum() + 1.0)
        return self.rank.astype(float) + within


def missing_input_columns(rule_set: RuleSet, columns: pd.Index) -> list[str]:
    return [c for c in rule_set.input_columns if c not in columns]


def _arrow_input(rule_set: RuleSet, features: pd.DataFrame) -> pa.Table:
    missing = missing_input_columns(rule_set, features.columns)
    if missing:
        raise RiskUserError(f"features are missing column(s) {', '.join(missing)} used by rule set "
                            f"'{rule_set.name}' {rule_set.version} ({rule_set.path})")
    arrays = {}
    for column in rule_set.input_columns:
        target = arrow_type(rule_set.column_types[column])
        try:
            array = pa.array(features[column], from_pandas=True)
            if pa.types.is_date(target) and pa.types.is_timestamp(array.type):
                array = array.cast(pa.timestamp("s"), safe=False)
            arrays[column] = array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise RiskUserError(f"features column '{column}' cannot be read as {target} "
                                f"({str(exc).splitlines()[0]})") from None
    return pa.table(arrays) if arrays else pa.table({"_": pa.nulls(len(features))})


def build_query(rule_set: RuleSet, source: str = "features_in") -> str:
    """SELECT with one `coalesce(condition, false)` column per rule, derived columns as a CTE chain."""
    ctes = []
    for column in rule_set.derived:
        ctes.append(f"d_{column.name} AS (SELECT *, ({column.sql}) AS {column.name} FROM {source})")
        source = f"d_{column.name}"
    selects = ",\n  ".join(f"coalesce(({rule.sql}), false) AS r{i}" for i, rule in enumerate(rule_set.rules))
    with_clause = ("WITH " + ",\n".join(ctes) + "\n") if ctes else ""
    return f"{with_clause}SELECT\n  {selects}\nFROM {source}"


def evaluate(rule_set: RuleSet, features: pd.DataFrame) -> RuleEvaluation:
    n_rows, n_rules = len(features), len(rule_set.rules)
    table = _arrow_input(rule_set, features)
    con = duckdb.connect()
    try:
        # Output rows must line up with input rows; DuckDB keeps scan order for a plain projection only
        # with this setting on (its default), so set it explicitly.
        con.execute("SET preserve_insertion_order = true")
        con.register("features_in", table)
        result = con.sql(build_query(rule_set)).to_arrow_table()
    finally:
        con.close()
    fired = np.zeros((n_rows, n_rules), dtype=bool)
    for i in range(n_rules):
        fired[:, i] = result.column(i).to_numpy(zero_copy_only=False)
    return evaluation_from_fired(rule_set, fired)


def evaluation_from_fired(rule_set: RuleSet, fired: np.ndarray) -> RuleEvaluation:
    """The tier of each row from its fired-rule matrix (also used by the Spark engine, risk/engines/)."""
    ranks = np.array([rule.rank for rule in rule_set.rules], dtype=np.int8)
    fired_ranks = np.where(fired, ranks, -1)
    worst = fired_ranks.max(axis=1, initial=-1)
    rank = np.where(worst < 0, TIER_RANK[rule_set.default_rule.tier], worst).astype(np.int8)
    return RuleEvaluation(rule_set, fired, rank)
