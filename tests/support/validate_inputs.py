"""Builders for tiny hand-made input folders used by the validation tests (no tests here)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from risk.validate.codes import national_id_check_char

AS_OF = date(2024, 6, 30)


def valid_national_id(first17: str = "34062119600101123") -> str:
    return first17 + national_id_check_char(first17)


def good_tables() -> dict[str, pd.DataFrame]:
    """Three persons and one clean row (or two) per table; every row passes validation."""
    persons = pd.DataFrame({
        "person_id": ["P1", "P2", "P3"],
        "sex": ["M", "F", "M"],
        "birth_date": ["1950-03-01", "1962-07-15", "1975-01-20"],
        "township_id": ["T01", "T01", "T02"],
        "village_id": ["V001", "V002", "V010"],
        "unit_id": ["U001", "U002", "U010"],
        "team_id": ["TM01", "TM01", "TM02"],
        "signed_contract": ["true", "false", "1"],
        "phone": ["13800001111", "", "13900002222"],
        "national_id": [valid_national_id(), "", valid_national_id("34062119620715222")],
        "death_date": ["", "", ""],
    })
    conditions = pd.DataFrame({
        "person_id": ["P1", "P2"],
        "condition": ["hypertension", "diabetes_t2"],
        "diagnosed_on": ["2015-01-01", ""],
        "enrolled_on": ["2015-02-01", "2019-05-05"],
    })
    vitals = pd.DataFrame({
        "person_id": ["P1", "P1", "P2"],
        "measured_at": ["2024-01-10 09:00:00", "2024-04-10", "2024-02-01 10:30:00"],
        "sbp": ["150", "138.5", "128"],
        "dbp": ["92", "85", "80"],
        "source": ["follow_up", "clinic", "home"],
    })
    labs = pd.DataFrame({
        "person_id": ["P2", "P2", "P1"],
        "measured_at": ["2024-02-01", "2024-02-01", "2024-03-03"],
        "test": ["fpg", "hba1c", "tc"],
        "value": ["126", "53", "5.2"],
        "unit": ["mg/dL", "mmol/mol", "mmol/L"],
    })
    follow_ups = pd.DataFrame({
        "person_id": ["P1", "P2"],
        "followed_on": ["2024-01-10", "2024-02-01"],
        "condition": ["hypertension", "diabetes_t2"],
        "mode": ["clinic", "phone"],
        "smoker": ["no", "Y"],
    })
    encounters = pd.DataFrame({
        "encounter_id": ["E1", "E2"],
        "person_id": ["P1", "P3"],
        "setting": ["inpatient", "outpatient"],
        "facility_level": ["county", "village"],
        "admitted_on": ["2023-11-01", "2024-05-05"],
        "discharged_on": ["2023-11-09", ""],
        "primary_dx": ["i63.9", "I10"],
        "secondary_dx": ["I10; e11.2", ""],
        "total_cost": ["8000", "35.5"],
        "fund_paid": ["5600", "20"],
    })
    prescriptions = pd.DataFrame({
        "person_id": ["P1", "P2"],
        "dispensed_on": ["2024-01-10", "2024-02-01"],
        "atc_code": ["c08ca01", "A10BA02"],
        "days_supply": ["30", "28"],
    })
    return {"persons": persons, "conditions": conditions, "vitals": vitals, "labs": labs,
            "follow_ups": follow_ups, "encounters": encounters, "prescriptions": prescriptions}


def write_folder(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    """Write tables as text cells (CSV) or as Parquet string columns (parquet)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def typed_parquet(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The frame with contract types (as a careful exporter would write Parquet)."""
    from risk import definitions

    spec = definitions.contract().tables[table]
    typed = {}
    for name, values in frame.items():
        col = spec.columns[name]
        text = values.replace("", None)
        if col.type == "float":
            typed[name] = pd.to_numeric(text).astype("float64")
        elif col.type == "int":
            typed[name] = pd.to_numeric(text).astype("Int64")
        elif col.type == "date":
            typed[name] = pd.to_datetime(text, format="ISO8601").dt.date
        elif col.type == "timestamp":
            typed[name] = pd.to_datetime(text, format="ISO8601")
        elif col.type == "bool":
            truth = {"true": True, "1": True, "y": True, "yes": True, "false": False, "0": False, "no": False}
            parsed = text.map(lambda v, m=truth: None if v is None else m[str(v).lower()])
            typed[name] = parsed.astype("boolean")
        else:
            typed[name] = text
    return pd.DataFrame(typed)
