"""Benchmark of the feature stage: time and peak memory at 100k and 1M persons, and the ratio to a plain
hand-written DuckDB query computing 16 core features over the same canonical Parquet files, same run.

Two ratios are printed: the feature stage as the nightly job runs it (the whole catalogue, ~70 features
over all seven tables, China-PAR included) over the 16-feature query, and the same 16 features computed
through the feature definitions (`compute_features_table(columns=CORE_FEATURES)`: the catalogue's SQL,
pruned to what those features need, typed and written the same way) over the 16-feature query - the cost
of going through the definitions rather than hand-writing SQL, like for like.

    .venv/bin/python benchmarks/features.py --persons 100000 1000000 --home-bp-per-year 24 [--by-group]
    .venv/bin/python benchmarks/features.py --shape other --persons 100000     # benchmarks/other_county.py

Whole processes, as a user runs them (issue 19): the wall time of the reference's whole process (Python,
DuckDB import, query, write) against `risk features VALIDATED --as-of D --out F` (the whole catalogue).

Data: `risk synth` + `risk validate` (the real pipeline) when both are available; otherwise (or with
--source builtin) a built-in DuckDB generator writes canonical-shaped tables directly (~45 event rows per
person, 15 % under management) - the report says which was used. Every measurement runs in its own
subprocess (2 DuckDB threads, 3 GB memory limit for both sides) and peak RSS is that process's maxrss.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

AS_OF = date(2024, 12, 31)
ROOT = Path(__file__).resolve().parent.parent

# 16 core features, written the way an analyst would: one aggregate per table, a QUALIFY for the last 3.
REFERENCE_SQL = """
COPY (
WITH managed AS (
  SELECT person_id, MIN(enrolled_on) AS enrolled_on
  FROM read_parquet('{d}/conditions.parquet')
  WHERE condition IN ('hypertension', 'diabetes_t2') AND enrolled_on <= DATE '{as_of}'
    AND (ended_on IS NULL OR ended_on > DATE '{as_of}')
  GROUP BY person_id),
bp AS (
  SELECT person_id, arg_max(sbp, measured_at) AS bp_last_sbp, arg_max(dbp, measured_at) AS bp_last_dbp,
         CAST(MAX(measured_at) AS DATE) AS bp_last_date,
         COUNT(*) FILTER (WHERE measured_at >= TIMESTAMP '{ws}') AS bp_readings_12m,
         AVG(CASE WHEN sbp < 140 AND dbp < 90 THEN 1.0 ELSE 0.0 END)
           FILTER (WHERE measured_at >= TIMESTAMP '{ws}') AS bp_controlled_share_12m
  FROM read_parquet('{d}/vitals.parquet') WHERE measured_at < TIMESTAMP '{end}' GROUP BY person_id),
bp3 AS (
  SELECT person_id, AVG(sbp) AS bp_mean3_sbp FROM (
    SELECT person_id, sbp FROM read_parquet('{d}/vitals.parquet') WHERE measured_at < TIMESTAMP '{end}'
    QUALIFY ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY measured_at DESC) <= 3)
  GROUP BY person_id),
lab AS (
  SELECT person_id, arg_max(value, measured_at) FILTER (WHERE test = 'fpg') AS fpg_last,
         arg_max(value, measured_at) FILTER (WHERE test = 'hba1c') AS hba1c_last
  FROM read_parquet('{d}/labs.parquet') WHERE measured_at < TIMESTAMP '{end}' GROUP BY person_id),
fu AS (
  SELECT person_id, COUNT(*) FILTER (WHERE followed_on >= DATE '{wsd}') AS fu_count_12m,
         DATE '{as_of}' - MAX(followed_on) AS fu_days_since_last
  FROM read_parquet('{d}/follow_ups.parquet') WHERE followed_on <= DATE '{as_of}' GROUP BY person_id),
enc AS (
  SELECT person_id,
         COUNT(*) FILTER (WHERE setting = 'inpatient' AND admitted_on >= DATE '{wsd}') AS enc_inpatient_12m,
         SUM(GREATEST(LEAST(COALESCE(discharged_on, DATE '{as_of}'), DATE '{as_of}') - admitted_on, 1))
           FILTER (WHERE setting = 'inpatient' AND admitted_on >= DATE '{wsd}') AS enc_bed_days_12m,
         SUM(total_cost) FILTER (WHERE admitted_on >= DATE '{wsd}') AS enc_total_cost_12m,
         bool_or(primary_dx LIKE 'I6%' OR primary_dx LIKE 'G45%' OR secondary_dx LIKE '%I6%') AS cx_stroke
  FROM read_parquet('{d}/encounters.parquet') WHERE admitted_on <= DATE '{as_of}' GROUP BY person_id)
