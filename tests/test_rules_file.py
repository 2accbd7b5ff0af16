"""A malformed rule-set file is rejected with one clear DefinitionError naming file, rule and problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.errors import DefinitionError
from risk.tiers import load_rule_set
from risk.tiers.ruleset_docs import rules_markdown
from tests.support.rules import default_rule_data, write_rule_file


def rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in data["rules"] if r["id"] == rule_id)


def set_when(rule_id: str, when: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: rule(d, rule_id).__setitem__("when", when)


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown column", set_when("bp_emergency", "bp_last_sbpp >= {sbp_emergency}"),
     r"rule 'bp_emergency': unknown column 'bp_last_sbpp' \(did you mean 'bp_last_sbp'\?\)"),
    ("unknown threshold", set_when("bp_emergency", "bp_last_sbp >= {sbp_emergncy}"),
     r"rule 'bp_emergency': unknown threshold '\{sbp_emergncy\}' \(did you mean 'sbp_emergency'\?\)"),
    ("unknown tier", lambda d: rule(d, "bp_emergency").__setitem__("tier", "orange"),
     r"rule 'bp_emergency': tier must be one of green, yellow, red, got 'orange'"),
    ("missing reason", lambda d: rule(d, "fpg_uncontrolled")["reason"].pop("en"),
     r"rule 'fpg_uncontrolled': reason.en is missing"),
    ("missing source", lambda d: rule(d, "fpg_uncontrolled").pop("source"),
     r"rule 'fpg_uncontrolled': source is missing"),
    ("unlisted source", lambda d: rule(d, "fpg_uncontrolled").__setitem__("source", "my_memory"),
     r"rule 'fpg_uncontrolled': source 'my_memory' is not listed under 'sources'"),
    ("duplicate id", lambda d: d["rules"].append(copy.deepcopy(rule(d, "bp_emergency"))),
     r"rule 'bp_emergency': duplicate rule id"),
    ("default id reused", lambda d: d["default"].__setitem__("id", "bp_emergency"),
     r"default: .*|rule 'bp_emergency': duplicate rule id"),
    ("bad expression", set_when("bp_emergency", "bp_last_sbp >= "),
     r"rule 'bp_emergency': cannot parse expression"),
    ("statement", set_when("bp_emergency", "1 = 1; DROP TABLE persons"),
     r"rule 'bp_emergency': .* is not a single expression"),
    ("sub-query", set_when("bp_emergency", "bp_last_sbp IN (SELECT sbp FROM vitals)"),
     r"rule 'bp_emergency': .* is not a single expression"),
    ("not true/false", set_when("bp_emergency", "bp_last_sbp + 1"),
     r"rule 'bp_emergency': condition must be true/false.*DOUBLE"),
    ("type error", set_when("bp_emergency", "bp_last_date > 5 AND sex"),
     r"rule 'bp_emergency': expression is invalid"),
    ("missing interval", lambda d: d["tiers"]["yellow"].pop("interval_days"),
     r"tier 'yellow': follow-up interval 'interval_days' is missing"),
    ("negative interval", lambda d: d["tiers"]["red"].__setitem__("interval_days", -14),
     r"tier 'red': interval_days must be a positive whole number of days, got -14"),
    ("unknown tier interval", lambda d: d["tiers"].__setitem__("amber", {"interval_days": 7}),
     r"tiers: unknown tier\(s\) amber"),
    ("threshold not a number", lambda d: d["thresholds"].__setitem__("sbp_emergency", "one-eighty"),
     r"threshold 'sbp_emergency': value must be a number"),
    ("typo in a section name", lambda d: d.__setitem__("thresolds", {}),
     r"top level: unknown section\(s\) thresolds"),
    ("missing version", lambda d: d.pop("version"), r"top level: missing or empty 'version'"),
    ("unknown rule field", lambda d: rule(d, "bp_emergency").__setitem__("tierr", "red"),
     r"rule 'bp_emergency': unknown field\(s\) tierr"),
    ("derived shadows a feature", lambda d: d["derived"].__setitem__("age", {"expression": "1"}),
     r"derived 'age': name clashes with a feature column"),
    ("qualified column", set_when("bp_emergency", "f.bp_last_sbp >= 180"),
     r"rule 'bp_emergency': column 'f.bp_last_sbp' must not be qualified"),
]


@pytest.mark.parametrize(("mutate", "message"), [pytest.param(m, msg, id=name) for name, m, msg in BROKEN])
def test_malformed_rule_file_is_rejected_with_a_clear_message(tmp_path, mutate, message):
    data = default_rule_data()
    mutate(data)
    path = write_rule_file(tmp_path, data)
    with pytest.raises(DefinitionError, match=message) as info:
        load_rule_set(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert "\n" not in text


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("rules: [\n  - id: x\n  tier: red\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=f"{path}: not valid YAML"):
        load_rule_set(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DefinitionError, match="rule-set file not found"):
        load_rule_set(tmp_path / "nope.yaml")


def test_the_default_rule_set_is_valid_and_cited():
    rule_set = load_rule_set()
    assert rule_set.version and rule_set.intervals == {"green": 90, "yellow": 60, "red": 30}
    assert {r.tier for r in rule_set.rules} == {"red", "yellow", "green"}
    assert rule_set.default_rule.tier == "green"
    # the colour is the risk level: urgent rules (refer, review) never colour; emergencies are red, due now
    for r in rule_set.rules:
        assert (r.urgency == "emergency") == (r.tier == "red" and r.group == "emergency referral")
        assert r.urgency in ("", "emergency") or (r.tier == "green" and r.due_days == 14)
    assert all(r.source in rule_set.sources and r.reason_zh and r.reason_en for r in rule_set.rules)
    assert len({r.id for r in rule_set.rules}) == len(rule_set.rules)


def test_cli_check_shows_one_line_and_exits_2(tmp_path):
    data = default_rule_data()
    rule(data, "bp_emergency")["tier"] = "orange"
    path = write_rule_file(tmp_path, data)
    result = CliRunner().invoke(app, ["rules", "check", "--rules", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "bp_emergency" in result.output and "orange" in result.output


def test_cli_check_accepts_the_default_and_a_county_copy(tmp_path):
    result = CliRunner().invoke(app, ["rules", "check"])
    assert result.exit_code == 0, result.output
    assert "2.1.0" in result.output
    data = default_rule_data()
    data["version"] = "county-2"
    result = CliRunner().invoke(app, ["rules", "check", "--rules", str(write_rule_file(tmp_path, data))])
    assert result.exit_code == 0 and "county-2" in result.output


def test_docs_rules_md_is_generated_from_the_default_rule_set():
    committed = Path(__file__).resolve().parent.parent / "docs" / "rules.md"
    generated = rules_markdown()
    assert committed.read_text(encoding="utf-8") == generated, "run `risk docs` and commit docs/rules.md"
    for rule in load_rule_set().rules:
        assert f"`{rule.id}`" in generated
    assert "`bp_last_sbp >= 180 OR bp_last_dbp >= 110`" in generated


def test_a_county_rule_may_use_a_feature_the_catalogue_adds(tmp_path):
    data = default_rule_data()
    data["name"], data["version"] = "county", "county-1"
    data["rules"].append({"id": "family_history_uncontrolled", "tier": "yellow",
                          "when": "family_history_ascvd AND bp_above_target",
                          "reason": {"zh": "早发心血管病家族史且血压未达标",
                                     "en": "Family history and BP above target"},
                          "source": "chn_htn_2018"})
    rule_set = load_rule_set(write_rule_file(tmp_path, data))
    assert "family_history_ascvd" in rule_set.input_columns


def test_cli_apply_writes_the_rule_tiers(tmp_path):
    from tests.support.rules import base_row, frame

    features = tmp_path / "features.parquet"
    frame(base_row(), base_row(bp_last_sbp=185.0)).to_parquet(features, index=False)
    out = tmp_path / "tiers.parquet"
    result = CliRunner().invoke(app, ["rules", "apply", str(features), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "red 1, yellow 0, green 1" in result.output
    import pandas as pd

    assert pd.read_parquet(out)["tier_rules"].tolist() == ["green", "red"]
