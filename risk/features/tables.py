"""The value-set lookup tables joined by the feature SQL (canonical tables: risk/run/tables.py)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from risk import definitions
from risk.errors import DefinitionError

if TYPE_CHECKING:
    import pandas as pd

Columns = dict[str, list[Any]]


def _prefix_columns(first: str, rows: list[tuple[str, str | None]], prefix_column: str) -> Columns:
    """(name, prefix) rows -> columns with the prefix stripped and upper-cased, its first 3 characters
    and its length (the feature SQL joins on prefix3 and checks the rest with the length)."""
    if any(prefix is None for _, prefix in rows):
        raise DefinitionError(f"{prefix_column}: every prefix needs at least 3 characters")
    prefixes = [prefix.strip().upper() for _, prefix in rows if prefix is not None]
    if any(len(prefix) < 3 for prefix in prefixes):
        raise DefinitionError(f"{prefix_column}: every prefix needs at least 3 characters")
    return {
        first: [name for name, _ in rows],
        prefix_column: prefixes,
        "prefix3": [prefix[:3] for prefix in prefixes],
        "prefix_len": [len(prefix) for prefix in prefixes],
    }


def _unique(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return list(dict.fromkeys(rows))  # first occurrence kept, in order (pandas drop_duplicates)


@lru_cache(maxsize=1)
def value_set_columns() -> dict[str, Columns]:
    """Small lookup tables joined in SQL, as plain columns; kept as data in risk/definitions/. Built
    without pandas: `risk features` does not import it (about 0.35 CPU seconds a process)."""
    feature_defs = definitions.feature_definitions()
    managed = {"condition": list(feature_defs["managed_conditions"])}
    complications = _prefix_columns(
        "cx_group",
        [(r["group"], r["icd10_prefix"]) for r in definitions.csv_records("complications.csv")],
        "icd10_prefix",
    )
    complications = _columns(_unique(list(zip(*complications.values(), strict=True))), list(complications))
    drug_classes = definitions.csv_records("drug_classes.csv")
    rows = []
    for group, selector in feature_defs["pdc_groups"].items():
        ((column, wanted),) = selector.items()
        rows += [(group, r["atc_prefix"]) for r in drug_classes if r[column] == wanted]
    pdc = _prefix_columns("pdc_group", _unique(rows), "atc_prefix")
    return {"vs_managed_conditions": managed, "vs_complications": complications, "vs_pdc_classes": pdc}


def _columns(rows: list[tuple[Any, ...]], names: list[str]) -> Columns:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def value_set_sql() -> dict[str, str]:
    """Each value set as a DuckDB `SELECT` of literal rows, typed as the pandas frames are (strings as
    VARCHAR, the prefix length as BIGINT). The DuckDB engine builds its tables from these: no pandas, and
    no pyarrow conversion of Python objects (which imports pandas)."""
    from risk.sql import identifier, literal

    queries = {}
    for name, columns in value_set_columns().items():
        typed = [
            f"CAST({identifier(c)} AS {'BIGINT' if c == 'prefix_len' else 'VARCHAR'}) AS {identifier(c)}"
            for c in columns
        ]
        rows = ", ".join(
            "(" + ", ".join(literal(v) for v in row) + ")" for row in zip(*columns.values(), strict=True)
        )
        names = ", ".join(identifier(c) for c in columns)
        queries[name] = f"SELECT {', '.join(typed)} FROM (VALUES {rows}) AS v({names})"
    return queries


def value_set_tables() -> dict[str, pd.DataFrame]:
    """The value sets as pandas frames (the Spark engine registers them as temp views)."""
    import pandas as pd

    return {name: pd.DataFrame(columns) for name, columns in value_set_columns().items()}