SELECT m.person_id, date_diff('day', p.birth_date, DATE '{as_of}') / 365.25 AS age, p.sex,
       bp.bp_last_sbp, bp.bp_last_dbp, bp.bp_last_date, bp3.bp_mean3_sbp, bp.bp_readings_12m,
       bp.bp_controlled_share_12m, lab.fpg_last, lab.hba1c_last, fu.fu_count_12m, fu.fu_days_since_last,
       enc.enc_inpatient_12m, enc.enc_bed_days_12m, enc.enc_total_cost_12m, enc.cx_stroke
FROM managed m
JOIN read_parquet('{d}/persons.parquet') p ON p.person_id = m.person_id
     AND (p.death_date IS NULL OR p.death_date > DATE '{as_of}')
LEFT JOIN bp ON bp.person_id = m.person_id LEFT JOIN bp3 ON bp3.person_id = m.person_id
LEFT JOIN lab ON lab.person_id = m.person_id LEFT JOIN fu ON fu.person_id = m.person_id
LEFT JOIN enc ON enc.person_id = m.person_id
ORDER BY m.person_id
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""

# The reference query's columns, by their catalogue names.
CORE_FEATURES = [
    "age", "sex", "bp_last_sbp", "bp_last_dbp", "bp_last_date", "bp_mean3_sbp", "bp_readings_12m",
    "bp_controlled_share_12m", "fpg_last", "hba1c_last", "fu_count_12m", "fu_days_since_last",
    "enc_inpatient_12m", "enc_bed_days_12m", "enc_total_cost_12m", "cx_stroke",
]

