"""Binding the logical table names used by the feature SQL to data: canonical tables and value sets."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from risk import definitions
from risk.errors import DefinitionError, InputFileError


def canonical_path(canonical_dir: Path, table: str) -> Path:
    return canonical_dir / f"{table}.parquet"


def table_select_sql(table: str, present_columns: set[str], source: str) -> str:
    """SELECT giving every contract column of `table` (+ source_row) from `source`, NULL where absent."""
    spec = definitions.contract().tables[table]
    items = []
    for column in spec.columns.values():
        if column.name in present_columns:
            items.append(column.name)
        elif column.required:
            raise InputFileError(source, "required column missing from canonical table", column.name)
        else:
            items.append(f"CAST(NULL AS {definitions.SQL_TYPES[column.type]}) AS {column.name}")
    items.append("source_row" if "source_row" in present_columns else "CAST(0 AS BIGINT) AS source_row")
    return f"SELECT {', '.join(items)} FROM {source}"


def parquet_columns(path: Path) -> set[str]:
    if not path.is_file():
        raise InputFileError(str(path), "canonical table not found (run `risk validate` first)")
    try:
        return set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputFileError(str(path), f"not a readable Parquet file ({exc})") from exc


def _prefix_table(frame: pd.DataFrame, prefix_column: str) -> pd.DataFrame:
    prefixes = frame[prefix_column].str.strip().str.upper()
    if (prefixes.str.len() < 3).any():
        raise DefinitionError(f"{prefix_column}: every prefix needs at least 3 characters")
    out = frame.assign(**{prefix_column: prefixes})
    out["prefix3"] = prefixes.str.slice(0, 3)
    out["prefix_len"] = prefixes.str.len().astype("int64")
    return out


@lru_cache(maxsize=1)
def value_set_tables() -> dict[str, pd.DataFrame]:
    """Small lookup tables joined in SQL; kept as data in risk/definitions/."""
    feature_defs = definitions.feature_definitions()
    managed = pd.DataFrame({"condition": list(feature_defs["managed_conditions"])})
    complications = definitions.complications().rename(columns={"group": "cx_group"})
    complications = _prefix_table(complications[["cx_group", "icd10_prefix"]], "icd10_prefix")
    drug_classes = definitions.drug_classes()
    rows = []
    for group, selector in feature_defs["pdc_groups"].items():
        ((column, wanted),) = selector.items()
        for prefix in drug_classes.loc[drug_classes[column] == wanted, "atc_prefix"]:
            rows.append({"pdc_group": group, "atc_prefix": prefix})
    pdc = _prefix_table(pd.DataFrame(rows).drop_duplicates(), "atc_prefix")
    return {
        "vs_managed_conditions": managed,
        "vs_complications": complications.drop_duplicates().reset_index(drop=True),
        "vs_pdc_classes": pdc.reset_index(drop=True),
    }
