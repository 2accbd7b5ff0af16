"""docs/rules.md, generated from the default rule set so the document cannot drift from behaviour."""

from __future__ import annotations

import re

from risk.docs import generated
from risk.tiers.rule_set import TIERS, RuleSet, load_rule_set

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _condition_with_values(rule_set: RuleSet, condition: str) -> str:
    """The condition as written, each {threshold} replaced by its value (units in the thresholds table)."""
    return _PLACEHOLDER.sub(lambda m: f"{rule_set.thresholds[m.group(1)].value:g}", condition)


@generated("rules.md")
def rules_markdown() -> str:
    rule_set = load_rule_set()
    tiers_worst_first = list(reversed(TIERS))
    lines = [
        "# Rule baseline: default rule set",
        "",
        f"Rule set **{rule_set.name}** version **{rule_set.version}** "
        f"(fingerprint `{rule_set.fingerprint}`). "
        "Generated from `risk/definitions/rules/default.yaml` by `risk docs`; edit the YAML, not this file.",
        "",
        _cell(rule_set.description),
        "",
        "## How a tier is given",
        "",
        "- Each rule is an SQL condition over the feature columns (`docs/features.md`). "
        "A condition whose inputs are missing does not fire (an unknown result counts as false); "
        "rules about missing data say so explicitly with `IS NULL`.",
        "- A person's tier is the **worst tier of the rules that fire**; when none fires the default rule "
        f"`{rule_set.default_rule.id}` gives {rule_set.default_rule.tier}. The reasons list every rule that "
        "fired, worst first.",
        "- Next follow-up due = date of the last follow-up + the tier's interval (the as-of date when never "
        "followed up); days overdue = max(0, as-of − due).",
        "- Rule score (`decision_function`, used for ranking and AUROC) = tier rank "
        "(green 0, yellow 1, red 2) + weight of the fired rules ÷ (total weight + 1), always below "
        "the next tier. There is no probability.",
        "- A county can copy the YAML, change numbers under `thresholds:` or the intervals, give it its own "
        "`name`/`version`, check it with `risk rules check --rules FILE` and run with `--rules FILE`. Every "
        "output records the version and the fingerprint of the file.",
        "",
        "## Follow-up interval per tier",
        "",
        "| tier | interval (days) | 中文 | English |",
        "|---|---:|---|---|",
    ]
    for tier in tiers_worst_first:
        spec = rule_set.tiers[tier]
        lines.append(f"| {tier} | {spec.interval_days} | {spec.label_zh} | {spec.label_en} |")
    lines += ["", "## Rules", "",
              "| id | tier | group | condition (thresholds substituted) | 理由 | reason | source |",
              "|---|---|---|---|---|---|---|"]
    for rule in sorted(rule_set.rules, key=lambda r: -r.rank):  # stable: file order within a tier
        condition = _cell(_condition_with_values(rule_set, rule.condition))
        lines.append(f"| `{rule.id}` | {rule.tier} | {rule.group} | `{condition}` | "
                     f"{_cell(rule.reason_zh)} | {_cell(rule.reason_en)} | {rule.source} |")
    default = rule_set.default_rule
    lines.append(f"| `{default.id}` | {default.tier} | {default.group} | *no other rule fires* | "
                 f"{_cell(default.reason_zh)} | {_cell(default.reason_en)} | {default.source} |")
    notes = [rule for rule in rule_set.rules if rule.why]
    if notes:
        lines += ["", "Why some rules are as they are:", ""]
        lines += [f"- `{rule.id}`: {_cell(rule.why)}" for rule in notes]
    lines += ["", "## Derived columns", "", "| name | meaning | expression (thresholds substituted) |",
              "|---|---|---|"]
    for column in rule_set.derived:
        lines.append(f"| `{column.name}` | {_cell(column.description)} | "
                     f"`{_cell(_condition_with_values(rule_set, column.expression))}` |")
    lines += ["", "## Thresholds", "", "| name | value | unit | why |", "|---|---:|---|---|"]
    for threshold in rule_set.thresholds.values():
        lines.append(f"| `{threshold.name}` | {threshold.value:g} | {threshold.unit} | "
                     f"{_cell(threshold.why)} |")
    lines += ["", "## Sources", ""]
    lines += [f"- `{key}`: {_cell(citation)}" for key, citation in rule_set.sources.items()]
    lines.append("")
    return "\n".join(lines)