# Built-in generator: canonical-shaped tables straight from DuckDB (deterministic hash-based noise).
BUILTIN_SQL = """
CREATE MACRO u(i, k) AS (hash(i * 1000003 + k) % 1000000) / 1000000.0;
COPY (SELECT printf('P%08d', i) AS person_id, CASE WHEN u(i,1) < 0.5 THEN 'M' ELSE 'F' END AS sex,
        DATE '1930-01-01' + CAST(u(i,2) * 25000 AS INTEGER) AS birth_date,
        printf('T%02d', i % 18) AS township_id, printf('V%03d', i % 251) AS village_id,
        printf('U%03d', i % 232) AS unit_id, printf('TEAM%03d', i % 300) AS team_id,
        u(i,3) < 0.6 AS signed_contract, NULL::VARCHAR AS phone,
        CASE WHEN u(i,4) < 0.01 THEN DATE '2021-01-01' + CAST(u(i,5) * 1400 AS INTEGER) END AS death_date,
        NULL::VARCHAR AS name, u(i,6) < 0.3 AS urban, u(i,7) < 0.1 AS family_history_ascvd,
        'h' || i AS national_id_hash, '3406**' AS national_id_masked, i + 1 AS source_row
      FROM range({n}) t(i)) TO '{d}/persons.parquet' (FORMAT parquet);
CREATE TABLE managed AS SELECT i FROM range({n}) t(i) WHERE u(i, 10) < 0.15;
COPY (SELECT printf('P%08d', i) AS person_id, c AS condition, NULL::DATE AS diagnosed_on,
        DATE '2015-01-01' + CAST(u(i, 11 + k) * 3650 AS INTEGER) AS enrolled_on,
        CASE WHEN u(i, 20 + k) < 0.03 THEN DATE '2024-01-01' + CAST(u(i, 30 + k) * 500 AS INTEGER) END
          AS ended_on,
        row_number() OVER () AS source_row
      FROM managed, (VALUES (0, 'hypertension'), (1, 'diabetes_t2'), (2, 'copd')) c(k, c)
      WHERE (k = 0 AND u(i, 40) < 0.8) OR (k = 1 AND u(i, 40) >= 0.6) OR (k = 2 AND u(i, 41) < 0.1)
     ) TO '{d}/conditions.parquet' (FORMAT parquet);
COPY (SELECT printf('P%08d', i) AS person_id,
        TIMESTAMP '2021-01-01 08:00:00' + INTERVAL (CAST(u(i * 131 + j, 50) * 1460 * 24 AS INTEGER)) HOUR
          AS measured_at,
        round(110 + u(i * 131 + j, 51) * 70) AS sbp, round(65 + u(i * 131 + j, 52) * 40) AS dbp,
        NULL::DOUBLE AS heart_rate, CASE WHEN j % 8 = 0 THEN 50 + u(i, 53) * 40 END AS weight_kg,
        CASE WHEN j % 8 = 0 THEN 150 + u(i, 54) * 30 END AS height_cm,
        CASE WHEN j % 8 = 0 THEN 70 + u(i, 55) * 30 END AS waist_cm,
        CASE WHEN j < 16 THEN 'follow_up' ELSE 'home' END AS source,
        row_number() OVER () AS source_row
      FROM managed, range({vitals_per}) r(j)) TO '{d}/vitals.parquet' (FORMAT parquet);
COPY (SELECT printf('P%08d', i) AS person_id,
        TIMESTAMP '2021-01-01 07:30:00' + INTERVAL (CAST(u(i * 97 + j, 60) * 1460 AS INTEGER)) DAY
          AS measured_at,
        t.test, t.lo + u(i * 97 + j, 61) * t.span AS value, t.unit, row_number() OVER () AS source_row
      FROM managed, range(8) r(j),
           (VALUES ('fpg', 4.0, 8.0, 'mmol/L'), ('hba1c', 5.0, 5.0, '%'), ('tc', 3.0, 4.0, 'mmol/L'),
                   ('hdl_c', 0.8, 1.2, 'mmol/L'), ('ldl_c', 1.5, 3.0, 'mmol/L')) t(test, lo, span, unit)
     ) TO '{d}/labs.parquet' (FORMAT parquet);
COPY (SELECT printf('P%08d', i) AS person_id,
        DATE '2021-01-01' + CAST(j * 91 + u(i * 17 + j, 70) * 60 AS INTEGER) AS followed_on,
        'hypertension' AS condition, 'clinic' AS mode, u(i, 71) < 0.25 AS smoker,
        'regular' AS adherence, '' AS symptoms, false AS adverse_reaction, false AS referred,
        row_number() OVER () AS source_row
      FROM managed, range(16) r(j)) TO '{d}/follow_ups.parquet' (FORMAT parquet);
COPY (SELECT printf('P%08d', i) AS person_id, printf('E%d_%d', i, j) AS encounter_id,
        CASE WHEN u(i * 11 + j, 80) < 0.08 THEN 'inpatient' WHEN u(i * 11 + j, 80) < 0.12 THEN 'emergency'
             ELSE 'outpatient' END AS setting,
        CASE WHEN u(i * 11 + j, 81) < 0.1 THEN 'outside_county' ELSE 'township' END AS facility_level,
        DATE '2021-01-01' + CAST(u(i * 11 + j, 82) * 1460 AS INTEGER) AS admitted_on,
        DATE '2021-01-01' + CAST(u(i * 11 + j, 82) * 1460 AS INTEGER)
          + CAST(u(i * 11 + j, 83) * 10 AS INTEGER) AS discharged_on,
        CASE WHEN u(i * 11 + j, 84) < 0.02 THEN 'I63.9' WHEN u(i * 11 + j, 84) < 0.04 THEN 'I25.1'
             ELSE 'I10' END AS primary_dx,
        CASE WHEN u(i * 11 + j, 85) < 0.05 THEN 'E11.2;N18.3' END AS secondary_dx,
        round(u(i * 11 + j, 86) * 2000, 2) AS total_cost, round(u(i * 11 + j, 86) * 1200, 2) AS fund_paid,
        row_number() OVER () AS source_row
      FROM range({n}) t(i), range(12) r(j) WHERE j < CASE WHEN u(i, 10) < 0.15 THEN 12 ELSE 3 END
     ) TO '{d}/encounters.parquet' (FORMAT parquet);
COPY (SELECT printf('P%08d', i) AS person_id,
        DATE '2021-01-01' + CAST(j * 30 + u(i * 7 + j, 90) * 20 AS INTEGER) AS dispensed_on,
        CASE j % 3 WHEN 0 THEN 'C08CA01' WHEN 1 THEN 'A10BA02' ELSE 'C10AA05' END AS atc_code,
        30 AS days_supply, NULL::VARCHAR AS drug_name, row_number() OVER () AS source_row
      FROM managed, range(48) r(j)) TO '{d}/prescriptions.parquet' (FORMAT parquet);
"""


