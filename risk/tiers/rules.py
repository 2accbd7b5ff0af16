"""The rule baseline: a scikit-learn compatible classifier over the features frame, and the tier table.

`RuleTierClassifier` learns nothing; `fit` loads and validates the rule set. It has no `predict_proba`
(rule tiers are not probabilities): an evaluation harness should rank with `decision_function`, an
ordinal score = tier rank (green 0, yellow 1, red 2) + a within-tier part in [0, 1) (see
`RuleEvaluation.score`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from risk.errors import RiskUserError
from risk.tiers.priority import due_dates, ordered_reasons, rule_urgency
from risk.tiers.rule_engine import RuleEvaluation, evaluate
from risk.tiers.rule_set import TIERS, RuleSet, load_rule_set

RuleSource = str | Path | None


class RuleTierClassifier(ClassifierMixin, BaseEstimator):
    """Red / yellow / green from a versioned rule-set file (None = the packaged default rule set).

    X must be a pandas DataFrame with the feature columns the rule set uses (docs/architecture.md).
    Fitted attributes: rule_set_ (RuleSet), rule_set_version_, rule_set_fingerprint_, intervals_ (tier ->
    follow-up days), classes_ = ['green', 'yellow', 'red'] (rank order, not alphabetical),
    feature_names_in_, n_features_in_.
    """

    def __init__(self, rules: RuleSource = None):
        self.rules = rules

    def fit(self, X: pd.DataFrame, y: object = None) -> RuleTierClassifier:
        rule_set = load_rule_set(self.rules)
        _check_frame(X)
        self.rule_set_ = rule_set
        self.rule_set_version_ = rule_set.version
        self.rule_set_fingerprint_ = rule_set.fingerprint
        self.intervals_ = rule_set.intervals
        self.classes_ = np.asarray(TIERS, dtype=object)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def evaluate(self, X: pd.DataFrame) -> RuleEvaluation:
        check_is_fitted(self, "rule_set_")
        _check_frame(X)
        return evaluate(self.rule_set_, X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Tier per row ('green' / 'yellow' / 'red')."""
        return self.evaluate(X).tiers

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Ordinal risk score: tier rank + within-tier share of fired rule weights (< 1)."""
        return self.evaluate(X).score()

    def explain(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per row (in X's order): person_id, tier, fired_rule_ids, reasons_zh, reasons_en.

        The lists hold every rule that fired, worst tier first (file order within a tier); a row where no
        rule fired lists the default rule.
        """
        result = self.evaluate(X)
        patterns, inverse = _fired_patterns(result)
        explained = [ordered_reasons(result.rule_set, pattern) for pattern in patterns]
        frame = pd.DataFrame({
            "person_id": _person_ids(X),
            "tier": result.tiers,
            "fired_rule_ids": [[r.id for r in explained[i]] for i in inverse],
            "reasons_zh": [[r.reason_zh for r in explained[i]] for i in inverse],
            "reasons_en": [[r.reason_en for r in explained[i]] for i in inverse],
        })
        return frame

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.target_tags.required = False
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.input_tags.allow_nan = True
        tags.no_validation = True  # X is checked against the rule set's columns, not by check_array
        return tags


def assign_rule_tiers(features: pd.DataFrame, rules: RuleSource | RuleSet = None) -> pd.DataFrame:
    """The rule part of tiers.parquet: one row per features row, same order.

    Columns: person_id, as_of, tier_rules, rule_score (decision_function), reasons (JSON list of
    {id, tier, zh, en}: the colour's rule, the due date's rule, the rest; see risk/tiers/priority.py),
    next_due_on (earliest of fu_last_date + the tier's interval and + due_days of fired urgent rules; as_of
    for an emergency or when never followed up), days_overdue (max(0, as_of - next_due_on) in days),
    urgency (0 none, 1 review, 2 refer, 3 emergency), urgency_due_days (fewest due_days of the fired urgent
    rules, null when none), rule_set_version, rule_set_fingerprint. Dates are DATE (pyarrow date32).
    """
    for column in ("person_id", "as_of", "fu_last_date"):
        if column not in features.columns:
            raise RiskUserError(f"features are missing column '{column}' needed to assign rule tiers")
    rule_set = rules if isinstance(rules, RuleSet) else load_rule_set(rules)
    return rule_tiers_from_evaluation(features, evaluate(rule_set, features))


