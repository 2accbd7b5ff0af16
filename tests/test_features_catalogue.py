"""Catalogue, generated docs/features.md and the `risk features` command."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from test_features import AS_OF, county
from typer.testing import CliRunner

from risk import definitions
from risk.cli import app
from risk.features import FEATURE_SET_VERSION, feature_catalogue, feature_names
from risk.features.catalogue import features_markdown

ARCHITECTURE_NAMES = [
    "person_id",
    "as_of",
    "township_id",
    "village_id",
    "unit_id",
    "team_id",
    "age",
    "sex",
    "signed_contract",
    "has_hypertension",
    "has_diabetes_t2",
    "n_chronic_conditions",
    "enrolled_on",
    "bp_last_sbp",
    "bp_last_dbp",
    "bp_last_date",
    "bp_days_since_last",
    "bp_mean3_sbp",
    "bp_mean3_dbp",
    "bp_readings_12m",
    "bp_controlled_share_12m",
    "bp_grade",
    "bp_last_controlled",
    "fpg_last",
    "fpg_last_date",
    "hba1c_last",
    "hba1c_last_date",
    "fpg_tests_12m",
    "fpg_controlled_share_12m",
    "fu_count_12m",
    "fu_last_date",
    "fu_days_since_last",
    "fu_standardised",
    "fu_consecutive_uncontrolled_bp",
    "fu_consecutive_uncontrolled_fpg",
    "fu_last_smoker",
    "fu_last_adherence",
    "fu_last_danger_symptoms",
    "fu_last_adverse_reaction",
    "enc_inpatient_12m",
    "enc_bed_days_12m",
    "enc_emergency_12m",
    "enc_readmit30_12m",
    "enc_outside_county_share_12m",
    "enc_total_cost_12m",
    "enc_fund_paid_12m",
    "cx_stroke",
    "cx_coronary",
    "cx_heart_failure",
    "cx_ckd",
    "cx_retinopathy",
    "cx_neuropathy",
    "cx_diabetic_foot",
    "cx_peripheral_arterial",
    "cx_count",
    "cx_new_90d",
    "pdc_antihypertensive_12m",
    "pdc_antidiabetic_12m",
    "pdc_statin_12m",
    "tc_last",
    "hdl_c_last",
    "ldl_c_last",
    "egfr_last",
    "uacr_last",
    "bmi_last",
    "waist_last",
    "chinapar_risk_10y",
    "chinapar_category",
]


def test_catalogue_has_every_architecture_name() -> None:
    names = feature_names()
    assert len(names) == len(set(names))
    assert set(ARCHITECTURE_NAMES) <= set(names)
    for feature in feature_catalogue():
        assert feature.description_en and feature.description_zh, feature.name


def test_every_complication_group_has_a_feature() -> None:
    groups = set(definitions.complications()["group"])
    assert {f"cx_{g}" for g in groups} <= set(feature_names())


def test_generated_markdown_lists_every_feature() -> None:
    text = features_markdown()
    assert FEATURE_SET_VERSION in text and "Circulation" in text
    for name in feature_names():
        assert f"| `{name}` |" in text


def test_committed_docs_are_up_to_date() -> None:
    committed = Path(__file__).resolve().parent.parent / "docs" / "features.md"
    assert committed.read_text(encoding="utf-8") == features_markdown(), "run `risk docs`"


def test_cli_writes_features(tmp_path: Path) -> None:
    county().write(tmp_path / "validated" / "canonical")
    out = tmp_path / "features.parquet"
    result = CliRunner().invoke(
        app, ["features", str(tmp_path / "validated"), "--as-of", AS_OF.isoformat(), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "15 persons" in result.output
    assert list(pd.read_parquet(out).columns) == feature_names()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["features", str(tmp_path), "--as-of", "2024-06-30", "--out", "x.parquet"])
    assert result.exit_code == 2 and "canonical/" in result.output
    county().write(tmp_path / "canonical")
    result = runner.invoke(app, ["features", str(tmp_path), "--as-of", "30/06/2024", "--out", "x.parquet"])
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output
