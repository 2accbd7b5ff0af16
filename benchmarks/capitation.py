"""Benchmark of the capitation (小包干) report: time and peak memory of `risk report capitation` on a run.

    .venv/bin/python benchmarks/capitation.py --run runs/2024-12-31 --year 2024 [--format xlsx]

The run is a `risk nightly` folder (e.g. of `risk synth --persons 100000`). The report runs in its own
subprocess; peak RSS is that process's maxrss (ru_maxrss of the child). Stages are logged by the report
itself (features twice, model fits, bootstrap). Figures at 100k and 1M persons (target <= 30 s, <= 2 GiB)
are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--year", type=int, required=True)
    parser.add_argument("--format", default="xlsx", choices=["html", "csv", "xlsx"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/capitation-benchmark"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"capitation-{args.year}.{args.format}"
    command = [
        sys.executable,
        "-m",
        "risk.cli",
        "report",
        "capitation",
        "--run",
        str(args.run),
        "--year",
        str(args.year),
        "--out",
        str(out),
        "--format",
        args.format,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        sys.exit(f"report failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    persons = _persons(args.run)
    print(
        f"capitation report {args.year} ({args.format}), run {args.run.name}: {persons:,} persons, "
        f"{seconds:.1f} s wall, peak RSS {peak_mib:,.0f} MiB"
    )
    for line in done.stderr.splitlines():
        if "INFO" in line:
            print("  " + line.split(" INFO ", 1)[-1])


def _persons(run: Path) -> int:
    import duckdb

    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{run}/canonical/persons.parquet')").fetchall()
    return int(rows[0][0])


if __name__ == "__main__":
    main()
