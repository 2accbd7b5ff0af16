"""Column containers for generated blocks and their conversion to Arrow under the data contract.

While a block is generated (and made dirty), columns stay numpy: ids as integers, dates as days since
1970-01-01, timestamps as seconds, strings as `Cat` codes into a label list. Arrow arrays are built once,
when the block is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from risk.definitions import contract
from risk.synth.ids import prefixed_ids

NULL_DAY = np.iinfo(np.int32).min
PERSON_ID_DIGITS = 8
ENCOUNTER_ID_DIGITS = 10

# The date that places each event table's rows in time (rows are sorted by it; dirty rows move it).
EVENT_DATE_COLUMN = {
    "vitals": "measured_at",
    "labs": "measured_at",
    "follow_ups": "followed_on",
    "prescriptions": "dispensed_on",
    "encounters": "admitted_on",
    "conditions": "enrolled_on",
}

ARROW_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int32(),
    "bool": pa.bool_(),
}


@dataclass
class Cat:
    """A string column as integer codes (-1 = null) into `labels`."""

    codes: np.ndarray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, index: np.ndarray) -> Cat:
        return Cat(self.codes[index], self.labels)

    def code_of(self, label: str) -> int:
        """Index of `label`, appending it (used when dirt introduces a new spelling)."""
        if label not in self.labels:
            self.labels = [*self.labels, label]
        return self.labels.index(label)


Column = np.ndarray | Cat | pa.Array
Table = dict[str, Column]


def table_length(table: Table) -> int:
    return len(next(iter(table.values())))


def take_rows(table: Table, index: np.ndarray) -> Table:
    return {
        name: (
            col.take(pa.array(index))
            if isinstance(col, pa.Array)
            else col.take(index)
            if isinstance(col, Cat)
            else col[index]
        )
        for name, col in table.items()
    }


def concat_tables(parts: list[Table]) -> Table:
    parts = [p for p in parts if p and table_length(p) > 0]
    if not parts:
        return {}
    out: Table = {}
    for name, first in parts[0].items():
        cols = [p[name] for p in parts]
        if isinstance(first, Cat):
            labels = list(first.labels)
            codes = []
            for col in cols:
                remap = np.array([_label_index(labels, lab) for lab in col.labels] + [-1], dtype=np.int32)
                codes.append(remap[col.codes])
            out[name] = Cat(np.concatenate(codes), labels)
        elif isinstance(first, pa.Array):
            out[name] = pa.concat_arrays(cols)
        else:
            out[name] = np.concatenate(cols)
    return out


def _label_index(labels: list[str], label: str) -> int:
    if label not in labels:
        labels.append(label)
    return labels.index(label)


def schema(table_name: str) -> pa.Schema:
    spec = contract().tables[table_name]
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in spec.columns.values()]
    )


def to_arrow(table_name: str, table: Table) -> pa.Table:
    """Build the contract-typed Arrow table (every contract column, contract order)."""
    spec = contract().tables[table_name]
    arrays = []
    for col in spec.columns.values():
        arrays.append(_to_array(col.name, col.type, table[col.name]))
    return pa.Table.from_arrays(arrays, schema=schema(table_name))


def _to_array(name: str, kind: str, col: Column) -> pa.Array:
    if isinstance(col, pa.Array):
        return col.cast(ARROW_TYPES[kind])
    if isinstance(col, Cat):
        labels = pa.array(col.labels + [None], type=pa.string())
        codes = np.where(col.codes < 0, len(col.labels), col.codes)
        return pc.take(labels, pa.array(codes))
    if kind == "string" and name == "encounter_id":
        return prefixed_ids("E", col, ENCOUNTER_ID_DIGITS)
    if kind == "string":
        return prefixed_ids("P", col, PERSON_ID_DIGITS)
    if kind == "date":
        return pa.array(col.astype(np.int32), type=pa.date32(), mask=col == NULL_DAY)
    if kind == "timestamp":
        return pa.array(col.astype(np.int64) * 1_000_000, type=pa.timestamp("us"))
    if kind == "float":
        return pa.array(col.astype(np.float64), from_pandas=True)
    if kind == "int":
        return pa.array(col.astype(np.int32))
    if kind == "bool":
        if col.dtype == np.int8:  # -1 = unknown
            return pa.array(col == 1, mask=col < 0)
        return pa.array(col.astype(bool))
    raise TypeError(f"{name}: cannot convert {kind}")
