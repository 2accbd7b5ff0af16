"""A clean contract county of another shape than `risk synth`'s, for benchmarks (issue 19).

Its own code (DuckDB SQL over `range()`, hash-based noise), deliberately not risk/synth: the point is a
county the project did not make. At --scale 1 (the issue's county):

| table | rows | shape |
|---|---|---|
| persons | 1,000,000 | string IDs P0000001..; 250 villages, 125 teams, 125 units, 20 townships |
| conditions | ~180,000 | 150,000 managed persons: 85 % hypertension, 30 % type 2 diabetes |
| vitals | 30,000,000 | 85 % on managed persons (170 each over 6 years); sbp/dbp int16 |
| labs | 10,000,000 | 30 % HbA1c; 80 % on managed persons |
| encounters | 5,000,000 | 10 % inpatient, 26 ICD-10 codes, secondary diagnoses as `I10;E78.5` |
| follow_ups | 3,000,000 | managed persons only, 20 each |
| prescriptions | 2,000,000 | managed persons only, five ATC codes |

Every column is typed (dates date32, BP and days' supply int16, timestamps), every row passes validation
(no dirty rows: unique keys, events after birth and up to 2024-12-31, deaths only in the last week of 2024
so no event is more than the grace days after death). Deterministic: the same scale gives the same files.

    .venv/bin/python benchmarks/other_county.py --out /tmp/other-1.0 [--scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

START = "2019-01-01"  # six years of events: 2019-01-01 .. 2024-12-31
DAYS = 2192
VILLAGES = 250

# u(i, k): a uniform [0, 1) number from a hash of (i, k); hash() is deterministic across runs.
MACROS = """
CREATE OR REPLACE MACRO u(i, k) AS (hash(CAST(i AS BIGINT) * 1000003 + k) % 1000000) / 1000000.0;
CREATE OR REPLACE MACRO pid(i) AS printf('P%07d', i + 1);
"""

# Managed persons: every person with i % 20 in (3, 11, 17), i.e. 15 %. kind: 0 hypertension only (70 %),
# 1 diabetes only (15 %), 2 both (15 %): 85 % hypertension, 30 % diabetes.
MANAGED = """
CREATE OR REPLACE TEMP TABLE managed AS
SELECT i, CASE WHEN u(i, 10) < 0.70 THEN 0 WHEN u(i, 10) < 0.85 THEN 1 ELSE 2 END AS kind
FROM range({n}) t(i) WHERE i % 20 IN (3, 11, 17);
CREATE OR REPLACE TEMP TABLE unmanaged AS SELECT i FROM range({n}) t(i) WHERE i % 20 NOT IN (3, 11, 17);
"""

PERSONS = """
SELECT pid(i) AS person_id, CASE WHEN u(i, 1) < 0.49 THEN 'M' ELSE 'F' END AS sex,
       CAST(DATE '1934-01-01' + CAST(floor(u(i, 2) * 26000) AS INTEGER) AS DATE) AS birth_date,
       printf('TS%02d', v // 13) AS township_id, printf('V%03d', v) AS village_id,
       printf('UN%03d', v // 2) AS unit_id, printf('TM%03d', v // 2) AS team_id,
       u(i, 4) < 0.55 AS signed_contract,
       CASE WHEN u(i, 5) < 0.8 THEN printf('13%09d', CAST(u(i, 6) * 999999999 AS BIGINT)) END AS phone,
       CASE WHEN u(i, 7) < 0.005 THEN CAST(DATE '2024-12-24' + CAST(floor(u(i, 8) * 8) AS INTEGER) AS DATE)
       END AS death_date,
       u(i, 9) < 0.35 AS urban, u(i, 11) < 0.08 AS family_history_ascvd
FROM (SELECT i, CAST(floor(u(i, 3) * {villages}) AS INTEGER) AS v FROM range({n}) t(i))
"""

CONDITIONS = """
SELECT pid(i) AS person_id, c AS condition,
       CAST(enrolled - CAST(floor(u(i, 21) * 400) AS INTEGER) AS DATE) AS diagnosed_on,
       CAST(enrolled AS DATE) AS enrolled_on,
       CASE WHEN u(i, 22 + k) < 0.02
            THEN CAST(DATE '2024-01-01' + CAST(floor(u(i, 24 + k) * 360) AS INTEGER) AS DATE) END AS ended_on
FROM (SELECT i, kind, DATE '2012-01-01' + CAST(floor(u(i, 20) * 4000) AS INTEGER) AS enrolled FROM managed),
     (VALUES (0, 'hypertension'), (1, 'diabetes_t2')) c(k, c)
WHERE (k = 0 AND kind IN (0, 2)) OR (k = 1 AND kind IN (1, 2))
"""


def slotted(per: str, seconds: bool, salt: int) -> str:
    """The j-th of `per` events of a person falls in the j-th of `per` equal slots of the six years, so
    keys that include the time never repeat within a person."""
    if seconds:
        return (
            f"TIMESTAMP '{START} 00:00:00' + to_seconds(CAST(floor((j + 0.9 * u(i * 613 + j, {salt})) "
            f"* {DAYS} * 86400.0 / {per}) AS BIGINT))"
        )
    offset = f"CAST(floor((j + 0.9 * u(i * 613 + j, {salt})) * {DAYS} / {per}) AS INTEGER)"
    return f"CAST(DATE '{START}' + {offset} AS DATE)"


# Vitals: managed persons 170 readings each, the others 5 or 6 (mean 5.29): 85 % on managed persons. SBP is
# a person's usual level (118-150) plus reading noise (+-15) and a rare spike (+35, 0.5 % of readings).
VITALS = """
SELECT pid(i) AS person_id, {ts} AS measured_at, CAST(sbp AS SMALLINT) AS sbp,
       CAST(LEAST(sbp - 15, round(0.45 * sbp + 18 + u(i * 613 + j, 54) * 12)) AS SMALLINT) AS dbp,
       CAST(55 + u(i * 613 + j, 55) * 45 AS SMALLINT) AS heart_rate,
       CASE WHEN j % 12 = 0 THEN round(45 + u(i, 56) * 45 + u(i * 613 + j, 57) * 3, 1) END AS weight_kg,
       CASE WHEN j % 12 = 0 THEN round(148 + u(i, 58) * 35, 1) END AS height_cm,
       CASE WHEN j % 12 = 0 THEN round(68 + u(i, 59) * 40, 1) END AS waist_cm,
       CASE WHEN j % 4 = 0 THEN 'follow_up' WHEN j % 4 = 1 THEN 'clinic' ELSE 'home' END AS source
FROM (SELECT i, j, per,
             CAST(floor(118 + u(i, 53) * 32 + (u(i * 613 + j, 53) + u(i * 613 + j, 58) - 1) * 15
                        + CASE WHEN u(i * 613 + j, 59) < 0.005 THEN 35 ELSE 0 END) AS INTEGER) AS sbp
      FROM (SELECT i, 170 AS per FROM managed
            UNION ALL SELECT i, 5 + CAST(u(i, 50) < 0.294 AS INTEGER) AS per FROM unmanaged),
           LATERAL (SELECT unnest(range(per)) AS j))
"""

# Labs: tests by share (30 % HbA1c), canonical units, values inside the plausible ranges.
LAB_TESTS = [  # test, share, unit, low, high
    ("hba1c", 0.30, "%", 5.0, 8.5),
    ("fpg", 0.25, "mmol/L", 4.5, 9.0),
    ("tc", 0.10, "mmol/L", 3.5, 6.2),
    ("ldl_c", 0.10, "mmol/L", 1.8, 4.0),
    ("hdl_c", 0.05, "mmol/L", 0.9, 1.8),
    ("tg", 0.05, "mmol/L", 0.7, 2.8),
    ("creatinine", 0.10, "umol/L", 50.0, 120.0),
    ("egfr", 0.05, "mL/min/1.73m2", 55.0, 120.0),
]


def labs_sql() -> str:
    cases, cumulative = [], 0.0
    for k, (_test, share, _unit, _low, _high) in enumerate(LAB_TESTS):
        cumulative += share
        cases.append(f"WHEN r < {cumulative:.2f} THEN {k}")
    pick = f"CASE {' '.join(cases[:-1])} ELSE {len(LAB_TESTS) - 1} END"
    values = ", ".join(
        f"({k}, '{t}', '{unit}', {low}, {high})" for k, (t, _s, unit, low, high) in enumerate(LAB_TESTS)
    )
    return f"""
SELECT pid(i) AS person_id, {slotted("per", True, 61)} AS measured_at, t.test,
       round(t.lo + u(i * 613 + j, 62) * (t.hi - t.lo), 2) AS value, t.unit
FROM (SELECT i, j, per, {pick} AS k
      FROM (SELECT i, j, per, u(i * 613 + j, 60) AS r
            FROM (SELECT i, 53 AS per FROM managed
                  UNION ALL SELECT i, 2 + CAST(u(i, 63) < 0.353 AS INTEGER) AS per FROM unmanaged),
                 LATERAL (SELECT unnest(range(per)) AS j))) e
JOIN (VALUES {values}) t(k, test, unit, lo, hi) USING (k)
"""


# 26 ICD-10 codes: 12 everyday ones (98.5 % of encounters) and 14 complication codes (1.5 %, so about one
# managed person in six has one in six years); 10 % inpatient; 40 % with secondary diagnoses like 'I10;E78.5'.
COMMON_ICD10 = [
    "I10",
    "E11.9",
    "E78.5",
    "J06.9",
    "Z00.0",
    "K29.7",
    "M54.5",
    "R51",
    "J18.9",
    "N39.0",
    "K80.2",
    "J44.9",
]
COMPLICATION_ICD10 = [
    "I63.9",
    "I64",
    "G45.9",
    "I69.3",
    "I20.9",
    "I25.1",
    "I50.9",
    "I48.9",
    "N18.3",
    "E11.2",
    "E11.3",
    "E11.4",
    "E11.5",
    "I70.2",
]
ICD10 = COMMON_ICD10 + COMPLICATION_ICD10
SECONDARY = ["I10;E78.5", "E11.9", "I10", "E78.5;K29.7", "I10;E11.9;E78.5", "J44.9", "I10;J44.9"]


def encounters_sql() -> str:
    common = ", ".join(f"'{c}'" for c in COMMON_ICD10)
    rare = ", ".join(f"'{c}'" for c in COMPLICATION_ICD10)
    secondary = ", ".join(f"'{c}'" for c in SECONDARY)
    admitted = slotted("per", False, 71)
    return f"""
SELECT printf('E%07d%02d', i + 1, j) AS encounter_id, pid(i) AS person_id,
       CASE WHEN inpatient THEN 'inpatient' WHEN u(i * 613 + j, 73) < 0.05 THEN 'emergency'
            ELSE 'outpatient' END AS setting,
       CASE WHEN inpatient AND u(i * 613 + j, 74) < 0.15 THEN 'outside_county'
            WHEN inpatient THEN 'county' WHEN u(i * 613 + j, 74) < 0.5 THEN 'village' ELSE 'township' END
         AS facility_level,
       admitted AS admitted_on,
       CAST(CASE WHEN inpatient THEN LEAST(admitted + 1 + CAST(floor(u(i * 613 + j, 75) * 12) AS INTEGER),
                                           DATE '2024-12-31') ELSE admitted END AS DATE) AS discharged_on,
       CASE WHEN u(i * 613 + j, 76) < 0.985
            THEN ([{common}])[1 + CAST(floor(u(i * 613 + j, 89) * {len(COMMON_ICD10)}) AS INTEGER)]
            ELSE ([{rare}])[1 + CAST(floor(u(i * 613 + j, 89) * {len(COMPLICATION_ICD10)}) AS INTEGER)]
       END AS primary_dx,
       CASE WHEN u(i * 613 + j, 77) < 0.4
            THEN ([{secondary}])[1 + CAST(floor(u(i * 613 + j, 78) * {len(SECONDARY)}) AS INTEGER)]
       END AS secondary_dx,
       cost AS total_cost, round(cost * (0.3 + 0.5 * u(i * 613 + j, 79)), 2) AS fund_paid
FROM (SELECT i, j, {admitted} AS admitted, inpatient,
             round(CASE WHEN inpatient THEN 2000 + u(i * 613 + j, 80) * 18000
                        ELSE 20 + u(i * 613 + j, 80) * 400 END, 2) AS cost
      FROM (SELECT i, j, per, u(i * 613 + j, 72) < 0.10 AS inpatient
            FROM (SELECT i, 13 + CAST(u(i, 70) < 0.333 AS INTEGER) AS per FROM managed
                  UNION ALL SELECT i, 3 + CAST(u(i, 70) < 0.529 AS INTEGER) AS per FROM unmanaged),
                 LATERAL (SELECT unnest(range(per)) AS j)))
"""


FOLLOW_UPS = """
SELECT pid(i) AS person_id, {day} AS followed_on,
       CASE WHEN kind = 0 THEN 'hypertension' WHEN kind = 1 THEN 'diabetes_t2'
            WHEN j % 2 = 0 THEN 'hypertension' ELSE 'diabetes_t2' END AS condition,
       CASE WHEN u(i * 613 + j, 81) < 0.6 THEN 'clinic' WHEN u(i * 613 + j, 81) < 0.85 THEN 'home'
            ELSE 'phone' END AS mode,
       u(i, 82) < 0.25 AS smoker,
       CASE WHEN u(i * 613 + j, 83) < 0.7 THEN 'regular' WHEN u(i * 613 + j, 83) < 0.93 THEN 'intermittent'
            ELSE 'none' END AS adherence,
       CASE WHEN u(i * 613 + j, 84) < 0.003 THEN 'dizziness' ELSE '' END AS symptoms,
       u(i * 613 + j, 85) < 0.02 AS adverse_reaction, u(i * 613 + j, 86) < 0.01 AS referred
FROM managed, LATERAL (SELECT unnest(range(20)) AS j)
"""

ATC = {
    "C08CA01": "氨氯地平",
    "C09CA01": "氯沙坦",
    "C03AA03": "氢氯噻嗪",
    "A10BA02": "二甲双胍",
    "C10AA05": "阿托伐他汀",
}

# Prescriptions: 13 or 14 dispensings per managed person; diabetics get metformin, others one of four.
PRESCRIPTIONS = """
SELECT pid(i) AS person_id, {day} AS dispensed_on, atc AS atc_code,
       CAST(CASE WHEN u(i * 613 + j, 91) < 0.6 THEN 30 WHEN u(i * 613 + j, 91) < 0.9 THEN 60 ELSE 90 END
            AS SMALLINT) AS days_supply,
       {names} AS drug_name
FROM (SELECT i, j, per,
             CASE WHEN kind > 0 AND j % 2 = 0 THEN 'A10BA02'
                  ELSE (['C08CA01', 'C09CA01', 'C03AA03', 'C10AA05'])
                         [1 + CAST(floor(u(i, 92) * 4) AS INTEGER)]
             END AS atc
      FROM (SELECT i, kind, 13 + CAST(u(i, 90) < 0.333 AS INTEGER) AS per FROM managed),
           LATERAL (SELECT unnest(range(per)) AS j))
"""


def generate(out: Path, scale: float = 1.0, threads: int = 2) -> dict[str, int]:
    """Write the county's seven contract tables into `out` as Parquet; rows per table."""
    out.mkdir(parents=True, exist_ok=True)
    n = max(20, round(1_000_000 * scale))
    # insertion order kept: the same scale must give the same files byte for byte (the data fingerprint in
    # run.json, tests/test_fingerprint_other_shape.py); without it two threads interleave rows differently
    con = duckdb.connect(
        config={"threads": threads, "memory_limit": "3GB", "preserve_insertion_order": True}
    )
    con.execute(MACROS)
    con.execute(MANAGED.format(n=n))
    names = "CASE atc " + " ".join(f"WHEN '{code}' THEN '{name}'" for code, name in ATC.items()) + " END"
    queries = {
        "persons": PERSONS.format(n=n, villages=VILLAGES),
        "conditions": CONDITIONS,
        "vitals": VITALS.format(ts=slotted("per", True, 51)),
        "labs": labs_sql(),
        "encounters": encounters_sql(),
        "follow_ups": FOLLOW_UPS.format(day=slotted("20", False, 87)),
        "prescriptions": PRESCRIPTIONS.format(day=slotted("per", False, 93), names=names),
    }
    rows = {}
    for table, sql in queries.items():
        target = out / f"{table}.parquet"
        rows[table] = con.execute(
            f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()[0]
    con.close()
    (out / "_other_county.json").write_text(
        json.dumps({"scale": scale, "persons": n, "rows": rows}, indent=2)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 1,000,000 persons; 0.1 = 100,000")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = generate(args.out, args.scale)
    print(
        f"wrote {args.out} in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{table} {count:,}" for table, count in rows.items())
    )


if __name__ == "__main__":
    main()
