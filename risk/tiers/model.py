"""Model tiers: predicted 12-month risk -> red / yellow / green (definitions/model_policy.yaml `tiering`).

capacity:    red = the red_share of scored patients with the highest risk (what teams can see every two
             weeks), yellow = the next yellow_share; optionally ranked within a column such as team_id.
probability: red when risk >= red_at_least, yellow when >= yellow_at_least.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from risk.errors import RiskUserError
from risk.models.drift import DriftReport, assess_drift, load_profile
from risk.models.explanations import calibrated_probability, model_inputs, top_reasons_text
from risk.models.export import ExportedModel, load_exported_model
from risk.models.policy import ModelPolicy

MODEL_TIER_COLUMNS = ["person_id", "model_probability", "tier_model", "model_reasons"]

__all__ = [
    "ExportedModel",
    "assign_probability_tiers",
    "check_model_drift",
    "load_exported_model",
    "score_model_tiers",
]


def _capacity_tiers(probability: np.ndarray, red_share: float, yellow_share: float) -> np.ndarray:
    n = len(probability)
    tiers = np.full(n, "green", dtype=object)
    if n == 0:
        return tiers
    order = np.argsort(-probability, kind="stable")  # ties keep input order, so the share is exact
    n_red = min(n, math.ceil(red_share * n))
    n_yellow = min(n - n_red, math.ceil((red_share + yellow_share) * n) - n_red)
    tiers[order[:n_red]] = "red"
    tiers[order[n_red : n_red + n_yellow]] = "yellow"
    return tiers


def assign_probability_tiers(
    probability: np.ndarray | pd.Series, policy: ModelPolicy, groups: pd.Series | None = None
) -> np.ndarray:
    """Tier strings for predicted probabilities under the policy's tiering method."""
    tiering = policy.tiering
    probability = np.asarray(probability, dtype="float64")
    if np.isnan(probability).any():
        raise RiskUserError("a predicted probability is missing; cannot assign model tiers")
    if tiering.method == "probability":
        cutoffs = tiering.probability
        return np.where(
            probability >= float(cutoffs.red_at_least),
            "red",
            np.where(probability >= float(cutoffs.yellow_at_least), "yellow", "green"),
        ).astype(object)
    red_share = float(tiering.capacity.red_share)
    yellow_share = float(tiering.capacity.yellow_share)
    if groups is None:
        return _capacity_tiers(probability, red_share, yellow_share)
    tiers = np.empty(len(probability), dtype=object)
    for _, positions in pd.Series(np.arange(len(probability))).groupby(np.asarray(groups)).groups.items():
        index = np.asarray(positions)
        tiers[index] = _capacity_tiers(probability[index], red_share, yellow_share)
    return tiers


def score_model_tiers(model: ExportedModel, features: pd.DataFrame, policy: ModelPolicy) -> pd.DataFrame:
    """person_id, model_probability, tier_model, model_reasons (JSON list of {feature, zh, en, log_odds})."""
    try:
        from risk.features import FEATURE_SET_VERSION
    except ImportError:
        FEATURE_SET_VERSION = None  # noqa: N806 - the feature layer is absent only in stripped installs
    model.check_features(features.columns, FEATURE_SET_VERSION)
    if "person_id" not in features.columns:
        raise RiskUserError("features need a person_id column to be scored")
    if len(features) == 0:  # e.g. an as-of date before anyone was enrolled; sklearn refuses 0 rows
        return pd.DataFrame(
            {
                "person_id": pd.Series([], dtype=object),
                "model_probability": pd.Series([], dtype=float),
                "tier_model": pd.Series([], dtype=object),
                "model_reasons": pd.Series([], dtype=object),
            }
        )
    estimator = model.estimator
    inputs = model_inputs(estimator, features)  # the model frame and preprocessing, once for both uses
    probability = calibrated_probability(estimator, features, inputs)
    within = policy.tiering.capacity.within
    if within and within not in features.columns:
        raise RiskUserError(f"model_policy.yaml ranks capacity within '{within}', which the features lack")
    tiers = assign_probability_tiers(probability, policy, features[within] if within else None)
    reasons = top_reasons_text(estimator, features, policy.explanations.top_n, inputs)  # pandas str
    return pd.DataFrame(
        {
            "person_id": features["person_id"].to_numpy(),
            "model_probability": probability,
            "tier_model": tiers,
            "model_reasons": reasons,
        }
    )


def check_model_drift(
    model: ExportedModel, features: pd.DataFrame, policy: ModelPolicy, accept: bool = False
) -> DriftReport:
    """PSI of the features to score against the model's training profile. A model whose training
    population the data do not resemble (or cannot be shown to) is refused unless `accept`
    (--accept-model-drift), which turns the refusal into a warning of the run."""
    report = assess_drift(model.version, load_profile(model.path), features, policy.drift)
    if report.problem is not None:
        if not accept:
            raise RiskUserError(
                f"{report.problem}; run with --no-model (rules only) or --accept-model-drift to score anyway"
            )
        report.warnings.append(f"{report.problem}: model scored anyway (--accept-model-drift)")
    return report
