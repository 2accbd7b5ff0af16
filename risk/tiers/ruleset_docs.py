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
        "## What the colour means",
        "",
        "- **The colour is the risk level**, so that high and low risk are seen at a glance: "
        "**red** = very high cardiovascular risk (2018 guideline stratification; established disease) or an "
        "emergency criterion; **yellow** = high risk; **green** = low or medium risk. "
        "Each patient's colour is explained in one sentence: "
        "the first reason.",
        "- **Urgency** (emergency: due now; refer and review: due within `due_days` of the last follow-up; "
        "overdue) sets the next due date, the action and the place in the list, **not the colour**. "
        "Rules with an urgency and tier green change the due date and the order "
        "without colouring anyone.",
        "- Emergency criteria (BP ≥ 180/110, FPG ≥ 16.7 or ≤ 3.9 mmol/L, danger symptoms) are red and "
        "due now.",
        "- With a model, the combined colour is the rule colour raised to the model's tier "
        "(`model_policy.yaml`); the first reason then gives the predicted risk against a typical patient of "
        "the same age and sex.",
        "",
        "## Priority order (every list, the web team list and the API)",
        "",
        "Computed once (`risk/tiers/priority.py`, column `priority` of tiers.parquet): urgency level first "
        "(3 emergency, 2 referral, 1 due within 14 days — a review rule, an overdue visit or a visit falling "
        "due — , 0 later), then colour (red first), then days overdue (most first), then the finer "
        "risk "
        "score (model probability, else the rule score), then person_id.",
        "",
        "## Capacity and red share (county settings, `risk/definitions/capacity.yaml`)",
        "",
        *_capacity_lines(),
        "",
        "## How the colours perform",
        "",
        *performance_lines(),
        "",
        "## How a tier is given",
        "",
        "- Each rule is an SQL condition over the feature columns (`docs/features.md`). "
        "A condition whose inputs are missing does not fire (an unknown result counts as false); "
        "rules about missing data say so explicitly with `IS NULL`.",
        "- A person's colour is the **worst tier of the rules that fire**; when none colours, the default "
        "rule "
        f"`{rule_set.default_rule.id}` gives {rule_set.default_rule.tier}. Reasons: the colour's rule first, "
        "then the rule that sets the due date, then the rest; a rule listed in another fired rule's "
        "`supersedes` is not shown (nested levels show only the highest).",
        "- Next follow-up due = the earliest of: last follow-up + the colour's interval, last follow-up + "
        "`due_days` of every fired urgent rule; the as-of date for an emergency or when never followed up. "
        "Days overdue = max(0, as-of − due).",
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
    lines += [
        "",
        "## Rules",
        "",
        "| id | colour | urgency (due days) | group | condition (thresholds substituted) | 理由 "
        "| reason "
        "| source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in sorted(rule_set.rules, key=lambda r: -r.rank):  # stable: file order within a tier
        condition = _cell(_condition_with_values(rule_set, rule.condition))
        urgency = f"{rule.urgency} ({rule.due_days})" if rule.urgency else ""
        lines.append(
            f"| `{rule.id}` | {rule.tier} | {urgency} | {rule.group} | `{condition}` | "
            f"{_cell(rule.reason_zh)} | {_cell(rule.reason_en)} | {rule.source} |"
        )
    default = rule_set.default_rule
    lines.append(
        f"| `{default.id}` | {default.tier} | | {default.group} | *no rule colours* | "
        f"{_cell(default.reason_zh)} | {_cell(default.reason_en)} | {default.source} |"
    )
    nested = [rule for rule in rule_set.rules if rule.supersedes]
    if nested:
        lines += ["", "Nested levels (a fired rule hides these from the reasons):", ""]
        lines += [f"- `{rule.id}` hides " + ", ".join(f"`{x}`" for x in rule.supersedes) for rule in nested]
    notes = [rule for rule in rule_set.rules if rule.why]
    if notes:
        lines += ["", "Why some rules are as they are:", ""]
        lines += [f"- `{rule.id}`: {_cell(rule.why)}" for rule in notes]
    lines += [
        "",
        "## Derived columns",
        "",
        "| name | meaning | expression (thresholds substituted) |",
        "|---|---|---|",
    ]
    for column in rule_set.derived:
        lines.append(
            f"| `{column.name}` | {_cell(column.description)} | "
            f"`{_cell(_condition_with_values(rule_set, column.expression))}` |"
        )
    lines += [
        "",
        "## Thresholds",
        "",
        "A value outside its plausible range is refused (`risk rules check`, every run).",
        "",
        "| name | value | plausible | unit | why |",
        "|---|---:|---|---|---|",
    ]
    for threshold in rule_set.thresholds.values():
        low, high = threshold.plausible or (float("nan"), float("nan"))
        lines.append(
            f"| `{threshold.name}` | {threshold.value:g} | {low:g}–{high:g} | {threshold.unit} | "
            f"{_cell(threshold.why)} |"
        )
    lines += ["", "## Sources", ""]
    lines += [f"- `{key}`: {_cell(citation)}" for key, citation in rule_set.sources.items()]
    lines.append("")
    return "\n".join(lines)


def _current_model_version() -> str | None:
    from risk.models.export import CURRENT_POINTER, approved_models_dir

    pointer = approved_models_dir() / CURRENT_POINTER
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _rate(cell: list[float | None]) -> str:
    rate, low, high = cell
    return _pct(rate) if low is None or high is None else f"{_pct(rate)} ({low:.1%}–{high:.1%})"


def _ratio(cell: list[float | None]) -> str:
    value, low, high = cell
    return f"{value:.1f}" if low is None or high is None else f"{value:.1f} ({low:.1f}–{high:.1f})"


def performance_lines(
    record: dict | None = None,
    rule_set_version: str | None = None,
    model_version: str | None = None,
    red_share_maximum: float | None = None,
) -> list[str]:
    """The measured figures of tier_performance.yaml as a table, the done-means of issue 15 judged from
    them, and a warning when the measured rule set or model is not the current one."""
    from risk.definitions import capacity_settings, definition_path, load_yaml

    record = record if record is not None else load_yaml(definition_path("tier_performance.yaml"))
    if rule_set_version is None:
        rule_set_version = load_rule_set().version
    if model_version is None:
        model_version = _current_model_version()
    if red_share_maximum is None:
        red_share_maximum = float(capacity_settings()["red_share"]["maximum"])
    target = float(record["targets"]["red_to_green_at_least"])
    lines = [
        f"Measured {record['measured_on']} with `risk evaluate-tiers` as of {record['as_of']} "
        f"(outcome: {record['outcome']}) on the default synthetic county; "
        f"generator {record['generator']}; rule set {record['rule_set']}, "
        f"model `{record['model']}`. Command: `{_cell(record['command'])}` "
        "(100k: `--persons 100000`). Figures from `risk/definitions/tier_performance.yaml`; "
        "event rates with 95 % CIs.",
        "",
    ]
    stale = []
    if record["rule_set"] != rule_set_version:
        stale.append(f"rule set {rule_set_version}")
    if model_version is not None and record["model"] != model_version:
        stale.append(f"model `{model_version}`")
    if stale:
        lines += [
            f"**Out of date: the current {' and '.join(stale)} differ from the measured ones; "
            "re-measure and update tier_performance.yaml.**",
            "",
        ]
    lines += [
        "| method | county | patients (events) | red / yellow / green share | event rate red | yellow "
        "| green | red ÷ green | sex / age bands not red > yellow > green | events in each team's top 10 % |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    counties = [record["before"], *record["counties"]]
    for method in ("rules", "model", "combined"):
        for county in counties:
            m = county["methods"][method]
            share = m["share"]
            bands = ", ".join(m["not_ordered"]) or "none"
            lines.append(
                f"| {method} | {county['label']} | {county['patients']:,} ({county['events']:,}) | "
                f"{share['red']:.1%} / {share['yellow']:.1%} / {share['green']:.1%} | "
                f"{_rate(m['event_rate']['red'])} | {_rate(m['event_rate']['yellow'])} | "
                f"{_rate(m['event_rate']['green'])} | {_ratio(m['red_to_green'])} | {bands} | "
                f"{m['top_10_percent']:.1%} |"
            )
    lines += [
        "",
        f"Done-means of issue 15 (red share ≤ {red_share_maximum:.0%}, red ≥ {target:g}× green, "
        f"red > yellow > green in every sex and 10-year band from 35 with ≥ "
        f"{record['targets']['min_events_per_subgroup']} events), after:",
        "",
    ]
    for county in record["counties"]:
        for method, m in county["methods"].items():
            missed = []
            if method != "model" and m["share"]["red"] > red_share_maximum:
                missed.append(f"red share {m['share']['red']:.1%}")
            if m["red_to_green"][0] < target:
                missed.append(f"red ÷ green {m['red_to_green'][0]:.1f}")
            if m["not_ordered"]:
                missed.append("not ordered: " + ", ".join(m["not_ordered"]))
            verdict = "met" if not missed else "missed (" + "; ".join(missed) + ")"
            lines.append(f"- {county['label']}, {method}: {verdict}")
    lines += [
        "",
        "Other seeds of the same command (50k), band 55–64, rules, event rate red / yellow / green:",
        "",
    ]
    for rep in record.get("replicates", []):
        red, yellow, green = rep["band_55_64"]
        others = ", ".join(rep["not_ordered_rules"]) or "none"
        lines.append(
            f"- seed {rep['seed']}: {red:.1%} / {yellow:.1%} / {green:.1%}; "
            f"bands not ordered (rules): {others}"
        )
    lines += ["", "Findings:", ""]
    lines += [f"- {_cell(text)}" for text in record.get("findings", [])]
    return lines


def _capacity_lines() -> list[str]:
    from risk.definitions import capacity_settings

    settings = capacity_settings()
    work, red = settings["workload"], settings["red_share"]
    return [
        f"- Workload unit: the first of {', '.join(f'`{u}`' for u in work['unit'])} the data has (the input "
        f"contract has no doctor column, so today the family-doctor team). Capacity "
        f"**{work['visits_per_week']} follow-up visits a week** per unit by default (why: in capacity.yaml), "
        f"per-unit overrides under `per_unit`; horizon {work['weeks']} weeks, week 1 starting on the as-of "
        "date and holding every overdue patient.",
        "- The nightly writes `lists/workload.csv` (per unit and week: capacity, due, red due, emergencies, "
        "planned, pushed to a later week, over capacity), a section of summary.md and `workload` in "
        "run.json; the API serves a team's view at `GET /api/teams/{team_id}/workload` (counts only).",
        "- Capacity schedules, it does not reorder the list or hide anybody: each unit's patients are "
        "placed in the priority order into the first week from their due week with room. An emergency is "
        "always planned in week 1, past capacity if need be (the week is flagged over capacity); a "
        "patient with no room in the horizon is counted as pushed later, never dropped.",
        f"- Red share: the county maximum is **{red['maximum']:.0%}** of managed patients. When the "
        "rules' or the combined red share is above it, run.json (`red_share.exceeded`) and summary.md "
        "say so. It only flags: nobody is recoloured or reordered to meet it (that would hide risk); "
        "the county reviews its thresholds instead.",
    ]
