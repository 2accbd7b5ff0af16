"""One small engine interface for the nightly job: features, tiers, and a SQL connection over the
canonical tables. The caller picks the engine (`open_engine`); nothing below branches on its name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from risk.errors import RiskUserError

if TYPE_CHECKING:
    from risk.models.export import ExportedModel
    from risk.models.policy import ModelPolicy
    from risk.tiers.rule_set import RuleSet

ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class TierInputs:
    """What turns features into tiers: the rule set, the exported model (or none), the as-of date and the
    model policy (model tiers and combining)."""

    rule_set: RuleSet
    model: ExportedModel | None
    as_of: date
    policy: ModelPolicy

    @property
    def model_version(self) -> str:
        return self.model.version if self.model is not None else "none"


class Engine(Protocol):
    def features(self, canonical_dir: Path, as_of: date, out: Path) -> pd.DataFrame:
        """The as-of features, written to `out` (features.parquet), returned sorted by person_id."""

    def tiers(self, features: pd.DataFrame, inputs: TierInputs) -> pd.DataFrame:
        """The tiers table (rules, model, combined, next due) for the features rows."""

    def connection(self, canonical_dir: Path) -> Any:
        """An object with DuckDB's `register` and `execute(sql).df()` over the canonical tables."""


class DuckDBEngine:
    """The embedded engine: DuckDB feature SQL, rules evaluated by DuckDB, pandas tier assembly."""

    def features(self, canonical_dir: Path, as_of: date, out: Path) -> pd.DataFrame:
        from risk.features import compute_features

        return compute_features(canonical_dir, as_of, out=out)

    def tiers(self, features: pd.DataFrame, inputs: TierInputs) -> pd.DataFrame:
        from risk.tiers.assemble import finish_tiers
        from risk.tiers.model import score_model_tiers
        from risk.tiers.rules import assign_rule_tiers

        rule_set, model, policy = inputs.rule_set, inputs.model, inputs.policy
        rule_tiers = assign_rule_tiers(features, rules=rule_set)
        model_tiers = score_model_tiers(model, features, policy) if model is not None else None
        return finish_tiers(
            rule_tiers, model_tiers, features, rule_set.intervals, inputs.as_of, inputs.model_version, policy
        )

    def connection(self, canonical_dir: Path) -> Any:
        from risk.run.tables import canonical_connection

        return canonical_connection(canonical_dir)


def open_engine(name: str, run_dir: Path, spark_master: str | None = None) -> Engine:
    """The engine called `name` for a run assembled in `run_dir` (Spark also writes run_dir/partitioned/)."""
    if name == "duckdb":
        return DuckDBEngine()
    if name == "spark":
        from risk.engines.spark_nightly import SparkNightly

        return SparkNightly(run_dir, spark_master)
    raise RiskUserError(f"unknown engine '{name}' ({' or '.join(ENGINES)})")
