"""Feature columns a rule condition may use, with the type the rule engine gives them.

The names are the fixed feature contract of docs/architecture.md. Every numeric feature is evaluated as
DOUBLE so that integer counts arriving as floats (pandas turns an int column with a missing value into
float) compare the same way; conditions never need integer arithmetic on features.
"""

from __future__ import annotations

import pyarrow as pa

NUMERIC = "DOUBLE"
BOOLEAN = "BOOLEAN"
TEXT = "VARCHAR"
DATE = "DATE"

ARROW_TYPES: dict[str, pa.DataType] = {
    NUMERIC: pa.float64(), BOOLEAN: pa.bool_(), TEXT: pa.string(), DATE: pa.date32(),
}


_CATALOGUE_TYPES = {"float": NUMERIC, "int": NUMERIC, "bool": BOOLEAN, "string": TEXT, "date": DATE}


def feature_column_types() -> dict[str, str]:
    """Feature column -> the DuckDB type the rule engine evaluates it as, from the feature catalogue."""
    from risk.features.catalogue import feature_catalogue

    return {feature.name: _CATALOGUE_TYPES[feature.type] for feature in feature_catalogue()}


def arrow_type(kind: str) -> pa.DataType:
    return ARROW_TYPES[kind]
