"""One evaluation harness for rule and model tiers: discrimination with bootstrap CIs, calibration, decision
curves, event rates per tier, red-tier sensitivity / PPV, the same by subgroup; written as a report."""

from risk.evaluation.harness import EstimatorScores, EvaluationResult, RuleBaseline, evaluate, scores_for
from risk.evaluation.report import write_report

__all__ = ["EstimatorScores", "EvaluationResult", "RuleBaseline", "evaluate", "scores_for", "write_report"]
