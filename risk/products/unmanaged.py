"""Unmanaged key population (未纳入管理的重点人员): residents with evidence of hypertension or type 2
diabetes who are not registered for it on the as-of date. Criteria live in definitions/unmanaged.yaml."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from risk import definitions
from risk.sql import bind

UNMANAGED_SQL = """
WITH alive AS (
  SELECT person_id FROM persons
  WHERE birth_date <= :as_of AND (death_date IS NULL OR death_date > :as_of)
),
registered AS (
  SELECT DISTINCT person_id, condition FROM conditions
  WHERE enrolled_on <= :as_of AND (ended_on IS NULL OR ended_on > :as_of)
),
bp AS (
  SELECT person_id, 'hypertension' AS condition,
         COUNT(DISTINCT CAST(measured_at AS DATE)) AS raised_days,
         MAX(CAST(measured_at AS DATE)) AS raised_last_date,
         MAX(sbp) AS raised_max_sbp
  FROM vitals
  WHERE CAST(measured_at AS DATE) > :window_start AND CAST(measured_at AS DATE) <= :as_of
    AND (sbp >= :sbp_at_least OR dbp >= :dbp_at_least)
  GROUP BY person_id
),
fpg AS (
  SELECT person_id, 'diabetes_t2' AS condition,
         COUNT(DISTINCT CAST(measured_at AS DATE)) AS raised_days,
         MAX(CAST(measured_at AS DATE)) AS raised_last_date,
         MAX(value) AS raised_max_value
  FROM labs
  WHERE test = 'fpg' AND value >= :fpg_at_least
    AND CAST(measured_at AS DATE) > :window_start AND CAST(measured_at AS DATE) <= :as_of
  GROUP BY person_id
),
raised AS (
  SELECT person_id, condition, raised_days, raised_last_date, raised_max_sbp AS raised_max_value
  FROM bp WHERE raised_days >= :bp_min_days
  UNION ALL
  SELECT person_id, condition, raised_days, raised_last_date, raised_max_value
  FROM fpg WHERE raised_days >= :fpg_min_days
),
-- Prefix (LIKE) joins run over the few distinct codes, then map back by equality: a LIKE join over every
-- prescription or claim row was the slowest part of the lists stage.
rx_codes AS (
  SELECT d.atc_code, c.condition
  FROM (SELECT DISTINCT atc_code FROM prescriptions) d
  JOIN drug_indications c ON d.atc_code LIKE CONCAT(c.atc_prefix, '%')
),
rx AS (
  SELECT p.person_id, m.condition, COUNT(*) AS rx_count, MAX(p.dispensed_on) AS rx_last_date,
         MAX(p.atc_code) AS rx_example_atc
  FROM prescriptions p
  JOIN rx_codes m ON m.atc_code = p.atc_code
  WHERE p.dispensed_on > :window_start AND p.dispensed_on <= :as_of
  GROUP BY p.person_id, m.condition
),
dx_window AS (
  SELECT person_id, admitted_on, primary_dx, COALESCE(secondary_dx, '') AS secondary_dx
  FROM encounters
  WHERE admitted_on > :window_start AND admitted_on <= :as_of
),
dx_codes AS (
  SELECT d.primary_dx, d.secondary_dx, c.condition, MIN(c.icd10_prefix) AS matched_prefix
  FROM (SELECT DISTINCT primary_dx, secondary_dx FROM dx_window) d
  JOIN condition_icd c
    ON d.primary_dx LIKE CONCAT(c.icd10_prefix, '%')
    OR CONCAT(';', d.secondary_dx) LIKE CONCAT('%;', c.icd10_prefix, '%')
  GROUP BY d.primary_dx, d.secondary_dx, c.condition
),
dx AS (
  SELECT e.person_id, m.condition, COUNT(*) AS dx_count, MAX(e.admitted_on) AS dx_last_date,
         MAX(m.matched_prefix) AS dx_example_code
  FROM dx_window e
  JOIN dx_codes m ON m.primary_dx = e.primary_dx AND m.secondary_dx = e.secondary_dx
  GROUP BY e.person_id, m.condition
),
candidates AS (
  SELECT person_id, condition FROM raised
  UNION SELECT person_id, condition FROM rx
  UNION SELECT person_id, condition FROM dx
)
SELECT k.person_id, k.condition,
       r.raised_days, r.raised_last_date, r.raised_max_value,
       rx.rx_count, rx.rx_last_date, rx.rx_example_atc,
       dx.dx_count, dx.dx_last_date, dx.dx_example_code
