"""The declared schemas of what passes between layers: the tier order, the features table and the tiers
table. Both engines' outputs are checked against them (`check_table`).

- TIERS: tier values in increasing order of concern; a tier's rank is its index (green 0 .. red 2).
- feature_schema(): the features table as an Arrow schema, built from the feature catalogue
  (definitions/features.yaml) in catalogue order.
- TIER_SCHEMA: the tiers table (tiers.parquet) written by the nightly job on either engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from risk.errors import RiskUserError

TIERS: tuple[str, ...] = ("green", "yellow", "red")
TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(TIERS)}
TIERS_WORST_FIRST: tuple[str, ...] = tuple(reversed(TIERS))

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "date": pa.date32(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}

TIER_SCHEMA = pa.schema([
    ("person_id", pa.string()), ("as_of", pa.date32()), ("tier_rules", pa.string()),
    ("rule_score", pa.float64()), ("reasons", pa.string()), ("next_due_on", pa.date32()),
    ("days_overdue", pa.int64()), ("urgency", pa.int8()), ("urgency_due_days", pa.float64()),
    ("rule_set_version", pa.string()), ("rule_set_fingerprint", pa.string()),
    ("tier", pa.string()), ("combine_reason", pa.string()), ("model_probability", pa.float64()),
    ("tier_model", pa.string()), ("model_reasons", pa.string()), ("priority", pa.int64()),
    ("model_version", pa.string()),
])  # fmt: skip


def feature_schema(columns: Sequence[str] | None = None) -> pa.Schema:
    """The catalogue as an Arrow schema; with `columns`, person_id, as_of and those, in catalogue order."""
    # imported here: risk/features/ imports this module
    from risk.features.catalogue import FEATURE_SET_VERSION, feature_catalogue

    keep = None if columns is None else {"person_id", "as_of", *columns}
    return pa.schema(
        [
            pa.field(f.name, ARROW_TYPES[f.type])
            for f in feature_catalogue()
            if keep is None or f.name in keep
        ],
        metadata={"feature_set_version": FEATURE_SET_VERSION},
    )


def check_table(schema: pa.Schema, names: Sequence[str], types: Sequence[pa.DataType], what: str) -> None:
    """Refuse an engine output whose columns (in any order: without a model the embedded engine writes
    tier_model before model_probability) or column types differ from the declared schema (string
    and large_string count as the same type; an all-null column, e.g. tier_model without a model, fits
    any type)."""
    if sorted(names) != sorted(schema.names):
        raise RiskUserError(f"{what}: columns {list(names)} differ from the declared {schema.names}")
    for name, got in zip(names, types, strict=True):
        wanted = schema.field(name).type
        same_text = pa.types.is_string(wanted) and pa.types.is_large_string(got)
        if got != wanted and not same_text and not pa.types.is_null(got):
            raise RiskUserError(f"{what}: column {name} is {got}, the declared type is {wanted}")


def check_parquet(path: Path, schema: pa.Schema, what: str) -> None:
    """check_table on a written Parquet file's schema (the file is not read)."""
    written = pq.read_schema(path)
    check_table(schema, written.names, written.types, what)
