"""Build tiny canonical tables (the output of `risk validate`) by hand, for tests of later stages.

    b = CanonicalBuilder()
    b.person("P1", sex="F", birth_date="1960-05-01")
    b.condition("P1", "hypertension", enrolled_on="2020-01-01")
    b.vital("P1", "2024-06-01 09:00", 150, 95)
    b.write(tmp_path / "canonical")

Every table of the contract is written (empty when no rows), with the contract's types and a 1-based
source_row; unspecified required columns get plain defaults.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from risk import definitions

ARROW_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    if kind == "timestamp" and isinstance(value, str):
        return datetime.fromisoformat(value if len(value) > 10 else value + " 00:00")
    if kind == "timestamp" and type(value) is date:
        return datetime(value.year, value.month, value.day)
    if kind == "float":
        return float(value)
    return value


class CanonicalBuilder:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in definitions.contract().tables}
        self._encounter_seq = 0

    @classmethod
    def from_rows(cls, tables: dict[str, list[dict[str, Any]]]) -> CanonicalBuilder:
        """A builder holding these rows as given (table name -> rows); no defaults are filled in."""
        builder = cls()
        for name, rows in tables.items():
            for row in rows:
                builder.add(name, **row)
        return builder

    def add(self, table: str, **values: Any) -> CanonicalBuilder:
        self.rows[table].append(values)
        return self

    def person(
        self, person_id: str, sex: str = "M", birth_date: str = "1960-01-01", **values: Any
    ) -> CanonicalBuilder:
        row = {
            "person_id": person_id,
            "sex": sex,
            "birth_date": birth_date,
            "township_id": "T01",
            "village_id": "V001",
            "unit_id": "U001",
            "team_id": "TEAM01",
            "signed_contract": True,
            "phone": None,
        } | values
        return self.add("persons", **row)

    def condition(
        self, person_id: str, condition: str = "hypertension", enrolled_on: str = "2020-01-01", **values: Any
    ) -> CanonicalBuilder:
        row = {
            "person_id": person_id,
            "condition": condition,
            "diagnosed_on": None,
            "enrolled_on": enrolled_on,
        } | values
        return self.add("conditions", **row)

    def vital(
        self, person_id: str, measured_at: str, sbp: float, dbp: float, **values: Any
    ) -> CanonicalBuilder:
        return self.add("vitals", person_id=person_id, measured_at=measured_at, sbp=sbp, dbp=dbp, **values)

    def lab(self, person_id: str, measured_at: str, test: str, value: float) -> CanonicalBuilder:
        unit = definitions.lab_units()["tests"][test]["unit"]
        return self.add(
            "labs", person_id=person_id, measured_at=measured_at, test=test, value=value, unit=unit
        )

    def follow_up(
        self,
        person_id: str,
        followed_on: str,
        condition: str = "hypertension",
        mode: str = "clinic",
        **values: Any,
    ) -> CanonicalBuilder:
        return self.add(
            "follow_ups",
            person_id=person_id,
            followed_on=followed_on,
            condition=condition,
            mode=mode,
            **values,
        )

    def encounter(
        self,
        person_id: str,
        admitted_on: str,
        setting: str = "outpatient",
        primary_dx: str = "I10",
        **values: Any,
    ) -> CanonicalBuilder:
        self._encounter_seq += 1
        row = {
            "encounter_id": f"E{self._encounter_seq:06d}",
            "person_id": person_id,
            "setting": setting,
            "facility_level": "township",
            "admitted_on": admitted_on,
            "discharged_on": None,
            "primary_dx": primary_dx,
            "secondary_dx": None,
            "total_cost": 0.0,
            "fund_paid": 0.0,
        } | values
        return self.add("encounters", **row)

    def prescription(
        self, person_id: str, dispensed_on: str, atc_code: str, days_supply: int
    ) -> CanonicalBuilder:
        return self.add(
            "prescriptions",
            person_id=person_id,
            dispensed_on=dispensed_on,
            atc_code=atc_code,
            days_supply=days_supply,
        )

    def table(self, name: str) -> pa.Table:
        spec = definitions.contract().tables[name]
        rows = self.rows[name]
        columns = {}
        for column in spec.columns.values():
            if column.name == "national_id":
                continue
            kind = column.type
            columns[column.name] = pa.array(
                [_coerce(r.get(column.name), kind) for r in rows], type=ARROW_TYPES[kind]
            )
        if name == "persons":
            columns["national_id_hash"] = pa.array([None] * len(rows), type=pa.string())
            columns["national_id_masked"] = pa.array([None] * len(rows), type=pa.string())
        columns["source_row"] = pa.array(range(1, len(rows) + 1), type=pa.int64())
        return pa.table(columns)

    def write(self, canonical_dir: Path) -> Path:
        canonical_dir.mkdir(parents=True, exist_ok=True)
        for name in self.rows:
            pq.write_table(self.table(name), canonical_dir / f"{name}.parquet")
        return canonical_dir
