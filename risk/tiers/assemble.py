"""Tier assembly: rule tiers + model tiers -> the tiers table (combined tier, then due dates, urgency,
model reasons and priority from risk/tiers/priority.py, the one next-due rule). Row-wise, so the Spark
engine runs `finish_tiers` per batch."""

from __future__ import annotations

from datetime import date

import pandas as pd

from risk.models.policy import ModelPolicy
from risk.tiers.combine import combine_tiers
from risk.tiers.priority import finish_priority


def finish_tiers(
    rule_tiers: pd.DataFrame,
    model_tiers: pd.DataFrame | None,
    features: pd.DataFrame,
    intervals: dict[str, int],
    as_of: date,
    model_version: str,
    policy: ModelPolicy,
    explain_model: bool = True,
) -> pd.DataFrame:
    """Rule tiers + model tiers -> the tiers table: combined tier and reason, model columns (null
    without a model), due dates and priority once the colour is final, model version.

    `explain_model=False` leaves out the model's reason where it raised the colour: that reason compares
    the patient with the median of everyone scored, so an engine that finishes tiers per batch (Spark)
    adds it once over the whole run (`add_model_reasons`)."""
    combined = combine_tiers(rule_tiers, model_tiers, policy)
    tiers = rule_tiers.merge(combined, on="person_id", how="left")
    if model_tiers is not None:
        tiers = tiers.merge(model_tiers, on="person_id", how="left")
    else:
        tiers["tier_model"] = None
        tiers["model_probability"] = float("nan")
        tiers["model_reasons"] = None
    tiers = finish_priority(tiers, features, intervals, as_of, explain_model=explain_model)
    tiers["model_version"] = model_version
    return tiers
