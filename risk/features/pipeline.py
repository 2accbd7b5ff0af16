"""compute_features: as-of feature rows from validated canonical tables."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from risk.errors import RiskUserError
from risk.features.chinapar import CATEGORIES, chinapar_10y_risk, chinapar_category_codes
from risk.features.duckdb_engine import run_feature_query
from risk.run import folder as run_folder
from risk.schema import feature_schema

if TYPE_CHECKING:
    import pandas as pd

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
    """Post-step on the SQL result: China-PAR risk and category (definitions/chinapar.yaml).

    Arrow buffers and numpy only. pyarrow imports pandas the first time it converts an array to or from
    numpy or Python objects, and `risk features` needs pandas for nothing else (about 0.2 CPU seconds a
    process). A missing value is NaN for a number and False in a condition. The flags on the left of each
    condition (has_*, cx_*, antihypertensive_dispensed_12m) are never missing in the SQL result; then this
    is what pandas' operators gave (tests/test_features_without_pandas.py compares the two)."""

    def number(name: str) -> np.ndarray:  # NaN where missing; booleans as 1.0 / 0.0
        return _float_values(table.column(name))

    def flag(name: str) -> np.ndarray:  # missing -> False
        return _flag_values(table.column(name))

    has_ascvd = flag("cx_stroke") | flag("cx_coronary") | flag("cx_peripheral_arterial")
    adherence = table.column("fu_last_adherence").cast(pa.string())  # also a Spark batch's large_string
    adherent = pc.is_in(adherence, value_set=_strings(("regular", "intermittent")))
    on_drug = flag("has_hypertension") & _flag_values(adherent)
    treated = flag("antihypertensive_dispensed_12m") | on_drug
    with np.errstate(invalid="ignore"):  # a missing PDC or FPG compares False (FPG: as if filled with 0)
        diabetes = (
            flag("has_diabetes_t2") | (number("pdc_antidiabetic_12m") > 0) | (number("fpg_last") >= 7.0)
        )
    risk = chinapar_10y_risk(
        age=number("age"),
        male=_flag_values(pc.equal(table.column("sex").cast(pa.string()), _strings(("M",))[0])),
        sbp=number("bp_last_sbp"),
        treated=treated,
        tc_mmol=number("tc_last"),
        hdl_mmol=number("hdl_c_last"),
        waist_cm=number("waist_last"),
        smoker=number("fu_last_smoker"),
        diabetes=diabetes,
        urban=number("urban"),
        family_history=number("family_history_ascvd"),
    )
    risk = np.where(has_ascvd, np.nan, risk)
    codes = chinapar_category_codes(risk)
    category = pa.DictionaryArray.from_arrays(
        _with_validity(pa.int8(), np.maximum(codes, 0).astype(np.int8), codes >= 0), _strings(CATEGORIES)
    ).cast(pa.string())
    risk_array = _with_validity(pa.float64(), np.where(np.isnan(risk), 0.0, risk), ~np.isnan(risk))
    return table.append_column("chinapar_risk_10y", risk_array).append_column("chinapar_category", category)


def _bits(buffer: pa.Buffer | None, offset: int, length: int) -> np.ndarray:
    """An Arrow bitmap (validity or boolean values) as a numpy bool array; no buffer means all set."""
    if buffer is None:
        return np.ones(length, dtype=bool)
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
    return bits[offset : offset + length].astype(bool)


def _float_values(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy values, NaN where missing (booleans as 1.0 / 0.0)."""
    array = _one_array(values.cast(pa.float64()))
    validity, data = array.buffers()
    out = np.frombuffer(data, dtype=np.float64)[array.offset : array.offset + len(array)].copy()
    out[~_bits(validity, array.offset, len(array))] = np.nan
    return out


def _flag_values(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """bool numpy values, False where missing."""
    if values.type != pa.bool_():
        raise TypeError(f"a condition must be boolean, not {values.type}")
    array = _one_array(values)
    validity, data = array.buffers()
    return _bits(data, array.offset, len(array)) & _bits(validity, array.offset, len(array))


def _one_array(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _with_validity(type_: pa.DataType, values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A numeric Arrow array from numpy values and a validity mask, built from buffers."""
    data = np.ascontiguousarray(values)
    if data.itemsize * 8 != type_.bit_width:
        raise ValueError(f"{data.dtype} values for an Arrow {type_} array")
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type_, len(data), [bitmap, pa.py_buffer(data)])


def _strings(texts: Sequence[str]) -> pa.Array:
    """A string Arrow array built from buffers (no pyarrow conversion of Python objects)."""
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.cumsum([0, *map(len, encoded)], dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(texts), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
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
