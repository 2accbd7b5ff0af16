"""`risk evaluate-tiers`: does the colour do what the list is for? (issue 15)

On a validated county as of a date whose 12-month outcome is known: features, the project's outcome label,
rule tiers, model tiers (the exported model), the combined tier and the one priority order, then the tier
judgement (risk/evaluation/tier_judgement.py) for rules, model and combined: share and event rate by tier
with 95 % CIs, overall and per sex, 10-year age band and township; red > yellow > green violations; events
caught in each team's first K at its capacity (capacity.yaml) and in its top 10 %.

Orders judged: rules = the one priority order of the rules alone; combined = the one priority order of the
nightly (urgency, colour, days overdue, model risk); model = model tier, then predicted risk.
Writes tier_judgement.md, tier_judgement.csv (tier x subgroup x method) and tier_judgement.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import RiskUserError
from risk.spreadsheet import write_csv


@dataclass
class TierJudgementResult:
    out_dir: Path
    judgement: dict[str, Any]
    lines: list[str]

    def render(self) -> str:
        return "\n".join([f"report: {self.out_dir / 'tier_judgement.md'}", *self.lines])


def evaluate_tiers(
    input_dir: Path,
    as_of: date,
    out_dir: Path,
    *,
    rules: Path | None = None,
    model_dir: Path | None = None,
    use_model: bool = True,
    features_path: Path | None = None,
) -> TierJudgementResult:
    from pipelines.nightly import default_model_dir
    from risk.evaluation.tier_judgement import judge_methods, judgement_lines, order_within, ten_year_bands
    from risk.features import compute_features
    from risk.models.labels import build_outcome_labels, data_end_date
    from risk.models.outcomes import outcome_definition
    from risk.models.policy import default_model_policy
    from risk.models.training_set import resolve_canonical_dir
    from risk.tiers.assemble import finish_tiers
    from risk.tiers.priority import finish_priority
    from risk.tiers.rule_set import TIER_RANK
    from risk.tiers.rules import RuleTierClassifier, assign_rule_tiers

    canonical = resolve_canonical_dir(input_dir)
    definition = outcome_definition()
    data_end = data_end_date(canonical)
    if (data_end - as_of).days < definition.horizon_days:
        raise RiskUserError(
            f"as of {as_of}: the {definition.horizon_days}-day outcome is not yet known "
            f"(data end {data_end}); "
            "choose an earlier date"
        )
    if features_path is not None:
        features = pd.read_parquet(features_path)
    else:
        features = compute_features(canonical, as_of)
    labels = build_outcome_labels(
        canonical, pd.DataFrame({"person_id": features["person_id"], "as_of": as_of})
    )
    y = labels["outcome"].to_numpy().astype(int)

    estimator = RuleTierClassifier(rules=rules).fit(features)
    rule_tiers = assign_rule_tiers(features, rules=estimator.rule_set_)
    model, model_version = None, "none"
    model_dir = model_dir or (default_model_dir() if use_model else None)
    if use_model and model_dir is not None:
        from risk.tiers.model import load_exported_model, score_model_tiers

        model = load_exported_model(model_dir)
        model_version = model.version
    policy = default_model_policy()
    model_tiers = score_model_tiers(model, features, policy) if model is not None else None
    intervals = estimator.intervals_
    tiers = finish_tiers(rule_tiers, model_tiers, features, intervals, as_of, model_version, policy)
    rules_only = finish_priority(
        rule_tiers.assign(tier=rule_tiers["tier_rules"]), features, estimator.intervals_, as_of
    )
    team = features["team_id"].astype(str).to_numpy()
    tier_sets = {"rules": tiers["tier_rules"].to_numpy(dtype=object)}
    orders = {"rules": rules_only["priority"].to_numpy()}
    if model is not None:
        probability = tiers["model_probability"].to_numpy(dtype=float)
        tier_sets["model"] = tiers["tier_model"].to_numpy(dtype=object)
        orders["model"] = order_within(
            team, -tiers["tier_model"].map(TIER_RANK).to_numpy(dtype=float), -probability
        )
        tier_sets["combined"] = tiers["tier"].to_numpy(dtype=object)
        orders["combined"] = tiers["priority"].to_numpy()
    groups = pd.DataFrame(
        {
            "sex": features["sex"].to_numpy(),
            "age_band": ten_year_bands(features["age"]).to_numpy(),
            "township": features["township_id"].to_numpy(),
        }
    )
    judgement = judge_methods(tier_sets, y, groups, orders, team)
    lines = judgement_lines(judgement)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = [
        f"# Tier judgement as of {as_of.isoformat()}",
        "",
        f"- data: {canonical} (data end {data_end}); outcome: outcomes.yaml {definition.version}, "
        f"{definition.horizon_days} days",
        f"- rule set {estimator.rule_set_version_}; model {model_version}",
        "",
    ]
    (out_dir / "tier_judgement.md").write_text("\n".join(header + lines), encoding="utf-8")
    write_csv(judgement["table"], out_dir / "tier_judgement.csv", encoding="utf-8")
    (out_dir / "tier_judgement.json").write_text(
        json.dumps(
            {
                "as_of": as_of.isoformat(),
                "n": judgement["n"],
                "events": judgement["events"],
                "rule_set": estimator.rule_set_version_,
                "model": model_version,
                "methods": judgement["methods"],
            },
            indent=2,
            default=_plain,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return TierJudgementResult(out_dir, judgement, lines)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
