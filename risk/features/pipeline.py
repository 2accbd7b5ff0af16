"""compute_features: as-of feature rows from validated canonical tables."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk.errors import RiskUserError
from risk.features.catalogue import FEATURE_SET_VERSION, feature_catalogue
from risk.features.chinapar import chinapar_10y_risk, chinapar_category
from risk.features.duckdb_engine import run_feature_query

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")  # spark: risk/engines/spark_features.py, the same SQL transpiled
ARROW_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}


def feature_schema() -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, ARROW_TYPES[f.type]) for f in feature_catalogue()],
        metadata={"feature_set_version": FEATURE_SET_VERSION},
    )


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


def compute_features_table(canonical_dir: Path, as_of: date, engine: str = "duckdb") -> pa.Table:
    """The feature rows as a pyarrow Table with the catalogue's schema (columns in catalogue order)."""
    if engine not in ENGINES:
        raise RiskUserError(f"unknown feature engine '{engine}' (available: {', '.join(ENGINES)})")
    started = time.perf_counter()
    if engine == "spark":
        from risk.engines.spark_features import run_feature_query_spark

        table = run_feature_query_spark(Path(canonical_dir), as_of)  # China-PAR added per batch on Spark
    else:
        table = add_chinapar(run_feature_query(Path(canonical_dir), as_of))
    table = table.cast(feature_schema())
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
    canonical_dir: Path, as_of: date, out: Path | None = None, engine: str = "duckdb"
) -> pd.DataFrame:
    """One row per person under chronic-disease management on `as_of`, from events on or before it.

    `canonical_dir` is the canonical/ folder written by `risk validate` (or its parent output folder).
    When `out` is given the rows are also written there as Parquet, atomically.
    """
    canonical_dir = Path(canonical_dir)
    if (canonical_dir / "canonical").is_dir():
        canonical_dir = canonical_dir / "canonical"
    table = compute_features_table(canonical_dir, as_of, engine=engine)
    if out is not None:
        write_parquet_atomically(table, Path(out))
    return table.to_pandas()