FROM candidates k
JOIN alive a ON a.person_id = k.person_id
LEFT JOIN registered g ON g.person_id = k.person_id AND g.condition = k.condition
LEFT JOIN raised r ON r.person_id = k.person_id AND r.condition = k.condition
LEFT JOIN rx ON rx.person_id = k.person_id AND rx.condition = k.condition
LEFT JOIN dx ON dx.person_id = k.person_id AND dx.condition = k.condition
WHERE g.person_id IS NULL
ORDER BY k.person_id, k.condition
"""


def unmanaged_sql(as_of: date) -> str:
    spec = definitions.load_yaml(definitions.definition_path("unmanaged.yaml"))
    window_start = pd.Timestamp(as_of) - pd.Timedelta(days=int(spec["lookback_days"]))
    return bind(
        UNMANAGED_SQL,
        {
            "as_of": as_of,
            "window_start": window_start.date(),
            "sbp_at_least": float(spec["raised_bp"]["sbp_at_least"]),
            "dbp_at_least": float(spec["raised_bp"]["dbp_at_least"]),
            "bp_min_days": int(spec["raised_bp"]["min_distinct_days"]),
            "fpg_at_least": float(spec["raised_fpg"]["fpg_at_least"]),
            "fpg_min_days": int(spec["raised_fpg"]["min_distinct_days"]),
        },
        where="unmanaged SQL",
    )


def reference_tables() -> dict[str, pd.DataFrame]:
    """Small value tables joined in SQL: ATC prefixes and ICD-10 prefixes per registry condition."""
    spec = definitions.load_yaml(definitions.definition_path("unmanaged.yaml"))
    wanted = list(spec["conditions"])
    indication_to_condition = {"hypertension": "hypertension", "diabetes": "diabetes_t2"}
    drugs = definitions.drug_classes()
    drug_indications = pd.DataFrame(
        {
            "atc_prefix": drugs["atc_prefix"],
            "condition": drugs["indication"].map(indication_to_condition),
        }
    ).dropna()
    drug_indications = drug_indications[drug_indications["condition"].isin(wanted)].reset_index(drop=True)
    conditions = definitions.conditions()
    rows = [
        (prefix, row.code)
        for row in conditions[conditions["code"].isin(wanted)].itertuples()
        for prefix in str(row.icd10_prefixes).split(";")
    ]
    condition_icd = pd.DataFrame(rows, columns=["icd10_prefix", "condition"])
    return {"drug_indications": drug_indications, "condition_icd": condition_icd}


def _cat(*parts: pa.Array | str) -> pa.Array:
    """The parts (arrays and literal text) concatenated row by row; missing where any array is missing."""
    values = [part if isinstance(part, pa.Array) else pa.scalar(part, pa.string()) for part in parts]
    return pc.binary_join_element_wise(*values, "")


def _joined(parts: list[pa.Array], sep: str) -> pa.Array:
    """The present parts of each row joined with `sep`; "" where none is present. (Arrow's own
    null_handling="skip" drops rows where every part is missing, pyarrow 25.)"""
    out = parts[0]
    for part in parts[1:]:
        out = pc.coalesce(pc.binary_join_element_wise(out, part, sep), out, part)
    return pc.fill_null(out, "")


def _per_distinct(values: pd.Series, to_text: Callable[[Any], str]) -> pa.Array:
    """to_text of each value, missing for a missing one, worked out once per distinct value: the evidence
    columns hold a few thousand distinct counts, maxima, dates and codes, and formatting every row in
    Python took most of the unmanaged list (660k rows on the other-shape county at 1M persons)."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    texts = pa.array([to_text(v) for v in distinct], pa.string())
    return texts.take(pa.array(codes, mask=codes < 0))


