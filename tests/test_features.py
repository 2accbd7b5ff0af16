"""Feature pipeline on small hand-made canonical tables; every expected value is worked out by hand.

as_of = 2024-06-30 throughout, so the 12-month window is 2023-07-02 .. 2024-06-30 (365 days) and the
90-day window for new complications is 2024-04-02 .. 2024-06-30.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from risk.features import compute_features, feature_catalogue, feature_names
from tests.support.canonical import CanonicalBuilder

AS_OF = date(2024, 6, 30)


def county() -> CanonicalBuilder:
    b = CanonicalBuilder()
    # --- blood pressure: age exactly 64.0 (23,376 days / 365.25)
    b.person("P_BP", sex="M", birth_date="1960-06-30").condition("P_BP", "hypertension")
    b.vital("P_BP", "2023-01-10 09:00", 170, 100)  # before the window
    b.vital("P_BP", "2023-08-01 09:00", 150, 85)
    b.vital("P_BP", "2024-01-15 09:00", 130, 80, weight_kg=80, height_cm=160)
    b.vital("P_BP", "2024-06-30 23:59", 142, 88, waist_cm=91)  # on as_of: included
    b.vital("P_BP", "2024-07-01 00:00", 200, 120)  # after as_of: ignored
    # --- BP grade of the last reading
    for pid, sbp, dbp in (("P_G0", 139, 89), ("P_G1", 120, 90), ("P_G2", 160, 80), ("P_G3", 150, 110)):
        b.person(pid).condition(pid, "hypertension").vital(pid, "2024-06-01 09:00", sbp, dbp)
    # --- same timestamp twice: the later source row is the last reading
    b.person("P_TIE").condition("P_TIE", "hypertension")
    b.vital("P_TIE", "2024-06-01 09:00", 150, 95, source="home")
    b.vital("P_TIE", "2024-06-01 09:00", 135, 85, source="clinic")
    # --- glucose and other labs
    b.person("P_GLU", sex="F").condition("P_GLU", "diabetes_t2")
    b.lab("P_GLU", "2023-06-01 08:00", "fpg", 9.0)  # before the window, not the last
    b.lab("P_GLU", "2023-09-01 08:00", "fpg", 6.5)
    b.lab("P_GLU", "2024-03-01 08:00", "fpg", 7.2)
    b.lab("P_GLU", "2024-04-01 08:00", "hba1c", 7.8)
    b.lab("P_GLU", "2024-07-02 08:00", "fpg", 5.0)  # after as_of
    b.lab("P_GLU", "2022-01-01 08:00", "tc", 6.0)
    b.lab("P_GLU", "2024-02-01 08:00", "tc", 5.2)
    b.lab("P_GLU", "2024-02-01 08:00", "hdl_c", 1.3)
    b.lab("P_GLU", "2024-02-01 08:00", "ldl_c", 3.1)
    b.lab("P_GLU", "2024-02-01 08:00", "egfr", 75.0)
    b.lab("P_GLU", "2024-02-01 08:00", "uacr", 45.0)
    b.encounter("P_GLU", "2021-03-01", primary_dx="I64")  # stroke first diagnosed 2021
    b.encounter("P_GLU", "2024-05-01", primary_dx="I63.9")  # ... so not new in the last 90 days
    # --- follow-ups
    b.person("P_FU").condition("P_FU", "hypertension").condition("P_FU", "diabetes_t2")
    b.follow_up("P_FU", "2023-07-01")  # day before the window starts
    b.follow_up("P_FU", "2023-09-10")
    b.follow_up("P_FU", "2023-12-10")
    b.follow_up("P_FU", "2024-03-10")
    b.follow_up("P_FU", "2024-06-10", smoker=False, adherence="regular")
    b.follow_up(
        "P_FU",
        "2024-06-10",
        condition="diabetes_t2",
        smoker=True,
        adherence="intermittent",
        symptoms="chest pain",
        adverse_reaction=False,
    )  # same day, later row: the last form
    b.follow_up("P_FU", "2024-07-10", smoker=False)  # after as_of
    b.vital("P_FU", "2023-09-10 09:00", 150, 95)  # uncontrolled
    b.vital("P_FU", "2023-12-10 09:00", 130, 80)  # controlled: ends the streak
    b.vital("P_FU", "2024-03-10 09:00", 145, 85)  # uncontrolled
    b.vital("P_FU", "2024-05-01 09:00", 120, 70)  # not a follow-up day: does not count
    b.vital("P_FU", "2024-06-10 08:00", 128, 78)
    b.vital("P_FU", "2024-06-10 10:00", 150, 92)  # last reading of the visit day: uncontrolled
    b.lab("P_FU", "2024-03-10 08:00", "fpg", 6.0)
    b.lab("P_FU", "2024-06-10 08:00", "fpg", 8.0)
    b.encounter("P_FU", "2024-04-01", primary_dx="G45.9")  # TIA exactly 90 days before: not "new"
    # --- encounters
    b.person("P_ENC").condition("P_ENC", "hypertension")
    b.encounter("P_ENC", "2023-05-01", setting="inpatient", discharged_on="2023-06-20", total_cost=9000.0)
    b.encounter(
        "P_ENC",
        "2023-07-10",
        setting="inpatient",
        discharged_on="2023-07-15",
        facility_level="county",
        total_cost=5000.0,
        fund_paid=3500.0,
    )  # readmission: 20 days after 2023-06-20
    b.encounter(
        "P_ENC",
        "2024-01-01",
        setting="inpatient",
        discharged_on="2024-01-01",
        facility_level="outside_county",
        total_cost=1000.0,
        fund_paid=700.0,
    )  # same day: 1 bed day
    b.encounter(
        "P_ENC",
        "2024-01-20",
        setting="inpatient",
        discharged_on="2024-07-05",
        total_cost=20000.0,
        fund_paid=15000.0,
    )  # readmission; open on as_of: 162 days, cost unknown
    b.encounter(
        "P_ENC", "2024-02-01", setting="emergency", facility_level="county", total_cost=300.0, fund_paid=100.0
    )
    b.encounter("P_ENC", "2023-06-01", total_cost=100.0, fund_paid=50.0)  # before the window
    b.encounter("P_ENC", "2024-07-10", setting="emergency", total_cost=80.0)  # after as_of
    # --- complications
    b.person("P_CX").condition("P_CX", "diabetes_t2")
    b.encounter("P_CX", "2020-01-01", primary_dx="I10", secondary_dx="E11.21; I63.9")  # ckd, stroke
    b.encounter("P_CX", "2024-05-15", primary_dx="I50.9")  # heart failure, new within 90 days
    b.encounter("P_CX", "2023-01-01", primary_dx="I11.9")  # hypertensive heart disease without HF: none
    b.encounter("P_CX", "2024-07-05", primary_dx="H36.0")  # retinopathy after as_of: ignored
    # --- medication (proportion of days covered)
    b.person("P_RX").condition("P_RX", "hypertension").condition("P_RX", "diabetes_t2")
    b.prescription("P_RX", "2023-06-20", "C09AA02", 30)  # 2023-07-02..07-19 in window: 18 days
    b.prescription("P_RX", "2023-07-10", "C08CA01", 30)  # ..08-08: 20 new days
    b.prescription("P_RX", "2024-06-15", "C09CA01", 90)  # 06-15..06-30: 16 days
    b.prescription("P_RX", "2024-07-01", "C09CA01", 30)  # after as_of
    b.prescription("P_RX", "2024-01-01", "A10BA02", 60)  # 2024-01-01..02-29: 60 days
    b.prescription("P_RX", "2024-02-01", "A10BA02", 30)  # 02-01..03-01: 1 new day
    b.prescription("P_RX", "2022-01-01", "C10AA05", 90)  # statin long before the window
    b.prescription("P_RX", "2024-07-01", "C10AA05", 30)  # statin after as_of
    b.prescription("P_RX", "2024-06-01", "C10AA05", 10)  # same start, two lengths: union 06-01..06-20
    b.prescription("P_RX", "2024-06-01", "C10AA07", 20)
    b.prescription("P_RX", "2024-01-01", "B01AC06", 90)  # aspirin: in no PDC group
    # --- who is managed
    b.person("P_ENDED").condition("P_ENDED", "hypertension", ended_on="2024-06-30")
    b.person("P_LATER").condition("P_LATER", "hypertension", enrolled_on="2024-07-01")
    b.person("P_DEAD", death_date="2024-06-30").condition("P_DEAD", "hypertension")
    b.person("P_DIES_LATER", death_date="2024-07-01").condition("P_DIES_LATER", "hypertension")
    b.person("P_COPD").condition("P_COPD", "copd")
    b.person("P_MULTI").condition("P_MULTI", "hypertension", enrolled_on="2019-01-01")
    b.condition("P_MULTI", "diabetes_t2", enrolled_on="2018-05-01").condition(
        "P_MULTI", "copd", enrolled_on="2017-01-01"
    )
    b.condition("P_MULTI", "ckd", enrolled_on="2015-01-01", ended_on="2020-01-01")
    b.person("P_NO_CONDITION")
    # --- China-PAR worked example (Yang 2016): age 60 exactly (21,915 days), untreated SBP 130,
    # TC 210 mg/dL, HDL-C 55 mg/dL, waist 80 cm, non-smoker, diabetes, northern, urban, no family history
    for pid, sex in (("P_CPM", "M"), ("P_CPF", "F")):
        b.person(pid, sex=sex, birth_date="1964-06-30", urban=True, family_history_ascvd=False)
        b.condition(pid, "diabetes_t2").follow_up(pid, "2024-06-01", condition="diabetes_t2", smoker=False)
        b.vital(pid, "2024-06-01 09:00", 130, 80, waist_cm=80).lab(pid, "2024-06-01 08:00", "fpg", 6.5)
        b.lab(pid, "2024-06-01 08:00", "tc", 210 * 0.0259).lab(pid, "2024-06-01 08:00", "hdl_c", 55 * 0.0259)
    return b


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return county().write(tmp_path_factory.mktemp("features") / "canonical")


@pytest.fixture(scope="module")
def features(canonical: Path) -> pd.DataFrame:
    return compute_features(canonical, AS_OF).set_index("person_id", drop=False)


def test_one_row_per_managed_living_person(features: pd.DataFrame) -> None:
    assert features["person_id"].is_unique
    assert set(features["person_id"]) == {
        "P_BP",
        "P_G0",
        "P_G1",
        "P_G2",
        "P_G3",
        "P_TIE",
        "P_GLU",
        "P_FU",
        "P_ENC",
        "P_CX",
        "P_RX",
        "P_DIES_LATER",
        "P_MULTI",
        "P_CPM",
        "P_CPF",
    }
    assert list(features["person_id"]) == sorted(features["person_id"])


def test_columns_follow_the_catalogue(features: pd.DataFrame) -> None:
    assert list(features.columns) == feature_names()
    kinds = {"float": "f", "int": "i", "bool": "b"}
    for feature in feature_catalogue():
        if feature.type in kinds and features[feature.name].notna().all():
            assert features[feature.name].dtype.kind == kinds[feature.type], feature.name


def test_identity_and_demographics(features: pd.DataFrame) -> None:
    row = features.loc["P_BP"]
    assert row["as_of"] == AS_OF
    assert (row["township_id"], row["village_id"], row["unit_id"], row["team_id"]) == (
        "T01",
        "V001",
        "U001",
        "TEAM01",
    )
    assert row["age"] == pytest.approx(64.0)
    assert row["sex"] == "M" and bool(row["signed_contract"]) is True
    assert features.loc["P_CPF", "urban"] == True  # noqa: E712
    assert pd.isna(features.loc["P_BP", "urban"])


def test_conditions(features: pd.DataFrame) -> None:
    multi = features.loc["P_MULTI"]
    assert bool(multi["has_hypertension"]) and bool(multi["has_diabetes_t2"])
    assert multi["n_chronic_conditions"] == 3  # hypertension, diabetes, copd; ckd ended in 2020
    assert multi["enrolled_on"] == date(2018, 5, 1)  # earliest managed condition, not copd (2017)
    glu = features.loc["P_GLU"]
    assert not glu["has_hypertension"] and glu["has_diabetes_t2"] and glu["n_chronic_conditions"] == 1


def test_blood_pressure(features: pd.DataFrame) -> None:
    row = features.loc["P_BP"]
    assert (row["bp_last_sbp"], row["bp_last_dbp"]) == (142.0, 88.0)
    assert row["bp_last_date"] == date(2024, 6, 30) and row["bp_days_since_last"] == 0
    assert row["bp_mean3_sbp"] == pytest.approx((142 + 130 + 150) / 3)
    assert row["bp_mean3_dbp"] == pytest.approx((88 + 80 + 85) / 3)
    assert row["bp_readings_12m"] == 3
    assert row["bp_controlled_share_12m"] == pytest.approx(1 / 3)
    assert row["bp_grade"] == 1 and not row["bp_last_controlled"]
    assert row["bmi_last"] == pytest.approx(80 / 1.6**2) and row["waist_last"] == 91.0
    tie = features.loc["P_TIE"]
    assert (tie["bp_last_sbp"], tie["bp_last_dbp"]) == (135.0, 85.0)
    assert bool(tie["bp_last_controlled"]) is True


@pytest.mark.parametrize("person, grade", [("P_G0", 0), ("P_G1", 1), ("P_G2", 2), ("P_G3", 3)])
def test_bp_grade(features: pd.DataFrame, person: str, grade: int) -> None:
    assert features.loc[person, "bp_grade"] == grade


def test_no_readings_give_nulls_and_zero_counts(features: pd.DataFrame) -> None:
    row = features.loc["P_ENC"]
    assert (
        pd.isna(row["bp_last_sbp"]) and pd.isna(row["bp_grade"]) and pd.isna(row["bp_controlled_share_12m"])
    )
    assert row["bp_readings_12m"] == 0 and row["fpg_tests_12m"] == 0 and row["fu_count_12m"] == 0
    assert pd.isna(row["fu_last_date"]) and not row["fu_standardised"]


def test_glucose_and_labs(features: pd.DataFrame) -> None:
    row = features.loc["P_GLU"]
    assert row["fpg_last"] == 7.2 and row["fpg_last_date"] == date(2024, 3, 1)
    assert row["hba1c_last"] == 7.8 and row["hba1c_last_date"] == date(2024, 4, 1)
    assert row["fpg_tests_12m"] == 2 and row["fpg_controlled_share_12m"] == pytest.approx(0.5)
    assert (row["tc_last"], row["hdl_c_last"], row["ldl_c_last"]) == (5.2, 1.3, 3.1)
    assert (row["egfr_last"], row["uacr_last"]) == (75.0, 45.0)


def test_follow_ups(features: pd.DataFrame) -> None:
    row = features.loc["P_FU"]
    assert row["fu_count_12m"] == 4  # four visit days in the window; two forms on 2024-06-10 count once
    assert row["fu_last_date"] == date(2024, 6, 10) and row["fu_days_since_last"] == 20
    assert bool(row["fu_standardised"]) is True
    assert row["fu_consecutive_uncontrolled_bp"] == 2  # 06-10 (last reading 150/92), 03-10; 12-10 controlled
    assert row["fu_consecutive_uncontrolled_fpg"] == 1  # 06-10 8.0; 03-10 6.0 controlled
    assert bool(row["fu_last_smoker"]) is True and row["fu_last_adherence"] == "intermittent"
    assert bool(row["fu_last_danger_symptoms"]) is True and bool(row["fu_last_adverse_reaction"]) is False
    cp = features.loc["P_CPM"]
    assert cp["fu_count_12m"] == 1 and not cp["fu_standardised"] and not cp["fu_last_danger_symptoms"]
    assert cp["fu_consecutive_uncontrolled_bp"] == 0 and cp["fu_consecutive_uncontrolled_fpg"] == 0


def test_encounters(features: pd.DataFrame) -> None:
    row = features.loc["P_ENC"]
    assert row["enc_inpatient_12m"] == 3
    assert row["enc_bed_days_12m"] == 5 + 1 + 162
    assert row["enc_emergency_12m"] == 1
    assert row["enc_readmit30_12m"] == 2
    assert row["enc_outside_county_share_12m"] == pytest.approx(1 / 4)
    assert row["enc_total_cost_12m"] == pytest.approx(5000 + 1000 + 300)
    assert row["enc_fund_paid_12m"] == pytest.approx(3500 + 700 + 100)
    none = features.loc["P_BP"]
    assert none["enc_inpatient_12m"] == 0 and none["enc_total_cost_12m"] == 0.0
    assert pd.isna(none["enc_outside_county_share_12m"])


def test_complications(features: pd.DataFrame) -> None:
    row = features.loc["P_CX"]
    assert row["cx_stroke"] and row["cx_ckd"] and row["cx_heart_failure"]
    assert not (
        row["cx_coronary"]
        or row["cx_retinopathy"]
        or row["cx_neuropathy"]
        or row["cx_diabetic_foot"]
        or row["cx_peripheral_arterial"]
    )
    assert row["cx_count"] == 3 and bool(row["cx_new_90d"]) is True
    assert features.loc["P_GLU", "cx_stroke"] and not features.loc["P_GLU", "cx_new_90d"]
    assert features.loc["P_FU", "cx_stroke"] and not features.loc["P_FU", "cx_new_90d"]  # exactly 90 days
    assert features.loc["P_BP", "cx_count"] == 0 and not features.loc["P_BP", "cx_stroke"]


def test_proportion_of_days_covered(features: pd.DataFrame) -> None:
    row = features.loc["P_RX"]
    assert row["pdc_antihypertensive_12m"] == pytest.approx((18 + 20 + 16) / 365)
    assert row["pdc_antidiabetic_12m"] == pytest.approx((60 + 1) / 365)
    assert row["pdc_statin_12m"] == pytest.approx(20 / 365)
    assert bool(row["antihypertensive_dispensed_12m"]) is True
    assert features.loc["P_BP", "pdc_antihypertensive_12m"] == 0.0


def test_chinapar_in_the_pipeline(features: pd.DataFrame) -> None:
    assert features.loc["P_CPM", "chinapar_risk_10y"] == pytest.approx(0.110, abs=0.001)
    assert features.loc["P_CPF", "chinapar_risk_10y"] == pytest.approx(0.101, abs=0.001)
    assert features.loc["P_CPM", "chinapar_category"] == "high"
    assert pd.isna(features.loc["P_BP", "chinapar_risk_10y"])  # no lipids, no smoking status
    assert pd.isna(features.loc["P_CX", "chinapar_risk_10y"])  # established ASCVD (stroke)
    assert pd.isna(features.loc["P_BP", "chinapar_category"])


def test_writes_parquet_atomically(tmp_path: Path) -> None:
    canonical = county().write(tmp_path / "out" / "canonical")
    out = tmp_path / "features.parquet"
    frame = compute_features(tmp_path / "out", AS_OF, out=out)  # the parent folder is accepted too
    written = pd.read_parquet(out)
    assert list(written.columns) == feature_names() and len(written) == len(frame)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert canonical.is_dir()


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    canonical = county().write(tmp_path / "canonical")
    persons = pq.read_table(canonical / "persons.parquet").drop(
        ["death_date", "urban", "family_history_ascvd"]
    )
    pq.write_table(persons, canonical / "persons.parquet")
    frame = compute_features(canonical, AS_OF)
    assert "P_DEAD" in set(frame["person_id"])  # no death dates known
    assert frame["chinapar_risk_10y"].isna().sum() >= 1 and not math.isnan(
        frame.set_index("person_id").loc["P_CPF", "chinapar_risk_10y"]
    )  # women need neither urban nor history


def test_missing_table_or_required_column_is_a_clean_error(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from risk.errors import InputFileError

    canonical = county().write(tmp_path / "canonical")
    vitals = pq.read_table(canonical / "vitals.parquet").drop(["sbp"])
    pq.write_table(vitals, canonical / "vitals.parquet")
    with pytest.raises(InputFileError, match="sbp"):
        compute_features(canonical, AS_OF)
    canonical = county().write(tmp_path / "second" / "canonical")
    (canonical / "labs.parquet").unlink()
    with pytest.raises(InputFileError, match="labs.parquet"):
        compute_features(canonical, AS_OF)


CORE_COLUMNS = ["age", "sex", "bp_last_sbp", "bp_mean3_sbp", "fpg_last", "fu_count_12m", "enc_total_cost_12m",
                "cx_stroke"]


@pytest.mark.parametrize(
    "columns",
    [[f.name for f in feature_catalogue() if f.group == group] for group in
     sorted({f.group for f in feature_catalogue()})]
    + [CORE_COLUMNS, ["chinapar_risk_10y"], ["fu_consecutive_uncontrolled_bp", "pdc_statin_12m"]],
    ids=lambda columns: columns[0] if len(columns) < 3 else f"{columns[0]}+{len(columns) - 1}",
)
def test_chosen_columns_hold_the_catalogue_values(canonical: Path, features: pd.DataFrame,
                                                  columns: list[str]) -> None:
    chosen = compute_features(canonical, AS_OF, columns=columns)
    expected = [name for name in feature_names() if name in {"person_id", "as_of", *columns}]
    assert list(chosen.columns) == expected
    pd.testing.assert_frame_equal(chosen, features[expected].reset_index(drop=True))


def test_chosen_columns_read_only_the_tables_they_need() -> None:
    from risk.features import feature_query

    sql = feature_query(AS_OF, ["bp_last_sbp", "fu_count_12m"])
    assert "FROM vitals" in sql and "FROM follow_ups" in sql and "JOIN persons" in sql
    assert "prescriptions" not in sql and "encounters" not in sql and "labs" not in sql


def test_unknown_chosen_column_is_a_clean_error(canonical: Path) -> None:
    from risk.errors import RiskUserError

    with pytest.raises(RiskUserError, match="unknown feature.*bp_lst_sbp"):
        compute_features(canonical, AS_OF, columns=["bp_lst_sbp"])


def test_features_command_with_chosen_columns(canonical: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from risk.cli import app

    out = tmp_path / "bp.parquet"
    args = ["features", str(canonical.parent), "--as-of", AS_OF.isoformat(), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--columns", "bp_last_sbp, bp_grade"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out).columns) == ["person_id", "as_of", "bp_last_sbp", "bp_grade"]
    refused = CliRunner().invoke(app, [*args, "--columns", "bp_grade,bp_grde"])
    assert refused.exit_code == 2 and "unknown feature(s): bp_grde" in refused.output


def test_features_command_into_a_folder_is_a_clean_error(canonical: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from risk.cli import app

    folder = tmp_path / "already-a-folder"
    folder.mkdir()
    result = CliRunner().invoke(app, ["features", str(canonical.parent), "--as-of", AS_OF.isoformat(),
                                      "--out", str(folder)])
    assert result.exit_code == 2 and "Is a directory" in result.output and "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["already-a-folder"]  # no temporary file left