def builtin_canonical(persons: int, home_bp_per_year: float, canonical: Path) -> None:
    import duckdb

    canonical.mkdir(parents=True, exist_ok=True)
    vitals_per = 16 + int(home_bp_per_year * 4)  # 4 years of follow-up readings plus home readings
    con = duckdb.connect(config={"threads": 2, "memory_limit": "3GB", "preserve_insertion_order": False})
    con.execute(BUILTIN_SQL.format(n=persons, d=canonical, vitals_per=vitals_per))
    con.close()


def synth_available() -> bool:
    try:
        import risk.synth  # noqa: F401
        import risk.validate  # noqa: F401
    except ImportError:
        return False
    return hasattr(sys.modules["risk.synth"], "generate_county") and hasattr(
        sys.modules["risk.validate"], "validate_folder")


def prepare(persons: int, home_bp: float, work: Path, source: str, shape: str = "own") -> tuple[Path, str]:
    """Canonical folder for `persons` residents, reused when already built."""
    risk = str(Path(sys.executable).with_name("risk"))
    if shape == "other":  # benchmarks/other_county.py, then `risk validate`
        tag = f"other_{persons}"
        canonical = work / tag / "validated" / "canonical"
        if not (canonical / "prescriptions.parquet").exists():
            shutil.rmtree(work / tag, ignore_errors=True)
            started = time.perf_counter()
            raw = work / tag / "raw"
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "other_county.py"), "--out", str(raw),
                            "--scale", str(persons / 1_000_000)], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([risk, "validate", str(raw), "--out", str(work / tag / "validated"),
                            "--as-of", str(AS_OF)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            print(f"  prepared {tag} in {time.perf_counter() - started:.1f} s", flush=True)
        return canonical, tag
    use_synth = source == "synth" or (source == "auto" and synth_available())
    tag = f"{'synth' if use_synth else 'builtin'}_{persons}_{home_bp:g}"
    canonical = work / tag / "validated" / "canonical"
    if (canonical / "prescriptions.parquet").exists():
        return canonical, tag
    shutil.rmtree(work / tag, ignore_errors=True)
    started = time.perf_counter()
    if use_synth:
        raw = work / tag / "raw"
        subprocess.run([risk, "synth", "--out", str(raw), "--persons", str(persons),
                        "--home-bp-per-year", str(home_bp)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([risk, "validate", str(raw), "--out", str(work / tag / "validated")], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        builtin_canonical(persons, home_bp, canonical)
    print(f"  prepared {tag} in {time.perf_counter() - started:.1f} s", flush=True)
    return canonical, tag


def measure(mode: str, canonical: Path, out: Path) -> dict[str, float]:
    """Run one stage in a fresh subprocess; seconds from the child, whole-process wall time around it, peak
    RSS from wait4. Mode "cli" is `risk features` itself (the whole catalogue, as a user runs it)."""
    if mode == "cli":
        command = [str(Path(sys.executable).with_name("risk")), "features", str(canonical.parent),
                   "--as-of", str(AS_OF), "--out", str(out)]
    else:
        command = [sys.executable, __file__, "--child", mode, "--canonical", str(canonical),
                   "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = proc.stdout.read() if proc.stdout else ""  # before waiting, so a full pipe cannot block it
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{mode} failed with status {status}")
    if mode == "cli":
        import pyarrow.parquet as pq

        result = {"seconds": wall, "rows": pq.ParquetFile(out).metadata.num_rows}
    else:
        result = json.loads(output.strip().splitlines()[-1])
    result["wall"] = wall
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def child(mode: str, canonical: Path, out: Path) -> None:
    from datetime import timedelta

    # Imports happen once per process in the nightly job: they are not part of the stage's time. The
    # reference imports DuckDB only, so its whole process is what an analyst's script costs.
    import duckdb

    if mode != "reference":
        from risk.features import compute_features, compute_features_table
        from risk.features.pipeline import write_parquet_atomically

    started = time.perf_counter()
    if mode == "features":
        table = compute_features_table(canonical, AS_OF)
        write_parquet_atomically(table, out)
        rows = table.num_rows
    elif mode == "features_core":
        table = compute_features_table(canonical, AS_OF, columns=CORE_FEATURES)
        write_parquet_atomically(table, out)
        rows = table.num_rows
    elif mode == "groups":  # where the feature stage's time goes: each catalogue group on its own
        from risk.features import feature_catalogue

        seconds = {}
        for group in dict.fromkeys(f.group for f in feature_catalogue()):
            columns = [f.name for f in feature_catalogue() if f.group == group]
            group_started = time.perf_counter()
            rows = compute_features_table(canonical, AS_OF, columns=columns).num_rows
            seconds[group] = round(time.perf_counter() - group_started, 3)
        print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows, "groups": seconds}))
        return
    elif mode == "features_frame":
        rows = len(compute_features(canonical, AS_OF, out=out))
    else:
        con = duckdb.connect(config={"threads": 2, "memory_limit": "3GB", "preserve_insertion_order": False})
        ws = AS_OF - timedelta(days=364)
        con.execute(REFERENCE_SQL.format(d=canonical, as_of=AS_OF, ws=f"{ws} 00:00:00", wsd=ws,
                                         end=f"{AS_OF + timedelta(days=1)} 00:00:00", out=out))
        rows = con.execute(f"SELECT COUNT(*) FROM read_parquet('{out}')").fetchone()[0]
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))


def event_rows(canonical: Path) -> int:
    import pyarrow.parquet as pq

    tables = [p for p in canonical.glob("*.parquet") if p.stem != "persons"]
    return sum(pq.ParquetFile(p).metadata.num_rows for p in tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--home-bp-per-year", type=float, default=24.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/risk-bench-features"))
    parser.add_argument("--source", choices=["auto", "synth", "builtin"], default="auto")
    parser.add_argument("--shape", nargs="+", choices=["own", "other"], default=["own", "other"],
                        help="own: the --source county; other: benchmarks/other_county.py (issue 19)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per stage; the fastest is reported")
    parser.add_argument("--by-group", action="store_true",
                        help="also time each feature group (catalogue groups) alone, at every size")
    parser.add_argument("--child")
    parser.add_argument("--canonical", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # Synthetic counties only: validation refuses to run without a county ID key.
    os.environ.setdefault("RISK_ID_KEY", "benchmark-key")
    if args.child:
        child(args.child, args.canonical, args.out)
        return
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("persons  events   source   stage                seconds  wall s  peak RSS MiB  rows")
    for shape, persons in ((shape, persons) for shape in args.shape for persons in args.persons):
        canonical, tag = prepare(persons, args.home_bp_per_year, args.work, args.source, shape)
        events = event_rows(canonical)
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for mode in ("reference", "features_core", "features", "features_frame", "cli"):
                result = measure(mode, canonical, args.work / tag / f"{mode}.parquet")
                if mode not in best or result["seconds"] < best[mode]["seconds"]:
                    best[mode] = result
        for mode, result in best.items():
            print(f"{persons:>8} {events / 1e6:5.1f}M  {tag.split('_')[0]:8} {mode:20} "
                  f"{result['seconds']:7.2f}  {result['wall']:6.2f}  {result['peak_rss_mib']:12.0f}  "
                  f"{int(result['rows'])}")
        reference = best["reference"]["seconds"]
        print(f"{persons:>8} ratio feature stage (whole catalogue) / hand-written 16-feature query: "
              f"{best['features']['seconds'] / reference:.2f} "
              f"(with pandas frame: {best['features_frame']['seconds'] / reference:.2f})", flush=True)
        print(f"{persons:>8} ratio same 16 features through the definitions / hand-written query: "
              f"{best['features_core']['seconds'] / reference:.2f}", flush=True)
        print(f"{persons:>8} whole processes: `risk features` (whole catalogue) / the query's process: "
              f"{best['cli']['wall'] / best['reference']['wall']:.2f} ({best['cli']['wall']:.2f} s / "
              f"{best['reference']['wall']:.2f} s; load {os.getloadavg()[0]:.1f})", flush=True)
        if args.by_group:
            groups = measure("groups", canonical, args.work / tag / "groups.parquet")["groups"]
            print(f"{persons:>8} each feature group alone (s): "
                  + ", ".join(f"{group} {seconds:.2f}" for group, seconds in groups.items()), flush=True)


if __name__ == "__main__":
    main()
