"""A tiny county written by hand in the input data contract (raw CSV/Parquet files, not canonical tables),
the way a new user would try the product: 9 persons, a few conditions, vitals, labs, follow-ups, one
encounter and one prescription.

    tables = nine_person_county()
    write_county(tables, tmp_path / "input")            # CSV
    write_county(tables, tmp_path / "input", "parquet")
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from risk import definitions

AS_OF = "2024-12-31"


def nine_person_county() -> dict[str, pd.DataFrame]:
    ids = [f"P{i}" for i in range(1, 10)]
    persons = pd.DataFrame(
        {
            "person_id": ids,
            "sex": ["M", "F"] * 4 + ["M"],
            "birth_date": [
                "1950-03-01",
                "1955-07-12",
                "1948-11-30",
                "1962-01-05",
                "1970-06-15",
                "1945-02-20",
                "1958-09-09",
                "1966-04-04",
                "1980-12-12",
            ],
            "township_id": ["T1"] * 5 + ["T2"] * 4,
            "village_id": ["V1", "V1", "V2", "V2", "V3", "V4", "V4", "V5", "V5"],
            "unit_id": ["U1", "U1", "U2", "U2", "U3", "U4", "U4", "U5", "U5"],
            "team_id": ["TM1"] * 5 + ["TM2"] * 4,
            "signed_contract": ["true"] * 9,
            "phone": ["13800000000"] * 9,
        }
    )
    conditions = pd.DataFrame(
        {
            "person_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
            "condition": [
                "hypertension",
                "hypertension",
                "diabetes_t2",
                "hypertension",
                "diabetes_t2",
                "hypertension",
            ],
            "diagnosed_on": ["2018-01-01"] * 6,
            "enrolled_on": ["2019-01-01"] * 6,
        }
    )
    vitals = pd.DataFrame(
        {
            # P8 is not registered but has raised BP on two days: an unmanaged candidate with no claims
            "person_id": ["P1", "P1", "P2", "P4", "P6", "P3", "P8", "P8"],
            "measured_at": [
                "2024-03-01 09:00:00",
                "2024-09-01 09:00:00",
                "2024-10-10 10:00:00",
                "2024-12-20 08:00:00",
                "2024-06-01 08:00:00",
                "2024-08-08 08:00:00",
                "2024-05-02 09:00:00",
                "2024-07-02 09:00:00",
            ],
            "sbp": [150, 165, 128, 182, 139, 131, 158, 162],
            "dbp": [92, 98, 80, 112, 85, 82, 96, 94],
        }
    )
    labs = pd.DataFrame(
        {
            "person_id": ["P3", "P5", "P3"],
            "measured_at": ["2024-07-01 08:00:00", "2024-05-05 08:00:00", "2024-10-01 08:00:00"],
            "test": ["fpg", "hba1c", "hba1c"],
            "value": [8.2, 6.4, 7.9],
            "unit": ["mmol/L", "%", "%"],
        }
    )
    follow_ups = pd.DataFrame(
        {
            "person_id": ["P1", "P2", "P3", "P4"],
            "followed_on": ["2024-09-01", "2024-10-10", "2024-08-08", "2024-12-20"],
            "condition": ["hypertension", "hypertension", "diabetes_t2", "hypertension"],
            "mode": ["clinic", "home", "clinic", "phone"],
        }
    )
    encounters = pd.DataFrame(
        {
            "encounter_id": ["E1"],
            "person_id": ["P7"],
            "setting": ["outpatient"],
            "facility_level": ["township"],
            "admitted_on": ["2024-04-04"],
            "discharged_on": [""],
            "primary_dx": ["J18.9"],
            "secondary_dx": [""],
            "total_cost": [120.0],
            "fund_paid": [60.0],
        }
    )
    prescriptions = pd.DataFrame(
        {
            "person_id": ["P1"],
            "dispensed_on": ["2024-09-01"],
            "atc_code": ["C08CA01"],
            "days_supply": [30],
        }
    )
    return dict(
        persons=persons,
        conditions=conditions,
        vitals=vitals,
        labs=labs,
        follow_ups=follow_ups,
        encounters=encounters,
        prescriptions=prescriptions,
    )


def header_only(table: str) -> pd.DataFrame:
    """The table with its required columns and no rows."""
    spec = definitions.contract().tables[table]
    return pd.DataFrame({name: pd.Series(dtype="str") for name, col in spec.columns.items() if col.required})


def write_county(tables: dict[str, pd.DataFrame], folder: Path, fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.astype("str").to_parquet(folder / f"{name}.parquet", index=False)
    return folder
