"""Second pass, out of core (DuckDB, spilling to disk): resolve references across resources and files,
merge readings taken at the same instant, derive follow-ups, apply the assignment file, write the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from risk.errors import InputFileError
from risk.interop.fhir.mappings import Mappings
from risk.interop.fhir.report import ImportReport
from risk.sql import literal, literal_list

ASSIGNMENT_COLUMNS = ["person_id", "township_id", "village_id", "unit_id", "team_id", "signed_contract"]
CONTRACT_TABLES = ["persons", "conditions", "vitals", "labs", "follow_ups", "encounters", "prescriptions"]


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    con.execute(f"COPY ({query}) TO {literal(target)} (FORMAT parquet)")


def _assignments_view(con: duckdb.DuckDBPyConnection, assignments: Path | None) -> None:
    if assignments is None:
        con.execute(
            "CREATE VIEW assign AS SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS township_id, "
            "NULL::VARCHAR AS village_id, NULL::VARCHAR AS unit_id, NULL::VARCHAR AS team_id, "
            "NULL::BOOLEAN AS signed_contract WHERE false"
        )
        return
    label = str(assignments)
    try:
        con.execute(
            f"CREATE TABLE assign_raw AS SELECT * FROM read_csv({literal(assignments)}, header=true, "
            "all_varchar=true)"
        )
    except duckdb.Error as exc:
        raise InputFileError(label, f"not a readable CSV ({str(exc).splitlines()[0]})") from exc
    columns = [row[0] for row in con.execute("DESCRIBE assign_raw").fetchall()]
    for column in ASSIGNMENT_COLUMNS:
        if column not in columns:
            raise InputFileError(label, "missing required column", column=column)
    blanks = con.execute(
        "SELECT count(*) FROM assign_raw WHERE "
        + " OR ".join(f"{c} IS NULL OR trim({c}) = ''" for c in ASSIGNMENT_COLUMNS)
    ).fetchone()[0]
    if blanks:
        raise InputFileError(label, f"{blanks} row(s) with an empty value")
    duplicated = con.execute(
        "SELECT count(*) FROM (SELECT person_id FROM assign_raw GROUP BY 1 HAVING count(*) > 1)"
    ).fetchone()[0]
    if duplicated:
        raise InputFileError(
            label, f"{duplicated} person_id value(s) appear more than once", column="person_id"
        )
    bad_bool = con.execute(
        "SELECT count(*) FROM assign_raw WHERE lower(trim(signed_contract)) NOT IN "
        "('true', 'false', '1', '0', 'yes', 'no', 't', 'f')"
    ).fetchone()[0]
    if bad_bool:
        raise InputFileError(label, f"{bad_bool} value(s) are not true/false", column="signed_contract")
    con.execute(
        "CREATE VIEW assign AS SELECT trim(person_id) AS person_id, trim(township_id) AS township_id, "
        "trim(village_id) AS village_id, trim(unit_id) AS unit_id, trim(team_id) AS team_id, "
        "lower(trim(signed_contract)) IN ('true', '1', 'yes', 't') AS signed_contract FROM assign_raw"
    )


def finalize(
    staging: dict[str, Path],
    out: Path,
    work: Path,
    maps: Mappings,
    assignments: Path | None,
    report: ImportReport,
) -> None:
    settings: dict[str, Any] = maps.settings
    con = duckdb.connect(str(work / "finalize.duckdb"))
    try:
        con.execute(f"SET temp_directory = {literal(work / 'spill')}")
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET preserve_insertion_order = false")
        for name, path in staging.items():
            con.execute(f"CREATE VIEW stage_{name} AS SELECT * FROM read_parquet({literal(path)})")
        _assignments_view(con, assignments)
        _persons(con, out, report)
        _conditions(con, out)
        _encounters(con, out, settings, report)
        _vitals(con, out, report)
        _labs(con, out, report)
        _follow_ups(con, out, settings)
        _prescriptions(con, out, work, report)
        for table in CONTRACT_TABLES:
            report.rows_written[table] = con.execute(
                f"SELECT count(*) FROM read_parquet({literal(out / f'{table}.parquet')})"
            ).fetchone()[0]
    finally:
        con.close()


def _persons(con: duckdb.DuckDBPyConnection, out: Path, report: ImportReport) -> None:
    con.execute("""
        CREATE TABLE persons AS
        SELECT p.person_id, p.sex, p.birth_date,
               COALESCE(a.township_id, p.township_id) AS township_id,
               COALESCE(a.village_id, p.village_id) AS village_id,
               COALESCE(a.unit_id, p.unit_id) AS unit_id,
               COALESCE(a.team_id, p.team_id) AS team_id,
               COALESCE(a.signed_contract, p.signed_contract) AS signed_contract,
               p.phone, p.death_date, a.person_id IS NOT NULL AS assigned
        FROM stage_persons p LEFT JOIN assign a USING (person_id)""")
    assigned, defaulted = con.execute(
        "SELECT count(*) FILTER (WHERE assigned), count(*) FILTER (WHERE NOT assigned) FROM persons"
    ).fetchone()
    unmatched = con.execute(
        "SELECT count(*) FROM assign WHERE person_id NOT IN (SELECT person_id FROM stage_persons)"
    ).fetchone()[0]
    report.notes["persons_geography_from_assignments"] += assigned
    report.notes["persons_geography_default"] += defaulted
    report.notes["assignment_rows_without_patient"] += unmatched
    _copy(con, "SELECT * EXCLUDE (assigned) FROM persons ORDER BY person_id", out / "persons.parquet")


def _conditions(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    # One registry row per person and condition: earliest onset; ended only when every record has ended.
    con.execute("""
        CREATE TABLE conditions AS
        SELECT person_id, condition, MIN(onset) AS diagnosed_on, MIN(onset) AS enrolled_on,
               CASE WHEN BOOL_OR(abatement IS NULL) THEN NULL ELSE MAX(abatement) END AS ended_on
        FROM stage_conditions WHERE condition IS NOT NULL GROUP BY person_id, condition""")
    _copy(con, "SELECT * FROM conditions ORDER BY person_id, condition", out / "conditions.parquet")


def _encounters(
    con: duckdb.DuckDBPyConnection, out: Path, settings: dict[str, Any], report: ImportReport
) -> None:
    enc = settings["encounters"]
    placeholder = literal(str(enc["placeholder_dx"]))
    con.execute(f"""
        CREATE TABLE encounters AS
        WITH dx AS (
            SELECT person_id, encounter_id, list(icd10 ORDER BY onset NULLS LAST, icd10) AS dxs
            FROM stage_conditions WHERE encounter_id IS NOT NULL GROUP BY person_id, encounter_id
        ), joined AS (
            SELECT e.*, dx.dxs FROM stage_encounters e LEFT JOIN dx USING (person_id, encounter_id)
        )
        SELECT *, COALESCE(reason_dx, dxs[1], type_dx, {placeholder}) AS primary_dx,
               CASE WHEN reason_dx IS NOT NULL THEN 'reason' WHEN dxs[1] IS NOT NULL THEN 'condition'
                    WHEN type_dx IS NOT NULL THEN 'encounter_type' ELSE 'placeholder' END AS dx_source
        FROM joined""")
    report.primary_dx_source = dict(
        con.execute("SELECT dx_source, count(*) FROM encounters GROUP BY 1 ORDER BY 2 DESC").fetchall()
    )
    _copy(
        con,
        f"""
        SELECT encounter_id, person_id, setting, facility_level, admitted_on, discharged_on, primary_dx,
               NULLIF(array_to_string(list_sort(list_filter(list_distinct(list_concat(
                   string_split(COALESCE(other_reason_dx, ''), ';'), COALESCE(dxs, []::VARCHAR[]))),
                   lambda x: x <> '' AND x <> primary_dx)), ';'), '') AS secondary_dx,
               {float(enc["total_cost"])}::DOUBLE AS total_cost,
               {float(enc["fund_paid"])}::DOUBLE AS fund_paid
        FROM encounters ORDER BY person_id, admitted_on, encounter_id""",
        out / "encounters.parquet",
    )


def _vitals(con: duckdb.DuckDBPyConnection, out: Path, report: ImportReport) -> None:
    # Synthea (and most EHRs) record BP, weight and height as separate Observations at the same instant;
    # the contract has one vitals row per reading, so they are merged on (person, instant).
    con.execute("""
        CREATE TABLE vitals AS
        WITH merged AS (
            SELECT person_id, measured_at, MAX(sbp) AS sbp, MAX(dbp) AS dbp, MAX(heart_rate) AS heart_rate,
                   MAX(weight_kg) AS weight_kg, MAX(height_cm) AS height_cm, MAX(waist_cm) AS waist_cm,
                   MIN(encounter_id) AS encounter_id, count(sbp) AS n_bp
            FROM stage_vitals GROUP BY person_id, measured_at
        ), source AS (
            SELECT person_id, encounter_id, any_value(vitals_source) AS vitals_source,
                   any_value(setting) AS setting
            FROM stage_encounters GROUP BY person_id, encounter_id
        )
        SELECT m.*, COALESCE(s.vitals_source, 'other') AS source, s.setting
        FROM merged m LEFT JOIN source s USING (person_id, encounter_id)""")
    without_bp, collapsed = con.execute(
        "SELECT count(*) FILTER (WHERE sbp IS NULL OR dbp IS NULL), COALESCE(sum(n_bp - 1) FILTER "
        "(WHERE n_bp > 1), 0) FROM vitals"
    ).fetchone()
    report.notes["body_measurements_without_bp_not_imported"] += without_bp
    report.notes["bp_readings_same_instant_collapsed"] += int(collapsed)
    _copy(
        con,
        "SELECT person_id, measured_at, sbp, dbp, heart_rate, weight_kg, height_cm, waist_cm, source "
        "FROM vitals WHERE sbp IS NOT NULL AND dbp IS NOT NULL ORDER BY person_id, measured_at",
        out / "vitals.parquet",
    )


def _labs(con: duckdb.DuckDBPyConnection, out: Path, report: ImportReport) -> None:
    # Synthea 2017 emits each HbA1c twice (same instant, same value); exact repeats are one result.
    staged = con.execute("SELECT count(*) FROM stage_labs").fetchone()[0]
    con.execute(
        "CREATE TABLE labs AS SELECT DISTINCT person_id, measured_at, test, value, unit FROM stage_labs"
    )
    report.notes["lab_exact_duplicates_collapsed"] += (
        staged - con.execute("SELECT count(*) FROM labs").fetchone()[0]
    )
    _copy(con, "SELECT * FROM labs ORDER BY person_id, measured_at, test, value", out / "labs.parquet")


def _follow_ups(con: duckdb.DuckDBPyConnection, out: Path, settings: dict[str, Any]) -> None:
    """Approximation documented in docs/fhir-import.md: FHIR has no follow-up form."""
    rule = settings["follow_ups"]
    _copy(
        con,
        f"""
        WITH days AS (
            SELECT person_id, CAST(measured_at AS DATE) AS day, setting FROM vitals
            WHERE sbp IS NOT NULL AND dbp IS NOT NULL
            UNION ALL
            SELECT l.person_id, CAST(l.measured_at AS DATE), e.setting
            FROM stage_labs l JOIN stage_encounters e USING (person_id, encounter_id)
            WHERE l.test IN ({literal_list(rule["lab_tests"])})
        ), clinic_days AS (
            SELECT DISTINCT person_id, day FROM days WHERE setting IN ({literal_list(rule["settings"])})
        )
        SELECT c.person_id, d.day AS followed_on, c.condition, '{rule["mode"]}' AS mode,
               NULL::BOOLEAN AS smoker, NULL::VARCHAR AS adherence, NULL::VARCHAR AS symptoms,
               NULL::BOOLEAN AS adverse_reaction, NULL::BOOLEAN AS referred
        FROM clinic_days d JOIN conditions c ON c.person_id = d.person_id
        WHERE c.condition IN ({literal_list(rule["conditions"])}) AND c.enrolled_on <= d.day
          AND (c.ended_on IS NULL OR c.ended_on > d.day)
        ORDER BY c.person_id, d.day, c.condition""",
        out / "follow_ups.parquet",
    )


def _prescriptions(con: duckdb.DuckDBPyConnection, out: Path, work: Path, report: ImportReport) -> None:
    con.execute("""
        CREATE TABLE prescriptions AS
        WITH med AS (
            SELECT medication_id, any_value(atc_code) AS atc_code, any_value(system) AS system,
                   any_value(code) AS code, any_value(display) AS display
            FROM stage_medications GROUP BY medication_id
        )
        SELECT s.person_id, s.dispensed_on, COALESCE(s.atc_code, m.atc_code) AS atc_code, s.days_supply,
               COALESCE(s.drug_name, m.display) AS drug_name, s.medication_ref,
               m.medication_id IS NOT NULL AS resolved, m.system, m.code, m.display
        FROM stage_prescriptions s LEFT JOIN med m ON s.medication_ref = m.medication_id""")
    for system, code, display, n in con.execute(
        "SELECT system, code, display, count(*) FROM prescriptions WHERE medication_ref IS NOT NULL "
        "AND resolved AND atc_code IS NULL GROUP BY ALL"
    ).fetchall():
        report.unmapped_codes[("Medication (referenced)", system or "", code or "", display or "")] += n
    unresolved = con.execute(
        "SELECT count(*) FROM prescriptions WHERE medication_ref IS NOT NULL AND NOT resolved"
    ).fetchone()[0]
    report.notes["medication_reference_unresolved"] += unresolved
    if unresolved:
        report.quarantine_reasons["unresolved_medication_reference"] += unresolved
    _copy(
        con,
        """
        SELECT source, resource_type, resource_id, reason, detail FROM stage_quarantine
        UNION ALL
        SELECT 'finalize', 'MedicationRequest|MedicationDispense', NULL, 'unresolved_medication_reference',
               medication_ref FROM prescriptions WHERE medication_ref IS NOT NULL AND NOT resolved""",
        work.parent / "quarantine.parquet",
    )
    _copy(
        con,
        "SELECT person_id, dispensed_on, atc_code, days_supply, drug_name FROM prescriptions "
        "WHERE atc_code IS NOT NULL ORDER BY person_id, dispensed_on, atc_code",
        out / "prescriptions.parquet",
    )
