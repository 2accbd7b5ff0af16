"""FHIR import on small hand-written bundles (tests/data/fhir): one test per mapping and failure mode."""

from __future__ import annotations

import json
import shutil
import tarfile
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.errors import InputFileError, RiskUserError
from risk.interop.fhir import ImportReport, import_fhir

DATA = Path(__file__).parent / "data" / "fhir"
CONTRACT_TABLES = ["persons", "conditions", "vitals", "labs", "follow_ups", "encounters", "prescriptions"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImportReport]:
    out = tmp_path_factory.mktemp("fhir") / "input"
    return out, import_fhir(DATA / "bundles", out)


def read(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{table}.parquet")


def test_every_contract_table_is_written_with_contract_columns(bundles: tuple[Path, ImportReport]) -> None:
    from risk.definitions import contract

    out, report = bundles
    for table in CONTRACT_TABLES:
        frame = read(out, table)
        required = contract().tables[table].required_columns
        assert set(required) <= set(frame.columns), table
        assert report.rows_written[table] == len(frame)
    assert (out / "_import" / "report.json").is_file()


def test_patient_maps_sex_birth_death_and_default_geography(bundles: tuple[Path, ImportReport]) -> None:
    persons = read(bundles[0], "persons").set_index("person_id")
    assert persons.loc["p-stu3", "sex"] == "M" and persons.loc["p-r4", "sex"] == "F"
    assert persons.loc["p-stu3", "birth_date"] == date(1950, 3, 4)
    assert persons.loc["p-r4", "birth_date"] == date(1962, 11, 1)  # partial date completed, counted
    assert bundles[1].notes["partial_birth_date_completed"] == 1
    assert persons.loc["p-r4", "death_date"] == date(2020, 2, 2)
    assert set(persons["township_id"]) == {"FHIR01"}
    assert persons["village_id"].str.match(r"^FHIR01-V0[1-4]$").all()
    assert not persons["signed_contract"].any()


def test_other_gender_is_quarantined_with_reason(bundles: tuple[Path, ImportReport]) -> None:
    out, report = bundles
    quarantine = pd.read_parquet(out / "_import" / "quarantine.parquet")
    row = quarantine[quarantine["resource_id"] == "p-other"].iloc[0]
    assert row["reason"] == "unmapped_gender" and row["source"] == "other_gender.json"
    assert "p-other" not in set(read(out, "persons")["person_id"])
    assert report.resources["Patient"]["quarantined"] == 1


def test_malformed_bundle_is_quarantined_and_the_others_import(bundles: tuple[Path, ImportReport]) -> None:
    out, report = bundles
    quarantine = pd.read_parquet(out / "_import" / "quarantine.parquet")
    bad = quarantine[quarantine["source"] == "truncated.json"]
    assert list(bad["reason"]) == ["malformed_json"]
    assert report.documents_quarantined == 2 - 1  # truncated.json only; other_gender.json is a valid bundle
    assert report.bundles_read == 3
    assert {"p-stu3", "p-r4"} <= set(read(out, "persons")["person_id"])


def test_bp_panel_components_and_body_measurements_merge_into_one_reading(
    bundles: tuple[Path, ImportReport],
) -> None:
    vitals = read(bundles[0], "vitals").set_index("person_id")
    stu3 = vitals.loc["p-stu3"]
    assert (stu3["sbp"], stu3["dbp"]) == (152.0, 94.0)  # STU3 panel 55284-4
    assert stu3["weight_kg"] == 72.5
    assert stu3["height_cm"] == pytest.approx(68 * 2.54)  # [in_i] converted through units.csv
    assert stu3["source"] == "clinic"
    assert stu3["measured_at"] == datetime(2019, 6, 1, 9, 10)  # local wall clock kept
    r4 = vitals.loc["p-r4"]
    assert (r4["sbp"], r4["dbp"]) == (128.0, 82.0)  # R4 panel 85354-9 with mm[Hg]


def test_glucose_in_mg_dl_and_hba1c_keep_value_and_unit(bundles: tuple[Path, ImportReport]) -> None:
    labs = read(bundles[0], "labs")
    stu3 = labs[labs["person_id"] == "p-stu3"].set_index("test")
    assert (stu3.loc["fpg", "value"], stu3.loc["fpg", "unit"]) == (140.0, "mg/dL")
    assert (stu3.loc["hba1c", "value"], stu3.loc["hba1c", "unit"]) == (7.4, "%")
    assert stu3.loc["egfr", "unit"] == "mL/min/1.73m2"  # UCUM mL/min/{1.73_m2} -> contract spelling
    r4 = labs[labs["person_id"] == "p-r4"].set_index("test")
    assert (r4.loc["fpg", "value"], r4.loc["fpg", "unit"]) == (8.2, "mmol/L")


def test_unknown_codes_and_resource_types_are_counted_not_dropped(bundles: tuple[Path, ImportReport]) -> None:
    report = bundles[1]
    codes = {(c["resource_type"], c["code"]): c["count"] for c in report.to_dict()["unmapped_codes"]}
    assert codes[("Observation", "99999-9")] == 1
    assert codes[("Condition", "999999999")] == 1
    assert codes[("Encounter.class", "XYZ")] == 1
    assert report.resource_types_not_imported["Immunization"] == 1
    ignored = {c["code"] for c in report.to_dict()["ignored_codes"]}
    assert "39156-5" in ignored  # BMI: known, deliberately not imported
    saved = json.loads((bundles[0] / "_import" / "report.json").read_text())
    assert saved["resources"]["Observation"]["unmapped"] == 1


def test_conditions_map_snomed_and_icd10_to_registry_codes(bundles: tuple[Path, ImportReport]) -> None:
    conditions = read(bundles[0], "conditions")
    got = set(zip(conditions["person_id"], conditions["condition"], strict=True))
    # SNOMED 38341003 / 44054006 and ICD-10 E11.9; diabetic renal disease (E11.2) folds into diabetes_t2;
    # the refuted R4 hypertension is excluded.
    assert got == {("p-stu3", "hypertension"), ("p-stu3", "diabetes_t2"), ("p-r4", "diabetes_t2")}
    stu3 = conditions[conditions["person_id"] == "p-stu3"]
    dm = stu3[stu3["condition"] == "diabetes_t2"].iloc[0]
    assert dm["enrolled_on"] == date(2017, 1, 20) and pd.isna(dm["ended_on"])
    assert bundles[1].resources["Condition"]["excluded_status"] == 1


def test_encounters_setting_and_dx_from_reason_or_conditions(bundles: tuple[Path, ImportReport]) -> None:
    encounters = read(bundles[0], "encounters").set_index("encounter_id")
    inpatient = encounters.loc["enc-2"]
    assert inpatient["setting"] == "inpatient" and inpatient["primary_dx"] == "I21.9"  # reason 22298006
    assert inpatient["secondary_dx"] == "E11.2"  # diabetic renal disease diagnosed in this encounter
    assert inpatient["discharged_on"] == date(2019, 8, 15)
    assert encounters.loc["enc-1", "primary_dx"] == "I10"
    assert encounters.loc["e-r4", "setting"] == "outpatient"  # R4 v3 ActCode AMB
    assert (encounters["total_cost"] == 0).all()
    assert "e-r4-unknown" not in encounters.index


def test_prescriptions_rxnorm_reference_codeable_concept_and_atc(bundles: tuple[Path, ImportReport]) -> None:
    rx = read(bundles[0], "prescriptions")
    got = {(r.person_id, r.atc_code, r.days_supply) for r in rx.itertuples()}
    assert got == {("p-stu3", "C08CA01", 28), ("p-r4", "A10BA02", 30), ("p-r4", "A10BB09", 60)}
    assert bundles[1].notes["days_supply_defaulted"] == 1


def test_follow_ups_are_derived_from_clinic_bp_and_glucose_days(bundles: tuple[Path, ImportReport]) -> None:
    fu = read(bundles[0], "follow_ups")
    got = set(zip(fu["person_id"], fu["followed_on"], fu["condition"], strict=True))
    assert got == {
        ("p-stu3", date(2019, 6, 1), "hypertension"), ("p-stu3", date(2019, 6, 1), "diabetes_t2"),
        ("p-r4", date(2019, 9, 9), "diabetes_t2"),
    }
    assert set(fu["mode"]) == {"clinic"}


def test_ndjson_bulk_export_resolves_references_across_files(tmp_path: Path) -> None:
    report = import_fhir(DATA / "ndjson", tmp_path / "input")
    out = tmp_path / "input"
    assert set(read(out, "persons")["person_id"]) == {"nd-1", "nd-2"}
    conditions = read(out, "conditions")
    assert len(conditions) == 1 and conditions.iloc[0]["enrolled_on"] == date(2014, 1, 1)
    assert pd.isna(conditions.iloc[0]["ended_on"])  # one of the two records is still open
    assert read(out, "vitals").iloc[0]["source"] == "clinic"  # Encounter from another file
    rx = read(out, "prescriptions")
    assert list(rx["atc_code"]) == ["C03AA03"] and list(rx["days_supply"]) == [90]
    codes = {c["code"] for c in report.to_dict()["unmapped_codes"]}
    assert "1111111" in codes
    quarantine = pd.read_parquet(out / "_import" / "quarantine.parquet")
    assert set(quarantine["reason"]) == {"malformed_json", "unresolved_medication_reference"}
    assert "Patient.ndjson:3" in set(quarantine["source"])


def test_tar_gz_input_gives_the_same_tables_as_the_folder(
    tmp_path: Path, bundles: tuple[Path, ImportReport]
) -> None:
    archive = tmp_path / "bundles.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(DATA / "bundles", arcname="export")
    import_fhir(archive, tmp_path / "input")
    for table in CONTRACT_TABLES:
        pd.testing.assert_frame_equal(read(tmp_path / "input", table), read(bundles[0], table))


def test_assignment_file_sets_geography_and_contract(tmp_path: Path) -> None:
    assignments = tmp_path / "assign.csv"
    assignments.write_text(
        "person_id,township_id,village_id,unit_id,team_id,signed_contract\n"
        "p-stu3,T07,T07-V3,T07-U3,T07-D1,true\nnobody,T01,V,U,D,false\n", encoding="utf-8")
    report = import_fhir(DATA / "bundles", tmp_path / "input", assignments=assignments)
    persons = read(tmp_path / "input", "persons").set_index("person_id")
    assert tuple(persons.loc["p-stu3", ["township_id", "village_id", "unit_id", "team_id"]]) == (
        "T07", "T07-V3", "T07-U3", "T07-D1")
    assert bool(persons.loc["p-stu3", "signed_contract"])
    assert persons.loc["p-r4", "township_id"] == "FHIR01"
    assert report.notes["persons_geography_from_assignments"] == 1
    assert report.notes["assignment_rows_without_patient"] == 1


def test_bad_assignment_file_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    assignments = tmp_path / "assign.csv"
    assignments.write_text("person_id,township_id\np-stu3,T07\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="village_id"):
        import_fhir(DATA / "bundles", tmp_path / "input", assignments=assignments)
    assert not (tmp_path / "input").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["assign.csv"]  # temp folder removed


def test_existing_output_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "input"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(RiskUserError, match="--force"):
        import_fhir(DATA / "ndjson", out)
    import_fhir(DATA / "ndjson", out, force=True)
    assert not (out / "keep.txt").exists() and (out / "persons.parquet").exists()


def test_small_flush_size_gives_identical_output(tmp_path: Path, bundles: tuple[Path, ImportReport]) -> None:
    import_fhir(DATA / "bundles", tmp_path / "input", flush_rows=1)
    for table in CONTRACT_TABLES:
        pd.testing.assert_frame_equal(read(tmp_path / "input", table), read(bundles[0], table))


def test_cli_import_fhir_prints_report_and_errors_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    shutil.copytree(DATA / "ndjson", tmp_path / "export")
    args = ["import", "fhir", str(tmp_path / "export"), "--out", str(tmp_path / "input")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rows written: persons 2" in result.output
    missing = runner.invoke(app, ["import", "fhir", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
