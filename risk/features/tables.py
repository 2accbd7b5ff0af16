"""The value-set lookup tables joined by the feature SQL (canonical tables: risk/run/tables.py)."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from risk import definitions
from risk.errors import DefinitionError


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
