"""Benchmark `risk synth`: wall time, peak memory and rows per table at 100k and 1M persons.

    .venv/bin/python benchmarks/synth.py [--sizes 100000 1000000] [--work DIR] [--keep]

Each size runs `risk synth` in a child process (peak RSS of that child from os.wait4). As a reference
measured in the same run, a plain numpy + pyarrow Parquet write of the same number of rows (same column
count as the generated tables, random values) shows how much of the time is generation versus writing.
Budget (issue 2): 1,000,000 persons within 3 minutes and under 4 GiB on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BUDGET_SECONDS = {1_000_000: 180.0}
BUDGET_RSS_GIB = 4.0
RISK = Path(sys.executable).with_name("risk")


def run_synth(persons: int, out: Path, extra: list[str]) -> dict:
    command = [str(RISK), "synth", "--persons", str(persons), "--out", str(out), "--overwrite", *extra]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    output = child.stdout.read() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"risk synth failed for {persons} persons:\n{output}")
    meta = json.loads((out / "_synth" / "meta.json").read_text(encoding="utf-8"))
    return {
        "persons": persons,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
        "rows": meta["rows"],
        "summary": output,
    }


def reference_write(rows: int, out: Path, chunk: int = 1_000_000) -> float:
    """Seconds for numpy to draw and pyarrow to write `rows` rows of 6 float + 1 id column."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    writer = None
    for first in range(0, rows, chunk):
        n = min(chunk, rows - first)
        numbers = pc.cast(pa.array(rng.integers(0, 10**8, size=n)), pa.string())
        ids = pc.binary_join_element_wise("P", numbers, "")
        table = pa.table({"person_id": ids, **{f"x{i}": rng.normal(size=n) for i in range(6)}})
        writer = writer or pq.ParquetWriter(out, table.schema, compression="snappy")
        writer.write_table(table)
    if writer:
        writer.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--home-bp-per-year", type=float, default=0.0)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="synth-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    extra = ["--home-bp-per-year", str(args.home_bp_per_year)] if args.home_bp_per_year else []
    failures = []
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; pyarrow {pa.__version__}")
    for persons in args.sizes:
        out = work / f"county-{persons}"
        result = run_synth(persons, out, extra)
        total_rows = sum(result["rows"].values())
        reference_started = time.process_time()
        reference = reference_write(total_rows, work / "reference.parquet")
        reference_cpu = time.process_time() - reference_started
        (work / "reference.parquet").unlink(missing_ok=True)
        print(f"\n## {persons:,} persons")
        print(f"wall time            {result['seconds']:8.1f} s")
        print(f"CPU time (child)     {result['cpu_seconds']:8.1f} s  (user + system; the machine is shared)")
        print(f"peak RSS (child)     {result['peak_rss_gib']:8.2f} GiB")
        print(f"rows written         {total_rows:>12,}  ({total_rows / result['seconds']:,.0f} rows/s)")
        for name, rows in result["rows"].items():
            print(f"  {name:<16}{rows:>14,}")
        print(f"reference write      {reference:8.1f} s  (numpy + pyarrow, {total_rows:,} rows x 7 columns)")
        print(
            f"ratio synth / ref    {result['seconds'] / reference:8.2f}  (CPU time ratio "
            f"{result['cpu_seconds'] / max(reference_cpu, 1e-9):.2f})"
        )
        budget = BUDGET_SECONDS.get(persons)
        if budget and result["seconds"] > budget:
            failures.append(f"{persons:,} persons took {result['seconds']:.0f} s > {budget:.0f} s")
        if result["peak_rss_gib"] > BUDGET_RSS_GIB:
            failures.append(
                f"{persons:,} persons peaked at {result['peak_rss_gib']:.2f} GiB > {BUDGET_RSS_GIB} GiB"
            )
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("\nbudget:", "PASS" if not failures else "FAIL: " + "; ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