def rule_tiers_from_evaluation(features: pd.DataFrame, result: RuleEvaluation) -> pd.DataFrame:
    """assign_rule_tiers after the conditions were evaluated (by DuckDB here, by Spark in risk/engines/).

    `features` needs person_id, as_of and fu_last_date, rows in the order of `result`.
    """
    rule_set = result.rule_set
    n_rows = len(features)
    patterns, inverse = _fired_patterns(result)
    reasons = pa.array([_reasons_json(rule_set, pattern) for pattern in patterns], type=pa.string())

    as_of = _as_days(features["as_of"])
    last_follow_up = _as_days(features["fu_last_date"])
    urgency, due_days = rule_urgency(rule_set, result.fired)
    next_due, overdue = due_dates(result.tiers, urgency, due_days, last_follow_up, as_of, rule_set.intervals)

    # Built as Arrow and converted once: per-row Python strings would dominate the time at 1M rows.
    constant = np.zeros(n_rows, dtype=np.int64)
    table = pa.table({
        "person_id": pa.array(features["person_id"], from_pandas=True),
        "as_of": pa.array(as_of, type=pa.date32(), from_pandas=True),
        "tier_rules": pa.array(TIERS, type=pa.string()).take(result.rank.astype(np.int64)),
        "rule_score": pa.array(result.score(), type=pa.float64()),
        "reasons": reasons.take(inverse.astype(np.int64)),
        "next_due_on": pa.array(next_due, type=pa.date32(), from_pandas=True),
        "days_overdue": pa.array(overdue.astype(np.int32)),
        "urgency": pa.array(urgency.astype(np.int8)),
        "urgency_due_days": pa.array(due_days, type=pa.float64(), from_pandas=True),
        "rule_set_version": pa.array([rule_set.version], type=pa.string()).take(constant),
        "rule_set_fingerprint": pa.array([rule_set.fingerprint], type=pa.string()).take(constant),
    })
    return table.to_pandas(types_mapper={pa.date32(): pd.ArrowDtype(pa.date32())}.get)


def _reasons_json(rule_set: RuleSet, pattern: np.ndarray) -> str:
    reasons = [{"id": r.id, "tier": r.tier, "zh": r.reason_zh, "en": r.reason_en}
               for r in ordered_reasons(rule_set, pattern)]
    return json.dumps(reasons, ensure_ascii=False)


def _check_frame(X: object) -> None:
    if not isinstance(X, pd.DataFrame):
        raise RiskUserError("rule tiers need a pandas DataFrame of named feature columns, "
                            f"got {type(X).__name__}")


def _person_ids(X: pd.DataFrame) -> np.ndarray:
    return X["person_id"].to_numpy() if "person_id" in X.columns else X.index.to_numpy()


def _fired_patterns(result: RuleEvaluation) -> tuple[np.ndarray, np.ndarray]:
    """Distinct fired-rule patterns and each row's pattern index: reasons are built once per pattern."""
    fired = result.fired
    if fired.shape[0] == 0:
        return np.zeros((0, fired.shape[1]), dtype=bool), np.zeros(0, dtype=np.intp)
    if fired.shape[1] <= 63:  # one integer code per row: far faster than np.unique(axis=0)
        codes = fired.astype(np.int64) @ (np.int64(1) << np.arange(fired.shape[1], dtype=np.int64))
        unique_codes, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        return fired[first], inverse.reshape(-1)
    patterns, inverse = np.unique(fired, axis=0, return_inverse=True)
    return patterns, inverse.reshape(-1)


def _as_days(values: pd.Series) -> np.ndarray:
    """Any date-like column (date objects, datetime64, arrow date) as numpy datetime64[D], NaT for null."""
    try:
        return pd.to_datetime(values).to_numpy(dtype="datetime64[D]")
    except (ValueError, TypeError) as exc:
        raise RiskUserError(f"features column '{values.name}' is not a date column ({exc})") from None


def apply_rules_to_file(features_path: Path, out: Path, rules: RuleSource = None) -> str:
    """Read a features parquet, write the rule tiers parquet, return a one-line summary."""
    if not Path(features_path).is_file():
        raise RiskUserError(f"{features_path}: features file not found")
    try:
        features = pd.read_parquet(features_path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise RiskUserError(f"{features_path}: cannot read as parquet ({exc})") from None
    tiers = assign_rule_tiers(features, rules)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tiers.to_parquet(out, index=False)
    counts = tiers["tier_rules"].value_counts()
    mix = ", ".join(f"{tier} {int(counts.get(tier, 0)):,}" for tier in reversed(TIERS))
    version = tiers["rule_set_version"].iloc[0] if len(tiers) else load_rule_set(rules).version
    return f"wrote {out}: {len(tiers):,} persons ({mix}), rule set {version}"
