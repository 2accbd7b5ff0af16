"""pandera schemas of the canonical tables, built from the contract: a second, independent statement of
what `risk validate` promises downstream (used in tests and available to consumers on samples)."""

from __future__ import annotations

import pandera.pandas as pa

from risk import definitions
from risk.validate import codes

DTYPES = {"string": "str", "date": "datetime64[ms]", "timestamp": "datetime64[us]", "float": "float64",
          "int": "Int64", "bool": "boolean"}

COERCED = {"date", "bool", "int"}


def canonical_schema(table: str) -> pa.DataFrameSchema:
    """Schema of OUT/canonical/<table>.parquet as read by pandas (dates as datetime64)."""
    spec = definitions.contract().tables[table]
    labs = definitions.lab_units()["tests"]
    columns: dict[str, pa.Column] = {}
    for col in spec.columns.values():
        if col.name == "national_id":
            hex_digest = pa.Check.str_matches(r"^[0-9a-f]{64}$")
            columns["national_id_hash"] = pa.Column("str", hex_digest, nullable=True)
            columns["national_id_masked"] = pa.Column("str", nullable=True)
            columns["national_id_valid"] = pa.Column("boolean", nullable=True, coerce=True)
            continue
        checks = []
        if col.allowed:
            checks.append(pa.Check.isin(list(col.allowed)))
        if col.value_set:
            checks.append(pa.Check.isin(sorted(definitions.value_set(col.value_set))))
        if col.range:
            checks.append(pa.Check.in_range(*col.range))
        if col.format == "icd10":
            checks.append(pa.Check.str_matches(codes.format_pattern("icd10")))
        if col.format == "icd10_list":
            checks.append(pa.Check(lambda s: s.map(lambda v: all(codes.is_icd10(x) for x in v.split(";"))),
                                   element_wise=False, name="icd10_list"))
        if col.format == "atc":
            checks.append(pa.Check.str_matches(codes.format_pattern("atc")))
        if table == "labs" and col.name == "unit":
            checks.append(pa.Check.isin(sorted({t["unit"] for t in labs.values()})))
        # pandas reads Parquet dates, nullable bools and ints with varying dtypes; the Parquet type is fixed.
        coerce = col.type in COERCED
        columns[col.name] = pa.Column(DTYPES[col.type], checks, nullable=col.nullable, coerce=coerce)
    columns["source_row"] = pa.Column("int64", pa.Check.ge(1), unique=True)
    frame_checks = []
    if table == "labs":
        def lab_values_in_range(frame):  # type: ignore[no-untyped-def]
            low = frame["test"].map(lambda t: labs[t]["range"][0])
            high = frame["test"].map(lambda t: labs[t]["range"][1])
            return (frame["value"] >= low) & (frame["value"] <= high)

        frame_checks.append(pa.Check(lab_values_in_range, name="lab_value_in_canonical_range"))
    return pa.DataFrameSchema(columns, checks=frame_checks, unique=list(spec.key), strict=True, ordered=True)
