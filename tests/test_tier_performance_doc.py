"""docs/rules.md "How the colours perform": the measured record rendered, judged and checked for staleness."""

from __future__ import annotations

import copy

from risk.definitions import definition_path, load_yaml
from risk.models.export import CURRENT_POINTER, approved_models_dir
from risk.tiers.rule_set import load_rule_set
from risk.tiers.ruleset_docs import performance_lines, rules_markdown


def _record() -> dict:
    return load_yaml(definition_path("tier_performance.yaml"))


def _method(red_share: float, red_to_green: float, not_ordered: list[str]) -> dict:
    return {
        "share": {"red": red_share, "yellow": 0.5, "green": 0.5 - red_share},
        "event_rate": {"red": [0.16, 0.13, 0.19], "yellow": [0.08, None, None], "green": [0.04, 0.03, 0.05]},
        "red_to_green": [red_to_green, None, None],
        "not_ordered": not_ordered,
        "top_10_percent": 0.2,
    }


def _small_record(**methods: dict) -> dict:
    record = copy.deepcopy(_record())
    record["counties"] = [{"label": "test county", "patients": 1000, "events": 80, "methods": methods}]
    return record


def test_the_committed_record_is_measured_on_the_current_rule_set_and_model():
    record = _record()
    assert record["rule_set"] == load_rule_set().version
    current = (approved_models_dir() / CURRENT_POINTER).read_text(encoding="utf-8").strip()
    assert record["model"] == current
    assert "Out of date" not in "\n".join(performance_lines())
    for county in [record["before"], *record["counties"]]:
        assert set(county["methods"]) == {"rules", "model", "combined"}


def test_rules_md_shows_the_measured_figures_and_the_command():
    text = rules_markdown()
    section = text.split("## How the colours perform", 1)[1].split("\n## ", 1)[0]
    record = _record()
    assert "risk evaluate-tiers" in section and record["measured_on"] in section
    rules_50k = record["counties"][0]["methods"]["rules"]
    assert f"{rules_50k['share']['red']:.1%}" in section
    assert f"{record['counties'][0]['patients']:,}" in section
    assert record["before"]["label"] in section


def test_each_done_mean_is_judged_from_the_figures():
    record = _small_record(
        rules=_method(0.12, 3.9, []),
        model=_method(0.05, 5.0, ["55-64"]),
        combined=_method(0.16, 4.5, []),
    )
    lines = performance_lines(
        record, rule_set_version=record["rule_set"], model_version=record["model"], red_share_maximum=0.15
    )
    assert "- test county, rules: missed (red ÷ green 3.9)" in lines
    assert "- test county, model: missed (not ordered: 55-64)" in lines
    assert "- test county, combined: missed (red share 16.0%)" in lines
    met = _small_record(
        rules=_method(0.12, 4.0, []), model=_method(0.05, 5.0, []), combined=_method(0.15, 4.2, [])
    )
    lines = performance_lines(
        met, rule_set_version=met["rule_set"], model_version=met["model"], red_share_maximum=0.15
    )
    assert [line for line in lines if line.startswith("- test county")] == [
        "- test county, rules: met",
        "- test county, model: met",
        "- test county, combined: met",
    ]


def test_figures_of_another_rule_set_or_model_are_flagged_out_of_date():
    record = _record()
    lines = performance_lines(
        record, rule_set_version="9.9.9", model_version=record["model"], red_share_maximum=0.15
    )
    assert any("Out of date" in line and "rule set 9.9.9" in line for line in lines)
    lines = performance_lines(
        record, rule_set_version=record["rule_set"], model_version="lr-new", red_share_maximum=0.15
    )
    assert any("Out of date" in line and "`lr-new`" in line for line in lines)