def _evidence_text(found: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The evidence in words, Chinese and English, built with Arrow's string kernels (concatenating
    pandas string columns one literal at a time took three seconds at 660k rows)."""

    def num(column: str, fmt: str) -> pa.Array:
        values = pd.to_numeric(found[column], errors="coerce").astype("float64")
        return _per_distinct(values, lambda v: format(v, fmt))

    def day(column: str) -> pa.Array:
        return _per_distinct(pd.to_datetime(found[column]), lambda v: v.strftime("%Y-%m-%d"))

    def code(column: str) -> pa.Array:
        return _per_distinct(found[column], str)

    htn = pa.array((found["condition"] == "hypertension").to_numpy(dtype=bool))
    has_raised = pa.array(found["raised_days"].notna().to_numpy(dtype=bool))
    missing = pa.scalar(None, pa.string())
    days, peak_bp, peak_fpg, raised_on = (
        num("raised_days", ".0f"),
        num("raised_max_value", ".0f"),
        num("raised_max_value", ".1f"),
        day("raised_last_date"),
    )
    bp_zh = _cat(days, "天血压升高（最高收缩压", peak_bp, "，最近", raised_on, "）")
    fpg_zh = _cat(days, "天空腹血糖≥7.0（最高", peak_fpg, "，最近", raised_on, "）")
    bp_en = _cat("raised BP on ", days, " days (max SBP ", peak_bp, ", last ", raised_on, ")")
    fpg_en = _cat("FPG >= 7.0 on ", days, " days (max ", peak_fpg, ", last ", raised_on, ")")
    raised_zh = pc.if_else(has_raised, pc.if_else(htn, bp_zh, fpg_zh), missing)
    raised_en = pc.if_else(has_raised, pc.if_else(htn, bp_en, fpg_en), missing)
    rx_n, rx_on, rx_atc = num("rx_count", ".0f"), day("rx_last_date"), code("rx_example_atc")
    rx_zh = _cat("专病用药", rx_n, "次（", rx_atc, "，最近", rx_on, "）")
    rx_en = _cat(rx_n, " disease-specific prescriptions (", rx_atc, ", last ", rx_on, ")")
    dx_n, dx_on, dx_code = num("dx_count", ".0f"), day("dx_last_date"), code("dx_example_code")
    dx_zh = _cat("就诊诊断", dx_n, "次（", dx_code, "，最近", dx_on, "）")
    dx_en = _cat(dx_n, " claims with the diagnosis (", dx_code, ", last ", dx_on, ")")
    zh = _joined([raised_zh, rx_zh, dx_zh], "；")
    en = _joined([raised_en, rx_en, dx_en], "; ")
    return pd.Series(zh, index=found.index, dtype="str"), pd.Series(en, index=found.index, dtype="str")


def find_unmanaged(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """(person_id, condition, evidence...) rows; `con` exposes the canonical tables as views."""
    for name, frame in reference_tables().items():
        con.register(name, frame)
    found = con.execute(unmanaged_sql(as_of)).df()
    for column in ("raised_last_date", "rx_last_date", "dx_last_date"):
        found[column] = pd.to_datetime(found[column])
    if found.empty:
        found["evidence_zh"] = pd.Series(dtype="str")
        found["evidence_en"] = pd.Series(dtype="str")
        found["evidence_kinds"] = pd.Series(dtype="int64")
        return found
    found["evidence_zh"], found["evidence_en"] = _evidence_text(found)
    found["evidence_kinds"] = found[["raised_days", "rx_count", "dx_count"]].notna().sum(axis=1)
    return found


def unmanaged_list(persons: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """The list as written: who to look for and where (the persons' columns first, then find_unmanaged's),
    by team, village, most kinds of evidence first, person_id and condition.

    find_unmanaged returns its rows by person_id and condition; merged from that side the order survives,
    and a stable sort on the first three keys then gives the order of all five (the five-key sort took
    twice as long on the 660k rows of the other-shape county at 1M persons). Rows in another order are
    put in that order first."""
    ids, conditions = found["person_id"].to_numpy(dtype=object), found["condition"].to_numpy(dtype=object)
    in_order = bool(
        np.all((ids[1:] > ids[:-1]) | ((ids[1:] == ids[:-1]) & (conditions[1:] > conditions[:-1])))
    )
    if not in_order:
        found = found.sort_values(["person_id", "condition"], kind="mergesort")
    merged = found.merge(persons, on="person_id", how="inner")
    merged = merged[list(persons.columns) + [c for c in found.columns if c != "person_id"]]
    return merged.sort_values(
        ["team_id", "village_id", "evidence_kinds"], ascending=[True, True, False], kind="mergesort"
    ).reset_index(drop=True)


@dataclass(frozen=True)
class UnmanagedExport:
    """What export_unmanaged wrote: the rows of the list, and its own wall and CPU seconds (the process's,
    DuckDB's threads included; it runs in a forked worker beside the tiers stage)."""

    rows: int
    seconds: float
    cpu_seconds: float


def export_unmanaged(
    canonical_dir: Path, as_of: date, out_csv: Path, threads: int | None = None
) -> UnmanagedExport:
    """The unmanaged key-population list from the canonical tables alone, written to `out_csv` as the
    lists stage writes it. It needs neither features nor tiers, so the nightly job runs it in a forked
    worker while the single-threaded tiers stage leaves a core idle; `threads` caps DuckDB's threads."""
    from risk.products.lists import LIST_PERSON_COLUMNS, write_csv
    from risk.run.tables import canonical_connection

    wall, cpu = time.perf_counter(), time.process_time()
    con = canonical_connection(Path(canonical_dir))
    try:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        found = find_unmanaged(con, as_of)
    finally:
        con.close()
    persons = pd.read_parquet(Path(canonical_dir) / "persons.parquet", columns=LIST_PERSON_COLUMNS)
    unmanaged = unmanaged_list(persons, found)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    write_csv(unmanaged, out_csv)
    return UnmanagedExport(
        rows=len(unmanaged),
        seconds=round(time.perf_counter() - wall, 3),
        cpu_seconds=round(time.process_time() - cpu, 3),
    )
