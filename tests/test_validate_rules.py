"""Each row rule of `risk validate`: a bad row added to a clean tiny county is quarantined with its reason."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from risk import definitions
from risk.validate import validate_folder
from tests.support.validate_inputs import AS_OF, good_tables, typed_parquet, valid_national_id, write_folder


@pytest.fixture(autouse=True)
def _id_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_ID_KEY", "test-key")


def _with_row(table: str, **changes: str) -> tuple[dict[str, pd.DataFrame], int]:
    """Clean tables plus one extra row in `table`: a copy of its first row with `changes` applied."""
    tables = good_tables()
    frame = tables[table]
    row = frame.iloc[0].to_dict() | changes
    tables[table] = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    return tables, len(tables[table])


def _below_range(table: str, column: str) -> float:
    low = definitions.contract().tables[table].columns[column].range[0]
    return low / 2 if low > 0 else low - 1


BAD_ROWS = [
    ("vitals", {"sbp": "abc"}, "bad_value"),
    ("vitals", {"measured_at": "2024-13-45"}, "bad_value"),
    ("persons", {"person_id": "P9", "birth_date": "15/03/1950"}, "bad_value"),
    ("persons", {"person_id": "P9", "signed_contract": "maybe"}, "bad_value"),
    ("prescriptions", {"days_supply": "30.5"}, "bad_value"),
    ("vitals", {"sbp": ""}, "missing_value"),
    ("persons", {"person_id": "P9", "township_id": "  "}, "missing_value"),
    ("persons", {"person_id": "P9", "sex": "X"}, "not_allowed"),
    ("vitals", {"source": "pharmacy"}, "not_allowed"),
    ("follow_ups", {"mode": "email"}, "not_allowed"),
    ("conditions", {"condition": "flu"}, "unknown_condition"),
    ("labs", {"test": "psa"}, "unknown_lab_test"),
    ("labs", {"unit": "g/L"}, "unknown_unit"),
    ("encounters", {"encounter_id": "E9", "primary_dx": "XYZ"}, "malformed_icd10"),
    ("encounters", {"encounter_id": "E9", "primary_dx": "U07.1"}, "malformed_icd10"),
    ("encounters", {"encounter_id": "E9", "primary_dx": "I10..9"}, "malformed_icd10"),
    ("encounters", {"encounter_id": "E9", "primary_dx": "I 10"}, "malformed_icd10"),
    ("encounters", {"encounter_id": "E9", "primary_dx": "I1O"}, "malformed_icd10"),
    ("encounters", {"encounter_id": "E9", "secondary_dx": "I10;E11.2;1234"}, "malformed_icd10"),
    ("prescriptions", {"atc_code": "C08"}, "malformed_atc"),
    ("vitals", {"sbp": "400"}, "out_of_range"),
    ("vitals", {"weight_kg": f"{_below_range('vitals', 'weight_kg')}"}, "out_of_range"),
    ("labs", {"test": "fpg", "value": "900", "unit": "mg/dL"}, "out_of_range"),  # 50 mmol/L
    ("persons", {"person_id": "P9", "birth_date": "1850-01-01"}, "out_of_range"),
    ("prescriptions", {"days_supply": "0"}, "out_of_range"),
    ("vitals", {"sbp": "80", "dbp": "90"}, "sbp_not_above_dbp"),
    ("vitals", {"sbp": "90", "dbp": "90"}, "sbp_not_above_dbp"),
    ("encounters", {"encounter_id": "E9", "discharged_on": "2023-10-30"}, "end_before_start"),
    ("conditions", {"condition": "ckd", "ended_on": "2010-01-01"}, "end_before_start"),
    ("encounters", {"encounter_id": "E9", "fund_paid": "9000"}, "fund_exceeds_cost"),
    ("vitals", {"measured_at": "2024-07-01 08:00:00"}, "future_date"),
    ("follow_ups", {"followed_on": "2030-01-01"}, "future_date"),
    ("persons", {"person_id": "P9", "death_date": "2025-01-01"}, "future_date"),
    ("persons", {"person_id": "P9", "death_date": "1940-01-01"}, "death_before_birth"),
    ("vitals", {"person_id": "NOBODY"}, "unknown_person"),
    ("labs", {"measured_at": "1949-12-31"}, "before_birth"),
    ("conditions", {"condition": "ckd", "diagnosed_on": "1940-01-01"}, "before_birth"),
    ("vitals", {"measured_at": "2024-01-10 09:00:00"}, "duplicate"),
    ("persons", {}, "duplicate"),
    ("encounters", {"person_id": "P2"}, "duplicate"),  # same encounter_id, other values
]


@pytest.mark.parametrize(("table", "changes", "reason"), BAD_ROWS,
                         ids=[f"{t}-{r}-{i}" for i, (t, _, r) in enumerate(BAD_ROWS)])
def test_bad_row_is_quarantined_with_its_reason(tmp_path: Path, table: str, changes: dict[str, str],
                                                reason: str) -> None:
    tables, bad_row = _with_row(table, **changes)
    result = validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine[["table", "source_row", "reason_code"]].values.tolist() == [[table, bad_row, reason]]
    for name, counts in result.tables.items():
        assert counts.rows_read == len(tables[name])
        assert counts.rows_accepted == len(tables[name]) - (name == table)


def test_quarantined_person_takes_their_records_along(tmp_path: Path) -> None:
    tables = good_tables()
    tables["persons"].loc[0, "sex"] = "unknown"  # P1
    validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    p1_rows = sum((frame["person_id"] == "P1").sum() for frame in tables.values())
    assert len(quarantine) == p1_rows
    assert set(quarantine.loc[quarantine["table"] != "persons", "reason_code"]) == {"unknown_person"}


def test_after_death_allows_a_grace_period(tmp_path: Path) -> None:
    grace = definitions.validation_rules()["after_death_grace_days"]
    tables = good_tables()
    tables["persons"].loc[0, "death_date"] = "2024-01-03"  # P1; follow-up on 2024-01-10 is within grace
    assert grace >= 7
    vitals = tables["vitals"]
    vitals.loc[1, "measured_at"] = "2024-03-01"
    validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine[["table", "source_row", "reason_code"]].values.tolist() == [
        ["vitals", 2, "after_death"], ["labs", 3, "after_death"]]


def test_first_failing_reason_wins(tmp_path: Path) -> None:
    tables, bad_row = _with_row("vitals", sbp="400", dbp="500", measured_at="2030-01-01", person_id="NOBODY")
    validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine["reason_code"].tolist() == ["out_of_range"]
    assert quarantine["detail"].iloc[0].startswith("sbp=400")


def _canonical(folder: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(folder / "canonical" / f"{table}.parquet")
    return frame.sort_values("source_row").reset_index(drop=True)


def test_canonical_values_are_normalised(tmp_path: Path) -> None:
    validate_folder(write_folder(tmp_path / "in", good_tables()), tmp_path / "out", as_of=AS_OF)
    canonical = tmp_path / "out" / "canonical"
    labs = pd.read_parquet(canonical / "labs.parquet").set_index("test")
    assert labs.loc["fpg", "value"] == pytest.approx(126 / 18.016, rel=1e-4)
    assert labs.loc["fpg", "unit"] == "mmol/L"
    assert labs.loc["hba1c", "value"] == pytest.approx(0.09148 * 53 + 2.152)
    assert labs.loc["hba1c", "unit"] == "%"
    encounters = _canonical(tmp_path / "out", "encounters")
    assert encounters["primary_dx"].tolist() == ["I63.9", "I10"]
    assert encounters["secondary_dx"].tolist()[0] == "I10;E11.2"
    prescriptions = _canonical(tmp_path / "out", "prescriptions")
    assert prescriptions["atc_code"].tolist() == ["C08CA01", "A10BA02"]
    persons = _canonical(tmp_path / "out", "persons")
    assert persons["signed_contract"].tolist() == [True, False, True]
    assert persons["source_row"].tolist() == [1, 2, 3]
    follow_ups = _canonical(tmp_path / "out", "follow_ups")
    assert follow_ups["smoker"].tolist() == [False, True]


def test_national_id_is_hashed_masked_and_never_written_in_clear(tmp_path: Path) -> None:
    from risk.privacy import hash_national_id

    tables = good_tables()
    clear = valid_national_id()
    broken = clear[:-1] + ("0" if clear[-1] != "0" else "1")
    tables["persons"].loc[2, "national_id"] = broken
    result = validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    persons = _canonical(tmp_path / "out", "persons")
    assert "national_id" not in persons.columns
    assert persons["national_id_hash"].iloc[0] == hash_national_id(clear)
    assert persons["national_id_masked"].iloc[0] == "*" * 16 + clear[-2:]  # no region, no birth date
    assert persons["national_id_valid"].tolist()[0] is True
    assert pd.isna(persons["national_id_valid"].iloc[1])
    assert persons["national_id_valid"].tolist()[2] is False
    assert result.warnings == {"national_id_checksum": 1}
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert clear.encode() not in path.read_bytes() and broken.encode() not in path.read_bytes()


def test_optional_tables_may_be_absent(tmp_path: Path) -> None:
    tables = good_tables()
    for name in definitions.validation_rules()["optional_tables"]:
        del tables[name]
    del tables["labs"]  # needed, but a county without a lab interface may say so (--allow-empty labs)
    result = validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF,
                             allow_empty={"labs"})
    labs = pd.read_parquet(tmp_path / "out" / "canonical" / "labs.parquet")
    assert labs.empty and "value" in labs.columns
    assert result.tables["labs"].file is None and result.tables["encounters"].file is None
    assert "absent" in result.render()
    assert result.overrides == ["table 'labs' is missing: accepted by --allow-empty labs"]


def test_parquet_with_contract_types_validates_like_csv(tmp_path: Path) -> None:
    tables, _ = _with_row("vitals", sbp="80", dbp="90")
    typed = {name: typed_parquet(frame, name) for name, frame in tables.items()}
    from_parquet = validate_folder(write_folder(tmp_path / "pq", typed, fmt="parquet"), tmp_path / "out_pq",
                                   as_of=AS_OF)
    from_csv = validate_folder(write_folder(tmp_path / "csv", tables), tmp_path / "out_csv", as_of=AS_OF)
    assert from_parquet.to_json()["tables"] == {
        name: counts | {"file": counts["file"].replace(".csv", ".parquet")}
        for name, counts in from_csv.to_json()["tables"].items()
    }
    for name in tables:
        from_pq, from_csv = _canonical(tmp_path / "out_pq", name), _canonical(tmp_path / "out_csv", name)
        pd.testing.assert_frame_equal(from_pq, from_csv)


def test_parquet_text_column_with_some_bad_cells_quarantines_rows(tmp_path: Path) -> None:
    tables, bad_row = _with_row("vitals", sbp="n/a")
    validate_folder(write_folder(tmp_path / "in", tables, fmt="parquet"), tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine[["source_row", "reason_code", "detail"]].values.tolist() == [
        [bad_row, "bad_value", "sbp=n/a is not a float"]]


def test_validation_json_records_accounting_and_provenance(tmp_path: Path) -> None:
    import json

    tables, _ = _with_row("vitals", sbp="400")
    validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF)
    document = json.loads((tmp_path / "out" / "validation.json").read_text(encoding="utf-8"))
    assert document["contract_version"] == definitions.contract().version
    assert len(document["input_fingerprint"]) == 32
    assert document["as_of"] == AS_OF.isoformat()
    assert document["tables"]["vitals"]["reasons"] == {"out_of_range": 1}
    assert document["rows_read"] == document["rows_accepted"] + document["rows_quarantined"] == 18
    written = duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'out' / 'quarantine.parquet'}'").fetchall()[0][0]
    assert written == document["rows_quarantined"]


def test_every_reason_code_has_a_test() -> None:
    tested = {reason for _, _, reason in BAD_ROWS} | {"after_death"}
    assert tested == set(definitions.validation_rules()["reasons"])


def test_canonical_schema_rejects_what_validation_quarantines(tmp_path: Path) -> None:
    import pandera.errors

    from risk.validate.schema import canonical_schema

    validate_folder(write_folder(tmp_path / "in", good_tables()), tmp_path / "out", as_of=AS_OF)
    vitals = pd.read_parquet(tmp_path / "out" / "canonical" / "vitals.parquet")
    canonical_schema("vitals").validate(vitals)
    vitals.loc[0, "sbp"] = 400.0
    with pytest.raises(pandera.errors.SchemaError):
        canonical_schema("vitals").validate(vitals)


def test_generated_validation_document_is_current() -> None:
    from risk.validate.docs import validation_markdown

    document = Path(__file__).resolve().parent.parent / "docs" / "validation.md"
    assert document.read_text(encoding="utf-8") == validation_markdown(), "run `risk docs`"


def test_optional_columns_may_be_absent_and_tables_may_be_empty(tmp_path: Path) -> None:
    tables = good_tables()
    tables["persons"] = tables["persons"].drop(columns=["national_id", "death_date"])
    tables["conditions"] = tables["conditions"].iloc[0:0]
    result = validate_folder(write_folder(tmp_path / "in", tables), tmp_path / "out", as_of=AS_OF,
                             allow_empty={"conditions"})
    persons = pd.read_parquet(tmp_path / "out" / "canonical" / "persons.parquet")
    assert persons["national_id_hash"].isna().all() and persons["death_date"].isna().all()
    assert result.tables["conditions"].rows_read == 0
    assert result.tables["persons"].rows_accepted == 3


def test_typed_parquet_numbers_that_do_not_fit_are_bad_values(tmp_path: Path) -> None:
    tables = good_tables()
    folder = write_folder(tmp_path / "in", tables)
    prescriptions = typed_parquet(tables["prescriptions"], "prescriptions")
    prescriptions["days_supply"] = [30.0, 28.5]  # a DOUBLE column where whole days belong
    (folder / "prescriptions.csv").unlink()
    prescriptions.to_parquet(folder / "prescriptions.parquet", index=False)
    validate_folder(folder, tmp_path / "out", as_of=AS_OF)
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    found = quarantine[["table", "source_row", "reason_code"]].values.tolist()
    assert found == [["prescriptions", 2, "bad_value"]]
