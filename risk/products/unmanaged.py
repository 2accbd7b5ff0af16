"""Unmanaged key population (未纳入管理的重点人员): residents with evidence of hypertension or type 2
diabetes who are not registered for it on the as-of date. Criteria live in definitions/unmanaged.yaml."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from risk import definitions

UNMANAGED_SQL = """
WITH alive AS (
  SELECT person_id FROM persons
  WHERE birth_date <= DATE '{as_of}' AND (death_date IS NULL OR death_date > DATE '{as_of}')
),
registered AS (
  SELECT DISTINCT person_id, condition FROM conditions
  WHERE enrolled_on <= DATE '{as_of}' AND (ended_on IS NULL OR ended_on > DATE '{as_of}')
),
bp AS (
  SELECT person_id, 'hypertension' AS condition,
         COUNT(DISTINCT CAST(measured_at AS DATE)) AS raised_days,
         MAX(CAST(measured_at AS DATE)) AS raised_last_date,
         MAX(sbp) AS raised_max_sbp
  FROM vitals
  WHERE CAST(measured_at AS DATE) > DATE '{window_start}' AND CAST(measured_at AS DATE) <= DATE '{as_of}'
    AND (sbp >= {sbp_at_least} OR dbp >= {dbp_at_least})
  GROUP BY person_id
),
fpg AS (
  SELECT person_id, 'diabetes_t2' AS condition,
         COUNT(DISTINCT CAST(measured_at AS DATE)) AS raised_days,
         MAX(CAST(measured_at AS DATE)) AS raised_last_date,
         MAX(value) AS raised_max_value
  FROM labs
  WHERE test = 'fpg' AND value >= {fpg_at_least}
    AND CAST(measured_at AS DATE) > DATE '{window_start}' AND CAST(measured_at AS DATE) <= DATE '{as_of}'
  GROUP BY person_id
),
raised AS (
  SELECT person_id, condition, raised_days, raised_last_date, raised_max_sbp AS raised_max_value
  FROM bp WHERE raised_days >= {bp_min_days}
  UNION ALL
  SELECT person_id, condition, raised_days, raised_last_date, raised_max_value
  FROM fpg WHERE raised_days >= {fpg_min_days}
),
rx AS (
  SELECT p.person_id, c.condition, COUNT(*) AS rx_count, MAX(p.dispensed_on) AS rx_last_date,
         MAX(p.atc_code) AS rx_example_atc
  FROM prescriptions p
  JOIN drug_indications c ON p.atc_code LIKE CONCAT(c.atc_prefix, '%')
  WHERE p.dispensed_on > DATE '{window_start}' AND p.dispensed_on <= DATE '{as_of}'
  GROUP BY p.person_id, c.condition
),
dx AS (
  SELECT e.person_id, c.condition, COUNT(*) AS dx_count, MAX(e.admitted_on) AS dx_last_date,
         MAX(e.primary_dx) AS dx_example_code
  FROM encounters e
  JOIN condition_icd c
    ON e.primary_dx LIKE CONCAT(c.icd10_prefix, '%')
    OR CONCAT(';', COALESCE(e.secondary_dx, '')) LIKE CONCAT('%;', c.icd10_prefix, '%')
  WHERE e.admitted_on > DATE '{window_start}' AND e.admitted_on <= DATE '{as_of}'
  GROUP BY e.person_id, c.condition
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
    return UNMANAGED_SQL.format(
        as_of=as_of.isoformat(),
        window_start=window_start.date().isoformat(),
        sbp_at_least=float(spec["raised_bp"]["sbp_at_least"]),
        dbp_at_least=float(spec["raised_bp"]["dbp_at_least"]),
        bp_min_days=int(spec["raised_bp"]["min_distinct_days"]),
        fpg_at_least=float(spec["raised_fpg"]["fpg_at_least"]),
        fpg_min_days=int(spec["raised_fpg"]["min_distinct_days"]),
    )


def reference_tables() -> dict[str, pd.DataFrame]:
    """Small value tables joined in SQL: ATC prefixes and ICD-10 prefixes per registry condition."""
    spec = definitions.load_yaml(definitions.definition_path("unmanaged.yaml"))
    wanted = list(spec["conditions"])
    indication_to_condition = {"hypertension": "hypertension", "diabetes": "diabetes_t2"}
    drugs = definitions.drug_classes()
    drug_indications = pd.DataFrame({
        "atc_prefix": drugs["atc_prefix"],
        "condition": drugs["indication"].map(indication_to_condition),
    }).dropna()
    drug_indications = drug_indications[drug_indications["condition"].isin(wanted)].reset_index(drop=True)
    conditions = definitions.conditions()
    rows = [
        (prefix, row.code)
        for row in conditions[conditions["code"].isin(wanted)].itertuples()
        for prefix in str(row.icd10_prefixes).split(";")
    ]
    condition_icd = pd.DataFrame(rows, columns=["icd10_prefix", "condition"])
    return {"drug_indications": drug_indications, "condition_icd": condition_icd}


def _evidence_text(row: pd.Series) -> tuple[str, str]:
    zh, en = [], []
    if pd.notna(row["raised_days"]):
        if row["condition"] == "hypertension":
            zh.append(f"{int(row['raised_days'])}天血压升高（最高收缩压{row['raised_max_value']:.0f}，"
                      f"最近{row['raised_last_date']:%Y-%m-%d}）")
            en.append(f"raised BP on {int(row['raised_days'])} days (max SBP {row['raised_max_value']:.0f}, "
                      f"last {row['raised_last_date']:%Y-%m-%d})")
        else:
            zh.append(f"{int(row['raised_days'])}天空腹血糖≥7.0（最高{row['raised_max_value']:.1f}，"
                      f"最近{row['raised_last_date']:%Y-%m-%d}）")
            en.append(f"FPG >= 7.0 on {int(row['raised_days'])} days (max {row['raised_max_value']:.1f}, "
                      f"last {row['raised_last_date']:%Y-%m-%d})")
    if pd.notna(row["rx_count"]):
        zh.append(f"专病用药{int(row['rx_count'])}次（{row['rx_example_atc']}，最近{row['rx_last_date']:%Y-%m-%d}）")
        en.append(f"{int(row['rx_count'])} disease-specific prescriptions ({row['rx_example_atc']}, "
                  f"last {row['rx_last_date']:%Y-%m-%d})")
    if pd.notna(row["dx_count"]):
        zh.append(f"就诊诊断{int(row['dx_count'])}次（{row['dx_example_code']}，最近{row['dx_last_date']:%Y-%m-%d}）")
        en.append(f"{int(row['dx_count'])} claims with the diagnosis ({row['dx_example_code']}, "
                  f"last {row['dx_last_date']:%Y-%m-%d})")
    return "；".join(zh), "; ".join(en)


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
    texts = found.apply(_evidence_text, axis=1, result_type="expand")
    found["evidence_zh"], found["evidence_en"] = texts[0], texts[1]
    found["evidence_kinds"] = found[["raised_days", "rx_count", "dx_count"]].notna().sum(axis=1)
    return found


def canonical_connection(canonical_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for path in sorted(Path(canonical_dir).glob("*.parquet")):
        con.execute(f"CREATE VIEW {path.stem} AS SELECT * FROM read_parquet('{path.as_posix()}')")
    return con
