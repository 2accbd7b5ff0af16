"""compute_features: as-of feature rows from validated canonical tables."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk.errors import RiskUserError
from risk.features.chinapar import chinapar_10y_risk, chinapar_category
from risk.features.duckdb_engine import run_feature_query
from risk.run import folder as run_folder
from risk.schema import feature_schema

log = logging.getLogger(__name__)

CHINAPAR_COLUMNS = ("chinapar_risk_10y", "chinapar_category")  # added by add_chinapar, after the SQL
CHINAPAR_INPUTS = (
    "age", "sex", "bp_last_sbp", "tc_last", "hdl_c_last", "waist_last", "fu_last_smoker", "urban",
    "family_history_ascvd", "has_hypertension", "has_diabetes_t2", "fu_last_adherence",
    "antihypertensive_dispensed_12m", "pdc_antidiabetic_12m", "fpg_last", "cx_stroke", "cx_coronary",
    "cx_peripheral_arterial",
)


def plan_columns(columns: Sequence[str] | None) -> tuple[set[str] | None, bool]:
    """For a choice of features: the columns the SQL must give (None: all), and whether China-PAR is
    computed after it (then its inputs are among the SQL columns). Unknown names are a user error."""
    if columns is None:
        return None, True
    known = set(feature_schema().names)
    if unknown := sorted(set(columns) - known):
        raise RiskUserError(f"unknown feature(s): {', '.join(unknown)} (the catalogue is docs/features.md)")
    wants_chinapar = bool(set(columns) & set(CHINAPAR_COLUMNS))
    sql_columns = {c for c in columns if c not in CHINAPAR_COLUMNS} | {"as_of"}
    return (sql_columns | set(CHINAPAR_INPUTS) if wants_chinapar else sql_columns), wants_chinapar


def finish_feature_table(table: pa.Table, schema: pa.Schema, chinapar: bool = True) -> pa.Table:
    """SQL result -> catalogue-typed table: China-PAR added when wanted, then the schema's columns."""
    if chinapar:
        table = add_chinapar(table)
    return table.select(schema.names).cast(schema)


def add_chinapar(table: pa.Table) -> pa.Table:
    """Post-step on the SQL result: China-PAR risk and category (definitions/chinapar.yaml)."""

    def column(name: str) -> pd.Series:
        return table.column(name).to_pandas()

    has_ascvd = column("cx_stroke") | column("cx_coronary") | column("cx_peripheral_arterial")
    on_drug = column("has_hypertension") & column("fu_last_adherence").isin(["regular", "intermittent"])
    treated = column("antihypertensive_dispensed_12m") | on_drug
    diabetes = (
        column("has_diabetes_t2")
        | (column("pdc_antidiabetic_12m") > 0)
        | (column("fpg_last").fillna(0.0) >= 7.0)
    )
    risk = chinapar_10y_risk(
        age=column("age"),
        male=column("sex") == "M",
        sbp=column("bp_last_sbp"),
        treated=treated,
        tc_mmol=column("tc_last"),
        hdl_mmol=column("hdl_c_last"),
        waist_cm=column("waist_last"),
        smoker=column("fu_last_smoker"),
        diabetes=diabetes,
        urban=column("urban"),
        family_history=column("family_history_ascvd"),
    )
    risk = np.where(has_ascvd.to_numpy(dtype=bool), np.nan, risk)
    risk_array = pa.array(risk, type=pa.float64(), from_pandas=True)
    return table.append_column("chinapar_risk_10y", risk_array).append_column(
        "chinapar_category", pa.array(chinapar_category(risk), type=pa.string())
    )


def compute_features_table(
    canonical_dir: Path, as_of: date, columns: Sequence[str] | None = None
) -> pa.Table:
    """The feature rows as a pyarrow Table with the catalogue's schema (columns in catalogue order).

    `columns` computes just those features, plus person_id and as_of; the rows are the same persons, and
    each value is the one the whole catalogue gives. DuckDB only: the Spark engine is
    risk.engines.spark_features (the same SQL transpiled).
    """
    started = time.perf_counter()
    sql_columns, chinapar = plan_columns(columns)
    table = finish_feature_table(run_feature_query(Path(canonical_dir), as_of, sql_columns),
                                 feature_schema(columns), chinapar)
    log.info("features: %d persons on %s in %.2f s", table.num_rows, as_of, time.perf_counter() - started)
    return table


def write_parquet_atomically(table: pa.Table, out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        pq.write_table(table, tmp_name, compression="zstd")
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def compute_features(
    canonical_dir: Path,
    as_of: date,
    out: Path | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per person under chronic-disease management on `as_of`, from events on or before it.

    `canonical_dir` is the canonical/ folder written by `risk validate` (or its parent output folder).
    When `out` is given the rows are also written there as Parquet, atomically. `columns`: see
    compute_features_table.
    """
    table = compute_features_table(run_folder.canonical_dir(canonical_dir), as_of, columns=columns)
    if out is not None:
        write_parquet_atomically(table, Path(out))
    return table.to_pandas()
