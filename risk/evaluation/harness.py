"""evaluate(): every estimator (rules or models) through the same metrics on the same rows.

How each estimator is scored:
- ranking score (AUROC, AUPRC): decision_function for rule estimators (the ordinal rule score, finer than the
  three tiers), predicted probability for models;
- probability (Brier, calibration, decision curve): predict_proba. A rule estimator has no probability of its
  own; wrapped in RuleBaseline it predicts the event rate of its tier in the TRAINING data (out of sample). A
  bare rule estimator gets the event rate of its tier in the evaluation rows (in sample; flagged in notes);
- tier: predict() for rule estimators (tier strings), the model tier policy (model_policy.yaml) for models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import calibration_curve
from sklearn.utils.validation import check_is_fitted

from risk.evaluation import metrics
from risk.models.policy import ModelPolicy
from risk.tiers.model import assign_probability_tiers
from risk.tiers.rule_set import TIERS


@dataclass
class EstimatorScores:
    score: np.ndarray  # ranking score, higher = more risk
    probability: np.ndarray | None = None  # predicted probability of the outcome
    tier: np.ndarray | None = None  # red / yellow / green
    kind: str = "model"  # model or rules
    note: str = ""


class RuleBaseline(ClassifierMixin, BaseEstimator):
    """A rule estimator made comparable to models: its probability is the training event rate of its tier.

    `fit` fits a clone of `rules` (kept as `rules_`) and leaves the given estimator untouched, as
    scikit-learn's meta-estimators do; an already fitted rule estimator (with `rule_set_`) is used as is.
    """

    def __init__(self, rules: Any = None):
        self.rules = rules

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RuleBaseline:
        prefit = hasattr(self.rules, "rule_set_")
        self.rules_ = self.rules if prefit else clone(self.rules, safe=False).fit(X)
        tiers = np.asarray(self.rules_.predict(X)).astype(str)
        y = np.asarray(y, dtype="float64")
        overall = float(y.mean())
        self.tier_event_rate_ = {
            t: float(y[tiers == t].mean()) if (tiers == t).any() else overall for t in TIERS
        }
        self.classes_ = np.array([0, 1])
        return self

    def predict_tiers(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "rules_")
        return np.asarray(self.rules_.predict(X)).astype(str).astype(object)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_tiers(X)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "rules_")
        return np.asarray(self.rules_.decision_function(X), dtype="float64")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        rate = pd.Series(self.predict_tiers(X)).map(self.tier_event_rate_).to_numpy(dtype="float64")
        return np.column_stack([1 - rate, rate])


def _is_tier_array(values: np.ndarray) -> bool:
    return values.dtype.kind in "OUT" and set(pd.unique(values.astype(str))) <= set(TIERS)


def scores_for(estimator: Any, X: pd.DataFrame, policy: ModelPolicy) -> EstimatorScores:
    """Scores of one fitted estimator on X (see the module docstring for which method gives what)."""
    if isinstance(estimator, EstimatorScores):
        return estimator
    if isinstance(estimator, RuleBaseline):
        return EstimatorScores(
            score=estimator.decision_function(X),
            probability=estimator.predict_proba(X)[:, 1],
            tier=estimator.predict_tiers(X),
            kind="rules",
        )
    if hasattr(estimator, "predict_proba"):
        probability = estimator.predict_proba(X)[:, 1]
        tier = assign_probability_tiers(probability, policy)
        return EstimatorScores(score=probability, probability=probability, tier=tier, kind="model")
    if hasattr(estimator, "decision_function"):
        score = np.asarray(estimator.decision_function(X), dtype="float64")
        predicted = np.asarray(estimator.predict(X))
        tier = predicted.astype(object) if _is_tier_array(predicted) else None
        return EstimatorScores(score=score, tier=tier, kind="rules")
    raise TypeError(f"{type(estimator).__name__} has neither predict_proba nor decision_function")


def age_bands(age: pd.Series, lower_bounds: list[int]) -> pd.Series:
    bounds = sorted(int(b) for b in lower_bounds)
    labels = [f"{low}-{high - 1}" for low, high in zip(bounds, bounds[1:], strict=False)] + [f"{bounds[-1]}+"]
    labels = [f"<{bounds[0]}", *labels]
    edges = [-np.inf, *bounds, np.inf]
    return pd.cut(pd.to_numeric(age, errors="coerce"), edges, right=False, labels=labels).astype(object)


@dataclass
class EvaluationResult:
    n: int
    events: int
    overall: pd.DataFrame  # one row per estimator
    tiers: pd.DataFrame  # estimator x tier: n, share, events, event rate
    subgroups: pd.DataFrame  # estimator x subgroup column x level
    differences: pd.DataFrame  # paired bootstrap differences vs the reference estimator
    decision_curve: pd.DataFrame  # threshold x estimator net benefit (+ treat all / none)
    calibration_curves: dict[str, pd.DataFrame]
    scores: dict[str, EstimatorScores]
    y: np.ndarray
    reference: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _tier_metrics(tier: np.ndarray | None, y: np.ndarray) -> dict[str, float]:
    if tier is None:
        return {
            "red_share": np.nan,
            "red_sensitivity": np.nan,
            "red_ppv": np.nan,
            "red_or_yellow_sensitivity": np.nan,
        }
    tier = np.asarray(tier).astype(str)
    red, raised = tier == "red", np.isin(tier, ["red", "yellow"])
    events = y.sum()
    return {
        "red_share": float(red.mean()),
        "red_sensitivity": float(y[red].sum() / events) if events else np.nan,
        "red_ppv": float(y[red].mean()) if red.any() else np.nan,
        "red_or_yellow_sensitivity": float(y[raised].sum() / events) if events else np.nan,
    }


def _probability_or_tier_rate(scores: EstimatorScores, y: np.ndarray) -> np.ndarray | None:
    if scores.probability is not None:
        return np.asarray(scores.probability, dtype="float64")
    if scores.tier is None:
        return None
    rates = pd.Series(y).groupby(np.asarray(scores.tier).astype(str)).mean()
    return pd.Series(np.asarray(scores.tier).astype(str)).map(rates).to_numpy(dtype="float64")


def _summary_rows(
    scores: dict[str, EstimatorScores], y: np.ndarray, resamples: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    boot = metrics.bootstrap_auc_ap({k: s.score for k, s in scores.items()}, y, resamples, seed)
    rows = []
    for name, s in scores.items():
        auc, ap = metrics.auc_ap(s.score, y)
        auc_lo, auc_hi = metrics.percentile_interval(boot[name][0])
        ap_lo, ap_hi = metrics.percentile_interval(boot[name][1])
        probability = _probability_or_tier_rate(s, y)
        row: dict[str, Any] = {
            "estimator": name,
            "kind": s.kind,
            "n": len(y),
            "events": int(y.sum()),
            "auroc": auc,
            "auroc_low": auc_lo,
            "auroc_high": auc_hi,
            "auprc": ap,
            "auprc_low": ap_lo,
            "auprc_high": ap_hi,
        }
        if probability is not None:
            slope, intercept = metrics.calibration_slope_intercept(probability, y)
            row |= {
                "brier": metrics.brier(probability, y),
                "calibration_slope": slope,
                "calibration_intercept": intercept,
                "mean_predicted": float(probability.mean()),
            }
        row |= _tier_metrics(s.tier, y)
        rows.append(row)
    return rows, boot


def evaluate(
    estimators: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    groups: pd.DataFrame | None,
    policy: ModelPolicy,
    reference: str | None = None,
) -> EvaluationResult:
    """Evaluate fitted estimators (or precomputed EstimatorScores) on the same rows.

    groups: optional frame aligned with X whose columns (e.g. sex, age_band, township_id) define subgroups.
    reference: the estimator the others are compared with (paired bootstrap differences); default the first
    rule estimator, else the first one.
    """
    settings = policy.evaluation
    resamples, seed = settings.bootstrap_resamples, settings.seed
    y = np.asarray(y).astype(int)
    scores = {name: scores_for(est, X, policy) for name, est in estimators.items()}
    notes = [s.note for s in scores.values() if s.note]
    for name, s in scores.items():
        if len(s.score) != len(y):
            raise ValueError(f"{name}: {len(s.score)} scores for {len(y)} rows")
        if s.probability is None and s.tier is not None:
            notes.append(
                f"{name}: no probability of its own; calibration metrics use the event rate of its "
                "tier in the evaluated rows (in sample, optimistic)."
            )
    if reference is None:
        reference = next((k for k, s in scores.items() if s.kind == "rules"), next(iter(scores)))

    rows, boot = _summary_rows(scores, y, resamples, seed)
    overall = pd.DataFrame(rows)
    differences = []
    for name in scores:
        if name == reference:
            continue
        for metric, position in (("auroc", 0), ("auprc", 1)):
            delta = boot[name][position] - boot[reference][position]
            low, high = metrics.percentile_interval(delta)
            point = float(
                overall.set_index("estimator").at[name, metric]
                - overall.set_index("estimator").at[reference, metric]
            )
            differences.append(
                {
                    "estimator": name,
                    "versus": reference,
                    "metric": metric,
                    "difference": point,
                    "low": low,
                    "high": high,
                }
            )

    tier_rows = []
    for name, s in scores.items():
        if s.tier is None:
            continue
        tiers = np.asarray(s.tier).astype(str)
        for tier in reversed(TIERS):
            mask = tiers == tier
            tier_rows.append(
                {
                    "estimator": name,
                    "tier": tier,
                    "n": int(mask.sum()),
                    "share": float(mask.mean()),
                    "events": int(y[mask].sum()),
                    "event_rate": float(y[mask].mean()) if mask.any() else np.nan,
                }
            )

    grid = settings.decision_thresholds
    thresholds = np.round(np.arange(float(grid.start), float(grid.stop) + 1e-9, float(grid.step)), 4)
    curve = pd.DataFrame(
        {
            "threshold": thresholds,
            "treat_all": metrics.treat_all_net_benefit(y, thresholds),
            "treat_none": 0.0,
        }
    )
    calibration: dict[str, pd.DataFrame] = {}
    for name, s in scores.items():
        probability = _probability_or_tier_rate(s, y)
        if probability is None:
            continue
        curve[name] = metrics.net_benefit(probability, y, thresholds)
        observed, predicted = calibration_curve(
            y, probability, n_bins=settings.calibration_bins, strategy="quantile"
        )
        calibration[name] = pd.DataFrame({"predicted": predicted, "observed": observed})

    subgroup_rows = []
    min_events = settings.min_subgroup_events
    if groups is not None:
        for column in groups.columns:
            values = (
                groups[column].astype(object).where(groups[column].notna(), "unknown").astype(str).to_numpy()
            )
            for level in sorted(pd.unique(values)):
                mask = values == level
                y_level = y[mask]
                events = int(y_level.sum())
                base = {
                    "group": column,
                    "level": level,
                    "n": int(mask.sum()),
                    "events": events,
                    "event_rate": float(y_level.mean()),
                }
                enough = min_events <= events < mask.sum()
                sub_scores = {
                    k: EstimatorScores(
                        s.score[mask],
                        None if s.probability is None else s.probability[mask],
                        None if s.tier is None else np.asarray(s.tier)[mask],
                        s.kind,
                    )
                    for k, s in scores.items()
                }
                if enough:
                    sub_rows, _ = _summary_rows(sub_scores, y_level, resamples, seed)
                else:
                    sub_rows = [
                        {"estimator": k, **_tier_metrics(s.tier, y_level)} for k, s in sub_scores.items()
                    ]
                for row in sub_rows:
                    row.pop("n", None)
                    row.pop("events", None)
                    row.pop("kind", None)
                    subgroup_rows.append(base | row)
    return EvaluationResult(
        n=len(y),
        events=int(y.sum()),
        overall=overall,
        tiers=pd.DataFrame(tier_rows),
        subgroups=pd.DataFrame(subgroup_rows),
        differences=pd.DataFrame(differences),
        decision_curve=curve,
        calibration_curves=calibration,
        scores=scores,
        y=y,
        reference=reference,
        settings={"bootstrap_resamples": resamples, "seed": seed, "tiering": policy.section("tiering")},
        notes=notes,
    )
