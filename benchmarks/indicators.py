"""Benchmark: county overview on a large synthetic run, against a hand-written control-rate query.

    .venv/bin/python benchmarks/indicators.py --run RUN_DIR [--period 2024Q4] [--repeat 1]

Make the run first, e.g. `risk synth --out IN --persons 1000000` then
`risk nightly IN --as-of 2024-12-31 --out RUNS/2024-12-31 --no-model` (or `risk validate IN --out RUN_DIR`:
the overview then skips the tier sections). Each measurement runs in a fresh subprocess so its peak RSS
(ru_maxrss) is its own. Prints wall time, peak memory and the ratio to the reference query.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

REFERENCE = """
import sys, duckdb
canonical = sys.argv[1]
con = duckdb.connect()
# Chinese BP control rate for 2024Q4, county only, written by hand: the floor any engine must pay.
row = con.execute(f'''
WITH managed AS (
  SELECT DISTINCT c.person_id FROM read_parquet('{canonical}/conditions.parquet') c
  JOIN read_parquet('{canonical}/persons.parquet') p USING (person_id)
  WHERE c.condition = 'hypertension' AND c.enrolled_on <= DATE '2024-12-31'
    AND (c.ended_on IS NULL OR c.ended_on >= DATE '2024-10-01')
    AND (p.death_date IS NULL OR p.death_date >= DATE '2024-10-01')),
latest AS (
  SELECT person_id, arg_max(sbp, measured_at) AS sbp, arg_max(dbp, measured_at) AS dbp
  FROM read_parquet('{canonical}/vitals.parquet')
  WHERE measured_at >= TIMESTAMP '2024-10-01' AND measured_at < TIMESTAMP '2025-01-01'
    AND (source IS NULL OR source <> 'home')
  GROUP BY person_id)
SELECT count(*) FILTER (WHERE l.sbp < 140 AND l.dbp < 90), count(*)
FROM managed m LEFT JOIN latest l USING (person_id)''').fetchall()[0]
print(row)
"""

OVERVIEW = """
import sys, time
from risk.indicators.overview import build_overview
start = time.perf_counter()
build_overview(sys.argv[1], sys.argv[2], period=sys.argv[3])
print(f"inner_seconds={time.perf_counter() - start:.2f}")
"""


def measure(code: str, *args: str) -> dict[str, float | str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # CPU seconds as well as wall time: on a shared machine the wall time includes waiting for a core.
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mb": round(max(after.ru_maxrss, before.ru_maxrss) / 1024, 1),
            "stdout": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--period", default="2024Q4")
    parser.add_argument("--out", type=Path, default=Path("/tmp/risk_overview_benchmark.html"))
    args = parser.parse_args()
    canonical = args.run / "canonical"
    persons = pq.ParquetFile(canonical / "persons.parquet").metadata.num_rows  # footer only: no data read
    # Reference first: ru_maxrss of children is a running maximum, so the smaller process goes first.
    reference = measure(REFERENCE, str(canonical))
    overview = measure(OVERVIEW, str(args.run), str(args.out), args.period)
    result = {
        "persons": int(persons), "period": args.period, "tiers": (args.run / "tiers.parquet").exists(),
        "reference_control_rate_query": reference, "county_overview": overview,
        "ratio_overview_to_reference": round(float(overview["seconds"]) / float(reference["seconds"]), 1),
        "html_bytes": args.out.stat().st_size,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
