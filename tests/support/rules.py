"""Hand-made feature rows for the rule-baseline tests (no tests here; imported by tests/test_rules*.py)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from risk.tiers.rule_columns import feature_column_types
from risk.tiers.rule_set import default_rule_set_path

AS_OF = date(2024, 6, 30)


def days_ago(days: int) -> date:
    return AS_OF - timedelta(days=days)


def base_row(**overrides: Any) -> dict[str, Any]:
    """A controlled 50-year-old man with hypertension and diabetes, seen a month ago: no rule fires."""
    row: dict[str, Any] = {column: None for column in feature_column_types()}
    row.update(
        person_id="P0001", as_of=AS_OF, township_id="T01", village_id="V001", unit_id="U001", team_id="TM01",
        age=50.0, sex="M", signed_contract=True, family_history_ascvd=False,
        antihypertensive_dispensed_12m=True,
        has_hypertension=True, has_diabetes_t2=True, n_chronic_conditions=2, enrolled_on=date(2020, 1, 1),
        bp_last_sbp=128.0, bp_last_dbp=78.0, bp_last_date=days_ago(30), bp_days_since_last=30,
        bp_mean3_sbp=130.0, bp_mean3_dbp=80.0, bp_readings_12m=5, bp_controlled_share_12m=1.0,
        fpg_last=6.0, fpg_last_date=days_ago(30), hba1c_last=6.5, hba1c_last_date=days_ago(60),
        fpg_tests_12m=4, fpg_controlled_share_12m=1.0,
        fu_count_12m=4, fu_last_date=days_ago(30), fu_days_since_last=30, fu_standardised=True,
        fu_consecutive_uncontrolled_bp=0, fu_consecutive_uncontrolled_fpg=0, fu_last_smoker=False,
        fu_last_adherence="regular", fu_last_danger_symptoms=False, fu_last_adverse_reaction=False,
        enc_inpatient_12m=0, enc_bed_days_12m=0.0, enc_emergency_12m=0, enc_readmit30_12m=0,
        enc_outside_county_share_12m=0.0, enc_total_cost_12m=800.0, enc_fund_paid_12m=500.0,
        cx_stroke=False, cx_coronary=False, cx_heart_failure=False, cx_ckd=False, cx_retinopathy=False,
        cx_neuropathy=False, cx_diabetic_foot=False, cx_peripheral_arterial=False, cx_count=0,
        cx_new_90d=False,
        pdc_antihypertensive_12m=0.9, pdc_antidiabetic_12m=0.9, pdc_statin_12m=0.0,
        tc_last=4.5, hdl_c_last=1.3, ldl_c_last=2.5, egfr_last=90.0, uacr_last=10.0, bmi_last=24.0,
        waist_last=85.0, chinapar_risk_10y=0.05, chinapar_category="low",
    )
    row.update(overrides)
    return with_consistent_bp(row)


def with_consistent_bp(row: dict[str, Any]) -> dict[str, Any]:
    """Recompute the BP features that the feature pipeline derives from the last reading."""
    sbp, dbp = row["bp_last_sbp"], row["bp_last_dbp"]
    if sbp is None or dbp is None or pd.isna(sbp) or pd.isna(dbp):
        row["bp_grade"], row["bp_last_controlled"] = None, None
        return row
    grade = next(g for g, (s, d) in ((3, (180, 110)), (2, (160, 100)), (1, (140, 90)), (0, (0, 0)))
                 if sbp >= s or dbp >= d)
    row["bp_grade"], row["bp_last_controlled"] = grade, bool(sbp < 140 and dbp < 90)
    return row


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    out = pd.DataFrame(list(rows))
    out["person_id"] = [f"P{i:05d}" for i in range(len(out))]
    return out


def default_rule_data() -> dict[str, Any]:
    return yaml.safe_load(default_rule_set_path().read_text(encoding="utf-8"))


def write_rule_file(tmp_path: Path, data: dict[str, Any], name: str = "county.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
