"""Tiers: rule baseline (risk.tiers.rules), model and combined tiers."""

from risk.tiers.rule_set import TIER_RANK, TIERS, RuleSet, default_rule_set_path, load_rule_set
from risk.tiers.rules import RuleTierClassifier, assign_rule_tiers

__all__ = ["TIERS", "TIER_RANK", "RuleSet", "RuleTierClassifier", "assign_rule_tiers",
           "default_rule_set_path", "load_rule_set"]
