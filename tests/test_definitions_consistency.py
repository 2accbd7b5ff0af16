"""The packaged definitions agree with each other: the default rule set's control targets and BP grades are
the ones the feature pipeline and the indicators use (risk/definitions/thresholds.yaml). A county copy of
the rule file may differ on purpose; the packaged files must not drift apart by accident."""

from __future__ import annotations

from pathlib import Path

from risk import definitions
from risk.tiers import load_rule_set


def test_default_rule_set_uses_the_shared_control_targets_and_grades():
    shared = definitions.thresholds()
    rules = {name: threshold.value for name, threshold in load_rule_set().thresholds.items()}
    assert rules["sbp_target"] == shared["bp_controlled"]["sbp_below"]
    assert rules["dbp_target"] == shared["bp_controlled"]["dbp_below"]
    assert rules["fpg_target"] == shared["fpg_controlled_below"]
    for grade in shared["bp_grades"]:
        assert rules[f"sbp_grade{grade['grade']}"] == grade["sbp_from"]
        assert rules[f"dbp_grade{grade['grade']}"] == grade["dbp_from"]
    assert rules["chinapar_high"] == shared["chinapar_categories"]["high_from"]


def test_complication_and_condition_value_sets_are_well_formed():
    conditions = definitions.conditions()
    assert {"hypertension", "diabetes_t2"} <= set(conditions["code"])
    assert conditions["code"].is_unique
    complications = definitions.complications()
    expected = {"stroke", "coronary", "heart_failure", "ckd", "retinopathy", "neuropathy", "diabetic_foot",
                "peripheral_arterial"}
    assert set(complications["group"]) == expected
    assert complications["icd10_prefix"].str.fullmatch(r"[A-Z][0-9]{2}(\.[0-9])?").all()


def test_contract_column_specs_have_only_known_keys():
    """An unquoted comma in a flow-style YAML description silently splits it into junk keys (the ended_on
    description was cut at "(moved" in docs/data-contract.md)."""
    import yaml

    from risk import definitions

    path = Path(definitions.__file__).parent / "contract.yaml"
    contract = yaml.safe_load(path.read_text(encoding="utf-8"))
    known = {"type", "required", "nullable", "description", "allowed", "value_set", "range", "format", "unit"}
    for table, spec in contract["tables"].items():
        for column, column_spec in spec["columns"].items():
            assert set(column_spec) <= known, (table, column, set(column_spec) - known)
