"""Row buffers flushed to Parquet every N rows, so memory stays bounded whatever the input size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

STRING = pa.string()
DATE = pa.date32()
TIMESTAMP = pa.timestamp("us")
FLOAT = pa.float64()

# Staging tables keep the references (encounter, medication) that are resolved later with DuckDB joins,
# so NDJSON exports (one file per resource type) and bundles go through the same out-of-core path.
STAGING_SCHEMAS: dict[str, pa.Schema] = {
    "persons": pa.schema(
        [
            ("person_id", STRING),
            ("sex", STRING),
            ("birth_date", DATE),
            ("township_id", STRING),
            ("village_id", STRING),
            ("unit_id", STRING),
            ("team_id", STRING),
            ("signed_contract", pa.bool_()),
            ("phone", STRING),
            ("death_date", DATE),
        ]
    ),
    "conditions": pa.schema(
        [
            ("person_id", STRING),
            ("condition", STRING),
            ("icd10", STRING),
            ("onset", DATE),
            ("abatement", DATE),
            ("encounter_id", STRING),
        ]
    ),
    "vitals": pa.schema(
        [
            ("person_id", STRING),
            ("measured_at", TIMESTAMP),
            ("encounter_id", STRING),
            ("sbp", FLOAT),
            ("dbp", FLOAT),
            ("heart_rate", FLOAT),
            ("weight_kg", FLOAT),
            ("height_cm", FLOAT),
            ("waist_cm", FLOAT),
        ]
    ),
    "labs": pa.schema(
        [
            ("person_id", STRING),
            ("measured_at", TIMESTAMP),
            ("test", STRING),
            ("value", FLOAT),
            ("unit", STRING),
            ("encounter_id", STRING),
        ]
    ),
    "encounters": pa.schema(
        [
            ("encounter_id", STRING),
            ("person_id", STRING),
            ("setting", STRING),
            ("facility_level", STRING),
            ("vitals_source", STRING),
            ("admitted_on", DATE),
            ("discharged_on", DATE),
            ("reason_dx", STRING),
            ("other_reason_dx", STRING),
            ("type_dx", STRING),
        ]
    ),
    "prescriptions": pa.schema(
        [
            ("person_id", STRING),
            ("dispensed_on", DATE),
            ("atc_code", STRING),
            ("rxnorm_code", STRING),
            ("medication_ref", STRING),
            ("days_supply", pa.int32()),
            ("drug_name", STRING),
        ]
    ),
    "medications": pa.schema(
        [
            ("medication_id", STRING),
            ("atc_code", STRING),
            ("system", STRING),
            ("code", STRING),
            ("display", STRING),
        ]
    ),
    "quarantine": pa.schema(
        [
            ("source", STRING),
            ("resource_type", STRING),
            ("resource_id", STRING),
            ("reason", STRING),
            ("detail", STRING),
        ]
    ),
}


class StageWriter:
    def __init__(self, path: Path, schema: pa.Schema, flush_rows: int):
        self.path = path
        self.schema = schema
        self.flush_rows = flush_rows
        self.rows_written = 0
        self._buffer: dict[str, list[Any]] = {name: [] for name in schema.names}
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, Any]) -> None:
        for name, column in self._buffer.items():
            column.append(row.get(name))
        self._buffered += 1
        if self._buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        if self._buffered:
            self._writer.write_table(pa.Table.from_pydict(self._buffer, schema=self.schema))
            self.rows_written += self._buffered
            self._buffer = {name: [] for name in self.schema.names}
            self._buffered = 0

    def close(self) -> None:
        self.flush()  # also creates an empty file with the schema when nothing was added
        if self._writer is not None:
            self._writer.close()


class Staging:
    """One StageWriter per staging table under a folder."""

    def __init__(self, folder: Path, flush_rows: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.writers = {
            name: StageWriter(folder / f"{name}.parquet", schema, flush_rows)
            for name, schema in STAGING_SCHEMAS.items()
        }

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.writers[table].add(row)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def path(self, table: str) -> Path:
        return self.writers[table].path
