"""The combined tier: rules first, the model may raise, never lower (definitions/model_policy.yaml `combine`).

combined = the rule tier, raised towards the model tier when the model tier is higher, by at most
max_raise_levels levels (2 = the plain maximum of the two tiers). The model never lowers a rule tier, so a
rule-red patient is red whatever the model says. Every row records why in combine_reason:

- `agree`               model tier equals the rule tier
- `model_raised`        model tier above the rule tier; combined raised (e.g. "model_raised: green -> red")
- `model_raise_capped`  model tier above the rule tier by more than max_raise_levels; raised by the cap only
- `rule_kept`           model tier below the rule tier; the rule tier stands and the disagreement is recorded
- `rule_only`           no model tier for this patient (no model configured, or the patient was not scored)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from risk.errors import RiskUserError
from risk.models.policy import ModelPolicy
from risk.tiers.rule_set import TIER_RANK, TIERS

COMBINE_COLUMNS = ["person_id", "tier", "combine_reason"]


def _tier_ranks(values: pd.Series, what: str) -> np.ndarray:
    ranks = values.map(TIER_RANK)
    unknown = values[ranks.isna() & values.notna()]
    if len(unknown):
        raise RiskUserError(f"{what} has unknown tier values {sorted(set(unknown.astype(str)))[:5]}")
    return ranks.to_numpy(dtype="float64")


def combine_tiers(
    rule_tiers: pd.DataFrame, model_tiers: pd.DataFrame | None, policy: ModelPolicy
) -> pd.DataFrame:
    """One row per rule_tiers row (same order): person_id, tier (combined), combine_reason.

    rule_tiers needs person_id and tier_rules (or tier); model_tiers needs person_id and tier_model.
    """
    max_raise = policy.combine.max_raise_levels
    rule_column = "tier_rules" if "tier_rules" in rule_tiers.columns else "tier"
    if "person_id" not in rule_tiers.columns or rule_column not in rule_tiers.columns:
        raise RiskUserError("rule tiers need columns person_id and tier_rules")
    rules = rule_tiers[["person_id", rule_column]].rename(columns={rule_column: "tier_rules"})
    if rules["tier_rules"].isna().any():
        raise RiskUserError("every patient needs a rule tier before tiers are combined")
    if model_tiers is None:
        merged = rules.assign(tier_model=pd.Series([None] * len(rules), dtype=object, index=rules.index))
    else:
        if model_tiers["person_id"].duplicated().any():
            raise RiskUserError("model tiers have more than one row for a person")
        merged = rules.merge(model_tiers[["person_id", "tier_model"]], on="person_id", how="left", sort=False)
    rule_rank = _tier_ranks(merged["tier_rules"], "rule tiers")
    model_rank = _tier_ranks(merged["tier_model"], "model tiers")
    has_model = ~np.isnan(model_rank)
    raised = np.where(
        has_model, np.minimum(np.maximum(rule_rank, model_rank), rule_rank + max_raise), rule_rank
    )
    combined = np.asarray(TIERS, dtype=object)[raised.astype(int)]

    reason = np.full(len(merged), "rule_only", dtype=object)
    rule_names = merged["tier_rules"].astype(str).to_numpy(dtype=object)
    model_names = merged["tier_model"].astype(str).to_numpy(dtype=object)
    agree = has_model & (model_rank == rule_rank)
    up = has_model & (model_rank > rule_rank)
    capped = up & (raised < model_rank)
    down = has_model & (model_rank < rule_rank)
    reason[agree] = "agree"
    reason[up & ~capped] = "model_raised: " + rule_names[up & ~capped] + " -> " + combined[up & ~capped]
    reason[capped] = (
        "model_raise_capped: "
        + rule_names[capped]
        + " -> "
        + combined[capped]
        + " (model "
        + model_names[capped]
        + ")"
    )
    reason[down] = "rule_kept: " + rule_names[down] + " (model " + model_names[down] + ")"
    return pd.DataFrame(
        {"person_id": merged["person_id"].to_numpy(), "tier": combined, "combine_reason": reason}
    )
